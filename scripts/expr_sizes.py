#!/usr/bin/env python3
"""Sizes of the symbolic expressions sod2 puts into plans, per model: the plan's expression pool
(`sod2 compile` prints "N expressions") and the arena-size expression as `sod2 inspect` prints
it (characters of its text; "arena pool" is how many pool entries it is built from).

Models: the bundled sample (samples/models/codebert_tiny.onnx), the zoo (scripts/zoo/prepare.py)
and the corpus (.cache/corpus/models/*.onnx), each compiled with no flags; a model that fails to
compile (the int8 corpus models) is listed as such.

With --before OLD_SOD2, every model is also compiled with OLD_SOD2 and the table shows both. The
arena text of an old plan is measured with the new binary's `inspect` (the plan format is the
same), so both columns count characters the same way.

usage: scripts/expr_sizes.py --sod2 target/release/sod2 [--before OLD_SOD2] [--only SUBSTR]
"""
from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def models() -> list[tuple[str, pathlib.Path]]:
    out = [("sample", ROOT / "samples/models/codebert_tiny.onnx")]
    zoo = subprocess.run([sys.executable, str(ROOT / "scripts/zoo/prepare.py")],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    out += [("zoo", p) for p in sorted(pathlib.Path(zoo, "models").glob("*.onnx"))]
    out += [("corpus", p) for p in sorted((ROOT / ".cache/corpus/models").glob("*.onnx"))]
    return out


def measure(sod2: str, inspect_with: str, model: pathlib.Path, work: pathlib.Path):
    """(pool entries, arena chars, arena pool entries) or an error string."""
    plan = work / (model.stem + ".sod2")
    r = subprocess.run([sod2, "compile", str(model), "-o", str(plan)],
                       capture_output=True, text=True, timeout=1800)
    text = r.stdout + r.stderr
    m = re.search(r"(\d+) expressions", text)
    if r.returncode != 0 or not m:
        return "compile fails"
    pool = int(m.group(1))
    r = subprocess.run([inspect_with, "inspect", str(plan)], capture_output=True, text=True, timeout=600)
    line = next((l for l in r.stdout.splitlines() if l.startswith("arena bytes: ")), None)
    if line is None:
        return "inspect fails"
    body = line[len("arena bytes: "):]
    m = re.match(r"an expression of (\d+) pool entries, (over )?(\d+) characters", body)
    if m:
        chars = (">" if m.group(2) else "") + m.group(3)
        arena_pool = int(m.group(1))
    else:
        chars = str(len(body))
        arena_pool = None
    return pool, chars, arena_pool


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sod2", default=str(ROOT / "target/release/sod2"))
    ap.add_argument("--before", help="an older sod2 binary to compare with")
    ap.add_argument("--only", help="only models whose file name contains this")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        for kind, model in models():
            if args.only and args.only not in model.name:
                continue
            for d in ("new", "old"):
                (work / d).mkdir(exist_ok=True)
            new = measure(args.sod2, args.sod2, model, work / "new")
            old = measure(args.before, args.sod2, model, work / "old") if args.before else None
            rows.append((kind, model.stem, old, new))
            print(f"  measured {model.stem}", file=sys.stderr)

    def cells(m) -> list[str]:
        """[pool, arena chars] of a measurement (an error fills the first cell)."""
        if isinstance(m, str):
            return [m, ""]
        pool, chars, _ = m
        return [str(pool), chars]

    head = ["set", "model"]
    head += ["pool before", "pool after", "arena chars before", "arena chars after"] if args.before \
        else ["pool", "arena chars"]
    table = [head]
    for kind, name, old, new in rows:
        n = cells(new)
        if args.before:
            o = cells(old)
            table.append([kind, name, o[0], n[0], o[1], n[1]])
        else:
            table.append([kind, name, *n])
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
