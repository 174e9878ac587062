//! Security primitives shared by services that touch a host:
//!
//! - [`Validator`]: classifies a shell command by walking a real bash syntax tree (brush-parser):
//!   every simple command in pipelines, lists, subshells, `$(…)`, backticks, `<(…)`, here-docs,
//!   redirections and the payloads of wrappers (`bash -c`, `sudo`, `env`, `xargs`, `find -exec`,
//!   `timeout`, …). The category of the whole is its most dangerous part. Whatever cannot be fully
//!   analysed (eval, dynamic command names, unknown commands, unknown syntax) is refused: fail closed.
//! - [`PathSandbox`]: allowed roots, symlink-aware resolution, a deny-list of sensitive files.
//!
//! This crate never runs anything; it only decides.

mod commands;
pub mod sandbox;
mod shell;

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use sandbox::{PathSandbox, Resolved, SandboxError};

/// How dangerous a command is, from least to most. A command's category is the maximum over its parts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Reads state only.
    ReadOnly,
    /// Changes files.
    Write,
    /// Talks to other hosts.
    Network,
    /// Changes the system, other users' processes, or runs code that cannot be analysed statically
    /// (interpreters, build tools) — as root or not.
    Privileged,
    /// Deletes data or stops the machine.
    Destructive,
    /// Never runs: hard-blocked patterns and anything that cannot be analysed.
    Blocked,
}

impl Category {
    /// Every category, least dangerous first.
    pub const ALL: [Category; 6] = [
        Category::ReadOnly,
        Category::Write,
        Category::Network,
        Category::Privileged,
        Category::Destructive,
        Category::Blocked,
    ];

    /// The snake_case name used on the wire and in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::ReadOnly => "read_only",
            Category::Write => "write",
            Category::Network => "network",
            Category::Privileged => "privileged",
            Category::Destructive => "destructive",
            Category::Blocked => "blocked",
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Runs as is.
    Allow,
    /// Runs only with a valid approval.
    Approve,
    /// Never runs.
    Block,
}

/// One analysed part of a command (a simple command, a redirection, a wrapper's payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// The command (or construct) this is about, e.g. `rm` or `> /etc/hosts`.
    pub command: String,
    pub category: Category,
    pub reason: String,
}

/// The verdict on a whole command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Validation {
    /// True when the command may run without approval.
    pub is_safe: bool,
    /// The most dangerous category found.
    pub category: Category,
    /// Why, naming the part that decided it.
    pub reason: String,
    /// allow, approve or block under the configured policy.
    pub decision: Decision,
    /// Every analysed part, in order.
    pub findings: Vec<Finding>,
}

/// Invalid policy settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("invalid blocked pattern `{pattern}`: {message}")]
    BadPattern { pattern: String, message: String },
    #[error("category `blocked` cannot be {what}")]
    BlockedCategory { what: &'static str },
}

/// Which categories run freely, need approval, or are refused; extra command classifications;
/// extra hard-blocked patterns (regular expressions matched against each parsed simple command,
/// words joined by single spaces — never against the raw string).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Categories that need an approval (default: write, privileged, destructive).
    pub approve: Vec<Category>,
    /// Categories refused outright (default: none besides `blocked`).
    pub deny: Vec<Category>,
    /// Extra commands and their category, e.g. `{ "terraform" = "privileged" }`; overrides the built-in table.
    pub commands: BTreeMap<String, Category>,
    /// Extra hard-blocked patterns (regex over each normalized simple command).
    pub blocked_patterns: Vec<String>,
    /// What to do with a command that is not in the table: `blocked` (default) or a category
    /// such as `privileged` (then it needs approval under the default policy).
    pub unknown_commands: Category,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            approve: vec![Category::Write, Category::Privileged, Category::Destructive],
            deny: Vec::new(),
            commands: BTreeMap::new(),
            blocked_patterns: Vec::new(),
            unknown_commands: Category::Blocked,
        }
    }
}

/// Largest command line accepted, in bytes.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Deepest nesting of `bash -c`, `$(…)` and wrappers analysed.
pub const MAX_DEPTH: usize = 8;

/// The command validator: policy plus an optional path sandbox for redirection targets.
#[derive(Debug, Clone)]
pub struct Validator {
    config: PolicyConfig,
    blocked: Vec<regex::Regex>,
    sandbox: Option<PathSandbox>,
}

impl Default for Validator {
    fn default() -> Self {
        Self::new(PolicyConfig::default(), None)
            .unwrap_or_else(|_| unreachable!("defaults are valid"))
    }
}

impl Validator {
    /// A validator under `config`; redirection targets are checked against `sandbox` when given.
    pub fn new(config: PolicyConfig, sandbox: Option<PathSandbox>) -> Result<Self, PolicyError> {
        if config.approve.contains(&Category::Blocked) {
            return Err(PolicyError::BlockedCategory { what: "approved" });
        }
        let blocked = config
            .blocked_patterns
            .iter()
            .map(|p| {
                regex::Regex::new(p).map_err(|e| PolicyError::BadPattern {
                    pattern: p.clone(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            config,
            blocked,
            sandbox,
        })
    }

    /// The policy in force.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The decision for a category under this policy.
    pub fn decision_for(&self, category: Category) -> Decision {
        if category == Category::Blocked || self.config.deny.contains(&category) {
            Decision::Block
        } else if self.config.approve.contains(&category) {
            Decision::Approve
        } else {
            Decision::Allow
        }
    }

    /// Classifies a shell command line. `cwd` resolves relative redirection targets.
    pub fn validate(&self, command: &str, cwd: Option<&Path>) -> Validation {
        let findings = shell::analyse_script(self, command, cwd);
        self.verdict(findings)
    }

    /// Classifies an argv (no shell involved: no expansion happens, words are literal).
    pub fn validate_argv(&self, argv: &[String], cwd: Option<&Path>) -> Validation {
        let findings = shell::analyse_argv(self, argv, cwd);
        self.verdict(findings)
    }

    /// The verdict on an action that is not a command line (a file write by a tool), whose category
    /// the caller knows: the same policy decides.
    pub fn validate_action(&self, action: &str, category: Category, reason: &str) -> Validation {
        self.verdict(vec![Finding {
            command: action.to_owned(),
            category,
            reason: reason.to_owned(),
        }])
    }

    fn verdict(&self, findings: Vec<Finding>) -> Validation {
        // The category is the most dangerous part's; the decision is the strictest any part gets
        // under the policy — a part whose category ranks lower can still need more (under the
        // default policy `write` needs an approval while `network` does not: `curl … | tee f`).
        let strictness = |c: Category| match self.decision_for(c) {
            Decision::Allow => 0,
            Decision::Approve => 1,
            Decision::Block => 2,
        };
        let worst = findings
            .iter()
            .enumerate()
            .max_by_key(|(i, f)| (f.category, std::cmp::Reverse(*i)))
            .map(|(_, f)| f.clone());
        let deciding = findings
            .iter()
            .enumerate()
            .max_by_key(|(i, f)| (strictness(f.category), f.category, std::cmp::Reverse(*i)))
            .map(|(_, f)| f.clone());
        let (category, mut reason) = match &worst {
            Some(f) => (f.category, format!("{}: {}", f.command, f.reason)),
            None => (Category::Blocked, "empty command".to_owned()),
        };
        let mut decision = self.decision_for(category);
        if let Some(d) = &deciding
            && strictness(d.category) > strictness(category)
        {
            decision = self.decision_for(d.category);
            reason = format!(
                "{}: {} (category `{}` {})",
                d.command,
                d.reason,
                d.category,
                if decision == Decision::Block {
                    "is denied by policy"
                } else {
                    "needs approval"
                }
            );
        } else if decision == Decision::Block && category != Category::Blocked {
            reason = format!("{reason} (category `{category}` is denied by policy)");
        }
        if category == Category::Blocked {
            decision = Decision::Block;
        }
        Validation {
            is_safe: decision == Decision::Allow,
            category,
            reason,
            decision,
            findings,
        }
    }

    pub(crate) fn sandbox(&self) -> Option<&PathSandbox> {
        self.sandbox.as_ref()
    }

    pub(crate) fn override_for(&self, name: &str) -> Option<Category> {
        self.config.commands.get(name).copied()
    }

    pub(crate) fn unknown_category(&self) -> Category {
        self.config.unknown_commands
    }

    pub(crate) fn blocked_pattern(&self, normalized: &str) -> Option<&str> {
        self.blocked
            .iter()
            .find(|r| r.is_match(normalized))
            .map(regex::Regex::as_str)
    }
}

/// Validates with the default policy and no sandbox (the seed's `validate_command`).
pub fn validate_command(command: &str) -> Validation {
    Validator::default().validate(command, None)
}
