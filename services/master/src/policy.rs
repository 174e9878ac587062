//! Who may see and call which tool (rules on wire-name globs and roles), and how often (token buckets
//! per identity and per identity+tool).

use std::num::NonZeroU32;
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mcp_runtime::auth::Identity;

use crate::config::{Action, PolicyConfig, RateLimitConfig};

/// Compiles wire-name globs; `what` names the config key in errors.
pub(crate) fn globs(patterns: &[String], what: &str) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| format!("{what}: bad glob `{p}`: {e}"))?);
    }
    b.build().map_err(|e| format!("{what}: {e}"))
}

struct CompiledRule {
    tools: GlobSet,
    roles: Vec<String>,
    identities: Vec<String>,
    action: Action,
}

/// The compiled policy.
pub struct Policy {
    rules: Vec<CompiledRule>,
    default_action: Action,
}

impl Policy {
    /// Compiles the rules; a bad glob is a config error.
    pub fn new(cfg: &PolicyConfig) -> Result<Self, String> {
        let rules = cfg
            .rule
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(CompiledRule {
                    tools: globs(&r.tools, &format!("master.policy.rule[{i}].tools"))?,
                    roles: r.roles.clone(),
                    identities: r.identities.clone(),
                    action: r.action,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            rules,
            default_action: cfg.default_action,
        })
    }

    /// The decision for `identity` calling `tool` (a wire name).
    pub fn decide(&self, identity: &Identity, tool: &str) -> Action {
        self.rules
            .iter()
            .find(|r| {
                r.tools.is_match(tool)
                    && (r.roles.is_empty() || r.roles.iter().any(|role| identity.has_role(role)))
                    && (r.identities.is_empty() || r.identities.contains(&identity.name))
            })
            .map_or(self.default_action, |r| r.action)
    }

    /// Whether the tool is listed for `identity` (everything not denied).
    pub fn visible(&self, identity: &Identity, tool: &str) -> bool {
        self.decide(identity, tool) != Action::Deny
    }
}

/// A refusal by a rate limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    /// `identity` or `tool`.
    pub scope: &'static str,
    pub per_minute: u32,
    pub retry_after_secs: f64,
}

struct ToolLimit {
    tools: GlobSet,
    per_minute: u32,
    limiter: DefaultKeyedRateLimiter<String>,
}

/// Token buckets per identity and per identity+tool.
pub struct RateLimits {
    per_identity: Option<(u32, DefaultKeyedRateLimiter<String>)>,
    tools: Vec<ToolLimit>,
    // Creating a clock calibrates it (CPUID and timing); do it once, not per call.
    clock: DefaultClock,
}

fn quota(per_minute: u32, what: &str) -> Result<Quota, String> {
    let n = NonZeroU32::new(per_minute).ok_or_else(|| format!("{what} must be at least 1"))?;
    Ok(Quota::per_minute(n))
}

impl RateLimits {
    pub fn new(cfg: &RateLimitConfig) -> Result<Arc<Self>, String> {
        let per_identity = cfg
            .per_identity_per_minute
            .map(|n| {
                quota(n, "master.rate_limit.per_identity_per_minute")
                    .map(|q| (n, RateLimiter::keyed(q)))
            })
            .transpose()?;
        let tools = cfg
            .tool
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let what = format!("master.rate_limit.tool[{i}]");
                Ok(ToolLimit {
                    tools: globs(&t.tools, &what)?,
                    per_minute: t.per_minute,
                    limiter: RateLimiter::keyed(quota(
                        t.per_minute,
                        &format!("{what}.per_minute"),
                    )?),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Arc::new(Self {
            per_identity,
            tools,
            clock: DefaultClock::default(),
        }))
    }

    /// Takes one token for `identity` calling `tool`, or says which limit refused and for how long.
    pub fn check(&self, identity: &str, tool: &str) -> Result<(), Limited> {
        let clock = &self.clock;
        if let Some((n, limiter)) = &self.per_identity
            && let Err(not_until) = limiter.check_key(&identity.to_owned())
        {
            return Err(Limited {
                scope: "identity",
                per_minute: *n,
                retry_after_secs: not_until.wait_time_from(clock.now()).as_secs_f64(),
            });
        }
        for t in &self.tools {
            if t.tools.is_match(tool)
                && let Err(not_until) = t.limiter.check_key(&format!("{identity}\u{0}{tool}"))
            {
                return Err(Limited {
                    scope: "tool",
                    per_minute: t.per_minute,
                    retry_after_secs: not_until.wait_time_from(clock.now()).as_secs_f64(),
                });
            }
        }
        Ok(())
    }

    /// Drops idle buckets so the key maps stay bounded.
    pub fn shrink(&self) {
        if let Some((_, l)) = &self.per_identity {
            l.retain_recent();
        }
        for t in &self.tools {
            t.limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Rule, ToolRate};

    fn id(name: &str, roles: &[&str]) -> Identity {
        Identity {
            name: name.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn first_matching_rule_decides() {
        let p = Policy::new(&PolicyConfig {
            default_action: Action::Allow,
            rule: vec![
                Rule {
                    tools: vec!["linux_*".into()],
                    roles: vec!["admin".into()],
                    identities: vec![],
                    action: Action::Allow,
                },
                Rule {
                    tools: vec!["linux_runCommand".into()],
                    roles: vec![],
                    identities: vec![],
                    action: Action::Approve,
                },
                Rule {
                    tools: vec!["linux_*".into(), "secrets_*".into()],
                    roles: vec![],
                    identities: vec![],
                    action: Action::Deny,
                },
            ],
        })
        .unwrap();
        let admin = id("a", &["admin"]);
        let user = id("u", &["viewer"]);
        for (who, tool, expect) in [
            (&admin, "linux_runCommand", Action::Allow),
            (&user, "linux_runCommand", Action::Approve),
            (&user, "linux_readFile", Action::Deny),
            (&user, "secrets_getSecret", Action::Deny),
            (&user, "cmdb_getHost", Action::Allow),
        ] {
            assert_eq!(p.decide(who, tool), expect, "{} {tool}", who.name);
        }
        assert!(!p.visible(&user, "linux_readFile"));
        assert!(p.visible(&user, "linux_runCommand"));
    }

    #[test]
    fn bad_glob_is_an_error() {
        let err = Policy::new(&PolicyConfig {
            default_action: Action::Allow,
            rule: vec![Rule {
                tools: vec!["[".into()],
                roles: vec![],
                identities: vec![],
                action: Action::Deny,
            }],
        })
        .err()
        .unwrap();
        assert!(err.contains("rule[0]"), "{err}");
    }

    #[test]
    fn rate_limits_per_identity_and_tool() {
        let l = RateLimits::new(&RateLimitConfig {
            per_identity_per_minute: Some(5),
            tool: vec![ToolRate {
                tools: vec!["cmdb_getHost".into()],
                per_minute: 2,
            }],
        })
        .unwrap();
        assert!(l.check("alice", "cmdb_getHost").is_ok());
        assert!(l.check("alice", "cmdb_getHost").is_ok());
        let e = l.check("alice", "cmdb_getHost").unwrap_err();
        assert_eq!((e.scope, e.per_minute), ("tool", 2));
        assert!(e.retry_after_secs > 0.0);
        // Bob has his own buckets.
        assert!(l.check("bob", "cmdb_getHost").is_ok());
        // Alice used 3 identity tokens; 2 more, then the identity limit.
        assert!(l.check("alice", "cmdb_listHosts").is_ok());
        assert!(l.check("alice", "cmdb_listHosts").is_ok());
        assert_eq!(
            l.check("alice", "cmdb_listHosts").unwrap_err().scope,
            "identity"
        );
    }
}
