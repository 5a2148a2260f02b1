#!/usr/bin/env bash
# Regenerates the uniffi Swift bindings checked into ios/ (Swift source, FFI header, modulemap)
# from the built library, and the Python bindings into target/uniffi-python (not checked in;
# used by the end-to-end test). `--check` fails if the checked-in Swift bindings are stale.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p sod2-uniffi --features cli
lib="$root/target/release/libsod2_uniffi.so"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$root/target/release/uniffi-bindgen" generate --library "$lib" --language swift --out-dir "$tmp/swift" --no-format >/dev/null
rm -rf "$root/target/uniffi-python"
"$root/target/release/uniffi-bindgen" generate --library "$lib" --language python --out-dir "$root/target/uniffi-python" --no-format >/dev/null
cp "$lib" "$root/target/uniffi-python/"
pairs=("$tmp/swift/sod2_uniffi.swift:$root/ios/Sources/Sod2UniFFI/sod2_uniffi.swift"
       "$tmp/swift/sod2_uniffiFFI.h:$root/ios/Generated/sod2_uniffiFFI.h"
       "$tmp/swift/sod2_uniffiFFI.modulemap:$root/ios/Generated/sod2_uniffiFFI.modulemap")
stale=0
for p in "${pairs[@]}"; do
  src=${p%%:*}
  dst=${p#*:}
  if [ "${1:-}" = "--check" ]; then
    cmp -s "$src" "$dst" || { echo "stale: ${dst#"$root"/}"; stale=1; }
  else
    cp "$src" "$dst"
  fi
done
if [ "${1:-}" = "--check" ]; then
  [ $stale -eq 0 ] || { echo "run scripts/regen-uniffi.sh"; exit 1; }
  echo "uniffi Swift bindings are current"
fi
