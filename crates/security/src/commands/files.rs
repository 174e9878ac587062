//! Programs that change files: `rm`, `chmod`/`chown`, `dd`, `sed`, `awk`, `tar`.

use super::*;

pub(super) fn remove(name: &str, args: &[Arg]) -> Verdict {
    if has(args, "", &["no-preserve-root"]) {
        return v(Blocked, "`--no-preserve-root` is never allowed");
    }
    let recursive = has(args, "rR", &["recursive"]) || name == "shred";
    for target in operands(args) {
        if (recursive || name == "rmdir") && is_system_tree(target.text()) {
            return v(
                Blocked,
                &format!(
                    "deletes `{}`, the root or a system directory",
                    target.text()
                ),
            );
        }
        if target.text().starts_with("/dev/") && name == "shred" {
            return v(Blocked, "overwrites a device");
        }
    }
    v(Destructive, "deletes files")
}

pub(super) fn change_mode(name: &str, args: &[Arg]) -> Verdict {
    let recursive = has(args, "R", &["recursive"]);
    let ops = operands(args);
    if recursive && ops.iter().skip(1).any(|t| is_system_tree(t.text())) {
        return v(
            Blocked,
            &format!("recursive `{name}` over the root or a system directory"),
        );
    }
    if name == "chmod" {
        let mode = ops.first().map(|m| m.text()).unwrap_or("");
        let setuid = mode.contains('s') && (mode.contains('+') || mode.contains('='))
            || mode.len() == 4 && mode.starts_with(['4', '2', '6']);
        if setuid {
            return v(Privileged, "sets setuid/setgid bits");
        }
        if ops.iter().skip(1).any(|t| {
            t.text().starts_with("/etc")
                || t.text().starts_with("/usr")
                || t.text().starts_with("/bin")
        }) {
            return v(Privileged, "changes permissions of system files");
        }
        return v(Write, "changes file permissions");
    }
    v(Privileged, "changes file ownership")
}

pub(super) fn dd(args: &[Arg]) -> Verdict {
    let mut writes = false;
    for a in args {
        if let Some(target) = a.text().strip_prefix("of=") {
            if target.starts_with("/dev/")
                && !["/dev/null", "/dev/stdout", "/dev/stderr"].contains(&target)
            {
                return v(Blocked, "writes raw data to a device");
            }
            if matches!(a, Arg::Dyn(_) | Arg::Glob(_)) {
                return v(Blocked, "dd output target computed at run time");
            }
            writes = true;
        }
    }
    if writes {
        v(Write, "writes a file")
    } else {
        v(ReadOnly, "copies to stdout")
    }
}

pub(super) fn sed(args: &[Arg]) -> Verdict {
    if has(args, "f", &["file"]) {
        return v(Privileged, "sed script from a file cannot be analysed");
    }
    let scripts: Vec<&str> = {
        let mut out = Vec::new();
        let mut i = 0;
        let mut explicit = false;
        while i < args.len() {
            let t = args[i].text();
            if t == "-e" || t == "--expression" {
                if let Some(s) = args.get(i + 1) {
                    out.push(s.text());
                }
                explicit = true;
                i += 2;
                continue;
            }
            i += 1;
        }
        if !explicit && let Some(first) = operands(args).first() {
            out.push(first.text());
        }
        out
    };
    for s in &scripts {
        if sed_runs_commands(s) {
            return v(
                Privileged,
                "sed script runs shell commands (`e` command or `s///e`)",
            );
        }
    }
    if has(args, "i", &["in-place"]) {
        return v(Write, "edits files in place");
    }
    if scripts.iter().any(|s| sed_writes(s)) {
        return v(Write, "sed script writes files (`w`)");
    }
    v(ReadOnly, "transforms text")
}

pub(super) fn sed_runs_commands(script: &str) -> bool {
    // `e` as a command (start of a command) or as an `s` flag.
    for cmd in script.split([';', '\n']) {
        let c = cmd
            .trim_start()
            .trim_start_matches(|ch: char| ch.is_ascii_digit() || ",$!{} ".contains(ch));
        if c.starts_with('e') {
            return true;
        }
        if let Some(rest) = c.strip_prefix('s') {
            let mut chars = rest.chars();
            if let Some(delim) = chars.next() {
                let parts: Vec<&str> = rest[delim.len_utf8()..].split(delim).collect();
                if parts.len() >= 3 && parts[2].contains('e') {
                    return true;
                }
            }
        }
    }
    false
}

pub(super) fn sed_writes(script: &str) -> bool {
    script.split([';', '\n']).any(|cmd| {
        let c = cmd
            .trim_start()
            .trim_start_matches(|ch: char| ch.is_ascii_digit() || ",$!{} ".contains(ch));
        c.starts_with("w ") || c.starts_with("W ") || {
            c.strip_prefix('s').is_some_and(|rest| {
                rest.chars().next().is_some_and(|d| {
                    let parts: Vec<&str> = rest[d.len_utf8()..].split(d).collect();
                    parts.len() >= 3 && parts[2].contains('w')
                })
            })
        }
    })
}

pub(super) fn awk(args: &[Arg]) -> Verdict {
    if has(args, "f", &["file", "include", "load"]) || args.iter().any(|a| a.text() == "-E") {
        return v(Privileged, "awk program from a file cannot be analysed");
    }
    let program = {
        let mut i = 0;
        let mut found = None;
        while i < args.len() {
            let t = args[i].text();
            if matches!(t, "-F" | "-v" | "--assign" | "--field-separator") {
                i += 2;
                continue;
            }
            if t.starts_with('-') && t != "-" {
                i += 1;
                continue;
            }
            found = Some(t);
            break;
        }
        found.unwrap_or("")
    };
    if program.contains("system") || program.contains("getline") || program.contains('|') {
        return v(
            Privileged,
            "awk program runs commands or reads from pipes (system, getline or |)",
        );
    }
    if program.contains("print")
        && (program.contains("> \"") || program.contains(">\"") || program.contains(">>"))
    {
        return v(Write, "awk program writes files");
    }
    v(ReadOnly, "transforms text")
}

pub(super) fn tar(args: &[Arg]) -> Verdict {
    if has(
        args,
        "IF",
        &[
            "to-command",
            "checkpoint-action",
            "use-compress-program",
            "info-script",
            "new-volume-script",
            "rsh-command",
            "rmt-command",
        ],
    ) {
        return v(Blocked, "tar option that runs a program");
    }
    // The first word may be a bundled mode without a dash (`tar xzf a.tgz`).
    let first = args.first().map(Arg::text).unwrap_or("");
    let mode =
        |c: char| has(args, &c.to_string(), &[]) || !first.starts_with('-') && first.contains(c);
    if mode('t') || has(args, "", &["list"]) {
        return v(ReadOnly, "lists an archive");
    }
    if mode('x') || has(args, "", &["extract", "get"]) {
        if args.iter().any(|a| a.text() == "/") {
            return v(Blocked, "extracts over the root directory");
        }
        return v(Write, "extracts files");
    }
    v(Write, "writes an archive")
}
