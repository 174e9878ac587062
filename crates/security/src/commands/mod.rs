//! The command table: what each known program does with its arguments. Wrappers (`sudo`, `env`,
//! `xargs`, `find -exec`, `bash -c`, …) hand their payload back to the analysis. A program that is
//! not in the table gets the policy's `unknown_commands` category (blocked by default).

use std::path::Path;

use crate::shell::{Arg, Ctx, check_assignment};
use crate::{Category, PathSandbox, sandbox};

use Category::{Blocked, Destructive, Network, Privileged, ReadOnly, Write};

mod files;
mod git;
mod network;
mod read_only;
mod system;
mod tables;
mod wrappers;

use self::files::*;
use self::git::*;
use self::network::*;
use self::read_only::*;
use self::system::*;
use self::tables::*;
use self::wrappers::*;

/// The deny rule a path argument matches (sandbox rules when configured, else the defaults).
pub(crate) fn sensitive(ctx: &Ctx<'_>, path: &str) -> Option<String> {
    let deny = ctx
        .validator
        .sandbox()
        .map_or(sandbox::DenyList::defaults(), PathSandbox::deny_list);
    deny.matching(&sandbox::lexical(Path::new(path)))
        .map(str::to_owned)
}

/// Literal short-option cluster check (`-rf` has `r`) or long option (`--recursive[=…]`).
fn has(args: &[Arg], shorts: &str, longs: &[&str]) -> bool {
    args.iter()
        .filter_map(Arg::lit)
        .take_while(|a| *a != "--")
        .any(|a| {
            if let Some(long) = a.strip_prefix("--") {
                let key = long.split('=').next().unwrap_or(long);
                longs.contains(&key)
            } else if let Some(short) = a.strip_prefix('-') {
                !short.is_empty() && short.chars().any(|c| shorts.contains(c))
            } else {
                false
            }
        })
}

/// [`operands`], also skipping the value after each short option in `shorts` and long option in
/// `longs` that takes one as the next word.
fn operands_skipping<'a>(args: &'a [Arg], shorts: &str, longs: &[&str]) -> Vec<&'a Arg> {
    let mut out = Vec::new();
    let mut skip = false;
    let mut opts_done = false;
    for a in args {
        let t = a.text();
        if skip {
            skip = false;
            continue;
        }
        if !opts_done && t == "--" {
            opts_done = true;
            continue;
        }
        if opts_done || !t.starts_with('-') || t == "-" {
            out.push(a);
        } else if let Some(long) = t.strip_prefix("--") {
            skip = longs.contains(&long) && !long.contains('=');
        } else if let Some(short) = t.strip_prefix('-') {
            // `-l 16` takes the next word; `-l16` carries its value.
            skip = short.len() == 1 && shorts.contains(short);
        }
    }
    out
}

/// Operands: arguments that are not options (after `--`, everything is an operand).
fn operands(args: &[Arg]) -> Vec<&Arg> {
    let mut out = Vec::new();
    let mut opts_done = false;
    for a in args {
        let t = a.text();
        if !opts_done && t == "--" {
            opts_done = true;
            continue;
        }
        if opts_done || !t.starts_with('-') || t == "-" {
            out.push(a);
        }
    }
    out
}

/// Whether a path (as written) names `/`, a system tree or everything in one (`/*`, `/usr/*`).
fn is_system_tree(path: &str) -> bool {
    let mut p = path.trim().to_owned();
    while p.contains("//") {
        p = p.replace("//", "/");
    }
    let p = p
        .trim_end_matches("/.")
        .trim_end_matches("/*")
        .trim_end_matches('/');
    if !(path.trim().starts_with('/') || path.trim().starts_with('~')) {
        return false;
    }
    let p = if p.is_empty() { "/" } else { p };
    let lex = sandbox::lexical(Path::new(p));
    let lex = lex.to_string_lossy();
    let lex = if lex.is_empty() { "/" } else { &lex };
    SYSTEM_TREES.contains(&lex)
        || SYSTEM_TREES.contains(&p)
        || p == "~/"
        || (p.starts_with('/') && p[1..].chars().all(|c| "*?[]".contains(c)))
}

pub(crate) fn classify(ctx: &mut Ctx<'_>, argv: &[Arg]) {
    let display = argv.iter().map(Arg::text).collect::<Vec<_>>().join(" ");
    let Some(raw) = argv.first().and_then(Arg::lit) else {
        let shown = argv.first().map(Arg::text).unwrap_or_default().to_owned();
        ctx.block(shown, "the command name is computed at run time (variable, glob, brace or substitution) and cannot be analysed");
        return;
    };
    let name = match raw.rsplit_once('/') {
        None => raw,
        Some((dir, base)) if SYSTEM_DIRS.contains(&dir) && !base.is_empty() => base,
        Some(_) => {
            ctx.block(raw, "runs a program by path; only programs from the system directories are allowed, by name");
            return;
        }
    };
    if name.is_empty() {
        ctx.block("''", "empty command name");
        return;
    }
    if let Some(pattern) = ctx.validator.blocked_pattern(&display) {
        ctx.block(display, format!("matches blocked pattern `{pattern}`"));
        return;
    }
    let args = &argv[1..];
    for a in args {
        let text = a.text();
        let path = text.split_once('=').map_or(text, |(_, v)| v);
        if let Some(rule) = sensitive(ctx, text).or_else(|| sensitive(ctx, path)) {
            ctx.block(
                display,
                format!("names a sensitive file `{text}` (deny rule `{rule}`)"),
            );
            return;
        }
    }
    if let Some(category) = ctx.validator.override_for(name) {
        ctx.push(display, category, "classified by policy");
        return;
    }
    if let Some((category, reason)) = rule(ctx, name, args) {
        let dynamic = args.iter().find(|a| matches!(a, Arg::Dyn(_)));
        match dynamic {
            Some(d) if category >= Destructive && category != Blocked => ctx.block(
                display,
                format!(
                    "{reason}; its arguments must be literal, but `{}` is computed at run time",
                    d.text()
                ),
            ),
            _ => ctx.push(display, category, reason),
        }
    }
}

type Verdict = Option<(Category, String)>;

fn v(c: Category, reason: &str) -> Verdict {
    Some((c, reason.to_owned()))
}

/// The rule for one program. `None` means the rule pushed its own findings (wrappers).
fn rule(ctx: &mut Ctx<'_>, name: &str, args: &[Arg]) -> Verdict {
    if let Some((_, why)) = NEVER.iter().find(|(n, _)| *n == name) {
        return v(Blocked, &format!("`{name}` {why}; refused"));
    }
    if name.starts_with("mkfs") {
        return v(Blocked, "creates a filesystem, destroying data");
    }
    if SHELLS.contains(&name) || name == "busybox" && sub(args).is_some_and(|s| SHELLS.contains(&s))
    {
        let args = if name == "busybox" { &args[1..] } else { args };
        return shell(ctx, name, args);
    }
    if INTERPRETERS.iter().any(|i| {
        name == *i || name.starts_with(&format!("{i}3.")) || name.starts_with(&format!("{i}2."))
    }) {
        return interpreter(ctx, name, args);
    }
    match name {
        "sudo" | "doas" | "pkexec" => return privilege_wrapper(ctx, name, args),
        "su" => return su(ctx, args),
        "env" => return env(ctx, args),
        "nice" | "nohup" | "stdbuf" | "ionice" | "time" | "setsid" | "chronic" | "command"
        | "exec" | "taskset" | "chrt" | "timeout" | "busybox" | "chroot" | "flock" => {
            return wrapper(ctx, name, args);
        }
        "xargs" => return xargs(ctx, args),
        "find" => return find(ctx, args),
        "watch" => return watch(ctx, args),
        _ => {}
    }
    let exception = read_only_exceptions(name, args);
    if exception.is_some() {
        return exception;
    }
    match name {
        "rm" | "rmdir" | "unlink" | "shred" | "srm" => return remove(name, args),
        "chmod" | "chown" | "chgrp" => return change_mode(name, args),
        "dd" => return dd(args),
        "sed" => return sed(args),
        "awk" | "gawk" | "mawk" | "nawk" => return awk(args),
        "git" => return git(args),
        "tar" => return tar(args),
        "curl" => return curl(args),
        "wget" => return wget(args),
        "nc" | "ncat" | "netcat" | "socat" => {
            if has(args, "ec", &["exec", "sh-exec", "lua-exec"])
                || args.iter().any(|a| {
                    a.text().to_ascii_uppercase().contains("EXEC:")
                        || a.text().to_ascii_uppercase().contains("SYSTEM:")
                })
            {
                return v(
                    Blocked,
                    "network listener or client that runs a program (bind/reverse shell)",
                );
            }
            return v(Network, "opens a network connection");
        }
        "rsync" => {
            if has(args, "e", &["rsh", "rsync-path"]) {
                return v(
                    Blocked,
                    "rsync with a remote shell or remote program option can run arbitrary commands",
                );
            }
            if has(
                args,
                "",
                &[
                    "delete",
                    "delete-before",
                    "delete-after",
                    "delete-during",
                    "remove-source-files",
                ],
            ) {
                return v(Destructive, "rsync deleting files");
            }
            return if args.iter().any(|a| a.text().contains(':')) {
                v(Network, "copies files over the network")
            } else {
                v(Write, "copies files")
            };
        }
        "scp" | "sftp" | "ssh" => {
            let joined = args
                .iter()
                .map(Arg::text)
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_lowercase();
            if joined.contains("proxycommand")
                || joined.contains("localcommand")
                || has(args, "S", &[]) && name == "scp"
            {
                return v(Blocked, "ssh option that runs a local command");
            }
            if name == "ssh" {
                return v(
                    Privileged,
                    "runs commands on another host (use sshExecuteCommand, which validates the remote command)",
                );
            }
            return v(Network, "copies files over the network");
        }
        "sort" => {
            if has(args, "", &["compress-program"]) {
                return v(Blocked, "sort --compress-program runs an arbitrary program");
            }
            if has(args, "o", &["output"]) {
                return v(Write, "writes the sorted output to a file");
            }
            return v(ReadOnly, "reads and prints");
        }
        "uniq" => {
            return if operands(args).len() >= 2 {
                v(Write, "writes its output file")
            } else {
                v(ReadOnly, "reads and prints")
            };
        }
        "tee" => {
            return if operands(args).is_empty() {
                v(ReadOnly, "copies stdin to stdout")
            } else {
                v(Write, "writes files")
            };
        }
        "less" | "more" | "man" => {
            if args.iter().any(|a| a.text().starts_with('+')) || has(args, "P", &["pager", "html"])
            {
                return v(Blocked, "pager options that can run commands");
            }
            return v(ReadOnly, "reads and prints");
        }
        "date" => {
            return if has(args, "s", &["set"]) {
                v(Privileged, "sets the system clock")
            } else {
                v(ReadOnly, "prints the date")
            };
        }
        "hostname" => {
            return if operands(args).is_empty() && !has(args, "F", &["file"]) {
                v(ReadOnly, "prints the host name")
            } else {
                v(Privileged, "sets the host name")
            };
        }
        "dmesg" => {
            return if has(
                args,
                "cCDEn",
                &[
                    "clear",
                    "read-clear",
                    "console-off",
                    "console-on",
                    "console-level",
                ],
            ) {
                v(Privileged, "changes the kernel log")
            } else {
                v(ReadOnly, "reads the kernel log")
            };
        }
        "journalctl" => {
            return if has(
                args,
                "",
                &[
                    "vacuum-size",
                    "vacuum-time",
                    "vacuum-files",
                    "rotate",
                    "flush",
                    "sync",
                    "relinquish-var",
                ],
            ) {
                v(Destructive, "rotates or deletes journal files")
            } else {
                v(ReadOnly, "reads logs")
            };
        }
        "systemctl" | "service" => return systemctl(name, args),
        "hostnamectl" | "timedatectl" | "localectl" => {
            return match sub(args) {
                None
                | Some("status" | "list-timezones" | "list-locales" | "show" | "list-keymaps") => {
                    v(ReadOnly, "reads settings")
                }
                Some(_) => v(Privileged, "changes system settings"),
            };
        }
        "ip" => return ip(args),
        "ifconfig" | "route" | "arp" => {
            return if operands(args).len() <= 1 && !has(args, "sd", &["add", "del"]) {
                v(ReadOnly, "shows network configuration")
            } else {
                v(Privileged, "changes network configuration")
            };
        }
        "iptables" | "ip6tables" | "nft" | "ufw" | "firewall-cmd" | "iptables-save" => {
            return firewall(args);
        }
        "mount" | "umount" => {
            return if name == "mount" && operands(args).is_empty() && !has(args, "a", &["all"]) {
                v(ReadOnly, "lists mounts")
            } else {
                v(Privileged, "mounts or unmounts filesystems")
            };
        }
        "kill" | "pkill" | "killall" | "skill" => {
            let ops = operands(args);
            if args.iter().any(|a| a.text() == "-1") && name == "kill"
                || ops.iter().any(|a| a.text() == "1" && name == "kill")
            {
                return v(Blocked, "signals init or every process");
            }
            return v(Privileged, "signals processes");
        }
        "crontab" => {
            return if has(args, "l", &[]) {
                v(ReadOnly, "lists the crontab")
            } else if has(args, "r", &[]) {
                v(Destructive, "removes the crontab")
            } else {
                v(Privileged, "installs scheduled commands")
            };
        }
        "init" => {
            return if sub(args).is_some_and(|s| s == "0" || s == "6") {
                v(Destructive, "stops or restarts the machine")
            } else {
                v(Privileged, "changes the run level")
            };
        }
        "apt" | "apt-get" | "aptitude" | "apt-cache" | "dnf" | "yum" | "zypper" | "apk"
        | "pacman" => return packages(name, args),
        "dpkg" | "rpm" => {
            return if has(
                args,
                "irPeU",
                &[
                    "install",
                    "remove",
                    "purge",
                    "erase",
                    "upgrade",
                    "unpack",
                    "configure",
                ],
            ) {
                v(
                    Privileged,
                    "installs or removes packages (runs package scripts as root)",
                )
            } else {
                v(ReadOnly, "queries packages")
            };
        }
        "pip" | "pip3" | "npm" | "gem" => {
            return match sub(args) {
                Some(
                    "list" | "show" | "freeze" | "ls" | "view" | "search" | "outdated" | "help"
                    | "config" | "info",
                )
                | None => v(ReadOnly, "queries packages"),
                Some(_) => v(Privileged, "installs packages or runs package scripts"),
            };
        }
        "docker" | "podman" => return docker(args),
        "kubectl" | "oc" => return kubectl(args),
        "gzip" | "gunzip" | "bzip2" | "bunzip2" | "xz" | "unxz" | "zstd" | "unzstd" => {
            return if has(args, "cltS", &["stdout", "to-stdout", "list", "test"]) {
                v(ReadOnly, "prints (de)compressed data")
            } else {
                v(Write, "compresses or decompresses files in place")
            };
        }
        "zip" | "unzip" => {
            if has(args, "", &["unzip-command"]) || args.iter().any(|a| a.text() == "-TT") {
                return v(Blocked, "zip option that runs a command");
            }
            return if name == "unzip" && has(args, "lvtpZ", &[]) {
                v(ReadOnly, "lists or tests an archive")
            } else {
                v(Write, "writes archive files")
            };
        }
        "openssl" => {
            return match sub(args) {
                Some("s_client" | "s_server" | "ocsp") => v(Network, "opens TLS connections"),
                _ if has(args, "", &["out"]) || args.iter().any(|a| a.text() == "-out") => {
                    v(Write, "writes output files")
                }
                _ => v(ReadOnly, "inspects or converts data"),
            };
        }
        "sysctl" => {
            return if has(args, "wp", &["write", "load", "system"])
                || args.iter().any(|a| a.text().contains('='))
            {
                v(Privileged, "changes kernel parameters")
            } else {
                v(ReadOnly, "reads kernel parameters")
            };
        }
        "export" | "declare" | "typeset" | "readonly" | "local" => {
            for a in args {
                if let Some((var, _)) = a.text().split_once('=') {
                    check_assignment(ctx, var.trim_end_matches('+'));
                } else if has(std::slice::from_ref(a), "f", &[]) {
                    return v(
                        Blocked,
                        "exports or defines functions, which cannot be analysed",
                    );
                }
            }
            return v(ReadOnly, "sets shell variables only");
        }
        "set" => return v(ReadOnly, "sets shell options or positional parameters"),
        "let" => {
            return v(
                Blocked,
                "arithmetic on variables is refused: bash re-evaluates variable values as expressions, which can run code",
            );
        }
        "hash" => {
            return if has(args, "p", &[]) {
                v(Blocked, "hash -p changes which program a name runs")
            } else {
                v(ReadOnly, "shows the command hash table")
            };
        }
        "type" | "which" => return v(ReadOnly, "looks up commands"),
        _ => {}
    }
    if READ_ONLY.contains(&name) {
        return v(ReadOnly, "reads state only");
    }
    if WRITE.contains(&name) {
        if name == "chmod" {
            return change_mode(name, args);
        }
        if matches!(name, "cp" | "mv")
            && has(args, "rR", &["recursive"])
            && let Some(target) = operands(args).last()
            && is_system_tree(target.text())
        {
            return v(
                Blocked,
                "recursively copies or moves over a system directory",
            );
        }
        if name == "mv" && operands(args).iter().any(|a| is_system_tree(a.text())) {
            return v(Blocked, "moves a system directory");
        }
        return v(Write, "changes files");
    }
    if NETWORK.contains(&name) {
        return v(Network, "talks to other hosts");
    }
    if PRIVILEGED.contains(&name) {
        return v(
            Privileged,
            "changes the system or runs code that cannot be analysed",
        );
    }
    if DESTRUCTIVE.contains(&name) {
        for a in operands(args) {
            if a.text().starts_with("/dev/")
                && matches!(
                    name,
                    "wipefs" | "fdisk" | "sfdisk" | "gdisk" | "parted" | "blkdiscard" | "mkswap"
                )
            {
                return v(Blocked, "erases or repartitions a disk device");
            }
        }
        return v(Destructive, "deletes data or stops the machine");
    }
    let unknown = ctx.validator.unknown_category();
    if unknown == Blocked {
        v(
            Blocked,
            &format!(
                "`{name}` is not in the command table; add it to the policy's `commands` with a category to allow it"
            ),
        )
    } else {
        v(
            unknown,
            &format!("`{name}` is not in the command table; treated as `{unknown}` by policy"),
        )
    }
}

fn su(ctx: &mut Ctx<'_>, args: &[Arg]) -> Verdict {
    let mut i = 0;
    while i < args.len() {
        let t = args[i].text();
        if t == "-c" || t == "--command" {
            let Some(script) = args.get(i + 1).and_then(Arg::lit) else {
                return v(
                    Blocked,
                    "the command passed to `su -c` is computed at run time",
                );
            };
            ctx.push(
                "su -c",
                Privileged,
                "runs the command that follows as another user",
            );
            ctx.script(script, "su -c");
            return None;
        }
        i += 1;
    }
    v(
        Blocked,
        "`su` without `-c` starts a shell, which cannot be analysed",
    )
}
