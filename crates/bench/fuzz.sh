#!/usr/bin/env bash
# Runs every cargo-fuzz target of the project for SECONDS each (default 60) and prints, per target,
# the executions, the corpus size and whether libFuzzer found a crash (its input is then kept in
# <crate>/fuzz/artifacts/<target>/; reproduce with `cargo fuzz run <target> <file>`).
#
# Targets: the command validator (crates/security/fuzz: validate) and master's workflow definition
# parser (services/master/fuzz: workflow_definition).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain RUSTC_BOOTSTRAP=1 lets it
# pass the sanitizer flags. The first build of each target takes minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-60}"
export RUSTC_BOOTSTRAP=1
status=0
for spec in crates/security/fuzz:validate services/master/fuzz:workflow_definition; do
  dir="${spec%%:*}"
  target="${spec##*:}"
  crate="$(dirname "$dir")"
  log="$(mktemp)"
  mkdir -p "$dir/corpus/$target"
  if (cd "$crate" && cargo fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=4096) >"$log" 2>&1; then
    verdict="no crash"
  else
    verdict="CRASH (see $log and $dir/artifacts/$target/)"
    status=1
  fi
  runs="$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | awk '{print $2}' || true)"
  corpus="$(find "$dir/corpus/$target" -type f | wc -l)"
  echo "| $target | ${secs} s | ${runs:-?} | $corpus | $verdict |"
  [ "$verdict" = "no crash" ] && rm -f "$log"
done
exit $status
