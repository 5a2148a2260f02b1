#!/usr/bin/env bash
# Builds the Swift package in ios/ and runs its tests (Tests/Sod2Tests) on Linux against the host
# build of the uniffi library (Package.swift links it through a system library target there; no
# Apple frameworks are involved). Where no `swift` is on the PATH (Debian 12 has no Swift
# toolchain), it uses Debian trixie's `swiftlang` in a chroot (scripts/swift-chroot.sh, made
# once, as root). On macOS, build the XCFramework first (ios/build-xcframework.sh).
# Set SWIFT to use another swift driver.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
swift=${SWIFT:-swift}
if [ -z "${SWIFT:-}" ] && ! command -v swift >/dev/null; then
  t0=$SECONDS
  "$root/scripts/swift-chroot.sh" setup
  echo "Swift: Debian trixie's swiftlang in a chroot (scripts/swift-chroot.sh; ready in $((SECONDS - t0)) s)"
  swift_cmd=("$root/scripts/swift-chroot.sh" swift)
else
  swift_cmd=("$swift")
fi
"${swift_cmd[@]}" --version 2>&1 | head -n 1
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p sod2 -p sod2-uniffi
"$root/target/release/sod2" compile "$root/samples/models/codebert_tiny.onnx" \
  -o "$root/ios/Tests/Sod2Tests/Resources/codebert_tiny.sod2" --dim batch=1..8 --dim seq=1..128 >/dev/null
lib="$root/target/release"
link=(-Xlinker -L"$lib" -Xlinker -rpath -Xlinker "$lib")
cd "$root/ios"
"${swift_cmd[@]}" build "${link[@]}"
"${swift_cmd[@]}" test "${link[@]}"
echo "Swift package built and its tests passed against $lib/libsod2_uniffi.so"
