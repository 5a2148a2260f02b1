#!/usr/bin/env bash
# Regenerates core/onnx/src/proto/onnx.rs (checked in) from core/onnx/proto/onnx.proto.
# Needs protoc (Debian: protobuf-compiler). `--check` fails if the checked-in file is stale.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
check=${1:-}
cargo run --quiet --release --manifest-path "$root/scripts/regen-proto/Cargo.toml" -- "$root"
if [ "$check" = "--check" ]; then
  git -C "$root" diff --exit-code -- core/onnx/src/proto/ || { echo "onnx.rs is stale: run scripts/regen-proto.sh"; exit 1; }
fi
