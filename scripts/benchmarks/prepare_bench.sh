#!/usr/bin/env bash
# Times `Session::prepare` at growing shapes (µs, µs per MB of arena) and at a seen shape, for
# three zoo models and the bundled sample model (core/runtime/examples/prepare_bench.rs).
#
# usage: scripts/benchmarks/prepare_bench.sh [SOD2_BIN]   (run from the repository root)
set -euo pipefail
sod2=${1:-target/release/sod2}
zoo=$(.venv/bin/python scripts/zoo/prepare.py)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo build -q --release -p sod2-runtime --example prepare_bench
bench=target/release/examples/prepare_bench
compile() { "$sod2" compile "$1" -o "$out/$2.sod2" >/dev/null; }
compile "$zoo/models/yolov6.onnx" yolov6
compile "$zoo/models/convnet_aig.onnx" convnet_aig
compile "$zoo/models/sam.onnx" sam
compile samples/models/codebert_tiny.onnx codebert_tiny
"$bench" "$out/yolov6.sod2" image=1x3x128x128 image=1x3x256x256 image=1x3x512x512 image=1x3x1024x1024
"$bench" "$out/convnet_aig.sod2" image=1x3x256x256 image=2x3x512x512 image=4x3x1024x1024 | tail -n +2
"$bench" "$out/sam.sod2" image=1x3x256x256,points=1x4x2,labels=1x4 image=1x3x512x512,points=1x4x2,labels=1x4 image=1x3x1024x1024,points=1x4x2,labels=1x4 | tail -n +2
"$bench" "$out/codebert_tiny.sod2" input_ids=1x128,attention_mask=1x128 input_ids=4x512,attention_mask=4x512 input_ids=16x2048,attention_mask=16x2048 | tail -n +2
