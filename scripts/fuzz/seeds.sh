#!/usr/bin/env bash
# Generates the fuzz seed corpora (fuzz/corpus/<target>/, never committed) with
# scripts/fuzz/seeds.py: plans compiled from the zoo, the real-model corpus and ONNX's node tests,
# small ONNX files, .npy files. Needs target/release/sod2 (built here if missing) and the Python
# venv (PY, default .venv/bin/python). Options are passed to seeds.py (--node-stride N, --out DIR).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
py="${PY:-$root/.venv/bin/python}"
[ -x "$py" ] || py=python3
if [ ! -x "$root/target/release/sod2" ]; then
  (cd "$root" && cargo build --release -p sod2)
fi
exec "$py" "$root/scripts/fuzz/seeds.py" --sod2 "$root/target/release/sod2" "$@"
