"""The standard quantization ops (QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv) through sod2, at symbolic dims,
against ONNX Runtime.

Each model names its dims (`n`, `m`, `h`, `w`, ...) as exporters do, is compiled once with
`sod2 compile` and run at several shapes with `sod2 run --check-allocs`; every output must
match ONNX Runtime: integer outputs exactly, float outputs within 1e-5. The models use the ops
as quantized exports do: scales and zero points as constants (per tensor, per axis, per
channel), Q/DQ pairs around float ops, u8 activations with u8 or i8 weights (and i8 x i8),
batch broadcasting for MatMulInteger, groups, strides, dilations, pads and auto_pad for the
convolutions. Where ONNX Runtime's CPU provider has no kernel for a form (blocked or 16-bit
quantization at some opsets, u8 x i8 ConvInteger, int32 DequantizeLinear with a zero point),
ONNX's reference evaluator is the oracle; for per-row scales and zero points of the left
operand, which neither computes as ONNX specifies, a NumPy oracle. The script names the oracle
of each model with --verbose.

usage: python quant_ops.py --sod2 BIN [--filter REGEX] [--verbose]
"""
from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from sod2_cli import run_plan  # noqa: E402

RTOL, ATOL = 1e-5, 1e-5
F, U8, I8, U16, I16, I32 = (TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16,
                             TensorProto.INT16, TensorProto.INT32)
NP = {F: np.float32, U8: np.uint8, I8: np.int8, U16: np.uint16, I16: np.int16, I32: np.int32}
RANGE = {U8: (0, 256), I8: (-128, 128), U16: (0, 65536), I16: (-32768, 32768), I32: (-100000, 100000)}


def vi(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def model(nodes, inputs, outputs, inits=(), opset=21):
    g = helper.make_graph(nodes, "m", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def const(name, arr, dtype=None):
    return numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)


class Case:
    """A model, the shapes to run it at (symbol -> value), how to fill its float inputs, and
    (for a form neither ONNX Runtime nor the reference evaluator computes as ONNX specifies)
    a NumPy oracle of its own."""

    def __init__(self, name, m, shapes, fill=None, oracle=None):
        self.name, self.model, self.shapes = name, m, shapes
        self.fill = fill or {}
        self.oracle = oracle


def q_cases():
    out = []
    x = vi("x", F, ["n", 3, "w"])
    shapes = [dict(n=1, w=5), dict(n=2, w=17), dict(n=4, w=1)]
    # Per tensor, each integer type, with a zero point; also saturation (wide inputs).
    for t, zp in [(U8, 128), (I8, -3), (U16, 30000), (I16, -7)]:
        name = NP[t].__name__
        node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
        inits = [const("s", np.float32(0.05)), const("z", zp, NP[t])]
        out.append(Case(f"quantize_tensor_{name}", model([node], [x], [vi("y", t, None)], inits), shapes,
                        fill={"x": (-20.0, 20.0)}))
    # No zero point: uint8 (any opset), or output_dtype (opset 21).
    node = helper.make_node("QuantizeLinear", ["x", "s"], ["y"])
    out.append(Case("quantize_default_uint8", model([node], [x], [vi("y", U8, None)], [const("s", np.float32(0.1))], opset=13),
                    shapes, fill={"x": (-5.0, 30.0)}))
    node = helper.make_node("QuantizeLinear", ["x", "s"], ["y"], output_dtype=I8)
    out.append(Case("quantize_output_dtype_int8", model([node], [x], [vi("y", I8, None)], [const("s", np.float32(0.1))]),
                    shapes, fill={"x": (-15.0, 15.0)}))
    # Exact halves round to even.
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
    m = model([node], [x], [vi("y", I8, None)], [const("s", np.float32(0.5)), const("z", 0, np.int8)])
    out.append(Case("quantize_halves_to_even", m, shapes, fill={"x": "halves"}))
    # Per axis: the channel axis (1) and the last axis of a fixed width.
    for t in [U8, I8]:
        node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1)
        zp = [10, 128, 250] if t == U8 else [-5, 0, 7]
        m = model([node], [x], [vi("y", t, None)], [const("s", [0.02, 0.1, 0.5], np.float32), const("z", zp, NP[t])])
        out.append(Case(f"quantize_axis1_{NP[t].__name__}", m, shapes, fill={"x": (-10.0, 10.0)}))
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=-1)
    m = model([node], [vi("x", F, ["n", "h", 4])], [vi("y", U8, None)],
              [const("s", [0.02, 0.1, 0.5, 1.0], np.float32), const("z", [0, 50, 100, 200], np.uint8)])
    out.append(Case("quantize_axis_last", m, [dict(n=1, h=3), dict(n=3, h=8)], fill={"x": (-10.0, 10.0)}))
    # Blocked (opset 21): scales as inputs, blocks of 4 along the last axis and of 3 (ragged) along axis 0.
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1, block_size=4)
    m = model([node], [vi("x", F, ["n", 8]), vi("s", F, ["n", 2]), vi("z", I8, ["n", 2])], [vi("y", I8, None)])
    out.append(Case("quantize_blocked_last", m, [dict(n=1), dict(n=5)], fill={"x": (-10.0, 10.0), "s": (0.05, 0.5)}))
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=0, block_size=3)
    m = model([node], [vi("x", F, [5, "w"]), vi("s", F, [2, "w"]), vi("z", U8, [2, "w"])], [vi("y", U8, None)])
    out.append(Case("quantize_blocked_ragged", m, [dict(w=1), dict(w=6)], fill={"x": (-10.0, 10.0), "s": (0.05, 0.5)}))
    return out


def dq_cases():
    out = []
    shapes = [dict(n=1, w=5), dict(n=3, w=9)]
    for t, zp in [(U8, 128), (I8, -3), (U16, 30000), (I16, -7), (I32, 1000)]:
        node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"])
        m = model([node], [vi("x", t, ["n", 3, "w"])], [vi("y", F, None)], [const("s", np.float32(0.05)), const("z", zp, NP[t])])
        out.append(Case(f"dequantize_tensor_{NP[t].__name__}", m, shapes))
    node = helper.make_node("DequantizeLinear", ["x", "s"], ["y"])
    m = model([node], [vi("x", I8, ["n", 3, "w"])], [vi("y", F, None)], [const("s", np.float32(0.25))])
    out.append(Case("dequantize_no_zero_point", m, shapes))
    for t in [U8, I8]:
        node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=1)
        zp = [10, 128, 250] if t == U8 else [-5, 0, 7]
        m = model([node], [vi("x", t, ["n", 3, "w"])], [vi("y", F, None)], [const("s", [0.02, 0.1, 0.5], np.float32), const("z", zp, NP[t])])
        out.append(Case(f"dequantize_axis1_{NP[t].__name__}", m, shapes))
    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=1, block_size=2)
    m = model([node], [vi("x", U8, ["n", 5]), vi("s", F, ["n", 3]), vi("z", U8, ["n", 3])], [vi("y", F, None)])
    out.append(Case("dequantize_blocked", m, [dict(n=1), dict(n=4)], fill={"s": (0.05, 0.5)}))
    # A Q/DQ pair around a float op, as quantized exports write it (per-channel weights).
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1]),
    ]
    rng = np.random.default_rng(7)
    inits = [const("xs", np.float32(0.04)), const("xz", 120, np.uint8),
             const("wq", rng.integers(-127, 128, (4, 3, 3, 3)), np.int8),
             const("ws", [0.01, 0.02, 0.03, 0.015], np.float32), const("wz", [0, 0, 0, 0], np.int8)]
    m = model(nodes, [vi("x", F, ["n", 3, "h", "w"])], [vi("y", F, None)], inits)
    out.append(Case("qdq_conv_per_channel", m, [dict(n=1, h=5, w=6), dict(n=2, h=8, w=3)], fill={"x": (-4.0, 4.0)}))
    return out


def dyn_cases():
    out = []
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    m = model([node], [vi("x", F, ["n", "d"])], [vi("y", U8, None), vi("s", F, None), vi("z", U8, None)], opset=13)
    shapes = [dict(n=1, d=7), dict(n=4, d=33), dict(n=2, d=1)]
    for name, fill in [("mixed", (-3.0, 5.0)), ("positive", (0.5, 9.0)), ("negative", (-9.0, -0.25))]:
        out.append(Case(f"dynamic_quantize_{name}", m, shapes, fill={"x": fill}))
    # Feeding an integer product, as dynamically quantized exports do.
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("MatMulInteger", ["xq", "w", "xz", "wz"], ["acc"]),
             helper.make_node("Cast", ["acc"], ["accf"], to=F),
             helper.make_node("Mul", ["xs", "ws"], ["sc"]),
             helper.make_node("Mul", ["accf", "sc"], ["y"])]
    rng = np.random.default_rng(3)
    inits = [const("w", rng.integers(-128, 128, (6, 5)), np.int8), const("wz", 0, np.int8), const("ws", np.float32(0.02))]
    m = model(nodes, [vi("x", F, ["b", "t", 6])], [vi("y", F, None)], inits, opset=13)
    out.append(Case("dynamic_quantize_matmul", m, [dict(b=1, t=3), dict(b=2, t=9)], fill={"x": (-2.0, 3.0)}))
    return out


def mm_cases():
    out = []
    rng = np.random.default_rng(11)
    for ta, tb in [(U8, U8), (U8, I8), (I8, I8)]:
        tag = f"{NP[ta].__name__}_{NP[tb].__name__}"
        node = helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])
        lo, hi = RANGE[tb]
        inits = [const("b", rng.integers(lo, hi, (7, 5)), NP[tb]), const("az", 3 if ta == U8 else -2, NP[ta]),
                 const("bz", 5 if tb == U8 else 1, NP[tb])]
        m = model([node], [vi("a", ta, ["b", "m", 7])], [vi("y", I32, None)], inits, opset=10)
        out.append(Case(f"matmulinteger_{tag}", m, [dict(b=1, m=1), dict(b=3, m=6)]))
    # Per-column zero points of B; no zero points at all.
    node = helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])
    inits = [const("b", rng.integers(0, 256, (4, 3)), np.uint8), const("az", 100, np.uint8), const("bz", [1, 128, 255], np.uint8)]
    m = model([node], [vi("a", U8, ["m", 4])], [vi("y", I32, None)], inits, opset=10)
    out.append(Case("matmulinteger_per_column", m, [dict(m=1), dict(m=9)]))
    node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
    m = model([node], [vi("a", U8, ["m", "k"]), vi("b", U8, ["k", "n"])], [vi("y", I32, None)], opset=10)
    out.append(Case("matmulinteger_no_zero_points", m, [dict(m=2, k=3, n=4), dict(m=5, k=16, n=1)]))
    # Batch broadcasting: [1, m, k] x [b, k, n] and [b, 1, m, k] x [h, k, n]; both operands inputs.
    node = helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])
    inits = [const("az", 7, np.uint8), const("bz", 9, np.uint8)]
    m = model([node], [vi("a", U8, [1, "m", "k"]), vi("b", U8, ["b", "k", "n"])], [vi("y", I32, None)], inits, opset=10)
    out.append(Case("matmulinteger_broadcast", m, [dict(m=3, k=4, b=2, n=5), dict(m=1, k=8, b=3, n=2)]))
    m = model([node], [vi("a", U8, ["b", 1, "m", "k"]), vi("b", U8, ["h", "k", "n"])], [vi("y", I32, None)], inits, opset=10)
    out.append(Case("matmulinteger_broadcast4d", m, [dict(b=2, h=3, m=2, k=5, n=4)]))
    # Per-row zero points of A (ONNX: a 1-D a_zero_point has M elements, one per row; ONNX
    # Runtime has no kernel for it and the reference evaluator broadcasts it along K).
    node = helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])
    az = np.array([0, 17, 128, 255], np.uint8)
    bmat = rng.integers(-128, 128, (5, 3)).astype(np.int8)
    inits = [const("az", az), const("b", bmat), const("bz", 2, np.int8)]
    m = model([node], [vi("a", U8, ["b", 4, 5])], [vi("y", I32, None)], inits, opset=10)
    per_row = lambda f: [(f["a"].astype(np.int32) - az.astype(np.int32)[:, None]) @ (bmat.astype(np.int32) - 2)]  # noqa: E731
    out.append(Case("matmulinteger_per_row", m, [dict(b=1), dict(b=3)], oracle=per_row))
    # 1-D operands.
    inits = [const("az", 7, np.uint8), const("bz", 9, np.uint8)]
    m = model([node], [vi("a", U8, ["k"]), vi("b", U8, ["k", "n"])], [vi("y", I32, None)], inits, opset=10)
    out.append(Case("matmulinteger_vector", m, [dict(k=6, n=3)]))
    return out


def qmm_cases():
    out = []
    rng = np.random.default_rng(13)
    for ta, tb, ty in [(U8, U8, U8), (U8, I8, U8), (I8, I8, I8), (U8, I8, I8)]:
        tag = "_".join(NP[t].__name__ for t in (ta, tb, ty))
        node = helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])
        lo, hi = RANGE[tb]
        zero = {U8: 128, I8: 0}
        inits = [const("as", np.float32(0.02)), const("az", zero[ta] + 3, NP[ta]),
                 const("b", rng.integers(lo, hi, (6, 4)), NP[tb]), const("bs", np.float32(0.01)), const("bz", zero[tb] - 2, NP[tb]),
                 const("ys", np.float32(0.05)), const("yz", zero[ty] + 1, NP[ty])]
        m = model([node], [vi("a", ta, ["b", "m", 6])], [vi("y", ty, None)], inits)
        out.append(Case(f"qlinearmatmul_{tag}", m, [dict(b=1, m=2), dict(b=3, m=7)]))
    # Per-column scales and zero points of b (as a quantizer writes per-channel weights).
    node = helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])
    inits = [const("as", np.float32(0.03)), const("az", 120, np.uint8),
             const("b", rng.integers(-128, 128, (5, 3)), np.int8), const("bs", [0.01, 0.002, 0.05], np.float32),
             const("bz", [0, 0, 0], np.int8), const("ys", np.float32(0.1)), const("yz", 100, np.uint8)]
    m = model([node], [vi("a", U8, ["m", 5])], [vi("y", U8, None)], inits)
    out.append(Case("qlinearmatmul_per_column", m, [dict(m=1), dict(m=8)]))
    # Per-row scales and zero points of a (ONNX allows them; ONNX Runtime does not, and the
    # reference evaluator broadcasts them along the columns): the f32 multiplier of each
    # (row, column), as ONNX Runtime computes its per-column ones.
    a_s = np.array([0.01, 0.03, 0.02], np.float32)
    a_z = np.array([100, 128, 90], np.uint8)
    b_s = np.array([0.02, 0.01], np.float32)
    bmat = rng.integers(-128, 128, (4, 2)).astype(np.int8)
    inits = [const("as", a_s), const("az", a_z), const("b", bmat), const("bs", b_s), const("bz", [0, 0], np.int8),
             const("ys", np.float32(0.05)), const("yz", 128, np.uint8)]
    m = model([node], [vi("a", U8, ["b", 3, 4])], [vi("y", U8, None)], inits)

    def per_row(f):
        acc = (f["a"].astype(np.int32) - a_z.astype(np.int32)[:, None]) @ bmat.astype(np.int32)
        mult = (a_s[:, None] * b_s[None, :]) / np.float32(0.05)
        y = np.rint(acc.astype(np.float32) * mult.astype(np.float32)) + 128
        return [np.clip(y, 0, 255).astype(np.uint8)]
    out.append(Case("qlinearmatmul_per_row", m, [dict(b=1), dict(b=4)], oracle=per_row))
    return out


def conv_cases(op):
    out = []
    rng = np.random.default_rng(17 if op == "ConvInteger" else 19)
    configs = [
        ("plain", dict(), 3, 4, (3, 3), 1),
        ("pads", dict(pads=[1, 1, 1, 1]), 3, 4, (3, 3), 1),
        ("strides_asym_pads", dict(pads=[0, 1, 2, 0], strides=[2, 1]), 2, 3, (3, 2), 1),
        ("dilations", dict(dilations=[2, 2], pads=[2, 2, 2, 2]), 2, 2, (3, 3), 1),
        ("groups", dict(group=2, pads=[1, 1, 1, 1]), 4, 6, (3, 3), 2),
        ("depthwise", dict(group=4, strides=[2, 2], pads=[1, 1, 1, 1]), 4, 4, (3, 3), 4),
        ("same_upper", dict(auto_pad="SAME_UPPER", strides=[2, 2]), 3, 2, (3, 3), 1),
        ("pointwise", dict(), 5, 3, (1, 1), 1),
    ]
    shapes = [dict(n=1, h=5, w=6), dict(n=2, h=9, w=4)]
    types = [(U8, U8), (U8, I8)] if op == "ConvInteger" else [(U8, U8, U8), (U8, I8, U8), (I8, I8, I8)]
    for cname, attrs, c, mo, k, g in configs:
        for tys in types:
            tx, tw = tys[0], tys[1]
            if op == "ConvInteger" and tw == I8 and "auto_pad" in attrs:
                # ONNX Runtime has no u8 x i8 ConvInteger, and the reference evaluator pads
                # SAME_UPPER wrongly for strided windows (the u8 x u8 form checks auto_pad).
                continue
            lo, hi = RANGE[tw]
            w = rng.integers(lo, hi, (mo, c // g, *k)).astype(NP[tw])
            xz = 100 if tx == U8 else -4
            per_channel = cname in ("groups", "depthwise", "pads")
            if op == "ConvInteger":
                # ONNX Runtime's ConvInteger takes scalar weight zero points only.
                wz = np.asarray(3 if tw == U8 else 1, NP[tw])
                node = helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], **attrs)
                inits = [const("w", w), const("xz", xz, NP[tx]), const("wz", wz)]
                ty = I32
                opset = 10
            else:
                ty = tys[2]
                wz = np.zeros(mo, NP[tw]) if per_channel else np.asarray(0 if tw == I8 else 128, NP[tw])
                ws = (rng.uniform(0.005, 0.03, mo) if per_channel else np.float32(0.02)).astype(np.float32)
                ins = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
                inits = [const("xs", np.float32(0.05)), const("xz", xz, NP[tx]), const("w", w), const("ws", ws), const("wz", wz),
                         const("ys", np.float32(0.2)), const("yz", 110 if ty == U8 else -3, NP[ty])]
                if cname != "plain":
                    ins.append("bias")
                    inits.append(const("bias", rng.integers(-2000, 2000, mo), np.int32))
                node = helper.make_node("QLinearConv", ins, ["y"], **attrs)
                opset = 10
            tag = "_".join(NP[t].__name__ for t in tys)
            m = model([node], [vi("x", tx, ["n", c, "h", "w"])], [vi("y", ty, None)], inits, opset=opset)
            out.append(Case(f"{op.lower()}_{cname}_{tag}", m, shapes))
    # 1-D and 3-D windows.
    node_attrs = dict(pads=[1, 1], strides=[2])
    w = rng.integers(0, 256, (3, 2, 3)).astype(np.uint8)
    if op == "ConvInteger":
        node = helper.make_node(op, ["x", "w", "xz", "wz"], ["y"], **node_attrs)
        inits = [const("w", w), const("xz", 7, np.uint8), const("wz", 9, np.uint8)]
        ty = I32
    else:
        node = helper.make_node(op, ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], **node_attrs)
        inits = [const("xs", np.float32(0.05)), const("xz", 7, np.uint8), const("w", w), const("ws", np.float32(0.01)),
                 const("wz", 9, np.uint8), const("ys", np.float32(0.3)), const("yz", 5, np.uint8)]
        ty = U8
    m = model([node], [vi("x", U8, ["n", 2, "t"])], [vi("y", ty, None)], inits, opset=10)
    out.append(Case(f"{op.lower()}_1d", m, [dict(n=1, t=7), dict(n=3, t=12)]))
    w = rng.integers(0, 256, (2, 2, 2, 2, 2)).astype(np.uint8)
    attrs3 = dict(pads=[1, 0, 1, 0, 1, 1])
    if op == "ConvInteger":
        node = helper.make_node(op, ["x", "w", "xz", "wz"], ["y"], **attrs3)
        inits = [const("w", w), const("xz", 7, np.uint8), const("wz", 9, np.uint8)]
    else:
        node = helper.make_node(op, ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], **attrs3)
        inits = [const("xs", np.float32(0.05)), const("xz", 7, np.uint8), const("w", w), const("ws", np.float32(0.01)),
                 const("wz", 9, np.uint8), const("ys", np.float32(0.3)), const("yz", 5, np.uint8)]
    m = model([node], [vi("x", U8, ["n", 2, "d", "h", "w"])], [vi("y", ty, None)], inits, opset=10)
    out.append(Case(f"{op.lower()}_3d", m, [dict(n=1, d=3, h=4, w=3), dict(n=2, d=2, h=3, w=5)]))
    return out


def cases():
    return q_cases() + dq_cases() + dyn_cases() + mm_cases() + qmm_cases() + conv_cases("ConvInteger") + conv_cases("QLinearConv")


def dims_of(v, env):
    return [d.dim_value if d.HasField("dim_value") else env[d.dim_param] for d in v.type.tensor_type.shape.dim]


def feeds(case, env, rng):
    out = {}
    for v in case.model.graph.input:
        t = v.type.tensor_type.elem_type
        dims = dims_of(v, env)
        fill = case.fill.get(v.name)
        if t == F:
            if fill == "halves":
                out[v.name] = (rng.integers(-40, 40, dims) * 0.25).astype(np.float32)
            else:
                lo, hi = fill or (-3.0, 3.0)
                out[v.name] = rng.uniform(lo, hi, dims).astype(np.float32)
        else:
            lo, hi = RANGE[t]
            out[v.name] = rng.integers(lo, hi, dims).astype(NP[t])
    return out


class Oracle:
    """ONNX Runtime where it runs the model, else ONNX's reference evaluator (`which` says
    which one answered last)."""

    def __init__(self, m):
        self.model, self.which = m, "onnxruntime"
        try:
            opts = ort.SessionOptions()
            opts.log_severity_level = 4  # a refused form falls back quietly
            self.sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception:  # no CPU kernel for this form
            self.sess = None

    def __call__(self, f):
        if self.sess is not None:
            try:
                return self.sess.run(None, f)
            except Exception:  # a form its kernel refuses at run time (int32 with a zero point)
                self.sess = None
        self.which = "reference"
        return ReferenceEvaluator(self.model).run(None, f)


def run_case(sod2, case, tmp: pathlib.Path):
    """Compiles once and runs every shape; returns (failure messages, oracle name)."""
    path = tmp / f"{case.name}.onnx"
    onnx.save(case.model, path)
    plan = tmp / f"{case.name}.sod2"
    r = subprocess.run([sod2, "compile", str(path), "-o", str(plan)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return [f"compile: {r.stderr.strip()}"], "-"
    oracle = Oracle(case.model)
    if case.oracle is not None:
        oracle = case.oracle
        oracle.which = "numpy"
    outs = [o.name for o in case.model.graph.output]
    fails = []
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    for env in case.shapes:
        f = feeds(case, env, rng)
        want = oracle(f)
        try:
            gots = run_plan(sod2, plan, f, tmp, outs, extra=("--check-allocs",), timeout=120)
        except RuntimeError as e:
            fails.append(f"{env}: {e}")
            continue
        for o, w in zip(outs, want):
            got, w = gots[o], np.asarray(w)
            if got.shape != w.shape or got.dtype != w.dtype:
                fails.append(f"{env}: {o} {got.dtype}{list(got.shape)}, expected {w.dtype}{list(w.shape)}")
            elif np.issubdtype(w.dtype, np.integer):
                if not np.array_equal(got, w):
                    diff = np.abs(got.astype(np.int64) - w.astype(np.int64))
                    fails.append(f"{env}: {o} differs at {int(np.count_nonzero(diff))} of {w.size} (max {int(diff.max())})")
            elif not np.allclose(got, w, rtol=RTOL, atol=ATOL):
                err = np.max(np.abs(got.astype(np.float64) - w))
                fails.append(f"{env}: {o} max abs error {err:.3g}")
    return fails, oracle.which


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--filter", default=None)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    selected = [c for c in cases() if not args.filter or re.search(args.filter, c.name)]
    failed = 0
    oracles = {"onnxruntime": 0, "reference": 0, "numpy": 0, "-": 0}
    with tempfile.TemporaryDirectory(prefix="sod2-quant-") as tmp:
        for case in selected:
            fails, which = run_case(args.sod2, case, pathlib.Path(tmp))
            oracles[which] += 1
            if fails:
                failed += 1
                print(f"FAIL {case.name} (vs {which})")
                for f in fails:
                    print(f"    {f}")
            elif args.verbose:
                print(f"ok   {case.name} (vs {which})")
    shapes = sum(len(c.shapes) for c in selected)
    print(f"quantization ops vs ONNX Runtime: {len(selected) - failed} of {len(selected)} models pass "
          f"({shapes} shapes; {oracles['onnxruntime']} against ONNX Runtime, {oracles['reference']} against ONNX's reference, "
          f"{oracles['numpy']} against NumPy)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
