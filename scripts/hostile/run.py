"""The hostile-input suite over every zoo model and every real-model corpus case.

For each model it compiles a plan as a new user would (`sod2 compile MODEL -o PLAN`, no flags;
cached by the compiler binary and the model's content), writes each case's good inputs (the
model's own generator: the zoo spec's first sweep case, every shape of a corpus model) as raw
files, and runs the runtime's `hostile` example on the plan and those cases under a timeout. The
example makes every bad variant of every input (wrong dtype, rank +- 1, every dim 1, huge dims
and dims outside the symbols' domain, empty tensors, out-of-range and negative integers, NaN and
infinities, missing and extra inputs, byte lengths that do not match) and checks each ends in a
typed error or a defined result, and that the session still runs the good inputs exactly.

A panic, an abort or a signal (the last case it started is named), a hang (the timeout), an
accepted contradiction or a poisoned session is a failure. Prints a table per model and the
totals; exits 1 on any failure.

usage: python run.py --sod2 BIN --hostile BIN [--plans DIR] [--only NAME ...] [--timeout S]
                     [--all-cases] [--derived] [--threads N] [--wrap 'valgrind --error-exitcode=1 ...']

The whole suite runs on each model's first case (with --all-cases, on every case); every later
case's good inputs then run on the same session and must match a fresh session's outputs.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "corpus"))
sys.path.insert(0, str(ROOT / "scripts" / "zoo"))


def zoo_dir() -> pathlib.Path:
    """The generated zoo models (`.cache/zoo/<hash>/models`, the newest)."""
    dirs = sorted((ROOT / ".cache" / "zoo").glob("*/models"), key=lambda p: p.stat().st_mtime)
    if not dirs:
        raise SystemExit("no zoo models under .cache/zoo (run scripts/zoo/prepare.py)")
    return dirs[-1]


def models(only: list[str] | None):
    """(name, onnx path, [feeds per case]) for every zoo model and every corpus model."""
    from catalog import MODELS
    from fetch import model_path
    from models import SPECS

    zoo = zoo_dir()
    for spec in SPECS:
        if only and spec.name not in only:
            continue
        rng = np.random.default_rng(0)
        # the suite on the second sweep case (small, dims above 1), then every other as good inputs
        order = spec.sweep[1:2] + spec.sweep[:1] + spec.sweep[2:]
        yield spec.name, zoo / f"{spec.name}.onnx", [spec.inputs(c.dims, c.variant, rng) for c in order]
    cache = ROOT / ".cache" / "corpus"
    for m in MODELS:
        if only and m.name not in only:
            continue
        rng = np.random.default_rng(0)
        yield m.name, model_path(cache, m), [m.fill(s, rng) for s in m.shapes]


def compile_plan(sod2: str, name: str, onnx: pathlib.Path, plans: pathlib.Path) -> tuple[pathlib.Path | None, str]:
    st = os.stat(sod2)
    h = hashlib.sha256(f"{st.st_size}-{st.st_mtime_ns}".encode())
    h.update(onnx.read_bytes())
    plan = plans / f"{name}-{h.hexdigest()[:12]}.sod2"
    if plan.exists():
        return plan, ""
    r = subprocess.run([sod2, "compile", str(onnx), "-o", str(plan)], capture_output=True, text=True)
    if r.returncode != 0:
        plan.unlink(missing_ok=True)
        return None, " ".join(r.stderr.strip().splitlines()[-1:])[:200]
    return plan, ""


def write_case(dir: pathlib.Path, feeds: dict[str, np.ndarray]) -> None:
    dir.mkdir(parents=True)
    lines = []
    for k, (name, v) in enumerate(feeds.items()):
        v = np.ascontiguousarray(v)
        f = f"{k}.bin"
        (dir / f).write_bytes(v.astype(v.dtype.newbyteorder("<")).tobytes())
        lines.append(f"{name}\t{v.dtype.name}\t{'x'.join(str(d) for d in v.shape)}\t{f}")
    (dir / "manifest.tsv").write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--hostile", required=True, help="target/release/examples/hostile")
    ap.add_argument("--plans", type=pathlib.Path, default=ROOT / "target" / "hostile-plans")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per model (a hang is a failure)")
    ap.add_argument("--all-cases", action="store_true", help="the whole suite on every case (default: the first)")
    ap.add_argument("--derived", action="store_true", help="good inputs derived from each plan alone, not the model's generator")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per session")
    ap.add_argument("--wrap", default="", help="a command to run the example under (valgrind ...)")
    a = ap.parse_args()
    a.plans.mkdir(parents=True, exist_ok=True)
    rows, failures, t0 = [], [], time.time()
    totals = [0, 0, 0, 0]
    with tempfile.TemporaryDirectory() as tmp:
        for name, onnx, cases in models(a.only):
            plan, why = compile_plan(a.sod2, name, onnx, a.plans)
            if plan is None:
                rows.append((name, len(cases), "-", "-", "-", "-", f"compile refused: {why}"))
                continue
            dirs = []
            for k, feeds in enumerate([] if a.derived else cases):
                d = pathlib.Path(tmp) / name / f"case{k}"
                write_case(d, feeds)
                dirs.append(str(d))
            cmd = shlex.split(a.wrap) + [a.hostile, str(plan)] + dirs + (["--all-cases"] if a.all_cases else []) + [f"--threads={a.threads}"]
            t = time.time()
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
                rc, out, err = r.returncode, r.stdout, r.stderr
            except subprocess.TimeoutExpired as e:
                rc, out = None, (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
                err = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            secs = time.time() - t
            result = [l.split() for l in out.splitlines() if l.startswith("RESULT ")]
            fails = [l[len("FAIL "):] for l in out.splitlines() if l.startswith("FAIL ")]
            last = [l for l in err.splitlines() if l.startswith("CASE ")]
            if rc is None:
                fails.append(f"{name}: hang (over {a.timeout:.0f} s) in {last[-1][5:] if last else '?'}")
            elif rc not in (0, 1) or not result:
                tail = " | ".join(l for l in err.splitlines()[-3:] if not l.startswith("CASE "))
                fails.append(f"{name}: died (exit {rc}) in {last[-1][5:] if last else '?'}: {tail[:300]}")
            for l in err.splitlines():
                if l.startswith(("note:", "isa:")) and (l.startswith("note:") or a.wrap):
                    print(f"{name}: {l}", file=sys.stderr)
            if a.wrap and "ERROR SUMMARY" in err:
                summary = [l for l in err.splitlines() if "ERROR SUMMARY" in l]
                print(f"{name}: {summary[-1]}")
            if result:
                _, _, cs, ty, de, _ = result[-1]
                counts = [int(cs), int(ty), int(de)]
            else:
                counts = [0, 0, 0]
            for i in range(3):
                totals[i] += counts[i]
            totals[3] += len(fails)
            failures += fails
            rows.append((name, len(dirs) or "derived", *counts, len(fails), f"{secs:.1f} s"))
            print(f"{name}: {counts[0]} cases, {len(fails)} failures, {secs:.1f} s", file=sys.stderr)
    print("| model | good cases | bad cases | typed errors | defined results | failures | time |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print(f"| total | | {totals[0]} | {totals[1]} | {totals[2]} | {totals[3]} | {time.time() - t0:.0f} s |")
    for f in failures:
        print("FAIL", f)
    return 1 if failures or any(r[2] == "-" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
