//! The command table: what each known program does with its arguments. Wrappers (`sudo`, `env`,
//! `xargs`, `find -exec`, `bash -c`, …) hand their payload back to the analysis. A program that is
//! not in the table gets the policy's `unknown_commands` category (blocked by default).

use std::path::Path;

use crate::shell::{Arg, Ctx, check_assignment};
use crate::{Category, PathSandbox, sandbox};

use Category::{Blocked, Destructive, Network, Privileged, ReadOnly, Write};

/// Directories whose programs may be named by absolute path (`/usr/bin/ls` is `ls`).
const SYSTEM_DIRS: &[&str] = &[
    "/bin",
    "/usr/bin",
    "/usr/local/bin",
    "/sbin",
    "/usr/sbin",
    "/usr/local/sbin",
];

/// Programs that only read.
const READ_ONLY: &[&str] = &[
    ":",
    "[",
    "arch",
    "b2sum",
    "base32",
    "base64",
    "basename",
    "blkid",
    "bzcat",
    "cal",
    "cat",
    "cd",
    "cksum",
    "cmp",
    "column",
    "comm",
    "cut",
    "df",
    "diff",
    "dirname",
    "dirs",
    "du",
    "echo",
    "egrep",
    "expand",
    "expr",
    "factor",
    "false",
    "fgrep",
    "file",
    "findmnt",
    "fold",
    "fmt",
    "free",
    "getconf",
    "getent",
    "grep",
    "groups",
    "head",
    "hexdump",
    "id",
    "iostat",
    "jobs",
    "join",
    "jq",
    "last",
    "lastlog",
    "locale",
    "logname",
    "ls",
    "lsattr",
    "lsblk",
    "lscpu",
    "lsmod",
    "lsof",
    "lspci",
    "lsusb",
    "md5sum",
    "mpstat",
    "nl",
    "nproc",
    "numfmt",
    "od",
    "paste",
    "pgrep",
    "pidof",
    "popd",
    "printenv",
    "printf",
    "ps",
    "pushd",
    "pwd",
    "read",
    "readlink",
    "realpath",
    "return",
    "exit",
    "rev",
    "rg",
    "seq",
    "sha1sum",
    "sha224sum",
    "sha256sum",
    "sha384sum",
    "sha512sum",
    "shift",
    "sleep",
    "ss",
    "netstat",
    "stat",
    "strings",
    "sum",
    "tac",
    "tail",
    "test",
    "top",
    "tr",
    "tree",
    "true",
    "tty",
    "type",
    "uname",
    "unexpand",
    "unset",
    "uptime",
    "users",
    "vmstat",
    "w",
    "wait",
    "wc",
    "whereis",
    "which",
    "who",
    "whoami",
    "xxd",
    "xzcat",
    "yes",
    "zcat",
    "zgrep",
    "dpkg-query",
    "lsb_release",
    "nvidia-smi",
    "sensors",
    "uniq",
    "local",
    "umask",
    "ulimit",
    "hash",
    "dmesg",
    "journalctl",
    "loginctl",
    "systemd-analyze",
    "timeout",
    "less",
    "more",
    "man",
    "tput",
    "env",
    "printf",
    "declare",
    "typeset",
    "readonly",
    "export",
    "set",
    "shopt",
    "getopts",
    "true",
    "sort",
];

/// Programs that talk to other hosts.
const NETWORK: &[&str] = &[
    "ping",
    "ping6",
    "dig",
    "nslookup",
    "host",
    "traceroute",
    "tracepath",
    "mtr",
    "telnet",
    "ftp",
    "sftp",
    "whois",
    "arping",
    "iperf",
    "iperf3",
    "nmap",
    "http",
    "https",
    "curl",
    "wget",
    "nc",
    "ncat",
    "netcat",
    "socat",
    "scp",
    "rsync",
];

/// Programs that run code we cannot see, or change the system.
const PRIVILEGED: &[&str] = &[
    "useradd",
    "usermod",
    "groupadd",
    "groupmod",
    "gpasswd",
    "passwd",
    "chpasswd",
    "visudo",
    "at",
    "batch",
    "modprobe",
    "insmod",
    "rmmod",
    "swapon",
    "swapoff",
    "setcap",
    "chattr",
    "chown",
    "chgrp",
    "mknod",
    "setfacl",
    "make",
    "cmake",
    "ninja",
    "cargo",
    "go",
    "yarn",
    "pnpm",
    "npx",
    "gcc",
    "cc",
    "clang",
    "ssh",
    "ssh-keygen",
    "ssh-copy-id",
    "openssl",
    "snap",
    "flatpak",
    "systemd-run",
    "runuser",
    "sysctl",
    "unshare",
    "nsenter",
    "capsh",
    "setpriv",
];

/// Programs that delete data or stop the machine.
const DESTRUCTIVE: &[&str] = &[
    "rm",
    "rmdir",
    "unlink",
    "shred",
    "wipefs",
    "fdisk",
    "sfdisk",
    "gdisk",
    "parted",
    "mkswap",
    "reboot",
    "shutdown",
    "halt",
    "poweroff",
    "telinit",
    "truncate",
    "blkdiscard",
    "srm",
    "userdel",
    "groupdel",
];

/// Programs that change files.
const WRITE: &[&str] = &[
    "touch", "mkdir", "cp", "mv", "ln", "install", "patch", "split", "csplit", "mktemp", "mkfifo",
    "gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz", "zstd", "unzstd", "zip", "unzip", "7z",
    "tee", "chmod", "dos2unix", "unix2dos",
];

/// Interpreters: their code cannot be analysed, so running any is privileged (needs approval);
/// one reading its program from a pipe or stdin is refused.
const INTERPRETERS: &[&str] = &[
    "python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "Rscript",
    "java", "tclsh", "wish", "guile", "irb", "deno", "bun",
];

/// Shells: only `-c '<script>'` is analysed (recursively); anything else is refused.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "rbash", "yash",
];

/// Builtins and programs that run strings or files as code, or interactive programs that can spawn
/// shells: never analysable.
const NEVER: &[(&str, &str)] = &[
    ("eval", "runs a string as code"),
    ("source", "runs a file as code"),
    (".", "runs a file as code"),
    ("alias", "defines commands that cannot be analysed"),
    ("trap", "runs a string as code on a signal"),
    ("enable", "loads or changes builtins"),
    ("builtin", "bypasses the command table"),
    ("fc", "re-runs history"),
    ("history", "re-runs or edits history"),
    ("bind", "binds keys to commands"),
    ("complete", "registers completion commands"),
    ("compgen", "runs completion commands"),
    ("coproc", "starts a coprocess"),
    (
        "vi",
        "interactive editor that can run shells; use writeFile",
    ),
    (
        "vim",
        "interactive editor that can run shells; use writeFile",
    ),
    (
        "nvim",
        "interactive editor that can run shells; use writeFile",
    ),
    ("nano", "interactive editor; use writeFile"),
    (
        "emacs",
        "interactive editor that can run shells; use writeFile",
    ),
    ("ed", "editor that can run shells; use writeFile"),
    ("script", "runs a shell"),
    ("expect", "runs scripts"),
    ("screen", "runs shells"),
    ("tmux", "runs shells"),
    ("gdb", "runs arbitrary code"),
    ("strace", "wraps arbitrary programs"),
    ("ltrace", "wraps arbitrary programs"),
    ("busybox-sh", "runs a shell"),
    ("mkfs", "creates a filesystem, destroying data"),
    ("mke2fs", "creates a filesystem, destroying data"),
    ("mkdosfs", "creates a filesystem, destroying data"),
    ("mkntfs", "creates a filesystem, destroying data"),
    ("crash", "kernel debugger"),
    ("kexec", "replaces the running kernel"),
];

/// Top-level directories a recursive change or delete must never target.
const SYSTEM_TREES: &[&str] = &[
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media",
    "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/usr", "/var", "~",
    "/snap", "/tmp",
];

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

/// Options of programs in [`READ_ONLY`] that write files, run programs, open connections or change
/// the system, from each program's manual (the audit of the read-only table). `None`: the
/// program only reads.
fn read_only_exceptions(name: &str, args: &[Arg]) -> Verdict {
    let lit = |a: &Arg| a.lit().unwrap_or("").to_owned();
    match name {
        // rg(1): --pre COMMAND runs COMMAND on every file searched.
        "rg" if has(args, "", &["pre"]) => v(Blocked, "rg --pre runs a program on every file"),
        // file(1): -C / --compile writes a compiled magic file.
        "file" if has(args, "C", &["compile"]) => v(Write, "file -C writes a compiled magic file"),
        // tree(1): -o FILE writes the listing to a file; -R (with -H) writes 00Tree.html files.
        "tree" if has(args, "oR", &[]) => v(Write, "tree -o/-R writes its listing to files"),
        // xxd(1): a second operand is the output file.
        "xxd" if operands_skipping(args, "cglosn", &[]).len() >= 2 => {
            v(Write, "xxd writes its output file")
        }
        // less(1): -o/-O/--log-file/--LOG-FILE copy the input to a file.
        "less" if has(args, "oO", &["log-file", "LOG-FILE"]) => v(Write, "less writes a log file"),
        // journalctl(1): --setup-keys and --update-catalog write system files, --cursor-file
        // writes the cursor.
        "journalctl" if has(args, "", &["setup-keys", "update-catalog"]) => {
            v(Privileged, "writes journal keys or the message catalog")
        }
        "journalctl" if has(args, "", &["cursor-file"]) => v(
            Write,
            "journalctl --cursor-file writes the cursor to a file",
        ),
        // ss(8): -K/--kill closes sockets; -D/--diag FILE dumps raw socket data to a file.
        "ss" if has(args, "K", &["kill"]) => v(Privileged, "ss -K closes sockets"),
        "ss" if has(args, "D", &["diag"]) => v(Write, "ss -D writes raw socket data to a file"),
        // sensors(1): -s sets limits in the chips.
        "sensors" if has(args, "s", &["set"]) => v(Privileged, "sensors -s writes chip limits"),
        // blkid(8): -g garbage-collects (rewrites) the cache file.
        "blkid" if has(args, "g", &["garbage-collect"]) => v(Write, "blkid -g rewrites its cache"),
        // lastlog(8): -C clears and -S sets records.
        "lastlog" if has(args, "CS", &["clear", "set"]) => {
            v(Privileged, "lastlog -C/-S changes login records")
        }
        // loginctl(1): everything but the list/show/status commands changes sessions or users.
        "loginctl" => match sub(args) {
            None
            | Some(
                "list-sessions" | "session-status" | "show-session" | "list-users" | "user-status"
                | "show-user" | "list-seats" | "seat-status" | "show-seat",
            ) => None,
            Some(_) => v(Privileged, "changes sessions, users or seats"),
        },
        // systemd-analyze(1): setting the manager's log level/target or watchdogs changes it.
        "systemd-analyze" => {
            let ops = operands(args);
            match ops.first().and_then(|a| a.lit()) {
                Some("set-log-level" | "set-log-target") => {
                    v(Privileged, "changes the service manager's logging")
                }
                Some("log-level" | "log-target" | "service-watchdogs") if ops.len() > 1 => {
                    v(Privileged, "changes the service manager's settings")
                }
                _ => None,
            }
        }
        // nvidia-smi(1): its single-dash options set GPU state; -f/--filename writes a log file;
        // the mig, drain and clocks commands change the GPU.
        "nvidia-smi" => {
            const SETS: &[&str] = &[
                "-pm",
                "--persistence-mode",
                "-e",
                "--ecc-config",
                "-p",
                "--reset-ecc-errors",
                "-c",
                "--compute-mode",
                "--gom",
                "-r",
                "--gpu-reset",
                "-vm",
                "--virt-mode",
                "-lgc",
                "--lock-gpu-clocks",
                "-rgc",
                "--reset-gpu-clocks",
                "-lmc",
                "--lock-memory-clocks",
                "-rmc",
                "--reset-memory-clocks",
                "-ac",
                "--applications-clocks",
                "-rac",
                "--reset-applications-clocks",
                "-acp",
                "--applications-clocks-permission",
                "-pl",
                "--power-limit",
                "-cc",
                "--cuda-clocks",
                "-am",
                "--accounting-mode",
                "-caa",
                "--clear-accounted-apps",
                "-mig",
                "--multi-instance-gpu",
                "-dm",
                "--driver-model",
                "-fdm",
                "--force-driver-model",
                "--auto-boost-default",
                "--auto-boost-permission",
            ];
            let texts: Vec<String> = args.iter().map(lit).collect();
            let key = |t: &str| t.split('=').next().unwrap_or(t).to_owned();
            if texts.iter().any(|t| SETS.contains(&key(t).as_str()))
                || matches!(sub(args), Some("mig" | "drain" | "clocks" | "conf-compute"))
            {
                v(Privileged, "changes GPU settings")
            } else if texts
                .iter()
                .any(|t| key(t) == "-f" || key(t) == "--filename")
            {
                v(Write, "nvidia-smi -f writes its output to a file")
            } else {
                None
            }
        }
        _ => None,
    }
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

/// First literal operand (a subcommand, usually).
fn sub(args: &[Arg]) -> Option<&str> {
    operands(args).first().and_then(|a| a.lit())
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

fn shell(ctx: &mut Ctx<'_>, name: &str, args: &[Arg]) -> Verdict {
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

fn interpreter(ctx: &mut Ctx<'_>, name: &str, args: &[Arg]) -> Verdict {
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
fn own_options<'a>(args: &'a [Arg], payload: &[Arg]) -> &'a [Arg] {
    &args[..args.len() - payload.len()]
}

/// Skips a wrapper's own options (those in `with_value` take the next word) and returns the payload.
fn after_options<'a>(args: &'a [Arg], with_value: &[&str]) -> &'a [Arg] {
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

fn privilege_wrapper(ctx: &mut Ctx<'_>, name: &str, args: &[Arg]) -> Verdict {
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

fn env(ctx: &mut Ctx<'_>, args: &[Arg]) -> Verdict {
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

fn wrapper(ctx: &mut Ctx<'_>, name: &str, args: &[Arg]) -> Verdict {
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

fn xargs(ctx: &mut Ctx<'_>, args: &[Arg]) -> Verdict {
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

fn find(ctx: &mut Ctx<'_>, args: &[Arg]) -> Verdict {
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

fn watch(ctx: &mut Ctx<'_>, args: &[Arg]) -> Verdict {
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

fn remove(name: &str, args: &[Arg]) -> Verdict {
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

fn change_mode(name: &str, args: &[Arg]) -> Verdict {
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

fn dd(args: &[Arg]) -> Verdict {
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

fn sed(args: &[Arg]) -> Verdict {
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

fn sed_runs_commands(script: &str) -> bool {
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

fn sed_writes(script: &str) -> bool {
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

fn awk(args: &[Arg]) -> Verdict {
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

fn git(args: &[Arg]) -> Verdict {
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

fn tar(args: &[Arg]) -> Verdict {
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

fn curl(args: &[Arg]) -> Verdict {
    if has(
        args,
        "oOK",
        &[
            "output",
            "remote-name",
            "remote-name-all",
            "config",
            "output-dir",
            "dump-header",
            "cookie-jar",
            "trace",
            "trace-ascii",
            "libcurl",
            "etag-save",
            "hsts",
            "alt-svc",
            "stderr",
        ],
    ) {
        return v(Network, "downloads into files");
    }
    v(Network, "makes HTTP requests")
}

fn wget(args: &[Arg]) -> Verdict {
    if has(args, "", &["execute", "use-askpass"]) || args.iter().any(|a| a.text() == "-e") {
        return v(
            Blocked,
            "wget option that runs commands or reads unchecked settings",
        );
    }
    v(Network, "downloads from the network")
}

fn systemctl(name: &str, args: &[Arg]) -> Verdict {
    let sub_cmd = if name == "service" {
        operands(args)
            .get(1)
            .and_then(|a| a.lit())
            .or(if has(args, "", &["status-all"]) {
                Some("status")
            } else {
                None
            })
    } else {
        sub(args)
    };
    match sub_cmd {
        None
        | Some(
            "status" | "list-units" | "list-unit-files" | "list-timers" | "list-sockets"
            | "list-dependencies" | "is-active" | "is-enabled" | "is-failed" | "show" | "cat"
            | "get-default" | "list-jobs",
        ) => v(ReadOnly, "reads service state"),
        Some(
            "poweroff" | "reboot" | "halt" | "kexec" | "rescue" | "emergency" | "suspend"
            | "hibernate",
        ) => v(Destructive, "stops or restarts the machine"),
        Some("stop" | "kill" | "mask" | "disable" | "isolate") => {
            v(Destructive, "stops or disables services")
        }
        Some(_) => v(Privileged, "changes services"),
    }
}

fn ip(args: &[Arg]) -> Verdict {
    let words: Vec<&str> = args
        .iter()
        .map(Arg::text)
        .filter(|t| !t.starts_with('-'))
        .collect();
    if words.windows(2).any(|w| w == ["netns", "exec"]) || words.contains(&"exec") {
        return v(Blocked, "`ip netns exec` runs arbitrary commands");
    }
    match words.get(1).copied() {
        None | Some("show" | "list" | "ls" | "get" | "lst") => {
            v(ReadOnly, "shows network configuration")
        }
        Some(_) if words.len() == 1 => v(ReadOnly, "shows network configuration"),
        Some(_) => v(Privileged, "changes network configuration"),
    }
}

fn firewall(args: &[Arg]) -> Verdict {
    if has(
        args,
        "LS",
        &[
            "list",
            "list-rules",
            "list-all",
            "state",
            "get-active-zones",
        ],
    ) || sub(args).is_some_and(|s| matches!(s, "status" | "list" | "show"))
    {
        return v(ReadOnly, "lists firewall rules");
    }
    if has(args, "FXZ", &["flush", "delete-chain", "zero"])
        || sub(args).is_some_and(|s| matches!(s, "flush" | "reset" | "disable"))
    {
        return v(Destructive, "flushes or disables firewall rules");
    }
    v(Privileged, "changes firewall rules")
}

fn packages(name: &str, args: &[Arg]) -> Verdict {
    match sub(args) {
        None
        | Some(
            "list" | "show" | "search" | "policy" | "depends" | "rdepends" | "info" | "showpkg"
            | "madison" | "stats" | "query" | "-Q" | "check-update" | "help",
        ) => v(ReadOnly, "queries packages"),
        Some("remove" | "purge" | "autoremove" | "erase" | "del" | "clean" | "autoclean") => {
            v(Destructive, "removes packages")
        }
        Some(_) => {
            if name == "apt-cache" {
                v(ReadOnly, "queries packages")
            } else {
                v(
                    Privileged,
                    "installs or upgrades packages (runs package scripts as root)",
                )
            }
        }
    }
}

fn docker(args: &[Arg]) -> Verdict {
    let s = sub(args);
    match s {
        None
        | Some(
            "ps" | "images" | "inspect" | "logs" | "version" | "info" | "stats" | "top" | "history"
            | "port" | "diff" | "events" | "search",
        ) => v(ReadOnly, "reads container state"),
        Some("rm" | "rmi" | "kill" | "prune" | "system" | "volume" | "network") => {
            if s == Some("volume") || s == Some("network") || s == Some("system") {
                let second = operands(args).get(1).and_then(|a| a.lit());
                if matches!(second, Some("ls" | "inspect" | "df" | "info")) {
                    return v(ReadOnly, "reads container state");
                }
            }
            v(Destructive, "removes containers, images or data")
        }
        Some(_) => v(Privileged, "runs or changes containers (root-equivalent)"),
    }
}

fn kubectl(args: &[Arg]) -> Verdict {
    match sub(args) {
        None
        | Some(
            "get" | "describe" | "logs" | "top" | "version" | "explain" | "api-resources"
            | "api-versions" | "cluster-info" | "events" | "auth" | "diff",
        ) => v(Network, "reads cluster state"),
        Some("config") => v(Privileged, "kubectl config can print or change credentials"),
        Some("delete" | "drain" | "cordon" | "taint" | "replace") => {
            v(Destructive, "deletes or evicts cluster resources")
        }
        Some(_) => v(
            Privileged,
            "changes cluster resources or runs commands in pods",
        ),
    }
}
