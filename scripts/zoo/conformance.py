"""The conformance harness.

Runs sod2 on every zoo model x case and compares with the ONNX Runtime oracle. Until the sod2
runtime exists it checks the shape analysis: every tensor's symbolic shape from
`sod2 analyze --json`, evaluated under the case's binding of the input symbols (and the run-time
values of fresh, execution-determined symbols, read off the oracle), must equal the concrete
shape ONNX Runtime produced. It also requires full precision (no tensor left undef or unknown)
and that every control-flow path of every model is exercised by some case.

With --values it also compiles every model (`sod2 compile`, the spec's declared ranges), runs
the plan on the oracle's inputs (`sod2 run`) and compares every output with ONNX Runtime's:
fp32 within |a - b| <= atol + rtol*|b| (rtol 1e-3, atol 1e-4), integers and indices exactly,
and the outputs of NonMaxSuppression (and rows gathered by them) as sets of rows, since ties
may order them differently.

Prints tables (shapes: model, case, dims, tensors checked, mismatches; values: model, case,
max abs error, max rel error, pass/fail) and the control-flow coverage; exits non-zero on any
failure.

usage: python conformance.py --sod2 BIN --zoo ZOO_DIR --oracle ORACLE_DIR [--values] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from models import SPECS  # noqa: E402

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FUNCS = {
    "floordiv": lambda a, b: a // b,
    "ceildiv": lambda a, b: -((-a) // b),
    "mod": lambda a, b: a % b,
    "min": min,
    "max": max,
}


def eval_dim(text: str, env: dict[str, int]) -> int:
    """Evaluates one dim in sod2's syntax (Python's // and % have the same floor semantics)."""
    if not re.fullmatch(r"[A-Za-z0-9_+\-*(), ]+", text):
        raise ValueError(f"unexpected characters in dim `{text}`")
    return int(eval(text, {"__builtins__": {}}, {**FUNCS, **env}))  # noqa: S307 - own syntax, checked above


def analyze(sod2: str, model: pathlib.Path) -> dict:
    out = subprocess.run([sod2, "analyze", "--json", str(model)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def check_case(facts: dict, case: dict) -> tuple[int, list[str], int]:
    """Returns (tensors checked, mismatch descriptions, tensors not checkable)."""
    shapes = {t["name"]: t["shape"] for t in facts["tensors"]}
    fresh = {s["name"] for s in facts["symbols"] if s["origin"]}
    env: dict[str, int] = {}
    observed = case["tensors"]
    # Bind every symbol that stands alone as a dim of an observed tensor (model inputs first).
    order = sorted(observed, key=lambda n: 0 if n in case.get("inputs", []) else 1)
    for name in order:
        sym_dims = shapes.get(name)
        if not sym_dims or len(sym_dims) != len(observed[name]["shape"]):
            continue
        for d, v in zip(sym_dims, observed[name]["shape"]):
            if IDENT.match(d) and d not in env:
                env[d] = v
    checked, bad, skipped = 0, [], 0
    for name, obs in observed.items():
        sym = shapes.get(name)
        if sym is None:
            bad.append(f"{name}: no rank (observed {obs['shape']})")
            continue
        if len(sym) != len(obs["shape"]):
            bad.append(f"{name}: rank {len(sym)} vs observed {obs['shape']}")
            continue
        try:
            got = [eval_dim(d, env) for d in sym]
        except NameError as e:
            missing = str(e).split("'")[1] if "'" in str(e) else str(e)
            if missing in fresh:
                skipped += 1
                continue
            bad.append(f"{name}: cannot evaluate {sym}: {e}")
            continue
        checked += 1
        if got != obs["shape"]:
            bad.append(f"{name}: {sym} = {got}, ONNX Runtime: {obs['shape']}")
    return checked, bad, skipped


# Outputs compared as sets of rows (selection order may differ on ties).
SET_OUTPUTS = {"yolov6": {"NonMaxSuppression_280", "Gather_284"}}
# NonMaxSuppression outputs whose box indices point into a list sorted by TopK, with the output
# that gathers the selected boxes: two confidences equal up to float rounding may sort either
# way, swapping two indices between runtimes, so a selection is compared by the boxes it
# selects (batch, class and box coordinates, as a set of rows).
SELECTED_BY = {"yolov6": {"NonMaxSuppression_280": "Gather_284"}}
RTOL, ATOL = 1e-3, 1e-4


def compare(name: str, got: np.ndarray, want: np.ndarray, as_set: bool) -> tuple[float, float, str | None]:
    """(max abs error, max rel error, problem or None)."""
    if got.shape != want.shape:
        return float("inf"), float("inf"), f"{name}: shape {got.shape}, ONNX Runtime {want.shape}"
    if got.dtype != want.dtype and not (got.dtype == np.bool_ and want.dtype == np.bool_):
        return float("inf"), float("inf"), f"{name}: dtype {got.dtype}, ONNX Runtime {want.dtype}"
    if got.size == 0:
        return 0.0, 0.0, None
    if as_set:
        g = got.reshape(got.shape[0], -1) if got.ndim > 1 else got.reshape(-1, 1)
        w = want.reshape(want.shape[0], -1) if want.ndim > 1 else want.reshape(-1, 1)
        if got.ndim == 3:
            g, w = got.reshape(-1, got.shape[-1]), want.reshape(-1, want.shape[-1])
        g = g[np.lexsort(g.T[::-1])]
        w = w[np.lexsort(w.T[::-1])]
        got, want = g, w
    if np.issubdtype(want.dtype, np.floating):
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
        rel = err / np.maximum(np.abs(want.astype(np.float64)), 1e-12)
        ok = bool(np.all(err <= ATOL + RTOL * np.abs(want)))
        return float(err.max()), float(rel.max()), None if ok else f"{name}: max abs error {err.max():.3g} above tolerance"
    same = np.array_equal(got, want)
    return (0.0, 0.0, None) if same else (float("inf"), float("inf"), f"{name}: integer values differ")


# Extra `sod2 run` flags of value mode (`--poison-arena`).
RUN_FLAGS: list[str] = []


def value_check(sod2: str, spec, zoo: pathlib.Path, oracle: pathlib.Path, opt: str = "all", tune: bool = False, force_version: int | None = None) -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="sod2-conf-") as tmp:
        plan = pathlib.Path(tmp) / f"{spec.name}.sod2"
        dims = [f"--dim={k}={lo}..{hi}" for k, (lo, hi) in spec.ranges.items()]
        r = subprocess.run([sod2, "compile", str(zoo / f"{spec.name}.onnx"), "-o", str(plan), f"--opt={opt}", *dims], capture_output=True, text=True)
        if r.returncode != 0:
            return [(spec.name, "(compile)", "-", "-", "-", "FAIL: " + r.stderr.strip().splitlines()[-1])]
        if tune:
            r = subprocess.run([sod2, "tune", str(plan), "--runs", "1"], capture_output=True, text=True)
            if r.returncode != 0:
                return [(spec.name, "(tune)", "-", "-", "-", "FAIL: " + (r.stderr.strip().splitlines() or ["?"])[-1])]
        forced = [] if force_version is None else ["--force-version", str(force_version)]
        for case in spec.cases():
            d = oracle / spec.name / case.name
            out_dir = pathlib.Path(tmp) / case.name
            args = [f"--input={p.stem}={p}" for p in sorted((d / "inputs").glob("*.npy"))]
            r = subprocess.run([sod2, "run", str(plan), *args, "--out", str(out_dir), "--check-allocs", *forced, *RUN_FLAGS], capture_output=True, text=True)
            if r.returncode != 0:
                rows.append((spec.name, case.name, "-", "-", "-", "FAIL: " + (r.stderr.strip().splitlines() or ["?"])[-1][:160]))
                continue
            worst_abs, worst_rel, problems = 0.0, 0.0, []
            for ref in sorted((d / "outputs").glob("*.npy")):
                from plan_names import sanitize  # noqa: PLC0415
                got_path = out_dir / f"{sanitize(ref.stem)}.npy"
                if not got_path.exists():
                    problems.append(f"{ref.stem}: missing output")
                    continue
                a, e, p = compare(ref.stem, np.load(got_path), np.load(ref), ref.stem in SET_OUTPUTS.get(spec.name, set()))
                worst_abs, worst_rel = max(worst_abs, a), max(worst_rel, e)
                if p:
                    problems.append(p)
            rows.append((spec.name, case.name, f"{worst_abs:.2e}", f"{worst_rel:.2e}", len(list((d / 'outputs').glob('*.npy'))), "pass" if not problems else "FAIL: " + "; ".join(problems)[:160]))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--zoo", type=pathlib.Path, required=True)
    ap.add_argument("--oracle", type=pathlib.Path, required=True)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--values", action="store_true", help="also compile, run and compare outputs")
    ap.add_argument("--opt", nargs="+", default=["all"], help="optimisation levels to check in value mode (none fusion sep dmp mvc all)")
    ap.add_argument("--tune", action="store_true", help="value mode: also check each model's `all` plan after `sod2 tune`")
    ap.add_argument("--force-version", type=int, default=None, help="value mode: also run each `all` plan with this kernel version forced wherever a step has it")
    ap.add_argument("--poison-arena", action="store_true",
                    help="value mode: `sod2 run --poison-arena` (the arena and every output buffer filled with NaNs first)")
    args = ap.parse_args()
    if args.poison_arena:
        RUN_FLAGS.append("--poison-arena")
    failures = 0
    rows = []
    coverage: dict[str, dict[str, set]] = collections.defaultdict(lambda: collections.defaultdict(set))
    precision = []
    for spec in SPECS:
        if args.only and spec.name not in args.only:
            continue
        facts = analyze(args.sod2, args.zoo / f"{spec.name}.onnx")
        s = facts["summary"]
        not_known = [t["name"] for t in facts["tensors"] if t["state"] != "known"]
        precision.append((spec.name, len(facts["nodes"]), s, not_known))
        if not_known:
            failures += 1
        for case in spec.cases():
            meta = json.loads((args.oracle / spec.name / case.name / "case.json").read_text())
            meta["inputs"] = list((args.oracle / spec.name / case.name / "inputs").glob("*.npy"))
            meta["inputs"] = [p.stem for p in meta["inputs"]]
            checked, bad, skipped = check_case(facts, meta)
            for k, v in meta["paths"].items():
                coverage[spec.name][k].add(v)
            ok = not bad and checked > 0
            failures += 0 if ok else 1
            dims = ",".join(f"{k}={v}" for k, v in meta["dims"].items())
            rows.append((spec.name, case.name, dims, checked, skipped, len(bad), "pass" if ok else "FAIL"))
            for b in bad[:5]:
                print(f"  MISMATCH {spec.name}/{case.name}: {b}")
    print("\n## Shape analysis vs ONNX Runtime (every main-graph tensor)\n")
    print("| model | case | dims | tensors checked | fresh-only (unbound) | mismatches | result |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print("\n## Precision (sod2 analyze)\n")
    print("| model | nodes | constant | symbolic | unknown | undef | fresh symbols | analysis ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name, n, s, nk in precision:
        print(f"| {name} | {n} | {s['constant']} | {s['symbolic']} | {s['unknown']} | {s['undef']} | {s['fresh_symbols']} | {s['micros'] / 1000:.2f} |")
        if nk:
            print(f"  NOT FULLY KNOWN in {name}: {', '.join(nk[:10])}")
    print("\n## Control-flow paths exercised\n")
    print("| model | decision | values seen | both ways |")
    print("|---|---|---|---|")
    for model, points in coverage.items():
        for point, seen in points.items():
            full = (seen == {True, False}) if all(isinstance(v, bool) for v in seen) else len(seen) >= 3
            failures += 0 if full else 1
            print(f"| {model} | {point} | {sorted(seen)} | {'yes' if full else 'NO'} |")
    total = len(rows)
    passed = sum(1 for r in rows if r[-1] == "pass")
    if args.values:
        vrows = []
        for spec in SPECS:
            if args.only and spec.name not in args.only:
                continue
            for opt in args.opt:
                vrows.extend((f"{r[0]} [{opt}]",) + tuple(r[1:]) for r in value_check(args.sod2, spec, args.zoo, args.oracle, opt))
            if args.tune:
                vrows.extend((f"{r[0]} [all, tuned]",) + tuple(r[1:]) for r in value_check(args.sod2, spec, args.zoo, args.oracle, "all", tune=True))
            if args.force_version is not None:
                vrows.extend((f"{r[0]} [all, version {args.force_version}]",) + tuple(r[1:]) for r in value_check(args.sod2, spec, args.zoo, args.oracle, "all", force_version=args.force_version))
        print("\n## Values: sod2 runtime vs ONNX Runtime (rtol 1e-3, atol 1e-4; integers exact)\n")
        print("| model | case | max abs error | max rel error | outputs | result |")
        print("|---|---|---|---|---|---|")
        for r in vrows:
            print("| " + " | ".join(str(x) for x in r) + " |")
        vpass = sum(1 for r in vrows if r[-1] == "pass")
        failures += len(vrows) - vpass
        print(f"\nvalues: {vpass} passed, {len(vrows) - vpass} failed")
        total += len(vrows)
        passed += vpass
    print(f"\nconformance: {passed} passed, {total - passed} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
