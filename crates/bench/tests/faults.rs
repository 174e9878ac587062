//! The short form of `mcp-bench --faults-only` (issue 27): every downstream fault scenario —
//! killed, hung, slow, flapping, garbage — for seconds each against the debug binaries. The bench
//! exits 1 unless every scenario had no unexpected error (the healthy namespace never failed; the
//! failing one only while it was down), no call to the failing downstream outlasted its timeout,
//! and master's audit trail has one row per call. The long form's figures are in
//! docs/reliability.md.

use std::process::Command;

#[test]
fn every_fault_scenario_holds_in_its_short_form() {
    let bin = env!("CARGO_BIN_EXE_mcp-bench");
    let dir = std::path::Path::new(bin).parent().unwrap();
    for needed in ["mcp-master", "mcp-cmdb"] {
        assert!(
            dir.join(needed).exists(),
            "{needed} is missing next to mcp-bench: run `cargo build --workspace --bins` first, or `cargo test --workspace`"
        );
    }
    let out = Command::new(bin)
        .args([
            "--faults-only",
            "--fault-clients",
            "20",
            "--fault-phase-secs",
            "3",
            "--reliability-out",
            "-",
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for fault in ["killed", "hung", "slow", "flapping", "garbage"] {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {fault} |")))
            .unwrap_or_else(|| panic!("no {fault} row in {report}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[4], "0", "{fault}: unexpected errors: {row}");
        assert_ne!(
            cells[3], "0",
            "{fault}: the fault caused no error at all: {row}"
        );
    }
    assert!(report.contains("(one per call)"), "{report}");
}
