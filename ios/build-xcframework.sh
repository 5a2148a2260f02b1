#!/usr/bin/env bash
# Builds build/sod2_uniffiFFI.xcframework for iOS devices and simulators (macOS with Xcode and
# the Rust iOS targets: rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios),
# then `swift test` can run the package's tests on macOS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
for t in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin; do
  cargo build --release --manifest-path "$root/Cargo.toml" -p sod2-uniffi --target "$t"
done
mkdir -p "$here/build/headers" "$here/build/sim"
cp "$here/Generated/sod2_uniffiFFI.h" "$here/build/headers/"
cp "$here/Generated/sod2_uniffiFFI.modulemap" "$here/build/headers/module.modulemap"
lipo -create "$root/target/aarch64-apple-ios-sim/release/libsod2_uniffi.a" "$root/target/x86_64-apple-ios/release/libsod2_uniffi.a" \
  -output "$here/build/sim/libsod2_uniffi.a"
rm -rf "$here/build/sod2_uniffiFFI.xcframework"
xcodebuild -create-xcframework \
  -library "$root/target/aarch64-apple-ios/release/libsod2_uniffi.a" -headers "$here/build/headers" \
  -library "$here/build/sim/libsod2_uniffi.a" -headers "$here/build/headers" \
  -library "$root/target/aarch64-apple-darwin/release/libsod2_uniffi.a" -headers "$here/build/headers" \
  -output "$here/build/sod2_uniffiFFI.xcframework"
"$root/target/release/sod2" compile "$root/samples/models/codebert_tiny.onnx" -o "$here/Tests/Sod2Tests/Resources/codebert_tiny.sod2" --dim batch=1..8 --dim seq=1..128 2>/dev/null \
  || echo "build the sod2 CLI (cargo build --release -p sod2) to refresh the test plan"
echo "built $here/build/sod2_uniffiFFI.xcframework"
