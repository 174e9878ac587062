//! Access rules: identities and roles (as master asserts them) mapped to secret-address globs and
//! actions. Without rules everything is allowed; with rules, whatever no rule grants is denied.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use mcp_runtime::auth::Identity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a caller does with a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    List,
    Get,
    Set,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::Get => "get",
            Action::Set => "set",
            Action::Delete => "delete",
        }
    }
}

/// One `[[secrets.rule]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Identity names this rule applies to (`*` for every identity).
    #[serde(default)]
    pub identities: Vec<String>,
    /// Roles this rule applies to (any one suffices).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Globs over `<backend>/<path>`; `*` stays within one path component, `**` crosses them.
    pub paths: Vec<String>,
    pub actions: Vec<Action>,
}

struct Rule {
    identities: Vec<String>,
    roles: Vec<String>,
    paths: GlobSet,
    actions: Vec<Action>,
}

/// The compiled rules.
pub struct Acl {
    rules: Vec<Rule>,
}

/// A rule that cannot be compiled.
#[derive(Debug, thiserror::Error)]
#[error("secrets.rule[{index}]: {reason}")]
pub struct AclError {
    pub index: usize,
    pub reason: String,
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

impl Acl {
    pub fn new(rules: &[RuleConfig]) -> Result<Self, AclError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, r) in rules.iter().enumerate() {
            let err = |reason: String| AclError { index, reason };
            if r.identities.is_empty() && r.roles.is_empty() {
                return Err(err("name at least one identity or role".to_owned()));
            }
            if r.paths.is_empty() || r.actions.is_empty() {
                return Err(err("`paths` and `actions` must not be empty".to_owned()));
            }
            let mut set = GlobSetBuilder::new();
            for p in &r.paths {
                set.add(glob(p).map_err(|e| err(format!("bad glob `{p}`: {e}")))?);
            }
            compiled.push(Rule {
                identities: r.identities.clone(),
                roles: r.roles.clone(),
                paths: set.build().map_err(|e| err(e.to_string()))?,
                actions: r.actions.clone(),
            });
        }
        Ok(Self { rules: compiled })
    }

    /// Whether any rules are configured (without rules, everything is allowed).
    pub fn is_active(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Whether `who` may do `action` on the secret at `address` (`<backend>/<path>`).
    pub fn allows(&self, who: &Identity, action: Action, address: &str) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        self.rules.iter().any(|r| {
            let applies = who.is_named_by(&r.identities, &r.roles);
            applies && r.actions.contains(&action) && r.paths.is_match(address)
        })
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
    fn rules_grant_by_identity_role_glob_and_action() {
        let acl = Acl::new(&[
            RuleConfig {
                identities: vec!["alice".into()],
                roles: vec![],
                paths: vec!["keepass/Infra/**".into()],
                actions: vec![Action::List, Action::Get],
            },
            RuleConfig {
                identities: vec![],
                roles: vec!["ops".into()],
                paths: vec!["azure/*".into()],
                actions: vec![Action::Get, Action::Set],
            },
        ])
        .unwrap();
        let alice = who("alice", &[]);
        let bob = who("bob", &["ops"]);
        assert!(acl.allows(&alice, Action::Get, "keepass/Infra/docker-registry"));
        assert!(acl.allows(&alice, Action::Get, "keepass/Infra/deep/x"));
        assert!(!acl.allows(&alice, Action::Set, "keepass/Infra/docker-registry"));
        assert!(!acl.allows(&alice, Action::Get, "keepass/Cloud/x"));
        assert!(acl.allows(&bob, Action::Set, "azure/db-password"));
        // `*` does not cross a path separator.
        assert!(!acl.allows(&bob, Action::Get, "azure/a/b"));
        assert!(!acl.allows(&bob, Action::Get, "keepass/Infra/docker-registry"));
        assert!(!acl.allows(&who("eve", &[]), Action::List, "keepass/Infra/x"));
        assert!(
            Acl::new(&[])
                .unwrap()
                .allows(&who("eve", &[]), Action::Delete, "x/y")
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        let rule = |ids: Vec<String>, paths: Vec<String>| RuleConfig {
            identities: ids,
            roles: vec![],
            paths,
            actions: vec![Action::Get],
        };
        assert!(Acl::new(&[rule(vec![], vec!["a/**".into()])]).is_err());
        assert!(Acl::new(&[rule(vec!["a".into()], vec![])]).is_err());
        assert!(Acl::new(&[rule(vec!["a".into()], vec!["a/[".into()])]).is_err());
    }
}
