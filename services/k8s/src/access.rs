//! Who may do what where: namespace allow/deny lists, denied kinds, read-only mode and per-identity
//! namespace rules. Checked on every call, before the API server is asked.

use globset::GlobSet;
use mcp_runtime::auth::Identity;
use mcp_runtime::guard::{self, GuardError, IdentityRules, Separator, globs};
use serde::{Deserialize, Serialize};

/// Reads (list/get/logs/events) or writes (apply/scale/restart/delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Read,
    Write,
}

/// One `[[k8s.rule]]`: identities/roles mapped to namespace globs and verbs.
pub type RuleConfig = guard::RuleConfig<NamespaceGrant>;

/// What a `[[k8s.rule]]` grants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceGrant {
    /// Namespace globs (`team-*`); `""` stands for cluster-scoped resources.
    pub namespaces: Vec<String>,
    pub verbs: Vec<Verb>,
}

/// Where and how one rule lets its subjects act.
#[derive(Debug)]
struct Grant {
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
    rules: IdentityRules<Grant>,
}

impl Access {
    pub fn new(
        allowed_namespaces: &[String],
        denied_namespaces: &[String],
        denied_kinds: &[String],
        read_only: bool,
        rules: &[RuleConfig],
    ) -> Result<Self, GuardError> {
        let compiled = IdentityRules::compile(rules, |i, r| {
            let key = format!("k8s.rule[{i}]");
            let subjects = r.required_subjects(&key)?;
            let named: Vec<String> = r
                .grant
                .namespaces
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect();
            Ok((
                subjects,
                Grant {
                    namespaces: globs(&named, &format!("{key}.namespaces"), Separator::Any)?,
                    cluster: r.grant.namespaces.iter().any(String::is_empty),
                    verbs: r.grant.verbs.clone(),
                },
            ))
        })?;
        Ok(Self {
            allowed: if allowed_namespaces.is_empty() {
                None
            } else {
                Some(globs(
                    allowed_namespaces,
                    "k8s.allowed_namespaces",
                    Separator::Any,
                )?)
            },
            denied: globs(denied_namespaces, "k8s.denied_namespaces", Separator::Any)?,
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
        let granted = self.rules.any(who, |g| {
            let place = match namespace {
                Some(ns) => g.namespaces.is_match(ns),
                None => g.cluster,
            };
            place && g.verbs.contains(&verb)
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
        let anyone = Identity::new("x", &[]);
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
                grant: NamespaceGrant {
                    namespaces: vec!["dev-*".into()],
                    verbs: vec![Verb::Read, Verb::Write],
                },
            }],
        )
        .unwrap();
        assert!(
            ruled
                .check(
                    &Identity::new("a", &["dev"]),
                    Verb::Write,
                    Some("dev-1"),
                    None,
                    false
                )
                .is_ok()
        );
        assert!(
            ruled
                .check(
                    &Identity::new("a", &["dev"]),
                    Verb::Read,
                    Some("prod"),
                    None,
                    false
                )
                .is_err()
        );
        assert!(
            ruled
                .check(
                    &Identity::new("b", &[]),
                    Verb::Read,
                    Some("dev-1"),
                    None,
                    false
                )
                .is_err()
        );
        assert!(
            ruled
                .check(&Identity::new("a", &["dev"]), Verb::Read, None, None, false)
                .is_err()
        );
    }
}
