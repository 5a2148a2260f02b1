"""A small graph builder that emits ONNX in the form `torch.onnx.export` produces.

Layers are written the way the exporter lowers them: Linear as MatMul + Add, LayerNorm and GELU
decomposed, heads split through Shape -> Gather -> Unsqueeze -> Concat -> Reshape, GroupNorm
through Reshape -> InstanceNormalization -> Reshape, Resize with sizes computed from Shape.
Weights are random with a fixed seed, so every build is identical.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
F32 = TensorProto.FLOAT
I64 = TensorProto.INT64
BOOL = TensorProto.BOOL


class Graph:
    """Collects nodes, initializers and I/O of one (sub)graph."""

    def __init__(self, builder: "Builder", name: str):
        self.b = builder
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.inits: list[onnx.TensorProto] = []

    # ---- plumbing -------------------------------------------------------------------------
    def op(self, op_type: str, inputs: list[str], n_out: int = 1, name: str | None = None, **attrs):
        outs = [self.b.fresh(op_type) for _ in range(n_out)]
        node = helper.make_node(op_type, inputs, outs, name=name or self.b.fresh(f"/{op_type}"), **attrs)
        self.nodes.append(node)
        return outs[0] if n_out == 1 else outs

    def input(self, name: str, elem: int, shape):
        self.inputs.append(helper.make_tensor_value_info(name, elem, shape))
        return name

    def output(self, name: str, elem: int = F32, shape=None):
        self.outputs.append(helper.make_tensor_value_info(name, elem, shape))
        return name

    def as_graph(self) -> onnx.GraphProto:
        return helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits)

    # Constants live in the main graph, so subgraphs read them as outer-scope values.
    def w(self, shape, scale: float | None = None, name: str | None = None) -> str:
        return self.b.weight(shape, scale, name)

    def ci(self, values, scalar: bool = False) -> str:
        return self.b.const_i64(values, scalar)

    def cf(self, value: float) -> str:
        return self.b.const_f32(value)

    # ---- shape subgraphs, as exported -----------------------------------------------------
    def dim(self, x: str, i: int) -> str:
        """Scalar int64 dim i of x: Shape -> Gather(i)."""
        return self.op("Gather", [self.op("Shape", [x]), self.ci(i, scalar=True)], axis=0)

    def unsq0(self, s: str) -> str:
        return self.op("Unsqueeze", [s, self.ci([0])])

    def cat_shape(self, parts: list[str]) -> str:
        """Concat of 1-element int64 vectors (scalars are unsqueezed first)."""
        return self.op("Concat", parts, axis=0)

    # ---- layers -----------------------------------------------------------------------------
    def linear(self, x: str, din: int, dout: int, bias: bool = True) -> str:
        y = self.op("MatMul", [x, self.w([din, dout])])
        return self.op("Add", [y, self.w([dout], 0.02)]) if bias else y

    def gemm(self, x: str, din: int, dout: int) -> str:
        return self.op("Gemm", [x, self.w([dout, din]), self.w([dout], 0.02)], transB=1)

    def layernorm(self, x: str, d: int) -> str:
        """Decomposed LayerNorm over the last axis (as older exporters emit it)."""
        mean = self.op("ReduceMean", [x], axes=[-1], keepdims=1)
        xc = self.op("Sub", [x, mean])
        var = self.op("ReduceMean", [self.op("Pow", [xc, self.cf(2.0)])], axes=[-1], keepdims=1)
        den = self.op("Sqrt", [self.op("Add", [var, self.cf(1e-5)])])
        y = self.op("Div", [xc, den])
        return self.op("Add", [self.op("Mul", [y, self.b.ones_ish([d])]), self.w([d], 0.02)])

    def layernorm_op(self, x: str, d: int) -> str:
        return self.op("LayerNormalization", [x, self.b.ones_ish([d]), self.w([d], 0.02)], axis=-1, epsilon=1e-5)

    def gelu(self, x: str) -> str:
        """Decomposed erf GELU: x * 0.5 * (1 + erf(x / sqrt 2))."""
        e = self.op("Erf", [self.op("Div", [x, self.cf(1.4142135)])])
        return self.op("Mul", [self.op("Mul", [x, self.op("Add", [e, self.cf(1.0)])]), self.cf(0.5)])

    def silu(self, x: str) -> str:
        return self.op("Mul", [x, self.op("Sigmoid", [x])])

    def conv(self, x, cin, cout, k, s=1, p=None, groups=1, bias=True) -> str:
        p = k // 2 if p is None else p
        ins = [x, self.w([cout, cin // groups, k, k])]
        if bias:
            ins.append(self.w([cout], 0.02))
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p], group=groups)

    def conv1d(self, x, cin, cout, k, groups=1) -> str:
        return self.op(
            "Conv", [x, self.w([cout, cin // groups, k]), self.w([cout], 0.02)],
            kernel_shape=[k], pads=[k // 2, k // 2], group=groups,
        )

    def groupnorm(self, x: str, c: int, groups: int) -> str:
        """GroupNorm as torch exports it at opset 17: Reshape -> InstanceNorm -> Reshape -> affine."""
        n = self.unsq0(self.dim(x, 0))
        r = self.op("Reshape", [x, self.cat_shape([n, self.ci([groups, -1])])])
        r = self.op("InstanceNormalization", [r, self.b.ones([groups]), self.b.zeros([groups])], epsilon=1e-5)
        y = self.op("Reshape", [r, self.op("Shape", [x])])
        return self.op("Add", [self.op("Mul", [y, self.b.ones_ish([c, 1, 1])]), self.w([c, 1, 1], 0.02)])

    def split_heads(self, x: str, heads: int, hd: int) -> str:
        """[b, s, heads*hd] -> [b, heads, s, hd] through the exporter's shape subgraph."""
        b = self.unsq0(self.dim(x, 0))
        s = self.unsq0(self.dim(x, 1))
        r = self.op("Reshape", [x, self.cat_shape([b, s, self.ci([heads, hd])])])
        return self.op("Transpose", [r], perm=[0, 2, 1, 3])

    def merge_heads(self, x: str, d: int) -> str:
        t = self.op("Transpose", [x], perm=[0, 2, 1, 3])
        b = self.unsq0(self.dim(t, 0))
        s = self.unsq0(self.dim(t, 1))
        return self.op("Reshape", [t, self.cat_shape([b, s, self.ci([d])])])

    def attention(self, x: str, d: int, heads: int, ctx: str | None = None, dctx: int | None = None,
                  bias: str | None = None) -> str:
        """Multi-head attention; `ctx` for cross-attention, `bias` added to the scores (mask)."""
        hd = d // heads
        kv = ctx if ctx is not None else x
        dk = dctx if dctx is not None else d
        q = self.split_heads(self.linear(x, d, d), heads, hd)
        k = self.split_heads(self.linear(kv, dk, d), heads, hd)
        v = self.split_heads(self.linear(kv, dk, d), heads, hd)
        kt = self.op("Transpose", [k], perm=[0, 1, 3, 2])
        sc = self.op("Div", [self.op("MatMul", [q, kt]), self.cf(float(np.sqrt(hd)))])
        if bias is not None:
            sc = self.op("Add", [sc, bias])
        p = self.op("Softmax", [sc], axis=-1)
        o = self.merge_heads(self.op("MatMul", [p, v]), d)
        return self.linear(o, d, d)

    def mlp(self, x: str, d: int, hidden: int) -> str:
        return self.linear(self.gelu(self.linear(x, d, hidden)), hidden, d)

    def resize_like(self, x: str, like: str, mode: str = "nearest") -> str:
        """Resize x (NCHW) to the spatial size of `like`, sizes computed from Shape."""
        nc = self.op("Shape", [x], end=2)
        hw = self.op("Shape", [like], start=2)
        sizes = self.cat_shape([nc, hw])
        return self.op("Resize", [x, "", "", sizes], mode=mode, nearest_mode="floor",
                       coordinate_transformation_mode="asymmetric")

    def upsample(self, x: str, factor: float) -> str:
        scales = self.b.const_f32_vec([1.0, 1.0, factor, factor])
        return self.op("Resize", [x, "", scales], mode="nearest", nearest_mode="floor",
                       coordinate_transformation_mode="asymmetric")


class Builder:
    """A model: the main graph plus naming, weights and subgraphs."""

    def __init__(self, name: str, seed: int):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.counter = 0
        self.main = Graph(self, name)
        self.const_cache: dict = {}

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}_{self.counter}"

    def _init(self, arr: np.ndarray, name: str | None = None) -> str:
        name = name or self.fresh("w")
        self.main.inits.append(numpy_helper.from_array(arr, name))
        return name

    def weight(self, shape, scale=None, name=None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
        scale = scale if scale is not None else 1.0 / np.sqrt(max(fan_in, 1))
        return self._init((self.rng.standard_normal(shape) * scale).astype(np.float32), name)

    def ones_ish(self, shape) -> str:
        return self._init((1.0 + 0.1 * self.rng.standard_normal(shape)).astype(np.float32))

    def ones(self, shape) -> str:
        return self._init(np.ones(shape, np.float32))

    def zeros(self, shape) -> str:
        return self._init(np.zeros(shape, np.float32))

    def const_i64(self, values, scalar=False) -> str:
        key = ("i64", scalar, tuple(np.atleast_1d(values).tolist()))
        if key not in self.const_cache:
            arr = np.array(values, np.int64) if scalar else np.array(np.atleast_1d(values), np.int64)
            self.const_cache[key] = self._init(arr, self.fresh("const"))
        return self.const_cache[key]

    def const_f32(self, value: float) -> str:
        key = ("f32", float(value))
        if key not in self.const_cache:
            self.const_cache[key] = self._init(np.array(value, np.float32), self.fresh("const"))
        return self.const_cache[key]

    def const_f32_vec(self, values) -> str:
        return self._init(np.array(values, np.float32), self.fresh("const"))

    def sub(self, name: str) -> Graph:
        return Graph(self, name)

    def model(self) -> onnx.ModelProto:
        m = helper.make_model(
            self.main.as_graph(), opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="sod2-zoo", ir_version=8,
        )
        onnx.checker.check_model(m, full_check=True)
        return m
