"""The real-model corpus check: sod2 against ONNX Runtime on models nobody here wrote.

For every corpus model (scripts/corpus/catalog.py) it

1. compiles the model as a new user would: `sod2 compile MODEL -o PLAN`, no flags;
2. checks the shape analysis (`sod2 analyze --json`): every main-graph tensor's symbolic shape,
   evaluated under each case's binding, must equal the shape ONNX Runtime produced (a mismatch is
   an unsound fact); it also counts the tensors whose shape is fully known (exact);
3. runs every case with `sod2 run` and compares every output with ONNX Runtime's: floats within
   |a - b| <= rtol*|b| + atol + 1e-5 * max|b| (rtol 1e-3, atol 1e-4), integers and booleans exactly;
4. for stateful models, steps twice: the second run is fed the first run's state outputs (each
   runtime its own) and compared again.

A model with an `expect` reason must fail (strictly: if it passes, the check fails and asks for the
reason to be removed). Prints a table per model and case and the totals; exits non-zero on any
unexpected result.

usage: python check.py --sod2 BIN [--only NAME ...] [--root REPO_ROOT]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "zoo"))
from fetch import FetchError, model_path  # noqa: E402
from catalog import MODELS, Model  # noqa: E402

RTOL, ATOL, ATOL_SCALE = 1e-3, 1e-4, 1e-5
Q_RTOL, Q_ATOL = 1e-2, 1e-3  # int8 models (the quantization issue's tolerance)


def compare(name: str, got: np.ndarray, want: np.ndarray, quantized: bool = False) -> tuple[float, str | None]:
    """(max abs error, problem or None) under the corpus tolerance (the int8 one when
    `quantized`: rtol 1e-2, atol 1e-3)."""
    rtol, atol, atol_scale = (Q_RTOL, Q_ATOL, 0.0) if quantized else (RTOL, ATOL, ATOL_SCALE)
    if got.shape != want.shape:
        return float("inf"), f"{name}: shape {got.shape}, ONNX Runtime {want.shape}"
    if got.dtype != want.dtype:
        return float("inf"), f"{name}: dtype {got.dtype}, ONNX Runtime {want.dtype}"
    if want.size == 0:
        return 0.0, None
    if np.issubdtype(want.dtype, np.floating):
        g, w = got.astype(np.float64), want.astype(np.float64)
        if not np.array_equal(np.isnan(g), np.isnan(w)):
            return float("inf"), f"{name}: NaN where ONNX Runtime has none (or the reverse)"
        finite = ~np.isnan(w)
        err = np.where(finite, np.abs(g - w), 0.0)
        scale = float(np.max(np.abs(w[finite]))) if finite.any() else 0.0
        ok = bool(np.all(err <= rtol * np.abs(np.where(finite, w, 0.0)) + atol + atol_scale * scale))
        return float(err.max()), None if ok else f"{name}: max abs error {err.max():.3g} above tolerance"
    return (0.0, None) if np.array_equal(got, want) else (float("inf"), f"{name}: values differ")


def seed(model: str, case: int) -> int:
    return int(hashlib.sha256(f"corpus/{model}/{case}".encode()).hexdigest()[:8], 16)


class Oracle:
    """ONNX Runtime on the unmodified model, and on a copy exposing every main-graph tensor."""

    def __init__(self, path: pathlib.Path, quantized: bool = False) -> None:
        import onnx
        import onnxruntime as ort
        from oracle import instrumented  # the zoo's: every typed main-graph tensor as an output

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        opts.log_severity_level = 3
        model = onnx.load(str(path))
        self.outputs = [o.name for o in model.graph.output]
        self.plain = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        inst, self.names = instrumented(model)
        self.every = ort.InferenceSession(inst.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        # An int8 model's second oracle: ONNX Runtime without graph optimizations, i.e. each
        # QDQ pair and quantized op computed as ONNX defines it, not fused into ORT's integer
        # kernels. The two differ where a value sits near a rounding step.
        self.reference = None
        if quantized:
            ref = ort.SessionOptions()
            ref.intra_op_num_threads = 1
            ref.log_severity_level = 3
            ref.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            self.reference = ort.InferenceSession(model.SerializeToString(), ref, providers=["CPUExecutionProvider"])

    def run_reference(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        if self.reference is None:
            return None
        return dict(zip(self.outputs, (np.asarray(v) for v in self.reference.run(None, feeds))))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, (np.asarray(v) for v in self.plain.run(None, feeds))))

    def shapes(self, feeds: dict[str, np.ndarray]) -> dict[str, dict]:
        got = dict(zip(self.names, self.every.run(self.names, feeds)))
        got.update(feeds)
        return {k: {"shape": list(np.asarray(v).shape)} for k, v in got.items() if v is not None}


# `sod2 run` flags of every run (`--check-allocs`: a steady-state run must not allocate;
# `--poison-arena`: memory is filled with NaNs before it is written).
RUN_FLAGS: list[str] = []


def sod2_run(sod2: str, plan: pathlib.Path, feeds: dict[str, np.ndarray], work: pathlib.Path, outputs: list[str]) -> dict[str, np.ndarray]:
    from sod2_cli import run_plan

    return run_plan(sod2, plan, feeds, work, outputs, extra=tuple(RUN_FLAGS))


def check_model(sod2: str, m: Model, path: pathlib.Path, tmp: pathlib.Path) -> tuple[list[tuple], dict]:
    """Rows (case, dims, max abs error, problem) and a summary for one model."""
    from conformance import check_case

    summary = {"compile": "ok", "tensors": 0, "exact": 0, "unsound": 0, "checked": 0}
    rows: list[tuple] = []
    plan = tmp / f"{m.name}.sod2"
    t0 = time.time()
    r = subprocess.run([sod2, "compile", str(path), "-o", str(plan)], capture_output=True, text=True)
    summary["compile_s"] = time.time() - t0
    if r.returncode != 0:
        summary["compile"] = "FAIL: " + " ".join(r.stderr.strip().splitlines()[-2:])[:220]
    a = subprocess.run([sod2, "analyze", "--json", str(path)], capture_output=True, text=True)
    facts = json.loads(a.stdout) if a.returncode == 0 else None
    if facts:
        summary["tensors"] = len(facts["tensors"])
        summary["exact"] = sum(1 for t in facts["tensors"] if t["state"] == "known")
    oracle = Oracle(path, m.quantized)
    for i, shapes in enumerate(m.shapes):
        rng = np.random.default_rng(seed(m.name, i))
        feeds = m.fill(shapes, rng)
        dims = " ".join(f"{k}{list(v.shape)}" for k, v in feeds.items() if v.ndim)
        if facts:
            checked, bad, _ = check_case(facts, {"tensors": oracle.shapes(feeds), "inputs": list(feeds)})
            # A tensor without a rank is imprecise (unknown), not unsound: only wrong facts count.
            wrong = [b for b in bad if ": no rank (" not in b]
            summary["checked"] += checked
            summary["unsound"] += len(wrong)
            for b in wrong[:3]:
                print(f"  UNSOUND {m.name} case {i}: {b}")
        if summary["compile"] != "ok":
            rows.append((i, dims, "-", "compile failed"))
            continue
        want = oracle.run(feeds)
        try:
            got = sod2_run(sod2, plan, feeds, tmp / f"{m.name}-{i}", oracle.outputs)
            steps = [("", got, want)]
            if m.chain:  # second step: each runtime fed its own state
                feeds2 = dict(feeds)
                feeds2.update({inp: want[out] for out, inp in m.chain.items()})
                mine = dict(feeds)
                mine.update({inp: got[out] for out, inp in m.chain.items()})
                want2 = oracle.run(feeds2)
                got2 = sod2_run(sod2, plan, mine, tmp / f"{m.name}-{i}-step2", oracle.outputs)
                steps.append((" (step 2)", got2, want2))
        except RuntimeError as e:
            rows.append((i, dims, "-", str(e)))
            continue
        ref = oracle.run_reference(feeds) if m.quantized and not m.chain else None
        for label, g, w in steps:
            worst, problems, worst_ref = 0.0, [], 0.0
            for name in oracle.outputs:
                err, p = compare(name, g[name], w[name], m.quantized)
                worst = max(worst, err)
                if p and ref is not None:
                    # int8: as close to ONNX Runtime's unoptimized run (every QDQ pair as ONNX
                    # defines it) is as good; the table shows both errors
                    err_r, p_r = compare(name, g[name], ref[name], True)
                    worst_ref = max(worst_ref, err_r)
                    p = None if p_r is None else f"{p} (and {p_r} vs unoptimized ORT)"
                if p:
                    problems.append(p)
            shown = f"{worst:.2e}" + (f" (vs unoptimized ORT {worst_ref:.2e})" if worst_ref else "")
            rows.append((f"{i}{label}", dims, shown, "; ".join(problems)[:200] or None))
    return rows, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--root", type=pathlib.Path, default=HERE.parent.parent)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--check-allocs", action="store_true", help="every run also checks that a steady-state run makes no heap allocation")
    ap.add_argument("--poison-arena", action="store_true",
                    help="every run fills the arena and each output buffer with NaNs first (`sod2 run --poison-arena`)")
    args = ap.parse_args()
    if args.check_allocs:
        RUN_FLAGS.append("--check-allocs")
    if args.poison_arena:
        RUN_FLAGS.append("--poison-arena")
    cache = args.root / ".cache" / "corpus"
    table, totals, unexpected = [], [], 0
    with tempfile.TemporaryDirectory(prefix="sod2-corpus-") as t:
        tmp = pathlib.Path(t)
        for m in MODELS:
            if args.only and m.name not in args.only:
                continue
            try:
                path = model_path(cache, m)
            except FetchError as e:
                print(f"error: {e}", file=sys.stderr)
                unexpected += 1
                continue
            rows, s = check_model(args.sod2, m, path, tmp)
            failed = s["compile"] != "ok" or any(r[3] for r in rows) or s["unsound"] > 0
            if m.expect:
                verdict = f"expected failure ({m.expect})" if failed else "UNEXPECTED PASS: remove `expect` in scripts/corpus/catalog.py"
                unexpected += 0 if failed else 1
            else:
                verdict = "FAIL" if failed else "pass"
                unexpected += 1 if failed else 0
            for case, dims, err, problem in rows:
                table.append((m.name, case, dims, err, problem or "ok"))
            totals.append((m.name, m.origin, s["compile"], f"{s['compile_s']:.1f}", s["tensors"], s["exact"], s["checked"], s["unsound"],
                           sum(1 for r in rows if not r[3]), len(rows), verdict))
    print("\n## Corpus: sod2 run vs ONNX Runtime (rtol 1e-3, atol 1e-4 + 1e-5 x max|out|; integers exact)\n")
    print("| model | case | inputs | max abs error | result |")
    print("|---|---|---|---|---|")
    for r in table:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print("\n## Corpus: per model (compile with no flags; RDP facts checked against ONNX Runtime's shapes)\n")
    print("| model | exported by | compile | compile s | tensors | exact shapes | facts checked | unsound | runs passed | runs | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in totals:
        print("| " + " | ".join(str(x) for x in r) + " |")
    must = [r for r in totals if not r[-1].startswith("expected")]
    t_exact = sum(r[5] for r in totals)
    t_tensors = sum(r[4] for r in totals)
    print(f"\ncorpus: {sum(1 for r in totals if r[-1] == 'pass')} of {len(totals)} models pass, "
          f"{sum(1 for r in totals if r[-1].startswith('expected'))} expected failures, {unexpected} unexpected; "
          f"runs {sum(r[8] for r in totals)}/{sum(r[9] for r in totals)}; RDP exact {t_exact}/{t_tensors} tensors "
          f"({100.0 * t_exact / max(t_tensors, 1):.1f}%), unsound {sum(r[7] for r in totals)} of {sum(r[6] for r in totals)} checked; "
          f"{len(must)} models must pass")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
