#!/usr/bin/env bash
# Cross-builds the C ABI for aarch64-unknown-linux-gnu with Debian's rustc-web (which ships an
# arm64 standard library), links the C sample with the aarch64 cross gcc and runs it under
# qemu-aarch64. Needs the packages that scripts/test installs (see docs in the toolchain runbook):
# rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user.
# usage: scripts/cross-arm64.sh PLAN OUT_TXT
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
plan=$1
out=$2
if ! rustup toolchain list | grep -q '^debian-web'; then
  rustup toolchain link debian-web /usr
fi
cargo +debian-web build --quiet --release --manifest-path "$root/Cargo.toml" --target aarch64-unknown-linux-gnu -p sod2-ffi
lib="$root/target/aarch64-unknown-linux-gnu/release/libsod2.a"
bin="$root/target/samples/c_sample_arm64"
aarch64-linux-gnu-gcc -Wall -Werror -O2 -static -I "$root/ffi/include" "$root/samples/c/main.c" "$lib" -lpthread -ldl -lm -o "$bin"
file "$bin" | sed 's/,.*//'
qemu-aarch64 "$bin" "$plan" > "$out"
cat "$out"
