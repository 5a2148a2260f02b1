"""Writes every zoo model to OUT_DIR (deterministic: fixed seeds, no timestamps).

usage: python gen.py OUT_DIR [--only NAME ...]
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import onnx

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from models import SPECS  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--bundled", action="store_true", help="write only the small sample model bundled in samples/models")
    args = ap.parse_args()
    if args.bundled:
        from models import codebert
        args.out.mkdir(parents=True, exist_ok=True)
        onnx.save(codebert(layers=1, D=32, V=100, P=130, name="codebert_tiny"), args.out / "codebert_tiny.onnx")
        print(f"codebert_tiny -> {args.out / 'codebert_tiny.onnx'}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in SPECS:
        if args.only and spec.name not in args.only:
            continue
        model = spec.build()
        onnx.save(model, args.out / f"{spec.name}.onnx")
        print(f"{spec.name:16} {len(model.graph.node):4} nodes -> {args.out / (spec.name + '.onnx')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
