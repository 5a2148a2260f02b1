#!/usr/bin/env bash
# The runtime's and kernels' Rust tests under valgrind memcheck (x86-64): every read of
# uninitialised memory that decides a branch or reaches a syscall, every invalid read or write,
# every invalid free is an error, and any error fails this script (exit 1), as does a failing
# test.
#
#   scripts/memcheck.sh              sod2-runtime (unit + every integration test) and sod2-kernels
#                                    (unit tests + tests/), release build with debug info
#   PROPTEST_CASES=N scripts/memcheck.sh   property tests' cases (default here 8: valgrind runs
#                                    code 20-50x slower; 256, proptest's default, takes hours)
#   MEMCHECK_FILTER=substr scripts/memcheck.sh   only tests whose name contains substr
#   MEMCHECK_SKIP="a b" scripts/memcheck.sh      test executables left out (default: rnn, whose
#                                    one test took 555 s under valgrind here, more than all the
#                                    others together; MEMCHECK_SKIP= runs it too)
#
# ISA: valgrind 3.19 does not model AVX-512, and its CPUID hides it (and AVX-VNNI): under
# valgrind `is_x86_feature_detected!` reports avx2 + fma + f16c and no avx512*/avxvnni, so the
# kernels' dispatch (Isa::detect, Q8Isa::detect, gemm's own) picks AVX2/FMA paths; the AVX-512
# and VNNI kernels are not covered here (the kernels' proptests run them natively in
# scripts/test). Suppressions (none needed so far) go in scripts/memcheck.supp, one commented
# entry per false positive.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed (apt-get install valgrind)"; exit 1; }
export PROPTEST_CASES="${PROPTEST_CASES:-8}"
supp=(--suppressions=scripts/memcheck.supp)

# The test executables, from cargo's own list (no guessing of hashed file names).
mapfile -t bins < <(cargo test --release -p sod2-runtime -p sod2-kernels --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
[ "${#bins[@]}" -gt 0 ] || { echo "memcheck: no test executables were built"; exit 1; }

skip=" ${MEMCHECK_SKIP-rnn} "
failed=()
t_all=$SECONDS
for b in "${bins[@]}"; do
  name=$(basename "$b" | sed 's/-[0-9a-f]*$//')
  if [[ "$skip" == *" $name "* ]]; then
    echo "memcheck $name: skipped (MEMCHECK_SKIP)"
    continue
  fi
  t0=$SECONDS
  log=$(mktemp)
  # Exit 99: valgrind found errors; 101: a test failed; anything else: the run itself broke.
  # Tests run one at a time: valgrind serialises threads anyway, and output stays readable.
  set +e
  valgrind --error-exitcode=99 --leak-check=no --track-origins=yes -q "${supp[@]}" \
    "$b" --test-threads=1 ${MEMCHECK_FILTER:+"$MEMCHECK_FILTER"} >"$log" 2>&1
  rc=$?
  set -e
  summary=$(grep -E '^test result:' "$log" | tail -n 1 || true)
  printf 'memcheck %-18s %4ss  rc %-3s %s\n' "$name" $((SECONDS - t0)) "$rc" "$summary"
  if [ "$rc" -ne 0 ]; then
    failed+=("$name")
    grep -E '^==[0-9]+==' "$log" | head -n 60 || true
    grep -E '^(test .* FAILED|---- )' "$log" | head -n 20 || true
  fi
  rm -f "$log"
done
echo "memcheck: ${#bins[@]} test executables in $((SECONDS - t_all)) s (PROPTEST_CASES=$PROPTEST_CASES); ${#failed[@]} failed${failed:+: ${failed[*]}}"
[ "${#failed[@]}" -eq 0 ]
