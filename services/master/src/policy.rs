//! Who may see and call which tool (rules on wire-name globs and roles), and how often (token buckets
//! per identity and per identity+tool).

use std::num::NonZeroU32;
use std::sync::Arc;

use globset::GlobSet;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mcp_runtime::auth::Identity;
use mcp_runtime::guard::{self, GuardError, IdentityRules, Separator};

use crate::config::{Action, PolicyConfig, RateLimitConfig};

/// Compiles wire-name globs; `key` names the config key in errors.
pub(crate) fn globs(patterns: &[String], key: &str) -> Result<GlobSet, GuardError> {
    guard::globs(patterns, key, Separator::Any)
}

/// What one rule decides, for which tools.
#[derive(Debug)]
struct Decides {
    tools: GlobSet,
    action: Action,
}

/// The compiled policy.
pub struct Policy {
    rules: IdentityRules<Decides>,
    default_action: Action,
}

impl Policy {
    /// Compiles the rules; a bad glob is a config error. A rule naming no identity or role applies
    /// to everyone ([`guard::Subjects`]).
    pub fn new(cfg: &PolicyConfig) -> Result<Self, GuardError> {
        let rules = IdentityRules::compile(&cfg.rule, |i, r| {
            Ok((
                r.subjects(),
                Decides {
                    tools: globs(&r.grant.tools, &format!("master.policy.rule[{i}].tools"))?,
                    action: r.grant.action,
                },
            ))
        })?;
        Ok(Self {
            rules,
            default_action: cfg.default_action,
        })
    }

    /// The decision for `identity` calling `tool` (a wire name): the first rule that covers the tool
    /// and applies to the identity decides.
    pub fn decide(&self, identity: &Identity, tool: &str) -> Action {
        self.rules
            .first(identity, |d| d.tools.is_match(tool))
            .map_or(self.default_action, |d| d.action)
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

fn quota(per_minute: u32, key: &str) -> Result<Quota, GuardError> {
    let n = NonZeroU32::new(per_minute).ok_or_else(|| GuardError::Invalid {
        key: key.to_owned(),
        reason: "must be at least 1".to_owned(),
    })?;
    Ok(Quota::per_minute(n))
}

impl RateLimits {
    pub fn new(cfg: &RateLimitConfig) -> Result<Arc<Self>, GuardError> {
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
            .collect::<Result<_, GuardError>>()?;
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
    use crate::config::{Rule, ToolRate, ToolRule};

    #[test]
    fn first_matching_rule_decides() {
        let p = Policy::new(&PolicyConfig {
            default_action: Action::Allow,
            rule: vec![
                Rule {
                    identities: vec![],
                    roles: vec!["admin".into()],
                    grant: ToolRule {
                        tools: vec!["linux_*".into()],
                        action: Action::Allow,
                    },
                },
                Rule {
                    identities: vec![],
                    roles: vec![],
                    grant: ToolRule {
                        tools: vec!["linux_runCommand".into()],
                        action: Action::Approve,
                    },
                },
                Rule {
                    identities: vec![],
                    roles: vec![],
                    grant: ToolRule {
                        tools: vec!["linux_*".into(), "secrets_*".into()],
                        action: Action::Deny,
                    },
                },
            ],
        })
        .unwrap();
        let admin = Identity::new("a", &["admin"]);
        let user = Identity::new("u", &["viewer"]);
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
                identities: vec![],
                roles: vec![],
                grant: ToolRule {
                    tools: vec!["[".into()],
                    action: Action::Deny,
                },
            }],
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("rule[0]"), "{err}");
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
