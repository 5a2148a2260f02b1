#!/usr/bin/env bash
# Cross-builds the device-side crates (kernels, plan format, runtime) and their tests for
# aarch64-unknown-linux-gnu with Debian's rustc-web and runs them under qemu-aarch64 (runner in
# .cargo/config.toml). Emulated: a correctness check of the arm64 build, not a speed measurement.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if ! rustup toolchain list | grep -q '^debian-web'; then
  rustup toolchain link debian-web /usr
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! cargo +debian-web test --quiet --release --manifest-path "$root/Cargo.toml" --target aarch64-unknown-linux-gnu \
  -p sod2-kernels -p sod2-format -p sod2-runtime > "$log" 2>&1; then
  cat "$log"
  exit 1
fi
grep -E '^test result: ok\. [1-9]' "$log"
echo "arm64 (qemu-aarch64): sod2-kernels, sod2-format, sod2-runtime tests passed"
