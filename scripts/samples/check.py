"""Checks a sample's printed output summary against the CLI on the same inputs.

Every sample runs the bundled model at shapes (1, 7) and (2, 16) on synthetic inputs (token ids
(i*7)%97+2, attention mask 1) and prints, per output, `output K dims [...] sum=S mean_abs=M
first=F`. This script builds the same inputs as .npy, runs `sod2 run`, computes the same summary
from the CLI's outputs and compares (relative 1e-4, absolute 1e-4).

usage: python check.py --sod2 BIN --plan PLAN SAMPLE_OUTPUT.txt
"""
from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "zoo"))
from plan_names import sanitize  # noqa: E402

SHAPES = [(1, 7), (2, 16)]
LINE = re.compile(r"output (\d+) dims \[([0-9, ]*)\] sum=(\S+) mean_abs=(\S+) first=(\S+)")


def cli_summaries(sod2: str, plan: str) -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = pathlib.Path(tmp)
        for b, s in SHAPES:
            n = b * s
            ids = ((np.arange(n) * 7) % 97 + 2).astype(np.int64).reshape(b, s)
            np.save(t / "ids.npy", ids)
            np.save(t / "mask.npy", np.ones((b, s), np.int64))
            out = t / f"out_{b}_{s}"
            r = subprocess.run([sod2, "run", plan, f"--input=input_ids={t / 'ids.npy'}", f"--input=attention_mask={t / 'mask.npy'}", "--out", str(out)], capture_output=True, text=True, check=True)
            names = [line.split()[0] for line in r.stdout.splitlines() if " -> " in line]
            for k, name in enumerate(names):
                a = np.load(out / f"{sanitize(name)}.npy").astype(np.float64)
                rows.append((k, list(a.shape), a.sum(), np.abs(a).mean(), a.ravel()[0]))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--plan", required=True)
    ap.add_argument("sample_output", type=pathlib.Path)
    args = ap.parse_args()
    got = []
    for line in args.sample_output.read_text().splitlines():
        m = LINE.search(line)
        if m:
            dims = [int(x) for x in m.group(2).split(",") if x.strip()]
            got.append((int(m.group(1)), dims, float(m.group(3)), float(m.group(4)), float(m.group(5))))
    want = cli_summaries(args.sod2, args.plan)
    if len(got) != len(want):
        print(f"{args.sample_output.name}: {len(got)} output summaries, the CLI gives {len(want)}")
        return 1
    bad = 0
    for g, w in zip(got, want):
        ok = g[0] == w[0] and g[1] == w[1] and all(abs(a - b) <= 1e-4 + 1e-4 * abs(b) for a, b in zip(g[2:], w[2:]))
        if not ok:
            bad += 1
            print(f"MISMATCH sample {g} vs CLI {w}")
    print(f"{args.sample_output.name}: {len(got) - bad} passed, {bad} failed (vs sod2 run)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
