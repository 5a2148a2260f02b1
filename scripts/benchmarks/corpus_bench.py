"""The real-model corpus benchmark: sod2 against ONNX Runtime on models nobody here wrote, at one
and two threads, with memory, heap allocations per run, and a per-operator profile of the cases
slowest relative to ONNX Runtime (so the next gap is visible).

The models: every model of scripts/corpus/catalog.py (the float ones; `--int8` adds the int8 ones,
which scripts/benchmarks/quant_bench.py times against their f32 twins). Cases: each model's first
and last corpus shape, inputs from the corpus check's generators and seeds.

Each plan is compiled as a user would (`sod2 compile MODEL -o PLAN`, no flags) and tuned
(`sod2 tune PLAN`), then timed with `sod2 bench PLAN --input ... --threads T --runs N` (median over
N runs after a warm-up; also its peak intermediate bytes and heap allocations per steady-state
run). ONNX Runtime runs in a fresh process per case with all graph optimisations, its arena on,
`intra_op_num_threads = T`: the median of N runs after a warm-up and the process's peak-RSS growth
over the runs. Timing runs in --rounds rounds over the whole sweep, each alternating the runtimes
case by case; each keeps its round with the lowest median (a slow spell of a shared machine hits
one round, not the ratio).

Markdown to stdout (one table per thread count, geo-means, the two-thread speed-up over cases
whose one-thread time is at least 2 ms, and the profile), JSON to --json.

usage: python corpus_bench.py --sod2 BIN [--root REPO_ROOT] [--runs N] [--rounds R]
                              [--threads 1 2] [--int8] [--profile K] [--only NAME ...]
                              [--baseline BIN] [--json OUT]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from stats import geo  # noqa: E402  (this folder's; scripts/zoo has a stats.py too)
from quant_bench import compile_plan as compile_with, fmt, last_json  # noqa: E402

sys.path.append(str(ROOT / "scripts" / "corpus"))

ORT_CASE = r"""
import json, sys, time, statistics
import numpy as np, onnxruntime as ort
model, inputs, runs, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
o = ort.SessionOptions()
o.intra_op_num_threads = threads
o.inter_op_num_threads = 1
o.log_severity_level = 3
o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
o.enable_cpu_mem_arena = True
s = ort.InferenceSession(model, o, providers=['CPUExecutionProvider'])
feeds = {k: np.load(v) for k, v in inputs.items()}
base = hwm()
s.run(None, feeds)  # warm-up
ts = []
for _ in range(runs):
    t = time.perf_counter(); s.run(None, feeds); ts.append((time.perf_counter() - t) * 1e3)
print(json.dumps({"median_ms": statistics.median(ts), "rss_growth_bytes": hwm() - base}))
"""


@dataclasses.dataclass
class Case:
    model: str
    onnx: pathlib.Path
    case: str
    threads: int
    inputs: dict[str, str]
    plan: pathlib.Path | None = None
    base_plan: pathlib.Path | None = None
    refused: str | None = None
    sod2: dict | None = None
    base: dict | None = None
    ort: dict | None = None


def bench_args(c: Case, runs: int) -> list[str]:
    return [*[f"--input={k}={v}" for k, v in c.inputs.items()], "--runs", str(runs), "--threads", str(c.threads)]


def keep_best(old: dict | None, new: dict) -> dict:
    return new if old is None or new["median_ms"] < old["median_ms"] else old


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--root", type=pathlib.Path, default=ROOT)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--int8", action="store_true", help="include the corpus's int8 models")
    ap.add_argument("--profile", type=int, default=5, help="per-op profile of the K cases slowest relative to ORT (one thread)")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--baseline", default=None, help="another sod2 binary, run side by side in the same rounds")
    ap.add_argument("--json", type=pathlib.Path, default=None)
    args = ap.parse_args()

    from catalog import MODELS
    from check import seed
    from fetch import model_path

    cache = args.root / ".cache" / "corpus"
    with tempfile.TemporaryDirectory(prefix="sod2-corpus-bench-") as t:
        tmp = pathlib.Path(t)
        cases: list[Case] = []
        for m in MODELS:
            if (m.quantized and not args.int8) or (args.only and m.name not in args.only):
                continue
            onnx = model_path(cache, m)
            plan = tmp / f"{m.name}.sod2"
            refused = compile_with(args.sod2, onnx, plan, tune=True)
            base_plan = None
            if args.baseline and not refused:
                base_plan = tmp / f"{m.name}.baseline.sod2"
                if compile_with(args.baseline, onnx, base_plan, tune=True):
                    base_plan = None
            for i in sorted({0, len(m.shapes) - 1}):
                feeds = m.fill(m.shapes[i], np.random.default_rng(seed(m.name, i)))
                inputs = {}
                for k, v in feeds.items():
                    f = tmp / f"{m.name}-{i}-{k.replace('/', '_')}.npy"
                    np.save(f, v)
                    inputs[k] = str(f)
                dims = " ".join("x".join(str(d) for d in s) for s in m.shapes[i].values())
                for th in args.threads:
                    cases.append(Case(m.name, onnx, f"{i}: {dims}", th, inputs, None if refused else plan, base_plan, refused))
        for _ in range(args.rounds):
            for c in cases:
                if c.plan:
                    out = subprocess.run([args.sod2, "bench", str(c.plan), *bench_args(c, args.runs)], check=True, capture_output=True, text=True).stdout
                    c.sod2 = keep_best(c.sod2, last_json(out))
                if c.base_plan:
                    out = subprocess.run([args.baseline, "bench", str(c.base_plan), *bench_args(c, args.runs)], check=True, capture_output=True, text=True).stdout
                    c.base = keep_best(c.base, last_json(out))
                out = subprocess.run([sys.executable, "-c", ORT_CASE, str(c.onnx), json.dumps(c.inputs), str(args.runs), str(c.threads)],
                                     check=True, capture_output=True, text=True).stdout
                c.ort = keep_best(c.ort, last_json(out))
        rows = []
        for c in cases:
            s, o = c.sod2, c.ort
            rows.append({
                "model": c.model, "case": c.case, "threads": c.threads, "refused": c.refused, "sod2": s, "ort": o, "baseline": c.base,
                "time_ratio": s["median_ms"] / o["median_ms"] if s else None,
                "mem_ratio": s["peak_intermediate_bytes"] / max(o["rss_growth_bytes"], 1) if s else None,
                "baseline_ratio": s["median_ms"] / c.base["median_ms"] if s and c.base else None,
            })
        for th in args.threads:
            tr = [r for r in rows if r["threads"] == th]
            print(f"\n### Real-model corpus, {th} thread{'s' if th > 1 else ''}: median of {args.runs} runs, best of {args.rounds} rounds\n")
            head = "| model | case | sod2 ms | ORT ms | sod2/ORT | sod2 peak MB | ORT RSS growth MB | sod2/ORT mem | sod2 allocs/run |"
            print(head + (" baseline ms | sod2/baseline |" if args.baseline else ""))
            print("|---" * (head.count("|") - 1 + (2 if args.baseline else 0)) + "|")
            for r in tr:
                s, o = r["sod2"], r["ort"]
                if not s:
                    print(f"| {r['model']} | {r['case']} | refused | {fmt(o['median_ms'], 3)} | | | | | |")
                    continue
                line = (f"| {r['model']} | {r['case']} | {s['median_ms']:.3f} | {o['median_ms']:.3f} | {r['time_ratio']:.2f} | "
                        f"{s['peak_intermediate_bytes'] / 1e6:.2f} | {o['rss_growth_bytes'] / 1e6:.2f} | {r['mem_ratio']:.2f} | {s.get('run_allocs', '—')} |")
                if args.baseline:
                    line += f" {fmt(r['baseline'] and r['baseline']['median_ms'], 3)} | {fmt(r['baseline_ratio'], 3)} |"
                print(line)
            ran = [r for r in tr if r["sod2"]]
            line = (f"| **geo-mean** | {len(ran)} of {len(tr)} cases | | | **{fmt(geo([r['time_ratio'] for r in ran]))}** | | | "
                    f"{fmt(geo([r['mem_ratio'] for r in ran]))} | {sum(1 for r in ran if r['sod2'].get('run_allocs', 1) == 0)} cases at 0 |")
            if args.baseline:
                b = [r["baseline_ratio"] for r in ran if r["baseline_ratio"]]
                line += f" | {fmt(geo(b), 3)} |"
            print(line)
            if ran:
                worst = max(ran, key=lambda r: r["time_ratio"])
                print(f"\nslowest relative to ONNX Runtime: {worst['model']} {worst['case']} at {worst['time_ratio']:.2f}x; "
                      f"cases above 1.10x: {sum(1 for r in ran if r['time_ratio'] > 1.10)}")
            for r in tr:
                if r["refused"]:
                    print(f"\nsod2 refuses {r['model']}: {r['refused']}")
        if len(args.threads) > 1:
            one = {(r["model"], r["case"]): r for r in rows if r["threads"] == args.threads[0] and r["sod2"]}
            for th in args.threads[1:]:
                pairs = [(one[(r["model"], r["case"])], r) for r in rows if r["threads"] == th and r["sod2"] and (r["model"], r["case"]) in one]
                big = [(a, b) for a, b in pairs if a["sod2"]["median_ms"] >= 2.0]
                sp = [b["sod2"]["median_ms"] / a["sod2"]["median_ms"] for a, b in big]
                each = ", ".join(f"{b['model']} {b['case'].split(':')[0]} {x:.2f}" for (a, b), x in zip(big, sp))
                print(f"\n{th} threads over {args.threads[0]}, cases whose one-thread sod2 time is >= 2 ms ({len(big)}): "
                      f"sod2 time ratio geo-mean {fmt(geo(sp))} (each: {each}); "
                      f"not faster on {sum(1 for x in sp if x >= 1.0)}")
        if args.profile and 1 in args.threads:
            worst = sorted((r for r in rows if r["threads"] == 1 and r["sod2"]), key=lambda r: -r["time_ratio"])[: args.profile]
            print(f"\n### Per-operator profile of the {len(worst)} cases slowest relative to ONNX Runtime (one thread)\n")
            for r in worst:
                c = next(c for c in cases if c.model == r["model"] and c.case == r["case"] and c.threads == 1)
                out = subprocess.run([args.sod2, "bench", str(c.plan), *bench_args(c, args.runs), "--profile", "ops"],
                                     check=True, capture_output=True, text=True)
                lines = [x for x in (out.stdout + out.stderr).splitlines() if x.strip() and not x.startswith("{")]
                print(f"{r['model']} {r['case']} (sod2/ORT {r['time_ratio']:.2f}):\n```")
                print("\n".join(lines[:14]))
                print("```")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "rounds": args.rounds, "cases": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
