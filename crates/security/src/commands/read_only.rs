//! Read-only programs whose options write, run or change something (from their manuals).

use super::*;

/// Options of programs in [`READ_ONLY`] that write files, run programs, open connections or change
/// the system, from each program's manual (the audit of the read-only table). `None`: the
/// program only reads.
pub(super) fn read_only_exceptions(name: &str, args: &[Arg]) -> Verdict {
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
