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
    args = ap.parse_args()
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
