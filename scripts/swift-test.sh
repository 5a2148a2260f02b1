#!/usr/bin/env bash
# Builds the Swift package in ios/ and runs its tests (Tests/Sod2Tests) on Linux against the host
# build of the uniffi library (Package.swift links it through a system library target there; no
# Apple frameworks are involved). Where no `swift` is on the PATH it says so and exits 0: the
# uniffi layer the Swift code calls is still exercised through uniffi's Python bindings by
# scripts/samples.sh. On macOS, build the XCFramework first (ios/build-xcframework.sh).
# Set SWIFT to use another swift driver (e.g. a wrapper around a chroot).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
swift=${SWIFT:-swift}
if ! command -v "$swift" >/dev/null; then
  echo "Swift tests SKIPPED: no Swift toolchain is installed ('$swift' is not on the PATH)"
  exit 0
fi
"$swift" --version 2>&1 | head -n 1
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p sod2 -p sod2-uniffi
"$root/target/release/sod2" compile "$root/samples/models/codebert_tiny.onnx" \
  -o "$root/ios/Tests/Sod2Tests/Resources/codebert_tiny.sod2" --dim batch=1..8 --dim seq=1..128 >/dev/null
lib="$root/target/release"
link=(-Xlinker -L"$lib" -Xlinker -rpath -Xlinker "$lib")
cd "$root/ios"
"$swift" build "${link[@]}"
"$swift" test "${link[@]}"
echo "Swift package built and its tests passed against $lib/libsod2_uniffi.so"
