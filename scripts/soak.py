#!/usr/bin/env python3
"""Soak and concurrency checks of the runtime over the zoo models (and, for concurrency, a few
corpus models), driving `core/runtime/examples/soak` (the runtime's public API only).

- soak: per model, one session runs `--runs` times cycling through a fixed pool of cases (the
  domain's largest binding first, then random bindings inside the plan's symbol ranges
  intersected with the boxes below, each with its own random inputs); RSS is sampled every
  runs/200 runs; the check fails when RSS at the end exceeds RSS after warm-up (the first
  max(2 cycles of the pool, 10% of the runs)) by more than 1%.
- concurrent: per model, 8 sessions on one shared Arc<Plan>, one per thread (1 and 2 intra-op
  threads alternately), run random cases of the pool for `--seconds`; every output is compared
  bitwise with the case's reference, run once on a fresh 1-thread session. Fails on any
  mismatch or failed run.

Models are compiled with no flags (`sod2 compile M.onnx -o m.sod2`), cached by the binary and
the model. Boxes are the zoo specs' `random_dims` ranges (scripts/zoo/models.py) and, for corpus
models, their test shapes' neighbourhood; integer inputs take the value ranges the models'
own generators use (scripts/zoo/models.py, scripts/corpus/catalog.py).

usage: scripts/soak.py [--mode soak|concurrent|both] [--runs N] [--seconds S] [--only NAME ...]
       acceptance: --runs 100000 --seconds 600; CI: --runs 500 --seconds 20 (the defaults)
"""
from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
ZOO = ROOT / ".cache" / "zoo" / "1291df8765ac1008" / "models"
CORPUS = ROOT / ".cache" / "corpus" / "models"

CNN = {"dims": ["batch=1..=3", "H=32..=159", "W=32..=159"], "ints": []}
# model -> boxes of the input symbols and value ranges of the integer inputs
ZOO_MODELS = {
    "sd_text_encoder": {"dims": ["batch=1..=4", "tokens=1..=199"], "ints": ["input_ids=0..=999"]},
    "sd_unet": {"dims": ["batch=1..=2", "H=8..=47", "W=8..=47", "ctx_len=1..=19"], "ints": []},
    "sam": {"dims": ["H=16..=199", "W=16..=199", "npts=1..=8"], "ints": ["labels=0..=1"]},
    "conformer": {"dims": ["batch=1..=3", "time=7..=299"], "ints": ["lengths=7..=time"]},
    "codebert": {"dims": ["batch=1..=4", "seq=1..=199"], "ints": ["input_ids=0..=999", "attention_mask=0..=1"]},
    "yolov6": {"dims": ["H=32..=199", "W=32..=199"], "ints": []},
    "skipnet": CNN, "dgnet": CNN, "convnet_aig": CNN, "ranet": CNN, "blockdrop": CNN,
}
CORPUS_MODELS = {
    "silero_vad_op15": {"dims": ["batch=1..=3", "sequence=192..=703"], "ints": ["sr=16000..=16000"]},
    "ppocr_v4_rec": {"dims": ["p2o_DynamicDimension_0=1..=2", "p2o_DynamicDimension_1=5..=320", "x_dim2=33..=80"], "ints": []},
    "magika_v3_3": {"dims": ["unk__214=1..=5"], "ints": ["bytes=0..=256"]},
    "romanizer_encoder": {"dims": ["batch=1..=3", "src_len=1..=16"], "ints": ["src=4..=59"]},
}


def compile_plan(sod2: pathlib.Path, model: pathlib.Path, cache: pathlib.Path) -> pathlib.Path:
    st = sod2.stat()
    h = hashlib.sha256(f"{st.st_size}-{st.st_mtime_ns}".encode())
    h.update(model.read_bytes())
    plan = cache / f"{model.stem}-{h.hexdigest()[:12]}.sod2"
    if not plan.exists():
        r = subprocess.run([str(sod2), "compile", str(model), "-o", str(plan)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{model.stem}: compile failed: {r.stderr.strip()[-300:]}")
    return plan


def fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))


def run(cmd: list[str], timeout: float) -> tuple[int, str]:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f} s"
    return r.returncode, (r.stdout + r.stderr).strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["soak", "concurrent", "both"], default="both")
    ap.add_argument("--runs", type=int, default=500, help="soak runs per model (acceptance: 100000)")
    ap.add_argument("--seconds", type=float, default=20, help="concurrency duration per model (acceptance: 600)")
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--sod2", type=pathlib.Path, default=ROOT / "target" / "release" / "sod2")
    ap.add_argument("--soak", type=pathlib.Path, default=ROOT / "target" / "release" / "examples" / "soak",
                    help="the example binary (cargo build --release -p sod2-runtime --example soak)")
    ap.add_argument("--plans", type=pathlib.Path, default=ROOT / ".cache" / "soak-plans")
    args = ap.parse_args()
    for b in (args.sod2, args.soak):
        if not b.exists():
            print(f"error: {b} missing (cargo build --release -p sod2 && cargo build --release -p sod2-runtime --example soak)")
            return 2
    args.plans.mkdir(parents=True, exist_ok=True)
    jobs = []  # (mode, name, model path, spec)
    if args.mode in ("soak", "both"):
        jobs += [("soak", n, ZOO / f"{n}.onnx", s) for n, s in ZOO_MODELS.items()]
    if args.mode in ("concurrent", "both"):
        jobs += [("concurrent", n, ZOO / f"{n}.onnx", s) for n, s in ZOO_MODELS.items()]
        jobs += [("concurrent", n, CORPUS / f"{n}.onnx", s) for n, s in CORPUS_MODELS.items()]
    if args.only:
        jobs = [j for j in jobs if j[1] in args.only]
    soak_rows, conc_rows, failures = [], [], 0
    t_all = time.time()
    for mode, name, model, spec in jobs:
        if not model.exists():
            print(f"error: {model} missing (scripts/zoo/prepare.py, scripts/corpus/fetch.py)")
            return 2
        plan = compile_plan(args.sod2, model, args.plans)
        cmd = [str(args.soak), str(plan), "--mode", mode]
        cmd += [x for d in spec["dims"] for x in ("--dim", d)]
        cmd += [x for d in spec["ints"] for x in ("--ints", d)]
        if mode == "soak":
            cmd += ["--runs", str(args.runs)]
            timeout = 600 + args.runs * 0.5
        else:
            cmd += ["--seconds", str(args.seconds), "--sessions", str(args.sessions)]
            timeout = 600 + args.seconds * 2
        t0 = time.time()
        rc, out = run(cmd, timeout)
        f = fields(out.splitlines()[0] if out else "")
        ok = rc == 0
        failures += 0 if ok else 1
        print(f"[{time.time() - t0:6.1f} s] {mode} {name}: {'ok' if ok else 'FAIL'}", flush=True)
        print("    " + out.replace("\n", "\n    ")[:2000], flush=True)
        if mode == "soak":
            soak_rows.append((name, f.get("runs", "-"), f.get("largest", "-"), f.get("rss_warm_kib", "-"), f.get("rss_end_kib", "-"),
                              f.get("rss_max_kib", "-"), f.get("growth_pct", "-"), f.get("us_per_run", "-"), "ok" if ok else "FAIL"))
        else:
            conc_rows.append((name, f.get("runs", "-"), f.get("per_thread", "-"), f.get("mismatches", "-"), "ok" if ok else "FAIL"))
    table(soak_rows, f"Soak: {args.runs} runs per model, RSS in KiB (warm: after warm-up; growth = end vs warm)",
          ["model", "runs", "largest binding", "RSS warm", "RSS end", "RSS max", "growth %", "µs/run", "verdict"])
    table(conc_rows, f"Concurrency: {args.sessions} sessions on one Arc<Plan>, {args.seconds:g} s per model, bitwise vs 1-thread reference",
          ["model", "runs", "runs per thread (intra-op threads:runs)", "mismatches", "verdict"])
    print(f"\nsoak.py: {len(jobs) - failures} of {len(jobs)} checks pass in {time.time() - t_all:.0f} s")
    return 1 if failures else 0


def table(rows, title, header):
    """Prints `rows` as a Markdown table under `title` (nothing when there are none)."""
    if not rows:
        return
    print(f"\n## {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")


if __name__ == "__main__":
    sys.exit(main())
