"""Benchmark: RDP analysis time on large graphs (the goal: a 2,000-node graph under 100 ms).

Builds synthetic deep models from the zoo's layer library (a 26-layer RoBERTa encoder and a
gated CNN with hundreds of If nodes), plus the zoo models themselves, runs
`sod2 analyze --json` on each RUNS times and prints the analysis time the tool measures
(import excluded) and the whole-process wall time, as a table.

usage: python analysis_speed.py --sod2 BIN [--runs N]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import onnx

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "zoo"))
from models import SPECS, codebert, skipnet  # noqa: E402


def count_nodes(g) -> int:
    n = 0
    for node in g.node:
        n += 1
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                n += count_nodes(a.g)
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="sod2-bench-"))
    models = {
        "roberta_26_layers": codebert(layers=26, D=64, V=100, P=600, name="roberta_26_layers"),
        "roberta_48_layers": codebert(layers=48, D=32, V=100, P=600, name="roberta_48_layers"),
        "gated_cnn_300_ifs": skipnet(blocks=300, name="gated_cnn_300_ifs"),
    }
    for spec in SPECS:
        models[spec.name] = spec.build()
    print("| model | nodes | analysis median ms | analysis max ms | process wall median ms | node visits |")
    print("|---|---|---|---|---|---|")
    worst_2000 = 0.0
    for name, m in models.items():
        path = tmp / f"{name}.onnx"
        onnx.save(m, path)
        inner, wall, visits = [], [], 0
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = subprocess.run([args.sod2, "analyze", "--json", str(path)], check=True, capture_output=True, text=True)
            wall.append((time.perf_counter() - t0) * 1e3)
            s = json.loads(out.stdout)["summary"]
            inner.append(s["micros"] / 1e3)
            visits = s["iterations"]
        n = count_nodes(m.graph)
        if n >= 2000:
            worst_2000 = max(worst_2000, max(inner))
        print(f"| {name} | {n} | {statistics.median(inner):.2f} | {max(inner):.2f} | {statistics.median(wall):.1f} | {visits} |")
    print(f"\nslowest analysis of a graph with >= 2000 nodes: {worst_2000:.2f} ms (goal: < 100 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
