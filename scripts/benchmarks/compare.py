"""sod2 against ONNX Runtime and tract, side by side in one run, on every zoo model x sweep shape,
at one and two threads; then GEMM GFLOP/s against the measured FMA peak.

For each case and thread count: sod2's latency (median and p90 of N runs after a warm-up), the
time to the first result after a shape change, two ways (the previous sweep case, cyclically, is
the other shape): *switch*, back to a shape the session ran before, after the other shape ran
twice (every runtime; sod2's figure includes `prepare`), and *new shape*, a shape the session has
never run, right after the other shape (sod2: `prepare` + first run; ONNX Runtime: a fresh session
that ran the other shape first), each over the steady-state median; and peak intermediate memory
(planned arena + run-time allocations);
ONNX Runtime's latency with all graph optimisations and its arena on, `intra_op_num_threads` set
to the thread count, its first run at the shape and its process peak-RSS growth (in a fresh
process per case); tract's latency (one thread; tract-onnx from crates.io, built by
`scripts/bench`) where it loads and runs the model, its first run, and whether it kept the dims
symbolic or needed them pinned. Ratios sod2 / ORT and sod2 / tract, geo-means at the bottom.
Markdown to stdout, JSON to --json.

Timing runs in --rounds rounds (3 by default) over the whole sweep, each round alternating the
runtimes case by case (sod2, ONNX Runtime, ...), a fresh process per runtime and case; each
runtime keeps its round with the lowest median. A case's rounds are a whole sweep apart, so a
slow spell of a shared machine lasting seconds or minutes hits one round, not the ratio.

With --baseline BIN, another sod2 build (e.g. the last commit's) compiles, tunes and runs every
case too, in the same rounds (sod2, baseline, ONNX Runtime, case by case): the tables gain
sod2/baseline, and a summary gives both builds' geo-means over ONNX Runtime. This is how a
change is checked for speed: side by side, in one run, on the same machine.

usage: python compare.py --sod2 BIN --zoo ZOO --oracle ORACLE [--tract BIN] [--gemm BIN]
                         [--baseline BIN] [--runs N] [--rounds R] [--threads 1 2]
                         [--only NAME ...] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "zoo"))
from models import SPECS  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from stats import geo  # noqa: E402

ORT_CASE = r"""
import json, sys, time, statistics
import numpy as np, onnxruntime as ort
model, inputs, runs, threads, prior = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
o = ort.SessionOptions()
o.intra_op_num_threads = threads
o.inter_op_num_threads = 1
o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
o.enable_cpu_mem_arena = True
s = ort.InferenceSession(model, o, providers=['CPUExecutionProvider'])
feeds = {k: np.load(v) for k, v in inputs.items()}
base = hwm()
s.run(None, feeds)  # cold
ts = []
for _ in range(runs):
    t = time.perf_counter(); s.run(None, feeds); ts.append((time.perf_counter() - t) * 1e3)
growth = hwm() - base  # the memory this shape needed (before any other shape ran)
if prior:
    pf = {k: np.load(v) for k, v in prior.items()}
    s.run(None, pf); s.run(None, pf)
t = time.perf_counter(); s.run(None, feeds); first = (time.perf_counter() - t) * 1e3
first_new = None
if prior:
    # A shape this session has never run, right after the prior shape: a fresh session.
    s2 = ort.InferenceSession(model, o, providers=['CPUExecutionProvider'])
    s2.run(None, pf); s2.run(None, pf)
    t = time.perf_counter(); s2.run(None, feeds); first_new = (time.perf_counter() - t) * 1e3
ts.sort()
print(json.dumps({"median_ms": statistics.median(ts), "p90_ms": ts[int(0.9 * (len(ts) - 1))], "first_run_ms": first, "first_new_ms": first_new, "rss_growth_bytes": growth}))
"""




def fmt(x, d=2):
    return "—" if x is None else f"{x:.{d}f}"


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON line in {text!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--zoo", type=pathlib.Path, required=True)
    ap.add_argument("--oracle", type=pathlib.Path, required=True)
    ap.add_argument("--tract", default=None, help="the sod2-tract-runner binary (omit to skip tract)")
    ap.add_argument("--gemm", default=None, help="the gemm_gflops example binary (omit to skip)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="rounds over the whole sweep, alternating the runtimes case by case; each keeps its lowest median")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", type=pathlib.Path, default=None)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--baseline", default=None, help="another sod2 binary, run side by side in the same rounds")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        # Every model compiled and tuned, every case listed (with tract's run), before timing.
        cases = []
        for spec in SPECS:
            if args.only and spec.name not in args.only:
                continue
            onnx = str(args.zoo / f"{spec.name}.onnx")
            plan = pathlib.Path(tmp) / f"{spec.name}.sod2"
            dims = [f"--dim={k}={lo}..{hi}" for k, (lo, hi) in spec.ranges.items()]
            subprocess.run([args.sod2, "compile", onnx, "-o", str(plan), *dims], check=True, capture_output=True)
            # Kernel-version dispatch tables measured on this machine, as a user would deploy.
            subprocess.run([args.sod2, "tune", str(plan), "--runs", "5"], check=True, capture_output=True)
            base_plan = None
            if args.baseline:
                # The baseline compiles its own plan (its plan format may differ).
                base_plan = pathlib.Path(tmp) / f"{spec.name}.baseline.sod2"
                subprocess.run([args.baseline, "compile", onnx, "-o", str(base_plan), *dims], check=True, capture_output=True)
                subprocess.run([args.baseline, "tune", str(base_plan), "--runs", "5"], check=True, capture_output=True)
            for ci, case in enumerate(spec.sweep):
                d = args.oracle / spec.name / case.name
                ins = {p.stem: str(p) for p in sorted((d / "inputs").glob("*.npy"))}
                # The previous sweep case (cyclically) runs first: the first timed run follows a
                # shape change in a warm session, for every runtime.
                pd = args.oracle / spec.name / spec.sweep[ci - 1].name
                prior = {p.stem: str(p) for p in sorted((pd / "inputs").glob("*.npy"))}
                order = spec_input_order(onnx)
                ordered = [ins[n] for n in order if n in ins]
                prior_ordered = [prior[n] for n in order if n in prior]
                tr = None
                if args.tract:
                    try:
                        p = subprocess.run([args.tract, onnx, str(args.runs), str(len(ordered)), *ordered, *prior_ordered], capture_output=True, text=True, timeout=600)
                        tr = last_json(p.stdout)
                    except (ValueError, subprocess.TimeoutExpired) as e:
                        tr = {"error": f"tract runner: {e}"[:300]}
                for t in args.threads:
                    cases.append({"spec": spec, "case": case, "onnx": onnx, "plan": plan, "base_plan": base_plan, "ins": ins, "prior": prior, "tract": tr, "threads": t, "sod2": None, "base": None, "ort": None})
        # Rounds over the whole sweep, each alternating the runtimes case by case (sod2, ORT);
        # each runtime keeps its round with the lowest median. A case's rounds lie a whole sweep
        # apart, so a slow spell of this shared machine (seconds to minutes) during one round
        # does not decide a ratio.
        for _ in range(args.rounds):
            for c in cases:
                ins, prior, t = c["ins"], c["prior"], c["threads"]
                bench_args = [*[f"--input={k}={v}" for k, v in ins.items()], *[f"--prior={k}={v}" for k, v in prior.items()], "--runs", str(args.runs), "--threads", str(t)]
                out = subprocess.run([args.sod2, "bench", str(c["plan"]), *bench_args], check=True, capture_output=True, text=True).stdout
                c["sod2"] = min([x for x in (c["sod2"], last_json(out)) if x], key=lambda x: x["median_ms"])
                if args.baseline:
                    out = subprocess.run([args.baseline, "bench", str(c["base_plan"]), *bench_args], check=True, capture_output=True, text=True).stdout
                    c["base"] = min([x for x in (c["base"], last_json(out)) if x], key=lambda x: x["median_ms"])
                out = subprocess.run([sys.executable, "-c", ORT_CASE, c["onnx"], json.dumps(ins), str(args.runs), str(t), json.dumps(prior)], check=True, capture_output=True, text=True).stdout
                c["ort"] = min([x for x in (c["ort"], last_json(out)) if x], key=lambda x: x["median_ms"])
        for c in cases:
            s, o, tr, t = c["sod2"], c["ort"], c["tract"], c["threads"]
            tr_t = tr if (t == 1 and tr and "median_ms" in tr) else None
            results.append({
                "model": c["spec"].name, "case": c["case"].name, "threads": t, "sod2": s, "ort": o,
                "tract": tr if t == 1 else None,
                "time_ratio": s["median_ms"] / o["median_ms"],
                "tract_ratio": s["median_ms"] / tr_t["median_ms"] if tr_t else None,
                "mem_ratio": s["peak_intermediate_bytes"] / max(o["rss_growth_bytes"], 1),
                # Switching back to a shape the session ran before (every runtime).
                "sod2_first_over_steady": s["switch_ms"] / s["median_ms"],
                "ort_first_over_steady": o["first_run_ms"] / o["median_ms"],
                # The first result at a shape the session never ran (sod2: prepare + run).
                "sod2_new_over_steady": s["new_shape_ms"] / s["median_ms"],
                "ort_new_over_steady": o["first_new_ms"] / o["median_ms"],
                "tract_first_over_steady": tr_t["first_run_ms"] / tr_t["median_ms"] if tr_t else None,
                "baseline": c["base"],
                "baseline_ratio": s["median_ms"] / c["base"]["median_ms"] if c["base"] else None,
            })
    for t in args.threads:
        rows = [r for r in results if r["threads"] == t]
        print(f"\n### {t} thread{'s' if t > 1 else ''}\n")
        print("| model | case | sod2 ms (p90) | ORT ms (p90) | sod2/ORT | tract ms | sod2/tract | sod2 peak MB | ORT RSS growth MB | sod2/ORT mem | switch first/steady sod2 | ORT | tract | new-shape first/steady sod2 | ORT |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            s, o, tr = r["sod2"], r["ort"], r["tract"]
            trm = f"{tr['median_ms']:.2f} ({tr['mode']})" if tr and "median_ms" in tr else ("fails" if tr else "—")
            print(f"| {r['model']} | {r['case']} | {s['median_ms']:.2f} ({s['p90_ms']:.2f}) | {o['median_ms']:.2f} ({o['p90_ms']:.2f}) | {r['time_ratio']:.2f} | {trm} | {fmt(r['tract_ratio'])} | "
                  f"{s['peak_intermediate_bytes'] / 1e6:.2f} | {o['rss_growth_bytes'] / 1e6:.2f} | {r['mem_ratio']:.2f} | {r['sod2_first_over_steady']:.2f} | {r['ort_first_over_steady']:.2f} | {fmt(r['tract_first_over_steady'])} | {r['sod2_new_over_steady']:.2f} | {r['ort_new_over_steady']:.2f} |")
        if args.baseline:
            print(f"\n#### sod2 against the baseline build ({args.baseline}), {t} thread{'s' if t > 1 else ''}\n")
            print("| model | case | sod2 ms | baseline ms | sod2/baseline | sod2/ORT | baseline/ORT |")
            print("|---|---|---|---|---|---|---|")
            for r in rows:
                b = r["baseline"]
                print(f"| {r['model']} | {r['case']} | {r['sod2']['median_ms']:.3f} | {b['median_ms']:.3f} | {r['baseline_ratio']:.3f} | {r['time_ratio']:.3f} | {b['median_ms'] / r['ort']['median_ms']:.3f} |")
            print(f"| **geo-mean** | {len(rows)} cases | | | {geo([r['baseline_ratio'] for r in rows]):.3f} | {geo([r['time_ratio'] for r in rows]):.3f} | {geo([r['baseline']['median_ms'] / r['ort']['median_ms'] for r in rows]):.3f} |\n")
        tr_rows = [r for r in rows if r["tract_ratio"] is not None]
        print(f"| **geo-mean** | {len(rows)} cases | | | {geo([r['time_ratio'] for r in rows]):.2f} | {len(tr_rows)} run by tract | {geo([r['tract_ratio'] for r in tr_rows]):.2f} | | | "
              f"{geo([r['mem_ratio'] for r in rows]):.2f} | {geo([r['sod2_first_over_steady'] for r in rows]):.2f} | {geo([r['ort_first_over_steady'] for r in rows]):.2f} | {geo([r['tract_first_over_steady'] for r in tr_rows]):.2f} | {geo([r['sod2_new_over_steady'] for r in rows]):.2f} | {geo([r['ort_new_over_steady'] for r in rows]):.2f} |")
        if rows:
            worst = max(rows, key=lambda r: r["time_ratio"])
            print(f"\nslowest relative to ONNX Runtime: {worst['model']} {worst['case']} at {worst['time_ratio']:.2f}x")
            by_model = {}
            for r in rows:
                by_model.setdefault(r["model"], []).append(r["time_ratio"])
            print("per-model geo-mean sod2/ORT: " + ", ".join(f"{m} {geo(v):.2f}" for m, v in by_model.items()))
        if tr_rows and t == 1:
            tm = {}
            for r in tr_rows:
                tm.setdefault(r["model"], []).append(r["tract_ratio"])
            print("per-model geo-mean sod2/tract: " + ", ".join(f"{m} {geo(v):.2f}" for m, v in tm.items()))
            failed = sorted({r["model"] for r in rows if r["tract"] and "error" in r["tract"]})
            if failed:
                print("tract could not run: " + ", ".join(failed))
    if len(args.threads) > 1:
        base = {(r["model"], r["case"]): r for r in results if r["threads"] == args.threads[0]}
        for t in args.threads[1:]:
            sp = [base[(r["model"], r["case"])]["sod2"]["median_ms"] / r["sod2"]["median_ms"] for r in results if r["threads"] == t]
            so = [base[(r["model"], r["case"])]["ort"]["median_ms"] / r["ort"]["median_ms"] for r in results if r["threads"] == t]
            print(f"\nspeed-up from {args.threads[0]} to {t} threads, geo-mean: sod2 {geo(sp):.2f}x, ONNX Runtime {geo(so):.2f}x")
    gemm = None
    if args.gemm:
        out = subprocess.run([args.gemm], check=True, capture_output=True, text=True).stdout
        print("\n" + "\n".join(out.strip().splitlines()[:-1]))
        gemm = last_json(out)
    if args.json:
        args.json.write_text(json.dumps({"cases": results, "gemm": gemm}, indent=1))
    return 0


def spec_input_order(onnx_path):
    import onnx
    m = onnx.load(onnx_path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    return [i.name for i in m.graph.input if i.name not in inits]


if __name__ == "__main__":
    sys.exit(main())
