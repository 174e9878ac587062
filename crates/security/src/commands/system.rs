//! System managers: `systemctl`, package managers, `docker`, `kubectl`.

use super::*;

pub(super) fn systemctl(name: &str, args: &[Arg]) -> Verdict {
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

pub(super) fn packages(name: &str, args: &[Arg]) -> Verdict {
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

pub(super) fn docker(args: &[Arg]) -> Verdict {
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

pub(super) fn kubectl(args: &[Arg]) -> Verdict {
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
