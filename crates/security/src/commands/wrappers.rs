//! Programs that run another command: shells, interpreters, privilege and process wrappers, `env`,
//! `xargs`, `find -exec`, `watch`. Each hands its payload back to the analysis.

use super::*;

pub(super) fn shell(ctx: &mut Ctx<'_>, name: &str, args: &[Arg]) -> Verdict {
    let mut i = 0;
    while i < args.len() {
        let Some(a) = args[i].lit() else {
            return v(Blocked, "shell option computed at run time");
        };
        if a == "--" || !(a.starts_with('-') || a.starts_with('+')) || a == "-" {
            break;
        }
        if matches!(a, "--rcfile" | "--init-file") {
            return v(
                Blocked,
                "shell reads a start-up file that cannot be analysed",
            );
        }
        if a.starts_with("--") {
            i += 1;
            continue;
        }
        let flags = &a[1..];
        if flags.contains('c') {
            let Some(script) = args.get(i + 1) else {
                return v(Blocked, "`-c` without a script");
            };
            let Some(script) = script.lit() else {
                return v(
                    Blocked,
                    "the script passed to `-c` is computed at run time and cannot be analysed",
                );
            };
            ctx.push(
                format!("{name} -c"),
                ReadOnly,
                "runs the script that follows (analysed)",
            );
            ctx.script(script, &format!("{name} -c"));
            return None;
        }
        if flags.contains('o') || flags.contains('O') {
            i += 1;
        }
        i += 1;
    }
    match &ctx.pipe_from {
        Some(from) => v(
            Blocked,
            &format!(
                "a shell reading commands from `{from}` cannot be analysed (download or decoded data piped into a shell)"
            ),
        ),
        None => v(
            Blocked,
            &format!(
                "`{name}` without `-c '<script>'` runs a script or stdin, which cannot be analysed"
            ),
        ),
    }
}

pub(super) fn interpreter(ctx: &mut Ctx<'_>, name: &str, args: &[Arg]) -> Verdict {
    let only_version = !args.is_empty()
        && args.iter().all(|a| {
            matches!(
                a.text(),
                "--version" | "-V" | "-v" | "--help" | "-h" | "version"
            )
        });
    if only_version {
        return v(ReadOnly, "prints its version");
    }
    let reads_stdin = operands(args).is_empty() && !has(args, "ce", &["eval", "command"])
        || operands(args).first().is_some_and(|a| a.text() == "-");
    if reads_stdin {
        return match &ctx.pipe_from {
            Some(from) => v(
                Blocked,
                &format!(
                    "`{name}` reading a program from `{from}` cannot be analysed (download or decoded data piped into an interpreter)"
                ),
            ),
            None => v(
                Blocked,
                &format!("`{name}` reading a program from stdin cannot be analysed"),
            ),
        };
    }
    v(
        Privileged,
        &format!("`{name}` runs code that cannot be analysed statically"),
    )
}

/// The wrapper's own options: everything before its payload.
pub(super) fn own_options<'a>(args: &'a [Arg], payload: &[Arg]) -> &'a [Arg] {
    &args[..args.len() - payload.len()]
}

/// Skips a wrapper's own options (those in `with_value` take the next word) and returns the payload.
pub(super) fn after_options<'a>(args: &'a [Arg], with_value: &[&str]) -> &'a [Arg] {
    let mut i = 0;
    while i < args.len() {
        let t = args[i].text();
        if t == "--" {
            return &args[i + 1..];
        }
        if !t.starts_with('-') || t == "-" {
            return &args[i..];
        }
        let takes = with_value.contains(&t)
            || t.starts_with("--") && !t.contains('=') && with_value.contains(&t);
        i += if takes { 2 } else { 1 };
    }
    &args[args.len()..]
}

pub(super) fn privilege_wrapper(ctx: &mut Ctx<'_>, name: &str, args: &[Arg]) -> Verdict {
    let payload = after_options(
        args,
        &[
            "-u",
            "-g",
            "-h",
            "-p",
            "-C",
            "-r",
            "-t",
            "-T",
            "-U",
            "-D",
            "--user",
            "--group",
            "--host",
            "--prompt",
            "--role",
            "--type",
            "--chdir",
            "--close-from",
            "--command-timeout",
            "--other-user",
        ],
    );
    let own = own_options(args, payload);
    if has(own, "isel", &["shell", "login", "edit", "list"]) {
        if has(own, "l", &["list"]) && payload.is_empty() {
            return v(ReadOnly, "lists sudo rights");
        }
        return v(
            Blocked,
            &format!(
                "`{name}` starting a shell, editor or listing with a command cannot be analysed"
            ),
        );
    }
    if payload.is_empty() {
        return v(ReadOnly, "refreshes or checks credentials");
    }
    ctx.push(
        format!("{name} …"),
        Privileged,
        "runs the command that follows as another user",
    );
    ctx.payload(payload);
    None
}

/// First literal operand (a subcommand, usually).
pub(super) fn sub(args: &[Arg]) -> Option<&str> {
    operands(args).first().and_then(|a| a.lit())
}

pub(super) fn env(ctx: &mut Ctx<'_>, args: &[Arg]) -> Verdict {
    let mut i = 0;
    while i < args.len() {
        let t = args[i].text();
        if t == "-S"
            || t.starts_with("--split-string")
            || (t.starts_with("-S") && !t.starts_with("--"))
        {
            return v(
                Blocked,
                "`env -S` splits a string into a command, which cannot be analysed",
            );
        }
        if matches!(t, "-u" | "--unset" | "-C" | "--chdir") {
            i += 2;
            continue;
        }
        if t.starts_with('-') && t != "-" {
            i += 1;
            continue;
        }
        if let Some((var, _)) = t.split_once('=') {
            check_assignment(ctx, var);
            i += 1;
            continue;
        }
        break;
    }
    let payload = &args[i..];
    if payload.is_empty() {
        return v(ReadOnly, "prints the environment");
    }
    ctx.payload(payload);
    None
}

pub(super) fn wrapper(ctx: &mut Ctx<'_>, name: &str, args: &[Arg]) -> Verdict {
    let payload: &[Arg] = match name {
        "nice" => after_options(args, &["-n", "--adjustment"]),
        "ionice" => after_options(
            args,
            &["-c", "-n", "-p", "-P", "-u", "--class", "--classdata"],
        ),
        "stdbuf" => after_options(args, &["-i", "-o", "-e"]),
        "time" => after_options(args, &["-f", "--format"]),
        "timeout" => {
            let rest = after_options(args, &["-s", "-k", "--signal", "--kill-after"]);
            if rest.is_empty() {
                return v(Blocked, "`timeout` without a command");
            }
            &rest[1..]
        }
        "taskset" => {
            let rest = after_options(args, &[]);
            if has(own_options(args, rest), "p", &["pid"]) {
                return v(Privileged, "changes a process's CPU affinity");
            }
            rest.get(1..).unwrap_or(&[])
        }
        "chrt" => {
            let rest = after_options(args, &[]);
            rest.get(1..).unwrap_or(&[])
        }
        "chroot" => {
            let rest = after_options(args, &["--userspec", "--groups"]);
            if rest.len() <= 1 {
                return v(Blocked, "`chroot` without a command starts a shell");
            }
            ctx.push("chroot …", Privileged, "changes the root directory");
            &rest[1..]
        }
        "flock" => {
            let rest = after_options(args, &["-w", "--timeout", "-E", "--conflict-exit-code"]);
            if has(own_options(args, rest), "c", &["command"])
                || rest.get(1).is_some_and(|a| a.text() == "-c")
            {
                return v(Blocked, "`flock -c` runs a string as code");
            }
            rest.get(1..).unwrap_or(&[])
        }
        "command" => {
            let rest = after_options(args, &[]);
            if has(own_options(args, rest), "vV", &[]) {
                return v(ReadOnly, "looks up a command");
            }
            rest
        }
        "exec" => {
            let rest = after_options(args, &[]);
            if !own_options(args, rest).is_empty() {
                return v(
                    Blocked,
                    "`exec` options (`-a`, `-c`, `-l`) change how the program runs",
                );
            }
            rest
        }
        "busybox" => {
            if args.is_empty() || args[0].text().starts_with('-') {
                return v(ReadOnly, "lists applets");
            }
            args
        }
        _ => after_options(args, &[]),
    };
    if payload.is_empty() {
        return match name {
            "exec" => v(ReadOnly, "changes file descriptors only"),
            "time" | "nice" | "command" => v(ReadOnly, "prints information"),
            _ => v(Blocked, &format!("`{name}` without a command")),
        };
    }
    ctx.payload(payload);
    None
}

pub(super) fn xargs(ctx: &mut Ctx<'_>, args: &[Arg]) -> Verdict {
    let payload = after_options(
        args,
        &[
            "-I",
            "-i",
            "-n",
            "-L",
            "-l",
            "-s",
            "-P",
            "-d",
            "-E",
            "-e",
            "-a",
            "--max-args",
            "--max-lines",
            "--max-procs",
            "--delimiter",
            "--arg-file",
            "--replace",
            "--eof",
            "--max-chars",
            "--process-slot-var",
        ],
    );
    if payload.is_empty() {
        return v(ReadOnly, "echoes its input");
    }
    ctx.push(
        "xargs …",
        ReadOnly,
        "runs the command that follows with arguments from stdin",
    );
    let before = ctx.findings.len();
    ctx.payload(payload);
    // Arguments arrive from stdin: a destructive payload cannot be checked against blocked targets.
    let worst = ctx.findings[before..].iter().map(|f| f.category).max();
    if worst == Some(Destructive) {
        ctx.push(
            "xargs …",
            Destructive,
            "destructive command with arguments read from stdin",
        );
    }
    None
}

pub(super) fn find(ctx: &mut Ctx<'_>, args: &[Arg]) -> Verdict {
    let mut category = ReadOnly;
    let mut reason = "searches files".to_owned();
    let roots: Vec<&Arg> = args
        .iter()
        .take_while(|a| !a.text().starts_with('-') && a.text() != "(" && a.text() != "!")
        .collect();
    let mut i = 0;
    while i < args.len() {
        let t = args[i].text();
        match t {
            "-exec" | "-execdir" | "-ok" | "-okdir" => {
                let start = i + 1;
                let mut end = start;
                while end < args.len() && !matches!(args[end].text(), ";" | "+") {
                    end += 1;
                }
                if end == start {
                    return v(Blocked, "`find -exec` without a command");
                }
                ctx.payload(&args[start..end]);
                i = end + 1;
                continue;
            }
            "-delete" => {
                if roots.iter().any(|r| is_system_tree(r.text())) {
                    return v(Blocked, "find -delete over a system directory");
                }
                category = category.max(Destructive);
                reason = "deletes the files it finds".to_owned();
            }
            "-fprint" | "-fprint0" | "-fprintf" | "-fls" => {
                category = category.max(Write);
                reason = "writes its results to a file".to_owned();
            }
            _ => {}
        }
        i += 1;
    }
    v(category, &reason)
}

pub(super) fn watch(ctx: &mut Ctx<'_>, args: &[Arg]) -> Verdict {
    let payload = after_options(args, &["-n", "-d", "--interval", "-q", "--equexit", "-g"]);
    if payload.is_empty() {
        return v(Blocked, "`watch` without a command");
    }
    if has(own_options(args, payload), "x", &["exec"]) {
        ctx.payload(payload);
        return None;
    }
    let Some(script) = payload.iter().map(|a| a.lit()).collect::<Option<Vec<_>>>() else {
        return v(Blocked, "`watch` runs a computed command line");
    };
    ctx.script(&script.join(" "), "watch");
    None
}
