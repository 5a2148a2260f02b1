#!/usr/bin/env python3
"""Generates the fuzz targets' seed corpora under fuzz/corpus/<target>/ (never committed).

- Plans: the zoo and real-model corpus models (.cache/zoo/*/models, .cache/corpus/models) and
  ONNX's backend node tests (every --node-stride'th; one small model per op and variant) are
  compiled with `sod2 compile` into fuzz/corpus/.plans/ (kept between runs). Plans up to each
  target's max_len become seeds: plan_load (the plan), plan_run (the plan, fuzz parameters and
  their count, see fuzz/src/lib.rs `split_params`), capi (a call program, then the plan, see
  fuzz/fuzz_targets/capi.rs). Larger plans are skipped (listed in the summary).
- onnx_compile: the ONNX files of the same models up to its max_len.
- npy: .npy files of every dtype `sod2 run` reads, ranks 0 to 4, versions 1.0 and 2.0.
max_len per target is in MAX_LEN (scripts/fuzz/smoke.sh and campaign.sh pass the same).
"""
import argparse
import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MAX_LEN = {"plan_load": 1 << 20, "plan_run": 256 << 10, "capi": 256 << 10,
           "onnx_compile": 1 << 20, "npy": 64 << 10}


def put(target: str, data: bytes, out: Path) -> bool:
    if len(data) > MAX_LEN[target]:
        return False
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)
    return True


def models(node_stride: int) -> list[tuple[str, Path]]:
    found = [(f"zoo_{p.stem}", p) for p in sorted(ROOT.glob(".cache/zoo/*/models/*.onnx"))]
    found += [(f"corpus_{p.stem}", p) for p in sorted(ROOT.glob(".cache/corpus/models/*.onnx"))]
    import onnx  # the node tests ship with the onnx package

    node = Path(onnx.__file__).parent / "backend/test/data/node"
    tests = sorted(node.glob("*/model.onnx"))
    found += [(f"node_{p.parent.name}", p) for p in tests[::node_stride]]
    return found


def compile_plans(sod2: Path, found, cache: Path, timeout: int) -> tuple[list[Path], list[str]]:
    cache.mkdir(parents=True, exist_ok=True)
    plans, failed = [], []
    for name, model in found:
        plan = cache / f"{name}.sod2"
        if not plan.exists() or plan.stat().st_mtime < model.stat().st_mtime:
            try:
                r = subprocess.run([str(sod2), "compile", str(model), "-o", str(plan)],
                                   capture_output=True, timeout=timeout)
                ok = r.returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
            if not ok:
                plan.unlink(missing_ok=True)
                failed.append(name)
                continue
        plans.append(plan)
    return plans, failed


def run_params(i: int) -> bytes:
    """Fuzz parameters of plan_run: per input, one byte per dim (< 0x80 keeps a literal dim),
    a rank byte, a size byte, data bytes; varied a little per seed."""
    p = bytes([1 + i % 4, 2, 3, 1, 0, 0, 7, 0x3f, 0x80, 1, 2, 0, 0]) + bytes(range(16 + i % 16))
    return p + bytes([len(p)])


def capi_program(variant: int) -> bytes:
    """A call program for the capi target: load the blob sealed, make two sessions, bind inputs,
    prepare, run, read and copy outputs, then misuse (stale handles, destroyed plan, rerun)."""
    load = [0, 18]  # mode 18: the whole blob, sealed, out-pointer set
    session = [5, 0, 1]
    set_input = [7, 0, 0, 2 if variant % 2 else 9, 2, 1, 4, 3, 7, 0x0f]  # f32 / i64, 1x4, exact size
    prog = load + session + set_input + [8, 0, 1] + [11, 0] + [12, 0, 0, 0] + [13, 0, 0, 3, 1]
    prog += [5, 0, 1] + [9, 1, 1] + [11, 1] + [2, 0] + [11, 0] + [6, 0] + [6, 0] + [11, 0]
    prog += [14, 2] + [3, 0, 2] + [4, 0, 0, 0, 1] + [1, variant % 3]
    return struct.pack("<H", len(prog)) + bytes(prog)


def npy_seeds(out: Path) -> int:
    import io

    n = 0
    dtypes = ["<f4", "<f8", "<f2", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "|b1"]
    shapes = [(), (3,), (2, 3), (1, 2, 2), (2, 1, 2, 1), (0, 4)]
    for k, dt in enumerate(dtypes):
        for shape in shapes[k % 2::2] + [shapes[k % len(shapes)]]:
            a = (np.arange(int(np.prod(shape))) % 3).astype(dt).reshape(shape)
            for version in [(1, 0), (2, 0)]:
                b = io.BytesIO()
                np.lib.format.write_array(b, a, version=version)
                n += put("npy", b.getvalue(), out)
    # ml_dtypes' 1- and 2-byte voids (int4/int2, bfloat16)
    for dt, width in [("|V1", 1), ("<V2", 2)]:
        hdr = f"{{'descr': '{dt}', 'fortran_order': False, 'shape': (4,), }}".ljust(117) + "\n"
        data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode()
        n += put("npy", data + bytes(range(4 * width)), out)
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sod2", type=Path, default=ROOT / "target/release/sod2")
    ap.add_argument("--out", type=Path, default=ROOT / "fuzz/corpus")
    ap.add_argument("--node-stride", type=int, default=4)
    ap.add_argument("--timeout", type=int, default=300, help="seconds per sod2 compile")
    args = ap.parse_args()
    found = models(args.node_stride)
    plans, failed = compile_plans(args.sod2, found, args.out / ".plans", args.timeout)
    counts = {t: 0 for t in MAX_LEN}
    skipped = {t: [] for t in MAX_LEN}
    for i, plan in enumerate(plans):
        b = plan.read_bytes()
        for t, data in [("plan_load", b), ("plan_run", b + run_params(i)),
                        ("capi", capi_program(i) + b)]:
            if put(t, data, args.out):
                counts[t] += 1
            else:
                skipped[t].append(plan.stem)
    for name, model in found:
        if put("onnx_compile", model.read_bytes(), args.out):
            counts["onnx_compile"] += 1
        else:
            skipped["onnx_compile"].append(name)
    counts["npy"] = npy_seeds(args.out)
    print(f"models: {len(found)}, plans compiled: {len(plans)}, compile failures: {len(failed)}"
          + (f" ({', '.join(failed[:12])}{' ...' if len(failed) > 12 else ''})" if failed else ""))
    for t, n in counts.items():
        big = skipped[t]
        print(f"{t}: {n} seeds (max_len {MAX_LEN[t]})"
              + (f"; {len(big)} over max_len skipped: {', '.join(big[:8])}{' ...' if len(big) > 8 else ''}" if big else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
