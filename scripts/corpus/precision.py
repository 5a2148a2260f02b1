"""f16 and bf16 models: the real-model corpus converted to half precision, run by sod2.

Each float32 corpus model (the int8 ones excepted) is converted as ONNX's float16 converters
do without keeping I/O types: every float32 initializer, `Constant` tensor, graph input/output,
value_info and `Cast(to=float)` becomes float16 (or bfloat16). sod2 compiles the converted model
with no flags and runs every corpus case; each output must have the declared element type, be
finite where the oracle's output is, and lie within

    |a - b| <= TOL * (|b| + max|b|)        TOL = 2e-2 (f16), 8e-2 (bf16)

of the oracle: ONNX Runtime in float32 on the original model with its weights rounded to the
half type, fed the rounded inputs, so that what is compared is the rounding of activations
(half precision keeps 11 / 8 significant bits; errors compound over a network's depth, so the
bound is relative to the output's largest magnitude too). ONNX Runtime cannot run the converted
models themselves: its CPU provider refuses most of them (type constraints of Conv, LSTM,
Resize, ...).

usage: python precision.py --sod2 BIN [--only NAME ...] [--root REPO_ROOT]
"""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "zoo"))
from catalog import MODELS  # noqa: E402
from check import Oracle, seed, sod2_run  # noqa: E402
from fetch import model_path  # noqa: E402

TYPES = {"f16": (TensorProto.FLOAT16, np.float16, 2e-2), "bf16": (TensorProto.BFLOAT16, ml_dtypes.bfloat16, 8e-2)}


def half_tensor(t: TensorProto, kind: str) -> TensorProto:
    a = numpy_helper.to_array(t)
    if kind == "f16":
        return numpy_helper.from_array(a.astype(np.float16), t.name)
    bits = a.astype(ml_dtypes.bfloat16).view(np.uint16)
    return helper.make_tensor(t.name, TensorProto.BFLOAT16, a.shape, bits.tobytes(), raw=True)


def round_weights(model: onnx.ModelProto, kind: str) -> onnx.ModelProto:
    """A float32 copy of `model` whose float32 initializers and constants are rounded to `kind`."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    np_type = TYPES[kind][1]

    def rounded(t: TensorProto) -> TensorProto:
        return numpy_helper.from_array(numpy_helper.to_array(t).astype(np_type).astype(np.float32), t.name)

    def graph(g: onnx.GraphProto) -> None:
        for i, t in enumerate(g.initializer):
            if t.data_type == TensorProto.FLOAT:
                g.initializer[i].CopyFrom(rounded(t))
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(rounded(a.t))
                if a.type == onnx.AttributeProto.GRAPH:
                    graph(a.g)

    graph(m.graph)
    return m


def convert(model: onnx.ModelProto, kind: str) -> onnx.ModelProto:
    """A copy of `model` with every float32 tensor, type and Cast target in `kind`."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    elem = TYPES[kind][0]

    def graph(g: onnx.GraphProto) -> None:
        for i, t in enumerate(g.initializer):
            if t.data_type == TensorProto.FLOAT:
                g.initializer[i].CopyFrom(half_tensor(t, kind))
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
                vi.type.tensor_type.elem_type = elem
        for n in g.node:
            for a in n.attribute:
                if n.op_type in ("Cast", "EyeLike", "RandomNormal") and a.name in ("to", "dtype") and a.i == TensorProto.FLOAT:
                    a.i = elem
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(half_tensor(a.t, kind))
                if a.type == onnx.AttributeProto.GRAPH:
                    graph(a.g)

    graph(m.graph)
    return m


def check(sod2: str, name: str, path: pathlib.Path, cases, fill, tmp: pathlib.Path) -> list[tuple]:
    """Rows (model, type, case, max error / max|ref|, problem)."""
    rows = []
    original = onnx.load(str(path))
    for kind, (_, np_type, tol) in TYPES.items():
        conv = tmp / f"{name}-{kind}.onnx"
        onnx.save(convert(original, kind), str(conv))
        # The oracle: ONNX Runtime in float32 on the original model with the converted model's
        # weights (rounded to `kind`), fed the rounded inputs; what is left is the rounding of
        # activations, which the tolerance covers.
        rounded = tmp / f"{name}-{kind}-rounded.onnx"
        onnx.save(round_weights(original, kind), str(rounded))
        oracle = Oracle(rounded)
        plan = tmp / f"{name}-{kind}.sod2"
        r = subprocess.run([sod2, "compile", str(conv), "-o", str(plan)], capture_output=True, text=True)
        if r.returncode != 0:
            rows.append((name, kind, "-", "-", "compile: " + " ".join(r.stderr.strip().splitlines()[-1:])[:160]))
            continue
        for i, shapes in enumerate(cases):
            feeds = fill(shapes, np.random.default_rng(seed(name, i)))
            half = {k: (v.astype(np_type) if v.dtype == np.float32 else v) for k, v in feeds.items()}
            want = oracle.run({k: (h.astype(np.float32) if feeds[k].dtype == np.float32 else h) for k, h in half.items()})
            try:
                got = sod2_run(sod2, plan, half, tmp / f"{name}-{kind}-{i}", oracle.outputs)
            except RuntimeError as e:
                rows.append((name, kind, i, "-", str(e)[:160]))
                continue
            worst, problems = 0.0, []
            for out in oracle.outputs:
                w, g = want[out], got[out]
                if w.dtype != np.float32:
                    if not np.array_equal(g, w):
                        problems.append(f"{out}: integer output differs")
                    continue
                if kind == "bf16" and g.dtype.kind == "V" and g.dtype.itemsize == 2:
                    g = g.view(ml_dtypes.bfloat16)  # how NumPy reads bfloat16 back from .npy
                if g.dtype != np.dtype(np_type):
                    problems.append(f"{out}: element type {g.dtype}, declared {np.dtype(np_type)}")
                    continue
                g32 = g.astype(np.float32)
                scale = float(np.abs(w[np.isfinite(w)]).max(initial=0.0))
                finite = np.isfinite(w)
                if not np.array_equal(np.isfinite(g32), finite):
                    problems.append(f"{out}: non-finite values where the float32 output is finite")
                    continue
                err = np.abs(g32[finite] - w[finite])
                worst = max(worst, float(err.max(initial=0.0)) / max(scale, 1e-12))
                if np.any(err > tol * (np.abs(w[finite]) + scale)):
                    problems.append(f"{out}: max error {float(err.max()):.3g} (max|ref| {scale:.3g})")
            rows.append((name, kind, i, f"{worst:.2e}", "; ".join(problems) or None))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--root", type=pathlib.Path, default=HERE.parent.parent)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    cache = args.root / ".cache" / "corpus"
    rows = []
    with tempfile.TemporaryDirectory(prefix="sod2-precision-") as t:
        for m in MODELS:
            if m.expect or (args.only and m.name not in args.only):
                continue
            rows += check(args.sod2, m.name, model_path(cache, m), m.shapes, m.fill, pathlib.Path(t))
    print("| model | type | case | max error / max abs ref | problem |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4] or 'ok'} |")
    bad = [r for r in rows if r[4]]
    models = sorted({r[0] for r in rows})
    print(f"\nf16/bf16: {len(rows) - len(bad)} of {len(rows)} model x type x case runs pass over {len(models)} corpus models")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
