"""ONNX Runtime's float contrib ops (com.microsoft) through sod2, against ONNX Runtime itself.

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

MS = "com.microsoft"
SHAPES = [(1, 1), (2, 7), (3, 16)]  # (batch, length)
HIDDEN = 12


def model(nodes, inputs, outputs, inits) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "contrib", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
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


def feeds_for(m: onnx.ModelProto, batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feeds = {}
    for vi in m.graph.input:
        dims = []
        for d in vi.type.tensor_type.shape.dim:
            dims.append({"batch": batch, "len": length}.get(d.dim_param, d.dim_value))
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
        for k, (name, m) in enumerate(cases(rng)):
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
                feeds = feeds_for(m, batch, max(length, 1), rng)
                want = sess.run(None, feeds)
                ins = []
                for i, (kname, v) in enumerate(feeds.items()):
                    p = tmp / f"m{k}_{i}.npy"
                    np.save(p, v)
                    ins.append(f"--input={kname}={p}")
                od = tmp / f"m{k}_out"
                r = subprocess.run([args.sod2, "run", str(plan), *ins, "--out", str(od)], capture_output=True, text=True)
                if r.returncode != 0:
                    rows.append((name, f"{batch}x{length}", "FAIL: " + r.stderr.strip().splitlines()[-1][:150]))
                    failed += 1
                    continue
                worst, ok = 0.0, True
                for o, w in zip(m.graph.output, want):
                    got = np.load(od / f"{o.name}.npy")
                    if got.shape != w.shape:
                        ok = False
                        worst = float("inf")
                        continue
                    err = np.abs(got - w)
                    worst = max(worst, float(err.max()) if err.size else 0.0)
                    ok &= bool(np.all(err <= 1e-5 + 1e-4 * np.abs(w)))
                rows.append((name, f"{batch}x{length}", f"{'pass' if ok else 'FAIL'} (max abs error {worst:.2e})"))
                failed += 0 if ok else 1
    print("| contrib op | batch x len | result |")
    print("|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\ncontrib ops: {len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
