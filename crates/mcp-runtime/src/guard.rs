//! One way to guard a tool, for every service: who a rule is for ([`Subjects`], [`IdentityRules`]),
//! globs for what it covers ([`globs`]), the approval gate ([`require_approval`]) and the audit event
//! that writes the log line and the metric together ([`AccessAudited`]).
//!
//! Master's tool policy, the k8s service's namespace rules and the secrets service's ACL are all
//! [`IdentityRules`]; linux-cli, k8s and secrets gate risky calls with [`require_approval`]. A new kind
//! of rule subject (a group claim, say) is added to [`Subjects`] here and nowhere else.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use rmcp::model::CallToolResult;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::CallerContext;
use crate::approval::approval_required;
use crate::auth::Identity;
use crate::metrics::Metrics;

/// A rule that cannot be compiled; the message names the config key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    #[error("{key}: bad glob `{pattern}`: {reason}")]
    Glob {
        key: String,
        pattern: String,
        reason: String,
    },
    #[error("{key}: {reason}")]
    Globs { key: String, reason: String },
    #[error("{key}: name at least one identity or role")]
    NoSubject { key: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// Whether `*` in a glob stops at `/` (secret addresses: `*` is one path part, `**` crosses them)
/// or matches anything (tool names, namespaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separator {
    Literal,
    Any,
}

/// Compiles `patterns` into one set; `key` names the config key in errors.
pub fn globs(patterns: &[String], key: &str, separator: Separator) -> Result<GlobSet, GuardError> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let glob = match separator {
            Separator::Any => Glob::new(p),
            Separator::Literal => GlobBuilder::new(p).literal_separator(true).build(),
        };
        b.add(glob.map_err(|e| GuardError::Glob {
            key: key.to_owned(),
            pattern: p.clone(),
            reason: e.to_string(),
        })?);
    }
    b.build().map_err(|e| GuardError::Globs {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// Who a rule is for.
///
/// The one meaning, in every service: a rule applies to an identity whose name it lists (`*` lists
/// every identity) and to every identity holding a role it lists. A rule listing neither applies to
/// everyone; services whose rules grant access refuse such a rule at start-up
/// ([`Subjects::required`]) so a forgotten `identities` line cannot grant everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subjects {
    identities: Vec<String>,
    roles: Vec<String>,
}

impl Subjects {
    /// Subjects as configured; empty lists mean everyone.
    pub fn new(identities: &[String], roles: &[String]) -> Self {
        Self {
            identities: identities.to_vec(),
            roles: roles.to_vec(),
        }
    }

    /// Subjects that must name someone: for rules that grant access.
    pub fn required(
        identities: &[String],
        roles: &[String],
        key: &str,
    ) -> Result<Self, GuardError> {
        let s = Self::new(identities, roles);
        if s.is_everyone() {
            return Err(GuardError::NoSubject {
                key: key.to_owned(),
            });
        }
        Ok(s)
    }

    /// Whether the rule lists neither identities nor roles (and so applies to everyone).
    pub fn is_everyone(&self) -> bool {
        self.identities.is_empty() && self.roles.is_empty()
    }

    /// Whether the rule applies to `who`.
    pub fn include(&self, who: &Identity) -> bool {
        self.is_everyone()
            || self.identities.iter().any(|i| i == "*" || *i == who.name)
            || self.roles.iter().any(|role| who.has_role(role))
    }
}

/// One configured rule: whom it is for (`identities`, `roles`: see [`Subjects`]) and, flattened beside
/// them, what it grants or decides (`G`: a service's own fields, with `deny_unknown_fields` so a
/// misspelt key is refused: the rule's own keys are taken out first, and `G` sees only the rest,
/// which `#[serde(flatten)]` alone would not do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleConfig<G> {
    /// Identity names the rule applies to (`*` for every identity).
    #[serde(default)]
    pub identities: Vec<String>,
    /// Roles the rule applies to (any one suffices).
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(flatten)]
    pub grant: G,
}

impl<'de, G: DeserializeOwned> Deserialize<'de> for RuleConfig<G> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut fields = Map::<String, Value>::deserialize(d)?;
        let mut names = |key: &str| match fields.remove(key) {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_value::<Vec<String>>(v)
                .map_err(|e| D::Error::custom(format!("`{key}`: {e}"))),
        };
        let identities = names("identities")?;
        let roles = names("roles")?;
        let grant = G::deserialize(Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(Self {
            identities,
            roles,
            grant,
        })
    }
}

impl<G> RuleConfig<G> {
    /// The rule's subjects; empty lists mean everyone.
    pub fn subjects(&self) -> Subjects {
        Subjects::new(&self.identities, &self.roles)
    }

    /// The rule's subjects, which must name someone (for rules that grant access).
    pub fn required_subjects(&self, key: &str) -> Result<Subjects, GuardError> {
        Subjects::required(&self.identities, &self.roles, key)
    }
}

/// Rules for identities: each names its [`Subjects`] and what it grants or decides (`T`: tool globs
/// and an action, namespace globs and verbs, secret-address globs and actions).
#[derive(Debug)]
pub struct IdentityRules<T> {
    rules: Vec<(Subjects, T)>,
}

impl<T> Default for IdentityRules<T> {
    fn default() -> Self {
        Self { rules: Vec::new() }
    }
}

impl<T> IdentityRules<T> {
    /// Compiles configured rules; `compile` turns one into its subjects and target, or says why not
    /// (it gets the rule's index for error messages).
    pub fn compile<R>(
        configured: &[R],
        mut compile: impl FnMut(usize, &R) -> Result<(Subjects, T), GuardError>,
    ) -> Result<Self, GuardError> {
        let rules = configured
            .iter()
            .enumerate()
            .map(|(i, r)| compile(i, r))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Whether no rule is configured.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule that applies to `who` and whose target satisfies `covers`.
    pub fn first(&self, who: &Identity, covers: impl Fn(&T) -> bool) -> Option<&T> {
        self.rules
            .iter()
            .find(|(s, t)| covers(t) && s.include(who))
            .map(|(_, t)| t)
    }

    /// Whether any rule that applies to `who` has a target satisfying `grants`.
    pub fn any(&self, who: &Identity, grants: impl Fn(&T) -> bool) -> bool {
        self.first(who, grants).is_some()
    }
}

/// Proof that a call carries a verified, unused approval for exactly itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    pub approval_id: String,
}

/// What a call that needs an approval asks for: why (shown to the caller and the approver) and what
/// the approver should see (merged into the structured `approval_required` body).
#[derive(Debug, Clone, Default)]
pub struct ApprovalAsk {
    pub reason: String,
    pub details: Map<String, Value>,
}

impl ApprovalAsk {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            details: Map::new(),
        }
    }

    /// Adds one detail for the approver.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// The approval gate: `Ok` when the call carries a verified approval token for exactly this call
/// (tool and arguments, checked by the runtime before the handler runs), else the structured
/// `approval_required` tool error master turns into a pending approval. The refusal is audited through
/// `audit` (decision `approval_required`); when a token came but was refused, the reason says why.
pub fn require_approval(
    caller: &CallerContext,
    tool: &str,
    ask: ApprovalAsk,
    audit: &AccessAudited<'_>,
    metrics: &Metrics,
) -> Result<Approved, CallToolResult> {
    if let Some(a) = &caller.approval {
        return Ok(Approved {
            approval_id: a.id.clone(),
        });
    }
    audit
        .decided(Decision::ApprovalRequired)
        .emit(caller, metrics);
    let mut reason = ask.reason;
    if let Some(e) = &caller.approval_error {
        reason.push_str(&format!(" (the approval token sent was refused: {e})"));
    }
    Err(approval_required(tool, &reason, ask.details))
}

/// What a guard decided about one access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Allowed and done (secrets: `allowed`).
    Allowed,
    /// Refused by a rule or the configuration.
    Denied,
    /// Refused outright: never runs, approval or not (linux-cli's blocked commands).
    Blocked,
    /// Needs an approval the call did not carry.
    ApprovalRequired,
    /// Refused by a rate limit.
    RateLimited,
    /// The address or argument was invalid.
    Invalid,
    /// The target does not exist (answered like a denial where existence must not leak).
    NotFound,
    /// Allowed, but the backend failed.
    Error,
    /// Allowed and done, in the service's own word: `ran`, `written`, `restored` (linux-cli);
    /// `applied`, `scaled`, `restarted`, `deleted`, `dry_run` (k8s).
    Done(&'static str),
}

impl Decision {
    /// The `decision` label and log field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Blocked => "blocked",
            Self::ApprovalRequired => "approval_required",
            Self::RateLimited => "rate_limited",
            Self::Invalid => "invalid",
            Self::NotFound => "not_found",
            Self::Error => "error",
            Self::Done(what) => what,
        }
    }
}

/// One audited access: the `audit` log line (with the caller's identity, correlation id and approval
/// id) and `mcp_access_decisions_total{service,tool,decision}`, always together. Fields a service does
/// not use stay `None` and are left out of the line.
#[derive(Debug, Clone)]
pub struct AccessAudited<'a> {
    /// The log message, one per service (`Command audited.`, `Kubernetes action audited.`, …).
    pub message: &'static str,
    pub tool: &'a str,
    pub decision: Decision,
    pub host: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub action: Option<&'a str>,
    /// A command as shown in the audit: the caller masks secrets in it first.
    pub command: Option<&'a str>,
    pub category: Option<&'a str>,
    pub secret: Option<&'a str>,
    pub backend: Option<&'a str>,
    pub detail: Option<&'a str>,
    pub exit_code: Option<i32>,
    pub timed_out: Option<bool>,
    pub duration_ms: Option<u64>,
}

impl<'a> AccessAudited<'a> {
    /// An event for `tool` with nothing but the message; set the fields that apply.
    pub fn new(message: &'static str, tool: &'a str, decision: Decision) -> Self {
        Self {
            message,
            tool,
            decision,
            host: None,
            namespace: None,
            action: None,
            command: None,
            category: None,
            secret: None,
            backend: None,
            detail: None,
            exit_code: None,
            timed_out: None,
            duration_ms: None,
        }
    }

    /// The same access with another decision.
    pub fn decided(&self, decision: Decision) -> Self {
        Self {
            decision,
            ..self.clone()
        }
    }

    /// Writes the log line and counts the decision.
    pub fn emit(&self, caller: &CallerContext, metrics: &Metrics) {
        metrics.record_access(self.tool, self.decision.as_str());
        tracing::info!(
            target: "audit",
            message = self.message,
            tool = self.tool,
            host = self.host,
            namespace = self.namespace,
            action = self.action,
            command = self.command,
            category = self.category,
            secret = self.secret,
            backend = self.backend,
            decision = self.decision.as_str(),
            detail = self.detail,
            identity = %caller.identity.name,
            correlation_id = %caller.correlation_id,
            approval_id = caller.approval.as_ref().map(|a| a.id.as_str()).unwrap_or(""),
            exit_code = self.exit_code,
            timed_out = self.timed_out,
            duration_ms = self.duration_ms,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::Approval;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn subjects_have_one_meaning() {
        let alice = Identity::new("alice", &["dev"]);
        let bob = Identity::new("bob", &[]);
        assert!(Subjects::new(&[], &[]).include(&bob), "empty = everyone");
        assert!(Subjects::new(&strings(&["*"]), &[]).include(&bob));
        assert!(Subjects::new(&strings(&["alice"]), &[]).include(&alice));
        assert!(!Subjects::new(&strings(&["alice"]), &[]).include(&bob));
        assert!(Subjects::new(&[], &strings(&["dev"])).include(&alice));
        assert!(!Subjects::new(&[], &strings(&["dev"])).include(&bob));
        // Either list names: bob by name, alice by role.
        let both = Subjects::new(&strings(&["bob"]), &strings(&["dev"]));
        assert!(both.include(&alice) && both.include(&bob));
        assert!(!both.include(&Identity::new("eve", &["ops"])));
        let err = Subjects::required(&[], &[], "k8s.rule[3]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "k8s.rule[3]: name at least one identity or role"
        );
    }

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Paths {
        paths: Vec<String>,
    }

    #[test]
    fn rule_configs_flatten_the_grant_and_refuse_unknown_keys() {
        let r: RuleConfig<Paths> =
            toml::from_str("identities = [\"alice\"]\npaths = [\"a/*\"]").unwrap();
        assert_eq!(r.grant.paths, ["a/*"]);
        assert!(r.subjects().include(&Identity::new("alice", &[])));
        assert!(r.roles.is_empty());
        let err = toml::from_str::<RuleConfig<Paths>>("roles = [\"ops\"]\npaths = []\npath = []")
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `path`"), "{err}");
        assert!(
            toml::from_str::<RuleConfig<Paths>>("roles = [\"ops\"]").is_err(),
            "the grant's fields stay required"
        );
    }

    #[test]
    fn first_and_any_respect_subjects_and_targets() {
        let rules: IdentityRules<(&str, u8)> = IdentityRules::compile(
            &[("alice", "a", 1), ("", "a", 2), ("", "b", 3)],
            |_, (name, target, n)| {
                let ids = if name.is_empty() {
                    vec![]
                } else {
                    vec![(*name).to_owned()]
                };
                Ok((Subjects::new(&ids, &[]), (*target, *n)))
            },
        )
        .unwrap();
        assert_eq!(
            rules.first(&Identity::new("alice", &[]), |t| t.0 == "a"),
            Some(&("a", 1))
        );
        assert_eq!(
            rules.first(&Identity::new("bob", &[]), |t| t.0 == "a"),
            Some(&("a", 2))
        );
        assert!(rules.any(&Identity::new("bob", &[]), |t| t.0 == "b"));
        assert!(!rules.any(&Identity::new("bob", &[]), |t| t.0 == "c"));
        assert!(IdentityRules::<()>::default().is_empty());
    }

    #[test]
    fn globs_name_the_key_and_respect_the_separator() {
        let any = globs(&strings(&["team-*"]), "k", Separator::Any).unwrap();
        assert!(any.is_match("team-a/b"));
        let literal = globs(&strings(&["azure/*"]), "k", Separator::Literal).unwrap();
        assert!(literal.is_match("azure/x") && !literal.is_match("azure/x/y"));
        let err = globs(&strings(&["a/["]), "secrets.rule[0]", Separator::Literal).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("secrets.rule[0]: bad glob `a/[`"),
            "{err}"
        );
    }

    #[test]
    fn the_gate_passes_an_approved_call_and_audits_a_refusal() {
        let metrics = Metrics::new("svc", &prometheus::Registry::new()).unwrap();
        let mut caller = CallerContext {
            correlation_id: "c".into(),
            identity: Identity::new("alice", &[]),
            trace_id: None,
            traceparent: None,
            approval: None,
            approval_error: Some("approval a1 expired 3 s ago".into()),
            subject_token: None,
        };
        let audit = AccessAudited::new("Test audited.", "write", Decision::Allowed);
        let refused = require_approval(
            &caller,
            "write",
            ApprovalAsk::new("writing needs approval").detail("path", "/x"),
            &audit,
            &metrics,
        )
        .unwrap_err();
        let body = refused.structured_content.unwrap();
        assert_eq!(body["error"], "approval_required");
        assert_eq!(body["path"], "/x");
        assert_eq!(
            body["reason"],
            "writing needs approval (the approval token sent was refused: approval a1 expired 3 s ago)"
        );
        assert!(metrics.render().contains(
            r#"mcp_access_decisions_total{decision="approval_required",service="svc",tool="write"} 1"#
        ));
        caller.approval = Some(Approval {
            id: "a2".into(),
            expires_at: u64::MAX,
        });
        let ok =
            require_approval(&caller, "write", ApprovalAsk::new("x"), &audit, &metrics).unwrap();
        assert_eq!(ok.approval_id, "a2");
    }
}
