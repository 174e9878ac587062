//! Network programs: `curl`, `wget`, `ip`, firewalls.

use super::*;

pub(super) fn curl(args: &[Arg]) -> Verdict {
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

pub(super) fn wget(args: &[Arg]) -> Verdict {
    if has(args, "", &["execute", "use-askpass"]) || args.iter().any(|a| a.text() == "-e") {
        return v(
            Blocked,
            "wget option that runs commands or reads unchecked settings",
        );
    }
    v(Network, "downloads from the network")
}

pub(super) fn ip(args: &[Arg]) -> Verdict {
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

pub(super) fn firewall(args: &[Arg]) -> Verdict {
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
