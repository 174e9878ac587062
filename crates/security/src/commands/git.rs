//! `git`: read-only subcommands, the ones that write the work tree, and those that reach the network.

use super::*;

pub(super) fn git(args: &[Arg]) -> Verdict {
    let mut i = 0;
    while i < args.len() {
        let t = args[i].text();
        if t == "-c" || t.starts_with("--config-env") || t.starts_with("--exec-path") {
            return v(
                Blocked,
                "git config overrides on the command line can run arbitrary commands (core.pager, core.sshCommand, aliases)",
            );
        }
        if matches!(t, "-C" | "--git-dir" | "--work-tree" | "--namespace") {
            i += 2;
            continue;
        }
        if t.starts_with('-') {
            i += 1;
            continue;
        }
        break;
    }
    let rest = &args[i.min(args.len())..];
    let Some(cmd) = rest.first().map(Arg::text) else {
        return v(ReadOnly, "prints git help");
    };
    let sub_args = &rest[1..];
    if rest.iter().any(|a| {
        a.text().starts_with("--upload-pack")
            || a.text().starts_with("--receive-pack")
            || a.text().starts_with("--exec=")
            || a.text() == "--ext-diff"
    }) {
        return v(Blocked, "git option that runs a program");
    }
    match cmd {
        "status" | "log" | "diff" | "show" | "rev-parse" | "ls-files" | "ls-tree" | "blame"
        | "describe" | "shortlog" | "reflog" | "grep" | "cat-file" | "whatchanged" | "help"
        | "version" | "rev-list" | "name-rev" | "for-each-ref" | "show-ref" | "count-objects"
        | "check-ignore" | "diff-tree" | "diff-files" | "diff-index" | "merge-base" | "var" => {
            v(ReadOnly, "reads the repository")
        }
        "branch" | "tag" => {
            if has(sub_args, "D", &[]) || (has(sub_args, "d", &["delete"]) && cmd == "tag") {
                v(Destructive, "deletes refs")
            } else if sub_args.iter().any(|a| !a.text().starts_with('-'))
                || has(
                    sub_args,
                    "dmMcCfa",
                    &["delete", "move", "copy", "force", "annotate"],
                )
            {
                v(Write, "creates or changes refs")
            } else {
                v(ReadOnly, "lists refs")
            }
        }
        "remote" => match sub(sub_args) {
            None | Some("show" | "get-url") => v(ReadOnly, "lists remotes"),
            Some(_) => v(Write, "changes remotes"),
        },
        "config" => {
            if has(
                sub_args,
                "l",
                &["get", "get-all", "get-regexp", "list", "show-origin"],
            ) || sub(sub_args).is_some_and(|s| s == "get" || s == "list")
            {
                v(ReadOnly, "reads configuration")
            } else {
                v(
                    Privileged,
                    "changes git configuration (which can set commands git runs)",
                )
            }
        }
        "stash" => match sub(sub_args) {
            Some("list" | "show") => v(ReadOnly, "lists stashes"),
            Some("drop" | "clear") => v(Destructive, "deletes stashes"),
            _ => v(Write, "stashes changes"),
        },
        "fetch" | "ls-remote" => v(Network, "talks to a remote"),
        "pull" | "clone" | "submodule" => {
            v(Network, "downloads from a remote and writes the work tree")
        }
        "push" => {
            if has(
                sub_args,
                "fd",
                &["force", "force-with-lease", "delete", "mirror", "prune"],
            ) || sub_args
                .iter()
                .any(|a| a.text().starts_with('+') || a.text().starts_with(':'))
            {
                v(Destructive, "force-pushes or deletes remote refs")
            } else {
                v(Network, "pushes to a remote")
            }
        }
        "clean" => v(Destructive, "deletes untracked files"),
        "reset" => {
            if has(sub_args, "", &["hard", "merge", "keep"]) {
                v(Destructive, "discards work-tree changes")
            } else {
                v(Write, "moves HEAD")
            }
        }
        "checkout" | "restore" | "switch" => {
            if has(sub_args, "f", &["force", "discard-changes"])
                || sub_args.iter().any(|a| a.text() == "--" || a.text() == ".") && cmd != "switch"
            {
                v(Destructive, "overwrites work-tree changes")
            } else {
                v(Write, "changes the work tree")
            }
        }
        "gc" | "prune" | "filter-branch" | "filter-repo" | "update-ref" | "replace" => {
            v(Destructive, "rewrites or prunes history")
        }
        "add" | "commit" | "merge" | "rebase" | "cherry-pick" | "revert" | "init" | "mv" | "rm"
        | "apply" | "am" | "worktree" | "notes" | "bisect" | "sparse-checkout" | "format-patch"
        | "archive" | "bundle" | "mergetool" | "difftool" => v(Write, "changes the repository"),
        other => v(
            Blocked,
            &format!(
                "git subcommand `{other}` is not in the table (it may be an alias running a shell command)"
            ),
        ),
    }
}
