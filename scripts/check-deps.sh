#!/usr/bin/env bash
# The runtime must not depend on the compiler: no ONNX, protobuf, IR, analysis or planner crate
# in `cargo tree -p sod2-runtime -e normal`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tree=$(cargo tree --manifest-path "$root/Cargo.toml" -p sod2-runtime -e normal --prefix none)
echo "$tree" | sort -u
bad=$(echo "$tree" | grep -E '^(prost|protobuf|sod2-onnx|sod2-ir|sod2-analysis|sod2-planner|sod2-expr|onnx)[ -]' || true)
if [ -n "$bad" ]; then
  echo "sod2-runtime depends on compiler-side crates:"
  echo "$bad"
  exit 1
fi
echo "ok: sod2-runtime has no ONNX, protobuf, IR, analysis or planner code in its tree"
