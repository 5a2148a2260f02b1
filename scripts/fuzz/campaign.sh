#!/usr/bin/env bash
# scripts/fuzz/campaign.sh TARGET SECONDS [libFuzzer options...]: a long run of one target
# (FUZZ_SANITIZER=address for AddressSanitizer, on nightly). The log is kept in
# fuzz/logs/campaign-TARGET-<UTC time>.log; at the end prints the execs, execs/s and libFuzzer's
# coverage (cov: edges, ft: features). Exits non-zero on a crash, printing the reproducer path.
set -euo pipefail
source "$(dirname "$0")/common.sh"
t="${1:?usage: campaign.sh TARGET SECONDS}"
secs="${2:?usage: campaign.sh TARGET SECONDS}"
shift 2
[[ " ${targets[*]} " == *" $t "* ]] || { echo "unknown target $t (${targets[*]})" >&2; exit 2; }
build_targets "$t"
ensure_seeds
mkdir -p "$fuzz/logs"
log="$fuzz/logs/campaign-$t-$(date -u +%Y%m%dT%H%M%SZ)-$sanitizer.log"
rc=0
run_target "$t" "$secs" "$@" >"$log" 2>&1 || rc=$?
execs="$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | grep -o '[0-9]*$' || true)"
rate="$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | grep -o '[0-9]*$' || true)"
last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
echo "$t ($sanitizer, ${secs} s): execs ${execs:-?}, exec/s ${rate:-?}," \
  "$(echo "$last" | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' || echo 'no coverage line')"
echo "log: $log"
if [ "$rc" != 0 ]; then
  repro="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/Test unit written to //')"
  echo "$t: FAILED (exit $rc), reproducer: ${repro:-none written}"
  grep -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -5 | sed 's/^/  /'
  exit 1
fi
