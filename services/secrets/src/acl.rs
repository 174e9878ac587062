//! Access rules: identities and roles (as master asserts them) mapped to secret-address globs and
//! actions. Without rules everything is allowed; with rules, whatever no rule grants is denied.

use globset::GlobSet;
use mcp_runtime::auth::Identity;
use mcp_runtime::guard::{self, GuardError, IdentityRules, Separator, globs};
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

    /// The tool that does this action (the `tool` of its audit line and metric).
    pub fn tool(self) -> &'static str {
        match self {
            Action::List => "listSecrets",
            Action::Get => "getSecret",
            Action::Set => "setSecret",
            Action::Delete => "deleteSecret",
        }
    }
}

/// One `[[secrets.rule]]`: identities/roles mapped to secret-address globs and actions.
pub type RuleConfig = guard::RuleConfig<SecretGrant>;

/// What a `[[secrets.rule]]` grants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretGrant {
    /// Globs over `<backend>/<path>`; `*` stays within one path component, `**` crosses them.
    pub paths: Vec<String>,
    pub actions: Vec<Action>,
}

/// What one rule grants.
#[derive(Debug)]
struct Grant {
    paths: GlobSet,
    actions: Vec<Action>,
}

/// The compiled rules.
pub struct Acl {
    rules: IdentityRules<Grant>,
}

impl Acl {
    pub fn new(rules: &[RuleConfig]) -> Result<Self, GuardError> {
        let rules = IdentityRules::compile(rules, |index, r| {
            let key = format!("secrets.rule[{index}]");
            let subjects = r.required_subjects(&key)?;
            let r = &r.grant;
            if r.paths.is_empty() || r.actions.is_empty() {
                return Err(GuardError::Invalid {
                    key,
                    reason: "`paths` and `actions` must not be empty".to_owned(),
                });
            }
            let paths = globs(&r.paths, &key, Separator::Literal)?;
            Ok((
                subjects,
                Grant {
                    paths,
                    actions: r.actions.clone(),
                },
            ))
        })?;
        Ok(Self { rules })
    }

    /// Whether any rules are configured (without rules, everything is allowed).
    pub fn is_active(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Whether `who` may do `action` on the secret at `address` (`<backend>/<path>`).
    pub fn allows(&self, who: &Identity, action: Action, address: &str) -> bool {
        self.rules.is_empty()
            || self.rules.any(who, |g| {
                g.actions.contains(&action) && g.paths.is_match(address)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_grant_by_identity_role_glob_and_action() {
        let acl = Acl::new(&[
            RuleConfig {
                identities: vec!["alice".into()],
                roles: vec![],
                grant: SecretGrant {
                    paths: vec!["keepass/Infra/**".into()],
                    actions: vec![Action::List, Action::Get],
                },
            },
            RuleConfig {
                identities: vec![],
                roles: vec!["ops".into()],
                grant: SecretGrant {
                    paths: vec!["azure/*".into()],
                    actions: vec![Action::Get, Action::Set],
                },
            },
        ])
        .unwrap();
        let alice = Identity::new("alice", &[]);
        let bob = Identity::new("bob", &["ops"]);
        assert!(acl.allows(&alice, Action::Get, "keepass/Infra/docker-registry"));
        assert!(acl.allows(&alice, Action::Get, "keepass/Infra/deep/x"));
        assert!(!acl.allows(&alice, Action::Set, "keepass/Infra/docker-registry"));
        assert!(!acl.allows(&alice, Action::Get, "keepass/Cloud/x"));
        assert!(acl.allows(&bob, Action::Set, "azure/db-password"));
        // `*` does not cross a path separator.
        assert!(!acl.allows(&bob, Action::Get, "azure/a/b"));
        assert!(!acl.allows(&bob, Action::Get, "keepass/Infra/docker-registry"));
        assert!(!acl.allows(&Identity::new("eve", &[]), Action::List, "keepass/Infra/x"));
        assert!(
            Acl::new(&[])
                .unwrap()
                .allows(&Identity::new("eve", &[]), Action::Delete, "x/y")
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        let rule = |ids: Vec<String>, paths: Vec<String>| RuleConfig {
            identities: ids,
            roles: vec![],
            grant: SecretGrant {
                paths,
                actions: vec![Action::Get],
            },
        };
        assert!(Acl::new(&[rule(vec![], vec!["a/**".into()])]).is_err());
        assert!(Acl::new(&[rule(vec!["a".into()], vec![])]).is_err());
        assert!(Acl::new(&[rule(vec!["a".into()], vec!["a/[".into()])]).is_err());
    }
}
