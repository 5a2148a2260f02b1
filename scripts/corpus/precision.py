"""f16 and bf16 models: the real-model corpus converted to half precision, run by sod2.

Each float32 corpus model (the int8 ones excepted) is converted as ONNX's float16 converters
do without keeping I/O types: every float32 initializer, `Constant` tensor, graph input/output,
value_info and `Cast(to=float)` becomes float16 (or bfloat16). sod2 compiles the converted model
with no flags and runs every corpus case; each output must have the declared element type, be
finite where the oracle's output is, and lie within

    |a - b| <= TOL * (|b| + max|b|)        TOL = 1e-2 (f16), 5e-2 (bf16)

of the oracle: ONNX Runtime in float32 on the original model with its weights rounded to the
half type, fed the rounded inputs, and every main-graph node's float output rounded to the half
type and back (a Cast pair; for bfloat16 only from opset 13, where Cast reads it): float32
arithmetic with half-precision storage, as sod2 runs such a model on the CPU. What is left is
rounding inside fused steps and the order of sums; the bound is relative to the output's largest
magnitude too, since errors compound over a network's depth. A second oracle, without the
activations rounded (the only one for bf16 below opset 13), also counts, with an absolute floor
of 1e-3 (a sigmoid's tail): each element must agree with one of them where that oracle is not
NaN; infinities must match; an output where every oracle value is NaN is listed as not compared. ONNX Runtime cannot run the converted
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
import warnings

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

TYPES = {"f16": (TensorProto.FLOAT16, np.float16, 1e-2), "bf16": (TensorProto.BFLOAT16, ml_dtypes.bfloat16, 5e-2)}


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


def round_activations(model: onnx.ModelProto, kind: str) -> onnx.ModelProto:
    """`model` (float32) with every float32 output of a main-graph node rounded to `kind` and back
    (a Cast pair after it): float32 arithmetic whose results are stored in half precision, which
    is how sod2 runs a half-precision model on the CPU."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    elem = TYPES[kind][0]
    inferred = onnx.shape_inference.infer_shapes(model)
    floats = {vi.name for vi in list(inferred.graph.value_info) + list(inferred.graph.output)
              if vi.type.tensor_type.elem_type == TensorProto.FLOAT}
    nodes = []
    for n in g.node:
        nodes.append(n)
        for k, o in enumerate(list(n.output)):
            if o not in floats:
                continue
            full, half = f"{o}__f32", f"{o}__half"
            n.output[k] = full
            nodes.append(helper.make_node("Cast", [full], [half], to=elem))
            nodes.append(helper.make_node("Cast", [half], [o], to=TensorProto.FLOAT))
    del g.node[:]
    g.node.extend(nodes)
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
    """Rows (model, type, case, max error / max|ref|, problem, notes)."""
    rows = []
    original = onnx.load(str(path))
    for kind, (_, np_type, tol) in TYPES.items():
        conv = tmp / f"{name}-{kind}.onnx"
        onnx.save(convert(original, kind), str(conv))
        # The oracle: ONNX Runtime in float32 on the original model with the converted model's
        # weights (rounded to `kind`), fed the rounded inputs; what is left is the rounding of
        # activations, which the tolerance covers.
        opset = next((o.version for o in original.opset_import if o.domain in ("", "ai.onnx")), 0)
        weights = round_weights(original, kind)
        oracles = []  # (oracle, absolute floor): activations rounded first, then f32 activations
        if kind == "f16" or opset >= 13:  # Cast reads bfloat16 from opset 13
            emulated = tmp / f"{name}-{kind}-emulated.onnx"
            onnx.save(round_activations(weights, kind), str(emulated))
            oracles.append((Oracle(emulated), 0.0))
        rounded = tmp / f"{name}-{kind}-rounded.onnx"
        onnx.save(weights, str(rounded))
        # Without the activations rounded, an absolute floor covers outputs whose values are all
        # tiny (a sigmoid's tail).
        oracles.append((Oracle(rounded), 1e-3))
        oracle = oracles[0][0]
        plan = tmp / f"{name}-{kind}.sod2"
        r = subprocess.run([sod2, "compile", str(conv), "-o", str(plan)], capture_output=True, text=True)
        if r.returncode != 0:
            rows.append((name, kind, "-", "-", "compile: " + " ".join(r.stderr.strip().splitlines()[-1:])[:160], ""))
            continue
        for i, shapes in enumerate(cases):
            feeds = fill(shapes, np.random.default_rng(seed(name, i)))
            half = {k: (v.astype(np_type) if v.dtype == np.float32 else v) for k, v in feeds.items()}
            as_f32 = {k: (h.astype(np.float32) if feeds[k].dtype == np.float32 else h) for k, h in half.items()}
            wants = [(o.run(as_f32), floor) for o, floor in oracles]
            want = wants[0][0]
            try:
                got = sod2_run(sod2, plan, half, tmp / f"{name}-{kind}-{i}", oracle.outputs)
            except RuntimeError as e:
                rows.append((name, kind, i, "-", str(e)[:160], ""))
                continue
            worst, problems, notes = 0.0, [], []
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
                # Each element must agree with one oracle where that oracle is not NaN (the
                # emulated one gives NaN where, say, -1e9 rounds to -inf and -inf - -inf
                # follows); an infinity must be matched exactly.
                ok = np.zeros(g32.shape, dtype=bool)
                compared = np.zeros(g32.shape, dtype=bool)
                for wo, floor in wants:
                    w = wo[out].astype(np_type).astype(np.float32)  # beyond the range: inf
                    finite = np.isfinite(w)
                    scale = float(np.abs(w[finite]).max(initial=0.0))
                    close = np.abs(g32 - w) <= tol * (np.abs(w) + scale) + floor
                    ok |= np.where(finite, close & np.isfinite(g32), (g32 == w) & ~np.isnan(w))
                    compared |= ~np.isnan(w)
                    if wo is want:
                        err = np.abs(g32[finite] - w[finite])
                        worst = max(worst, float(err.max(initial=0.0)) / max(scale, 1e-12))
                if not compared.any():
                    notes.append(f"{out}: not compared (every oracle value is NaN)")
                elif not ok[compared].all():
                    k = int(np.argmax(compared & ~ok))
                    problems.append(f"{out}: {int((compared & ~ok).sum())} values outside the bound, e.g. {float(g32.flat[k]):.4g} "
                                    f"vs {float(want[out].flat[k]):.4g}")
            rows.append((name, kind, i, f"{worst:.2e}", "; ".join(problems) or None, "; ".join(notes)))
    return rows


def main() -> int:
    # Rounding to f16 overflows to inf on purpose where a model's values exceed its range.
    warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--root", type=pathlib.Path, default=HERE.parent.parent)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    cache = args.root / ".cache" / "corpus"
    rows = []
    with tempfile.TemporaryDirectory(prefix="sod2-precision-") as t:
        for m in MODELS:
            if m.expect or m.quantized or (args.only and m.name not in args.only):
                continue
            rows += check(args.sod2, m.name, model_path(cache, m), m.shapes, m.fill, pathlib.Path(t))
    print("| model | type | case | max error / max abs ref | problem |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4] or 'ok'}{'; ' + r[5] if r[5] else ''} |")
    bad = [r for r in rows if r[4]]
    models = sorted({r[0] for r in rows})
    partial = sum(1 for r in rows if r[5] and not r[4])
    print(f"\nf16/bf16: {len(rows) - len(bad)} of {len(rows)} model x type x case runs pass over {len(models)} corpus models"
          f" ({partial} with an output not compared: the oracles' values are all NaN)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
