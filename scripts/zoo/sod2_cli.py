"""Running a plan through the `sod2` CLI from the Python harnesses: inputs written as `.npy`
files, `sod2 run`, outputs read back by their file names (`plan_names.sanitize`)."""
from __future__ import annotations

import pathlib
import subprocess

import numpy as np

from plan_names import sanitize


def run_plan(sod2: str, plan: pathlib.Path, feeds: dict[str, np.ndarray], work: pathlib.Path,
             outputs: list[str], extra: tuple[str, ...] = (), timeout: float | None = None) -> dict[str, np.ndarray]:
    """`sod2 run PLAN` on `feeds` (saved under `work`) with `extra` flags; returns the named
    outputs. Raises RuntimeError with sod2's last line of errors when the run fails or an
    output is missing."""
    work.mkdir(parents=True, exist_ok=True)
    args = []
    for i, (k, v) in enumerate(feeds.items()):
        p = work / f"in{i}.npy"
        np.save(p, v)
        args.append(f"--input={k}={p}")
    out = work / "out"
    r = subprocess.run([sod2, "run", str(plan), *args, "--out", str(out), *extra],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("sod2 run: " + (r.stderr.strip().splitlines() or ["(no message)"])[-1][:200])
    got = {}
    for name in outputs:
        p = out / f"{sanitize(name)}.npy"
        if not p.exists():
            raise RuntimeError(f"sod2 run wrote no output {name}")
        got[name] = np.load(p)
    return got
