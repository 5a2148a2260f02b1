"""Latency of the quantized models: sod2 against ONNX Runtime, one thread, and sod2-int8 against
sod2-f32 where the model has an f32 twin.

The models: the int8 zoo (scripts/zoo/quantize_zoo.py: codebert_int8, conformer_int8,
yolov6_int8, sd_unet_int8, twins the zoo's f32 models) and the corpus's int8 models
(scripts/corpus/catalog.py: every model marked `quantized`; ddddocr_crnn_int8
has the twin ddddocr_crnn, the others ship no f32 model). Two input shapes per model (the zoo's
check shapes, the corpus's first and last case), inputs from the same generators as the checks.

Each plan is compiled as a user would (`sod2 compile MODEL -o PLAN`, no flags; `--tune` adds
`sod2 tune`), and timed with `sod2 bench PLAN --input ... --threads 1 --runs N` (its median over N
runs after a warm-up); ONNX Runtime runs in a fresh process per case with all graph optimisations,
`intra_op_num_threads=1`, the median of N runs after a warm-up. Timing runs in --rounds rounds,
each alternating the runtimes case by case; each keeps its round with the lowest median (a slow
spell of a shared machine hits one round, not the ratio).

A model sod2 refuses (the quantized operators have not landed yet) is listed with the reason and
left out of the geometric means; its ONNX Runtime times are still shown (ORT int8 / ORT f32 too).
Markdown to stdout, JSON to --json.

usage: python quant_bench.py --sod2 BIN [--root REPO_ROOT] [--runs N] [--rounds R] [--tune]
                             [--only NAME ...] [--json OUT]
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

sys.path.append(str(ROOT / "scripts" / "zoo"))
sys.path.append(str(ROOT / "scripts" / "corpus"))

ORT_CASE = r"""
import json, sys, time, statistics
import numpy as np, onnxruntime as ort
model, inputs, runs = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
o = ort.SessionOptions()
o.intra_op_num_threads = 1
o.inter_op_num_threads = 1
o.log_severity_level = 3
o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(model, o, providers=['CPUExecutionProvider'])
feeds = {k: np.load(v) for k, v in inputs.items()}
s.run(None, feeds)  # warm-up
ts = []
for _ in range(runs):
    t = time.perf_counter(); s.run(None, feeds); ts.append((time.perf_counter() - t) * 1e3)
print(json.dumps({"median_ms": statistics.median(ts)}))
"""


@dataclasses.dataclass
class Case:
    model: str
    source: str
    onnx: pathlib.Path
    twin: pathlib.Path | None
    case: str
    feeds: dict[str, np.ndarray]
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    plan: pathlib.Path | None = None
    twin_plan: pathlib.Path | None = None
    refused: str | None = None
    times: dict[str, float] = dataclasses.field(default_factory=dict)


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON line in {text[-300:]!r}")


def zoo_cases(root: pathlib.Path) -> list[Case]:
    from models import BY_NAME as SPECS
    from quant_check import CASES, seed
    from quantize_zoo import QUANTIZED, build

    zoo = pathlib.Path(subprocess.run([sys.executable, str(ROOT / "scripts" / "zoo" / "prepare.py"), "--root", str(root)],
                                      check=True, capture_output=True, text=True).stdout.strip())
    int8 = build(zoo)
    out = []
    for q in QUANTIZED:
        spec = SPECS[q.base]
        by = {c.name: c for c in spec.sweep}
        for cname in (CASES[q.base][1], CASES[q.base][-1]):
            c = by[cname]
            feeds = spec.inputs(c.dims, c.variant, np.random.default_rng(seed(f"check/{q.name}/{cname}")))
            out.append(Case(q.name, f"zoo ({q.method})", int8 / f"{q.name}.onnx", zoo / "models" / f"{q.base}.onnx", cname, feeds))
    return out


def corpus_cases(root: pathlib.Path) -> list[Case]:
    from catalog import MODELS
    from check import seed
    from fetch import model_path

    cache = root / ".cache" / "corpus"
    by = {m.name: m for m in MODELS}
    out = []
    for m in MODELS:
        if not m.quantized:
            continue
        twin = by.get(m.name.removesuffix("_int8")) if m.name.endswith("_int8") else None
        path = model_path(cache, m)
        twin_path = model_path(cache, twin) if twin else None
        for i in sorted({0, len(m.shapes) - 1}):
            feeds = m.fill(m.shapes[i], np.random.default_rng(seed(m.name, i)))
            dims = "x".join(str(d) for d in next(iter(m.shapes[i].values())))
            out.append(Case(m.name, "corpus", path, twin_path, f"{i}: {dims}", feeds))
    return out


def compile_plan(sod2: str, model: pathlib.Path, plan: pathlib.Path, tune: bool) -> str | None:
    r = subprocess.run([sod2, "compile", str(model), "-o", str(plan)], capture_output=True, text=True)
    if r.returncode != 0:
        return " ".join(r.stderr.strip().splitlines()[-2:]).split(" Re-export")[0][:400] or "(no message)"
    if tune:
        subprocess.run([sod2, "tune", str(plan), "--runs", "5"], check=True, capture_output=True)
    return None


def sod2_ms(sod2: str, plan: pathlib.Path, inputs: dict[str, str], runs: int) -> float:
    args = [f"--input={k}={v}" for k, v in inputs.items()]
    out = subprocess.run([sod2, "bench", str(plan), *args, "--runs", str(runs), "--threads", "1"],
                         check=True, capture_output=True, text=True).stdout
    return last_json(out)["median_ms"]


def ort_ms(model: pathlib.Path, inputs: dict[str, str], runs: int) -> float:
    out = subprocess.run([sys.executable, "-c", ORT_CASE, str(model), json.dumps(inputs), str(runs)],
                         check=True, capture_output=True, text=True).stdout
    return last_json(out)["median_ms"]


def fmt(x: float | None, d: int = 2) -> str:
    return "—" if x is None or x != x else f"{x:.{d}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--root", type=pathlib.Path, default=ROOT)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tune", action="store_true", help="run `sod2 tune` on each plan after compiling")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--json", type=pathlib.Path, default=None)
    args = ap.parse_args()
    cases = [c for c in zoo_cases(args.root) + corpus_cases(args.root) if not args.only or c.model in args.only]
    with tempfile.TemporaryDirectory(prefix="sod2-quant-bench-") as t:
        tmp = pathlib.Path(t)
        plans: dict[pathlib.Path, tuple[pathlib.Path | None, str | None]] = {}
        twin_failures: dict[str, str] = {}

        def plan_for(model: pathlib.Path) -> tuple[pathlib.Path | None, str | None]:
            if model not in plans:
                p = tmp / f"{model.stem}.sod2"
                err = compile_plan(args.sod2, model, p, args.tune)
                plans[model] = (None, err) if err else (p, None)
            return plans[model]

        for i, c in enumerate(cases):
            for k, v in c.feeds.items():
                f = tmp / f"case{i}-{k.replace('/', '_')}.npy"
                np.save(f, v)
                c.inputs[k] = str(f)
            c.plan, c.refused = plan_for(c.onnx)
            if c.twin:
                c.twin_plan, err = plan_for(c.twin)
                if err:
                    twin_failures[c.twin.stem] = err
        for _ in range(args.rounds):
            for c in cases:
                runs = {"ort": (ort_ms, c.onnx)}
                if c.plan:
                    runs["sod2"] = (sod2_ms, c.plan)
                if c.twin:
                    runs["ort_f32"] = (ort_ms, c.twin)
                if c.twin_plan:
                    runs["sod2_f32"] = (sod2_ms, c.twin_plan)
                for key, (fn, target) in runs.items():
                    ms = fn(args.sod2, target, c.inputs, args.runs) if fn is sod2_ms else fn(target, c.inputs, args.runs)
                    c.times[key] = min(ms, c.times.get(key, float("inf")))
    print(f"\n## Quantized models: latency, one thread, median of {args.runs} runs (best of {args.rounds} rounds)\n")
    print("| model | source | case | sod2 int8 ms | ORT int8 ms | sod2/ORT | sod2 f32 ms | sod2 int8/f32 | ORT f32 ms | ORT int8/f32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for c in cases:
        tm = c.times
        r = {
            "model": c.model, "source": c.source, "case": c.case, "refused": c.refused, **{f"{k}_ms": v for k, v in tm.items()},
            "sod2_over_ort": tm["sod2"] / tm["ort"] if "sod2" in tm else None,
            "sod2_int8_over_f32": tm["sod2"] / tm["sod2_f32"] if "sod2" in tm and "sod2_f32" in tm else None,
            "ort_int8_over_f32": tm["ort"] / tm["ort_f32"] if "ort_f32" in tm else None,
        }
        rows.append(r)
        sod2 = "refused" if c.refused else fmt(tm.get("sod2"), 3)
        print(f"| {c.model} | {c.source} | {c.case} | {sod2} | {fmt(tm['ort'], 3)} | {fmt(r['sod2_over_ort'])} | {fmt(tm.get('sod2_f32'), 3)} | "
              f"{fmt(r['sod2_int8_over_f32'])} | {fmt(tm.get('ort_f32'), 3)} | {fmt(r['ort_int8_over_f32'])} |")
    ran = [r for r in rows if r["sod2_over_ort"] is not None]
    twins = [r for r in rows if r["sod2_int8_over_f32"] is not None]
    ort_twins = [r for r in rows if r["ort_int8_over_f32"] is not None]
    print(f"| **geo-mean** | | {len(ran)} of {len(rows)} cases run by sod2 | | | {fmt(geo([r['sod2_over_ort'] for r in ran]))} | | "
          f"{fmt(geo([r['sod2_int8_over_f32'] for r in twins]))} | | {fmt(geo([r['ort_int8_over_f32'] for r in ort_twins]))} |")
    refused = {r["model"]: r["refused"] for r in rows if r["refused"]}
    for m, why in refused.items():
        print(f"\nsod2 refuses {m}: {why}")
    for m, why in twin_failures.items():
        print(f"\nthe f32 twin {m} does not compile with no flags (no sod2 f32 time): {why}")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "rounds": args.rounds, "cases": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
