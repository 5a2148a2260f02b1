"""Old opset forms (opsets 7-12) through sod2, against ONNX Runtime.

Models exported years ago (and converters that still target old opsets) use forms the current
ops replaced: attributes that became inputs (Slice's starts/ends, Pad's pads, Split's split,
Squeeze/Unsqueeze's and ReduceX's axes, TopK's k, Clip's min/max), ops that became others
(Upsample, Scatter), defaults that changed (Resize-10 samples as Upsample did) and semantics
that changed (Softmax/LogSoftmax/Hardmax before 13 coerce the input to 2-D at `axis`). Each case
is a one- or two-node model with a symbolic batch dim, compiled once with no flags (which must
not warn about the opset) and run at three batch sizes; outputs must match ONNX Runtime
(float: 1e-5 absolute and relative; integer: exactly).

usage: python old_opsets.py --sod2 BIN
"""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from sod2_cli import run_plan  # noqa: E402

F, I64 = T.FLOAT, T.INT64


def vi(name: str, elem: int, dims) -> onnx.ValueInfoProto:
    return h.make_tensor_value_info(name, elem, dims)


def const(name: str, elem: int, dims, vals) -> onnx.TensorProto:
    return h.make_tensor(name, elem, dims, vals)


def cases():
    """(name, opset, nodes, inputs (name, rest of dims), outputs (name, elem), initializers)."""
    rng = np.random.default_rng(7)
    bn = [const(n, F, [3], (rng.random(3) + 0.5).tolist()) for n in ("s", "bb", "m", "v")]
    yield "slice_attrs_9", 9, [h.make_node("Slice", ["x"], ["y"], starts=[1, 0], ends=[5, 3], axes=[1, 2])], [("x", [6, 4])], [("y", F)], []
    yield "pad_attrs_7", 7, [h.make_node("Pad", ["x"], ["y"], pads=[0, 1, 0, 0, 2, 1], mode="constant", value=1.5)], [("x", [6, 4])], [("y", F)], []
    yield "pad_reflect_7", 7, [h.make_node("Pad", ["x"], ["y"], pads=[0, 2, 1, 0, 1, 2], mode="reflect")], [("x", [6, 4])], [("y", F)], []
    yield "split_attr_7", 7, [h.make_node("Split", ["x"], ["y", "z"], axis=1, split=[2, 4])], [("x", [6, 4])], [("y", F), ("z", F)], []
    yield "squeeze_axes_7", 7, [h.make_node("Unsqueeze", ["x"], ["u"], axes=[1]), h.make_node("Squeeze", ["u"], ["y"], axes=[1])], [("x", [6, 4])], [("y", F)], []
    yield "reducesum_axes_7", 7, [h.make_node("ReduceSum", ["x"], ["y"], axes=[1], keepdims=0)], [("x", [6, 4])], [("y", F)], []
    yield "reducemean_axes_11", 11, [h.make_node("ReduceMean", ["x"], ["y"], axes=[-1])], [("x", [6, 4])], [("y", F)], []
    yield "batchnorm_spatial_7", 7, [h.make_node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["y"], epsilon=1e-3, spatial=1)], [("x", [3, 4, 4])], [("y", F)], bn
    yield "batchnorm_9", 9, [h.make_node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["y"], epsilon=1e-3)], [("x", [3, 4, 4])], [("y", F)], bn
    yield "dropout_ratio_7", 7, [h.make_node("Dropout", ["x"], ["y"], ratio=0.3)], [("x", [6, 4])], [("y", F)], []
    yield "upsample_attr_7", 7, [h.make_node("Upsample", ["x"], ["y"], scales=[1.0, 1.0, 2.0, 2.0], mode="nearest")], [("x", [3, 4, 4])], [("y", F)], []
    yield "upsample_linear_9", 9, [h.make_node("Upsample", ["x", "sc"], ["y"], mode="linear")], [("x", [3, 4, 4])], [("y", F)], [const("sc", F, [4], [1, 1, 2, 1.5])]
    yield "resize_linear_10", 10, [h.make_node("Resize", ["x", "sc"], ["y"], mode="linear")], [("x", [3, 4, 4])], [("y", F)], [const("sc", F, [4], [1, 1, 2, 1.5])]
    yield "resize_nearest_10", 10, [h.make_node("Resize", ["x", "sc"], ["y"], mode="nearest")], [("x", [3, 4, 4])], [("y", F)], [const("sc", F, [4], [1, 1, 1.5, 2.5])]
    yield "topk_k_attr_9", 9, [h.make_node("TopK", ["x"], ["y", "i"], k=2, axis=1)], [("x", [6, 4])], [("y", F), ("i", I64)], []
    yield "clip_attrs_9", 9, [h.make_node("Clip", ["x"], ["y"], min=0.2, max=0.7)], [("x", [6, 4])], [("y", F)], []
    for op in ("Softmax", "LogSoftmax", "Hardmax"):
        yield f"{op.lower()}_axis1_9", 9, [h.make_node(op, ["x"], ["y"], axis=1)], [("x", [6, 4])], [("y", F)], []
        yield f"{op.lower()}_default_axis_11", 11, [h.make_node(op, ["x"], ["y"])], [("x", [3, 2, 5])], [("y", F)], []
        yield f"{op.lower()}_axis2_12", 12, [h.make_node(op, ["x"], ["y"], axis=2)], [("x", [3, 2, 5])], [("y", F)], []
        yield f"{op.lower()}_last_12", 12, [h.make_node(op, ["x"], ["y"], axis=-1)], [("x", [3, 5])], [("y", F)], []
    yield "flatten_9", 9, [h.make_node("Flatten", ["x"], ["y"], axis=2)], [("x", [6, 4])], [("y", F)], []
    yield "argmax_9", 9, [h.make_node("ArgMax", ["x"], ["y"], axis=1, keepdims=0)], [("x", [6, 4])], [("y", I64)], []
    yield "scatter_9", 9, [h.make_node("Scatter", ["x", "idx", "upd"], ["y"], axis=1)], [("x", [6, 4]), ("idx", [1, 4]), ("upd", [1, 4])], [("y", F)], []
    yield "mvn_9", 9, [h.make_node("MeanVarianceNormalization", ["x"], ["y"])], [("x", [3, 4, 4])], [("y", F)], []
    yield "slice_inputs_10", 10, [h.make_node("Slice", ["x", "st", "en", "ax"], ["y"])], [("x", [6, 4])], [("y", F)], [const("st", I64, [1], [1]), const("en", I64, [1], [-1]), const("ax", I64, [1], [1])]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    passed, failed = 0, []
    with tempfile.TemporaryDirectory(prefix="sod2-old-opsets-") as t:
        tmp = pathlib.Path(t)
        for name, opset, nodes, ins, outs, inits in cases():
            inputs = [vi(n, I64 if n == "idx" else F, ["batch", *d]) for n, d in ins]
            graph = h.make_graph(nodes, name, inputs, [vi(n, e, None) for n, e in outs], initializer=inits)
            model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
            model.ir_version = 7
            path, plan = tmp / f"{name}.onnx", tmp / f"{name}.sod2"
            onnx.save(model, str(path))
            r = subprocess.run([args.sod2, "compile", str(path), "-o", str(plan)], capture_output=True, text=True)
            if r.returncode != 0 or "opset" in r.stderr:
                failed.append(f"{name}: compile: {(r.stderr.strip().splitlines() or ['?'])[-1][:160]}")
                continue
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            ok = True
            for batch in (1, 2, 5):
                feeds = {}
                for n, d in ins:
                    if n == "idx":
                        feeds[n] = rng.integers(0, 6, size=(batch, *d)).astype(np.int64)
                    else:
                        feeds[n] = rng.standard_normal((batch, *d)).astype(np.float32)
                want = sess.run(None, feeds)
                try:
                    gots = run_plan(args.sod2, plan, feeds, tmp / f"{name}-{batch}", [n for n, _ in outs])
                except RuntimeError as e:
                    failed.append(f"{name} batch {batch}: {e}")
                    ok = False
                    break
                for (n, _), w in zip(outs, want):
                    g = gots[n]
                    same = g.shape == w.shape and g.dtype == w.dtype and (
                        np.array_equal(g, w) if w.dtype.kind in "iub" else np.allclose(g, w, rtol=1e-5, atol=1e-5))
                    if not same:
                        failed.append(f"{name} batch {batch}: {n} differs ({g.shape} {g.dtype} vs {w.shape} {w.dtype})")
                        ok = False
            passed += ok
    for f in failed:
        print("FAIL", f)
    print(f"old opset forms: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
