"""The ablation benchmark (method notes, section 4): for every zoo model and its shape sweep,
latency (median of N runs, one thread) and peak intermediate memory (arena + run-time
allocations, weights excluded) for each optimisation level, normalised to `none`, with
geo-means. Also the arena of the memory plan against the peak of live bytes of the chosen
order (from `sod2 compile`), and `prepare()` time.

Levels (cumulative, in the method's order): none, +fusion, +sep (execution order), +dmp (memory
plan), +mvc (multi-version kernels, tuned with `sod2 tune`; this is `all`).

usage: python ablation.py --sod2 BIN --zoo ZOO --oracle ORACLE [--runs N] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "zoo"))
from models import SPECS  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from stats import geo  # noqa: E402

LEVELS = ["none", "fusion", "sep", "dmp", "mvc"]




def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--zoo", type=pathlib.Path, required=True)
    ap.add_argument("--oracle", type=pathlib.Path, required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    rows, ratios = [], {lvl: {"t": [], "m": []} for lvl in LEVELS[1:]}
    arena_vs_peak = []
    prepare_us = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in SPECS:
            if args.only and spec.name not in args.only:
                continue
            plans = {}
            for lvl in LEVELS:
                plan = pathlib.Path(tmp) / f"{spec.name}.{lvl}.sod2"
                dims = [f"--dim={k}={lo}..{hi}" for k, (lo, hi) in spec.ranges.items()]
                out = subprocess.run([args.sod2, "compile", str(args.zoo / f"{spec.name}.onnx"), "-o", str(plan), f"--opt={lvl}", *dims], capture_output=True, text=True, check=True).stdout
                if lvl == "mvc":
                    # The dispatch tables as `sod2 tune` measures them on this machine.
                    subprocess.run([args.sod2, "tune", str(plan), "--runs", "5"], capture_output=True, text=True, check=True)
                plans[lvl] = plan
                if lvl == "dmp":
                    m = re.search(r"arena at representative: (\d+) bytes; peak live bytes of the chosen order (\d+)", out)
                    if m:
                        arena_vs_peak.append((spec.name, int(m.group(1)), int(m.group(2))))
            for case in spec.sweep:
                d = args.oracle / spec.name / case.name
                inputs = [f"--input={p.stem}={p}" for p in sorted((d / "inputs").glob("*.npy"))]
                res = {}
                for lvl in LEVELS:
                    out = subprocess.run([args.sod2, "bench", str(plans[lvl]), *inputs, "--runs", str(args.runs)], capture_output=True, text=True, check=True).stdout
                    res[lvl] = json.loads(out.strip().splitlines()[-1])
                base = res["none"]
                row = [spec.name, case.name, f"{base['median_ms']:.2f}", f"{base['peak_intermediate_bytes'] / 1e6:.2f}"]
                for lvl in LEVELS[1:]:
                    t = res[lvl]["median_ms"] / base["median_ms"]
                    mem = res[lvl]["peak_intermediate_bytes"] / max(base["peak_intermediate_bytes"], 1)
                    ratios[lvl]["t"].append(t)
                    ratios[lvl]["m"].append(mem)
                    row += [f"{t:.2f}", f"{mem:.2f}"]
                prepare_us.append(res["mvc"]["prepare_warm_us"])
                row.append(f"{res['mvc']['prepare_us']:.1f} / {res['mvc']['prepare_warm_us']:.1f}")
                rows.append(row)
    print("| model | case | none ms | none peak MB | +fusion time | +fusion mem | +sep time | +sep mem | +dmp time | +dmp mem | +mvc time | +mvc mem | prepare us, first / shape change (all) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    geos = " | ".join(f"{geo(ratios[lvl]['t']):.2f} | {geo(ratios[lvl]['m']):.2f}" for lvl in LEVELS[1:])
    print(f"| **geo-mean** | {len(rows)} cases | | | {geos} | shape change max {max(prepare_us):.1f} |")
    print("\nLevels are cumulative (+sep includes fusion, ...; +mvc is `all`, its dispatch tables tuned by `sod2 tune` on this machine).")
    t_all, m_all = geo(ratios["mvc"]["t"]), geo(ratios["mvc"]["m"])
    print(f"\n`all` over `none`, geo-mean of {len(rows)} cases: {1 / t_all:.3f}x faster (time ratio {t_all:.4f}), peak intermediate memory {m_all:.4f}x")
    per_model = {}
    for r, t in zip(rows, ratios["mvc"]["t"]):
        per_model.setdefault(r[0], []).append(t)
    print("per model, `all` speed-up over `none`: " + ", ".join(f"{k} {1 / geo(v):.2f}x" for k, v in per_model.items()))
    print("\n| model | arena at the representative binding | peak live bytes of the order | arena / peak |")
    print("|---|---|---|---|")
    for name, a, p in arena_vs_peak:
        print(f"| {name} | {a} | {p} | {a / max(p, 1):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
