"""sod2 against ONNX Runtime, side by side in one run, on every zoo model x sweep shape.

For each case: sod2's latency (median and p90 of N runs after a warm-up), the first run at the
shape, and peak intermediate memory (planned arena + run-time allocations); ONNX Runtime's
latency with all graph optimisations and its arena on, one intra-op thread, its first run at the
shape, and its process peak-RSS growth over the run (measured in a fresh process per case).
Ratios sod2 / ONNX Runtime, geo-means at the bottom. Markdown to stdout, JSON to --json.

Not yet in this script (issue 6): tract, two-thread runs, the GEMM GFLOP/s table.

usage: python vs_ort.py --sod2 BIN --zoo ZOO --oracle ORACLE [--runs N] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "zoo"))
from models import SPECS  # noqa: E402

ORT_CASE = r"""
import json, sys, time, statistics
import numpy as np, onnxruntime as ort
model, inputs, runs = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
o = ort.SessionOptions()
o.intra_op_num_threads = 1
o.inter_op_num_threads = 1
o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
o.enable_cpu_mem_arena = True
s = ort.InferenceSession(model, o, providers=['CPUExecutionProvider'])
feeds = {k: np.load(v) for k, v in inputs.items()}
base = hwm()
t = time.perf_counter(); s.run(None, feeds); first = (time.perf_counter() - t) * 1e3
ts = []
for _ in range(runs):
    t = time.perf_counter(); s.run(None, feeds); ts.append((time.perf_counter() - t) * 1e3)
ts.sort()
print(json.dumps({"median_ms": statistics.median(ts), "p90_ms": ts[int(0.9 * (len(ts) - 1))], "first_run_ms": first, "rss_growth_bytes": hwm() - base}))
"""


def geo(xs):
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--zoo", type=pathlib.Path, required=True)
    ap.add_argument("--oracle", type=pathlib.Path, required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", type=pathlib.Path, default=None)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in SPECS:
            if args.only and spec.name not in args.only:
                continue
            plan = pathlib.Path(tmp) / f"{spec.name}.sod2"
            dims = [f"--dim={k}={lo}..{hi}" for k, (lo, hi) in spec.ranges.items()]
            subprocess.run([args.sod2, "compile", str(args.zoo / f"{spec.name}.onnx"), "-o", str(plan), *dims], check=True, capture_output=True)
            for case in spec.sweep:
                d = args.oracle / spec.name / case.name
                ins = {p.stem: str(p) for p in sorted((d / "inputs").glob("*.npy"))}
                out = subprocess.run([args.sod2, "bench", str(plan), *[f"--input={k}={v}" for k, v in ins.items()], "--runs", str(args.runs)], check=True, capture_output=True, text=True).stdout
                s = json.loads(out.strip().splitlines()[-1])
                out = subprocess.run([sys.executable, "-c", ORT_CASE, str(args.zoo / f"{spec.name}.onnx"), json.dumps(ins), str(args.runs)], check=True, capture_output=True, text=True).stdout
                o = json.loads(out.strip().splitlines()[-1])
                r = {
                    "model": spec.name, "case": case.name, "sod2": s, "ort": o,
                    "time_ratio": s["median_ms"] / o["median_ms"],
                    "mem_ratio": s["peak_intermediate_bytes"] / max(o["rss_growth_bytes"], 1),
                    "sod2_first_over_steady": s["first_run_ms"] / s["median_ms"],
                    "ort_first_over_steady": o["first_run_ms"] / o["median_ms"],
                }
                results.append(r)
                rows.append((spec.name, case.name, s["median_ms"], o["median_ms"], r["time_ratio"], s["peak_intermediate_bytes"] / 1e6, o["rss_growth_bytes"] / 1e6, r["mem_ratio"], r["sod2_first_over_steady"], r["ort_first_over_steady"]))
    print("| model | case | sod2 ms | ORT ms | sod2/ORT time | sod2 peak MB | ORT RSS growth MB | sod2/ORT mem | sod2 first/steady | ORT first/steady |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f} | {r[6]:.2f} | {r[7]:.2f} | {r[8]:.2f} | {r[9]:.2f} |")
    print(f"| **geo-mean** | {len(rows)} cases | | | {geo([r[4] for r in rows]):.2f} | | | {geo([r[7] for r in rows]):.2f} | {geo([r[8] for r in rows]):.2f} | {geo([r[9] for r in rows]):.2f} |")
    worst = max(rows, key=lambda r: r[4]) if rows else None
    if worst:
        print(f"\nslowest relative to ONNX Runtime: {worst[0]} {worst[1]} at {worst[4]:.2f}x")
    print("\nnot yet measured here: tract, two threads, GEMM GFLOP/s against the FMA peak (issue 6).")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
