"""Ops sod2 expands at import, through sod2, against ONNX Runtime.

ONNX Runtime's float contrib ops (com.microsoft), and the standard ops of
core/onnx/src/expand_misc.rs: the losses (NegativeLogLikelihoodLoss at opsets 12, 13 and 22,
SoftmaxCrossEntropyLoss at 12 and 13: every reduction, with and without weights, ignore_index
positive and negative, log_prob), AffineGrid (2-D and 3-D, both align_corners, size from a
Shape) and Upsample (nearest and linear).

Builds one small model per op and attribute combination, with symbolic batch and length dims,
compiles it once with `sod2 compile` (no flags) and runs it at several shapes with `sod2 run`;
every output must match ONNX Runtime (rtol 1e-4, atol 1e-5). Prints a table; exits non-zero on
any failure.

usage: python contrib_tests.py --sod2 BIN
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
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from sod2_cli import run_plan  # noqa: E402

MS = "com.microsoft"
SHAPES = [(1, 1), (2, 7), (3, 16)]  # (batch, length)
HIDDEN = 12


def model(nodes, inputs, outputs, inits, opset: int = 17) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "contrib", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)])
    m.ir_version = 8
    return m


def seq_in(name: str, last: int = HIDDEN):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "len", last])


def out(name: str):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, None)


def cases(rng: np.random.Generator):
    w = lambda *s: rng.normal(0, 0.5, size=s).astype(np.float32)  # noqa: E731
    yield "Gelu", model([helper.make_node("Gelu", ["x"], ["y"], domain=MS)], [seq_in("x")], [out("y")], {})
    yield "FastGelu with bias", model([helper.make_node("FastGelu", ["x", "b"], ["y"], domain=MS)], [seq_in("x")], [out("y")], {"b": w(HIDDEN)})
    yield "FastGelu", model([helper.make_node("FastGelu", ["x"], ["y"], domain=MS)], [seq_in("x")], [out("y")], {})
    yield "BiasGelu", model([helper.make_node("BiasGelu", ["x", "b"], ["y"], domain=MS)], [seq_in("x")], [out("y")], {"b": w(HIDDEN)})
    yield "QuickGelu alpha 1.5", model([helper.make_node("QuickGelu", ["x"], ["y"], domain=MS, alpha=1.5)], [seq_in("x")], [out("y")], {})
    yield "SkipLayerNormalization", model(
        [helper.make_node("SkipLayerNormalization", ["x", "s", "g", "bt", "bias"], ["y", "", "", "sum"], domain=MS, epsilon=1e-5)],
        [seq_in("x"), seq_in("s")], [out("y"), out("sum")], {"g": w(HIDDEN), "bt": w(HIDDEN), "bias": w(HIDDEN)},
    )
    yield "SkipLayerNormalization no beta/bias", model(
        [helper.make_node("SkipLayerNormalization", ["x", "s", "g"], ["y"], domain=MS)],
        [seq_in("x"), seq_in("s")], [out("y")], {"g": w(HIDDEN)},
    )
    for ta in (0, 1):
        for tb in (0, 1):
            a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", HIDDEN, "len"] if ta else ["batch", "len", HIDDEN])
            bw = w(5, HIDDEN) if tb else w(HIDDEN, 5)
            yield f"FusedMatMul transA={ta} transB={tb} alpha 0.5", model(
                [helper.make_node("FusedMatMul", ["a", "b"], ["y"], domain=MS, alpha=0.5, transA=ta, transB=tb)], [a], [out("y")], {"b": bw},
            )
    img = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "len", "len"])
    for act, params in [("Relu", []), ("LeakyRelu", [0.2]), ("Sigmoid", []), ("Tanh", []), ("HardSigmoid", [0.3, 0.4]), ("Clip", [-0.5, 0.7]), ("", [])]:
        attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1]}
        if act:
            attrs["activation"] = act
        if params:
            attrs["activation_params"] = params
        yield f"FusedConv {act or 'no activation'}", model(
            [helper.make_node("FusedConv", ["x", "w", "bias"], ["y"], domain=MS, **attrs)], [img], [out("y")], {"w": w(4, 3, 3, 3), "bias": w(4)},
        )
    yield "FusedConv Relu with Z", model(
        [helper.make_node("FusedConv", ["x", "w", "bias", "z"], ["y"], domain=MS, kernel_shape=[1, 1], activation="Relu")],
        [img, helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 4, "len", "len"])], [out("y")], {"w": w(4, 3, 1, 1), "bias": w(4)},
    )


CLASSES = 5


def loss_cases(rng: np.random.Generator):
    """NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: (name, model); the inputs are
    `x` [batch, C(, len)], `t` [batch(, len)] and an optional weight initializer."""
    weights = rng.uniform(0.2, 2.0, size=CLASSES).astype(np.float32)
    variants = [(op, v) for op, vs in (("NegativeLogLikelihoodLoss", (12, 13, 22)), ("SoftmaxCrossEntropyLoss", (12, 13))) for v in vs]
    for op, opset in variants:
        for red in ("none", "sum", "mean"):
            for weighted in (False, True):
                for ii in (None, 2, -1):
                    for spatial in ((True,) if ii is not None or weighted else (False, True)):
                        attrs = {"reduction": red}
                        if ii is not None:
                            attrs["ignore_index"] = ii
                        ins = ["x", "t"] + (["w"] if weighted else [])
                        outs = ["y"] + (["log_prob"] if op.startswith("Softmax") and red == "mean" else [])
                        xd, td = (["batch", CLASSES, "len"], ["batch", "len"]) if spatial else (["batch", CLASSES], ["batch"])
                        name = f"{'NLL' if op.startswith('Neg') else 'SCE'}-{opset} {red}{' weight' if weighted else ''}{f' ii={ii}' if ii is not None else ''}{' N,C,d' if spatial else ' N,C'}{' log_prob' if len(outs) > 1 else ''}"
                        yield name, model(
                            [helper.make_node(op, ins, outs, **attrs)],
                            [helper.make_tensor_value_info("x", TensorProto.FLOAT, xd), helper.make_tensor_value_info("t", TensorProto.INT64, td)],
                            [out(o) for o in outs], {"w": weights} if weighted else {}, opset=opset,
                        )


MIN_LEN: dict[str, int] = {}


def other_cases():
    """AffineGrid (size from a Shape, so the grid's dims are symbolic) and Upsample."""
    for dims in (2, 3):
        spatial = ["len", 4] if dims == 2 else [3, "len", 4]
        img = helper.make_tensor_value_info("img", TensorProto.FLOAT, ["batch", 2, *spatial])
        theta = helper.make_tensor_value_info("theta", TensorProto.FLOAT, ["batch", dims, dims + 1])
        for ac in (0, 1):
            # With align_corners=1 a spatial size of 1 has no agreed grid: ONNX's reference gives
            # -1 (as sod2), ONNX Runtime 1, PyTorch 0. Those runs use len >= 2.
            if ac:
                MIN_LEN[f"AffineGrid {dims}-D align_corners={ac}"] = 2
            yield f"AffineGrid {dims}-D align_corners={ac}", model(
                [helper.make_node("Shape", ["img"], ["size"]), helper.make_node("AffineGrid", ["theta", "size"], ["y"], align_corners=ac)],
                [theta, img], [out("y")], {}, opset=20,
            )
    img = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "len", 4])
    for mode in ("nearest", "linear"):
        yield f"Upsample-9 {mode}", model(
            [helper.make_node("Upsample", ["x", "s"], ["y"], mode=mode)], [img], [out("y")], {"s": np.array([1, 1, 2, 3], np.float32)}, opset=9,
        )
        yield f"Upsample-7 {mode}", model(
            [helper.make_node("Upsample", ["x"], ["y"], mode=mode, scales=[1.0, 1.0, 3.0, 2.0])], [img], [out("y")], {}, opset=7,
        )


def feeds_for(m: onnx.ModelProto, batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feeds = {}
    ignore = next((a.i for n in m.graph.node for a in n.attribute if a.name == "ignore_index"), None)
    for vi in m.graph.input:
        dims = []
        for d in vi.type.tensor_type.shape.dim:
            dims.append({"batch": batch, "len": length}.get(d.dim_param, d.dim_value))
        if vi.type.tensor_type.elem_type == TensorProto.INT64:
            t = rng.integers(0, CLASSES, size=dims)
            if ignore is not None:
                # About a third ignored, never the first target (a mean over no target is 0/0).
                t = np.where(rng.random(size=dims) < 0.35, ignore, t)
                t.flat[0] = (ignore + 1) % CLASSES
            feeds[vi.name] = t.astype(np.int64)
        else:
            feeds[vi.name] = rng.normal(0, 1.5, size=dims).astype(np.float32)
    return feeds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    rows, failed = [], 0
    with tempfile.TemporaryDirectory(prefix="sod2-contrib-") as t:
        tmp = pathlib.Path(t)
        all_cases = [*cases(rng), *loss_cases(rng), *other_cases()]
        for k, (name, m) in enumerate(all_cases):
            path, plan = tmp / f"m{k}.onnx", tmp / f"m{k}.sod2"
            onnx.save(m, path)
            opts = ort.SessionOptions()
            # ORT's own NCHWc rewrite of FusedConv-with-Z fails on these inputs; the contrib
            # kernels as written are the reference.
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            r = subprocess.run([args.sod2, "compile", str(path), "-o", str(plan)], capture_output=True, text=True)
            if r.returncode != 0:
                rows.append((name, "-", "FAIL: " + r.stderr.strip().splitlines()[-1][:150]))
                failed += 1
                continue
            for batch, length in SHAPES:
                length = max(length, MIN_LEN.get(name, 1))
                feeds = feeds_for(m, batch, length, rng)
                want = sess.run(None, feeds)
                try:
                    gots = run_plan(args.sod2, plan, feeds, tmp / f"m{k}", [o.name for o in m.graph.output])
                except RuntimeError as e:
                    rows.append((name, f"{batch}x{length}", f"FAIL: {e}"[:160]))
                    failed += 1
                    continue
                worst, ok = 0.0, True
                for o, w in zip(m.graph.output, want):
                    got = gots[o.name]
                    if got.shape != w.shape:
                        ok = False
                        worst = float("inf")
                        continue
                    err = np.abs(got - w)
                    worst = max(worst, float(err.max()) if err.size else 0.0)
                    ok &= bool(np.all(err <= 1e-5 + 1e-4 * np.abs(w)))
                rows.append((name, f"{batch}x{length}", f"{'pass' if ok else 'FAIL'} (max abs error {worst:.2e})"))
                failed += 0 if ok else 1
    print("| expanded op | batch x len | result |")
    print("|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\nexpanded ops: {len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
