//! Who may do what where: namespace allow/deny lists, denied kinds, read-only mode and per-identity
//! namespace rules. Checked on every call, before the API server is asked.

use globset::{Glob, GlobSet, GlobSetBuilder};
use mcp_runtime::auth::Identity;
use serde::{Deserialize, Serialize};

/// Reads (list/get/logs/events) or writes (apply/scale/restart/delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Read,
    Write,
}

/// One `[[k8s.rule]]`: identities/roles mapped to namespace globs and verbs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(default)]
    pub identities: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Namespace globs (`team-*`); `""` stands for cluster-scoped resources.
    pub namespaces: Vec<String>,
    pub verbs: Vec<Verb>,
}

struct Rule {
    identities: Vec<String>,
    roles: Vec<String>,
    namespaces: GlobSet,
    cluster: bool,
    verbs: Vec<Verb>,
}

/// A refused call, with the reason shown to the caller.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// The compiled access settings.
pub struct Access {
    allowed: Option<GlobSet>,
    denied: GlobSet,
    denied_kinds: Vec<String>,
    read_only: bool,
    rules: Vec<Rule>,
}

fn globs(patterns: &[String], what: &str) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| format!("{what}: bad glob `{p}`: {e}"))?);
    }
    b.build().map_err(|e| format!("{what}: {e}"))
}

impl Access {
    pub fn new(
        allowed_namespaces: &[String],
        denied_namespaces: &[String],
        denied_kinds: &[String],
        read_only: bool,
        rules: &[RuleConfig],
    ) -> Result<Self, String> {
        let mut compiled = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if r.identities.is_empty() && r.roles.is_empty() {
                return Err(format!("k8s.rule[{i}]: name at least one identity or role"));
            }
            let named: Vec<String> = r
                .namespaces
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect();
            compiled.push(Rule {
                identities: r.identities.clone(),
                roles: r.roles.clone(),
                namespaces: globs(&named, &format!("k8s.rule[{i}].namespaces"))?,
                cluster: r.namespaces.iter().any(String::is_empty),
                verbs: r.verbs.clone(),
            });
        }
        Ok(Self {
            allowed: if allowed_namespaces.is_empty() {
                None
            } else {
                Some(globs(allowed_namespaces, "k8s.allowed_namespaces")?)
            },
            denied: globs(denied_namespaces, "k8s.denied_namespaces")?,
            denied_kinds: denied_kinds
                .iter()
                .map(|k| k.to_ascii_lowercase())
                .collect(),
            read_only,
            rules: compiled,
        })
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Whether a namespace is visible at all (for listings across namespaces).
    pub fn namespace_visible(&self, who: &Identity, ns: &str) -> bool {
        self.check(who, Verb::Read, Some(ns), None, false).is_ok()
    }

    /// Checks the kind deny-list alone: for listings across every namespace, whose items are then
    /// filtered with [`Access::namespace_visible`].
    pub fn check_kind(&self, kind: &str, plural: &str) -> Result<(), Denied> {
        if self
            .denied_kinds
            .iter()
            .any(|k| k.eq_ignore_ascii_case(kind) || k.eq_ignore_ascii_case(plural))
        {
            return Err(Denied(format!(
                "kind `{kind}` is denied by k8s.denied_kinds"
            )));
        }
        Ok(())
    }

    /// Checks one action. `namespace` is `None` for cluster-scoped resources; `kind` names the
    /// kind and plural (`Secret`, `secrets`) checked against the kind deny-list.
    pub fn check(
        &self,
        who: &Identity,
        verb: Verb,
        namespace: Option<&str>,
        kind: Option<(&str, &str)>,
        dry_run: bool,
    ) -> Result<(), Denied> {
        if let Some((kind, plural)) = kind {
            self.check_kind(kind, plural)?;
        }
        if verb == Verb::Write && self.read_only && !dry_run {
            return Err(Denied(
                "the k8s service is in read_only mode: no mutation is allowed (dry_run is)"
                    .to_owned(),
            ));
        }
        match namespace {
            Some(ns) => {
                if self.denied.is_match(ns) {
                    return Err(Denied(format!(
                        "namespace `{ns}` is denied by k8s.denied_namespaces"
                    )));
                }
                if let Some(allowed) = &self.allowed
                    && !allowed.is_match(ns)
                {
                    return Err(Denied(format!(
                        "namespace `{ns}` is not in k8s.allowed_namespaces"
                    )));
                }
            }
            None => {
                if verb == Verb::Write && self.allowed.is_some() {
                    return Err(Denied(
                        "cluster-scoped resources cannot be changed while k8s.allowed_namespaces limits the service to namespaces".to_owned(),
                    ));
                }
            }
        }
        if self.rules.is_empty() {
            return Ok(());
        }
        let granted = self.rules.iter().any(|r| {
            let applies = who.is_named_by(&r.identities, &r.roles);
            let place = match namespace {
                Some(ns) => r.namespaces.is_match(ns),
                None => r.cluster,
            };
            applies && place && r.verbs.contains(&verb)
        });
        if granted {
            Ok(())
        } else {
            let place = namespace.map_or("cluster-scoped resources".to_owned(), |n| {
                format!("namespace `{n}`")
            });
            Err(Denied(format!(
                "no k8s.rule lets `{}` {} in {place}",
                who.name,
                match verb {
                    Verb::Read => "read",
                    Verb::Write => "write",
                }
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str, roles: &[&str]) -> Identity {
        Identity {
            name: name.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn lists_kinds_read_only_and_rules() {
        let a = Access::new(
            &["default".into(), "team-*".into()],
            &["team-secret".into()],
            &["secrets".into()],
            false,
            &[],
        )
        .unwrap();
        let anyone = who("x", &[]);
        assert!(
            a.check(&anyone, Verb::Read, Some("default"), None, false)
                .is_ok()
        );
        assert!(
            a.check(&anyone, Verb::Write, Some("team-a"), None, false)
                .is_ok()
        );
        let e = a
            .check(&anyone, Verb::Read, Some("kube-system"), None, false)
            .unwrap_err();
        assert!(e.0.contains("not in k8s.allowed_namespaces"));
        assert!(
            a.check(&anyone, Verb::Read, Some("team-secret"), None, false)
                .is_err()
        );
        assert!(
            a.check(
                &anyone,
                Verb::Read,
                Some("default"),
                Some(("Secret", "secrets")),
                false
            )
            .is_err()
        );
        assert!(
            a.check(&anyone, Verb::Read, None, Some(("Node", "nodes")), false)
                .is_ok()
        );
        assert!(
            a.check(&anyone, Verb::Write, None, Some(("Node", "nodes")), false)
                .is_err()
        );

        let ro = Access::new(&[], &[], &[], true, &[]).unwrap();
        assert!(
            ro.check(&anyone, Verb::Write, Some("default"), None, false)
                .is_err()
        );
        assert!(
            ro.check(&anyone, Verb::Write, Some("default"), None, true)
                .is_ok()
        );

        let ruled = Access::new(
            &[],
            &[],
            &[],
            false,
            &[RuleConfig {
                identities: vec![],
                roles: vec!["dev".into()],
                namespaces: vec!["dev-*".into()],
                verbs: vec![Verb::Read, Verb::Write],
            }],
        )
        .unwrap();
        assert!(
            ruled
                .check(&who("a", &["dev"]), Verb::Write, Some("dev-1"), None, false)
                .is_ok()
        );
        assert!(
            ruled
                .check(&who("a", &["dev"]), Verb::Read, Some("prod"), None, false)
                .is_err()
        );
        assert!(
            ruled
                .check(&who("b", &[]), Verb::Read, Some("dev-1"), None, false)
                .is_err()
        );
        assert!(
            ruled
                .check(&who("a", &["dev"]), Verb::Read, None, None, false)
                .is_err()
        );
    }
}
