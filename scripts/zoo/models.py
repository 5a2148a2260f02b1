"""The sod2 model zoo: eleven dynamic models mirroring the ten SoD² evaluation models.

Reduced width and depth, random weights (fixed seeds), the op mix and graph structure that
`torch.onnx.export` emits. Each `Spec` declares its dynamic inputs, symbol ranges, a shape sweep
(small, medium, large and awkward shapes) and input variants that drive each control-flow path.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
from onnx import helper

from builder import BOOL, F32, I64, Builder, Graph


@dataclass
class Case:
    """One oracle run: a binding of the model's dims and an input variant."""
    name: str
    dims: dict[str, int]
    variant: str = "base"


@dataclass
class Spec:
    name: str
    family: str
    build: Callable[[], onnx.ModelProto]
    ranges: dict[str, tuple[int, int]]
    sweep: list[Case]
    inputs: Callable[[dict, str, np.random.Generator], dict[str, np.ndarray]]
    random_dims: Callable[[np.random.Generator], dict[str, int]]
    variants: list[str] = field(default_factory=lambda: ["base"])

    def cases(self, n_random: int = 5) -> list[Case]:
        rng = np.random.default_rng(int(hashlib.sha256(self.name.encode()).hexdigest()[:8], 16))
        out = list(self.sweep)
        for k in range(n_random):
            out.append(Case(f"rand{k}", self.random_dims(rng), self.variants[k % len(self.variants)]))
        return out


def _scale(variant: str) -> float:
    return {"base": 1.0, "dark": 0.01, "bright": 100.0, "dim": 0.3, "mid": 10.0}[variant]


def image_inputs(name="image"):
    def make(d, variant, rng):
        x = rng.standard_normal((d.get("batch", 1), 3, d["H"], d["W"])).astype(np.float32)
        return {name: (x * _scale(variant)).astype(np.float32)}
    return make


# ------------------------------------------------------------------------------------------
# 1. StableDiffusion text encoder (CLIP-like), dynamic batch x tokens
# ------------------------------------------------------------------------------------------
def sd_text_encoder() -> onnx.ModelProto:
    b = Builder("sd_text_encoder", 1)
    g = b.main
    D, H, V, P = 64, 4, 1000, 1024
    ids = g.input("input_ids", I64, ["batch", "tokens"])
    x = g.op("Gather", [g.w([V, D], 0.02), ids], axis=0)
    s = g.dim(ids, 1)
    pos = g.op("Range", [g.ci(0, scalar=True), s, g.ci(1, scalar=True)])
    x = g.op("Add", [x, g.op("Gather", [g.w([P, D], 0.02), pos], axis=0)])
    # causal mask: triu(ones(s, s), 1) * -1e4
    su = g.unsq0(s)
    ones = g.op("ConstantOfShape", [g.cat_shape([su, su])], value=helper.make_tensor("v", F32, [1], [1.0]))
    mask = g.op("Mul", [g.op("Trilu", [ones, g.ci(1, scalar=True)], upper=1), g.cf(-1e4)])
    for _ in range(2):
        x = g.op("Add", [x, g.attention(g.layernorm(x, D), D, H, bias=mask)])
        h = g.linear(g.layernorm(x, D), D, 4 * D)
        h = g.op("Mul", [h, g.op("Sigmoid", [g.op("Mul", [h, g.cf(1.702)])])])  # quick GELU
        x = g.op("Add", [x, g.linear(h, 4 * D, D)])
    x = g.layernorm(x, D)
    g.output(g.op("Identity", [x]), F32, ["batch", "tokens", D])
    last = g.nodes[-1].output[0]
    # pooled: x[arange(b), ids.argmax(-1)] via GatherND
    am = g.op("ArgMax", [ids], axis=-1, keepdims=0)
    ar = g.op("Range", [g.ci(0, scalar=True), g.dim(ids, 0), g.ci(1, scalar=True)])
    idx = g.op("Concat", [g.op("Unsqueeze", [ar, g.ci([1])]), g.op("Unsqueeze", [am, g.ci([1])])], axis=1)
    g.output(g.op("GatherND", [last, idx]), F32, ["batch", D])
    return b.model()


def text_inputs(d, variant, rng):
    return {"input_ids": rng.integers(0, 1000, (d["batch"], d["tokens"])).astype(np.int64)}


# ------------------------------------------------------------------------------------------
# 2. StableDiffusion UNet: ResBlocks, GroupNorm, self/cross attention, down/up with skips
# ------------------------------------------------------------------------------------------
def sd_unet() -> onnx.ModelProto:
    b = Builder("sd_unet", 2)
    g = b.main
    C, T, DC = 16, 32, 32
    x = g.input("sample", F32, ["batch", 4, "H", "W"])
    t = g.input("timestep", F32, ["batch"])
    ctx = g.input("context", F32, ["batch", "ctx_len", DC])
    freqs = b.const_f32_vec(np.exp(-np.log(1e4) * np.arange(8) / 8).tolist())
    arg = g.op("Mul", [g.op("Unsqueeze", [t, g.ci([1])]), freqs])
    temb = g.op("Concat", [g.op("Sin", [arg]), g.op("Cos", [arg])], axis=1)
    temb = g.gemm(g.silu(g.gemm(temb, 16, T)), T, T)

    def res(h, cin, cout):
        y = g.conv(g.silu(g.groupnorm(h, cin, 4)), cin, cout, 3)
        tproj = g.op("Unsqueeze", [g.gemm(g.silu(temb), T, cout), g.ci([2, 3])])
        y = g.op("Add", [y, tproj])
        y = g.conv(g.silu(g.groupnorm(y, cout, 4)), cout, cout, 3)
        skip = h if cin == cout else g.conv(h, cin, cout, 1, p=0)
        return g.op("Add", [skip, y])

    def attn(h, c):
        n = g.groupnorm(h, c, 4)
        bsz = g.unsq0(g.dim(n, 0))
        tok = g.op("Transpose", [g.op("Reshape", [n, g.cat_shape([bsz, g.ci([c, -1])])])], perm=[0, 2, 1])
        tok = g.op("Add", [tok, g.attention(g.layernorm(tok, c), c, 2)])
        tok = g.op("Add", [tok, g.attention(g.layernorm(tok, c), c, 2, ctx=ctx, dctx=DC)])
        tok = g.op("Add", [tok, g.mlp(g.layernorm(tok, c), c, 2 * c)])
        back = g.op("Reshape", [g.op("Transpose", [tok], perm=[0, 2, 1]), g.op("Shape", [h])])
        return g.op("Add", [h, g.conv(back, c, c, 1, p=0)])

    h0 = g.conv(x, 4, C, 3)
    s1 = res(h0, C, C)
    s2 = attn(res(g.conv(s1, C, 2 * C, 3, s=2), 2 * C, 2 * C), 2 * C)
    mid = attn(res(g.conv(s2, 2 * C, 2 * C, 3, s=2), 2 * C, 2 * C), 2 * C)
    u = g.op("Concat", [g.resize_like(mid, s2), s2], axis=1)
    u = attn(res(u, 4 * C, 2 * C), 2 * C)
    u = g.op("Concat", [g.resize_like(u, s1), s1], axis=1)
    u = res(u, 3 * C, C)
    out = g.conv(g.silu(g.groupnorm(u, C, 4)), C, 4, 3)
    g.output(out, F32, ["batch", 4, "H", "W"])
    return b.model()


def unet_inputs(d, variant, rng):
    return {
        "sample": rng.standard_normal((d["batch"], 4, d["H"], d["W"])).astype(np.float32),
        "timestep": rng.uniform(0, 1000, (d["batch"],)).astype(np.float32),
        "context": rng.standard_normal((d["batch"], d["ctx_len"], 32)).astype(np.float32),
    }


# ------------------------------------------------------------------------------------------
# 3. SegmentAnything: ViT encoder (dynamic H, W), prompt encoder, two-way mask decoder
# ------------------------------------------------------------------------------------------
def sam() -> onnx.ModelProto:
    b = Builder("sam", 3)
    g = b.main
    C = 32
    img = g.input("image", F32, [1, 3, "H", "W"])
    pts = g.input("points", F32, [1, "npts", 2])
    lab = g.input("labels", I64, [1, "npts"])
    patch = g.conv(img, 3, C, 8, s=8, p=0)
    pos = g.resize_like(g.w([1, C, 8, 8], 0.02), patch, mode="linear")
    patch = g.op("Add", [patch, pos])
    tok = g.op("Transpose", [g.op("Reshape", [patch, g.ci([1, C, -1])])], perm=[0, 2, 1])
    for _ in range(2):
        tok = g.op("Add", [tok, g.attention(g.layernorm_op(tok, C), C, 4)])
        tok = g.op("Add", [tok, g.mlp(g.layernorm_op(tok, C), C, 2 * C)])
    img_emb = g.op("Reshape", [g.op("Transpose", [tok], perm=[0, 2, 1]), g.op("Shape", [patch])])
    img_emb = g.conv(img_emb, C, C, 3)
    # prompt encoder: random Fourier features of normalised coordinates + label embedding
    wh = g.op("Cast", [g.op("Slice", [g.op("Shape", [img]), g.ci([3]), g.ci([1]), g.ci([0]), g.ci([-1])])], to=F32)
    coords = g.op("Sub", [g.op("Mul", [g.op("Div", [pts, wh]), g.cf(2.0)]), g.cf(1.0)])
    proj = g.op("Mul", [g.op("MatMul", [coords, g.w([2, C // 2], 1.0)]), g.cf(6.2831853)])
    sparse = g.op("Concat", [g.op("Sin", [proj]), g.op("Cos", [proj])], axis=-1)
    sparse = g.op("Add", [sparse, g.op("Gather", [g.w([2, C], 0.02), lab], axis=0)])
    tokens = g.op("Concat", [g.w([1, 3, C], 0.02), sparse], axis=1)
    src = g.op("Transpose", [g.op("Reshape", [img_emb, g.ci([1, C, -1])])], perm=[0, 2, 1])
    tokens = g.op("Add", [tokens, g.attention(g.layernorm_op(tokens, C), C, 4)])
    tokens = g.op("Add", [tokens, g.attention(g.layernorm_op(tokens, C), C, 4, ctx=src, dctx=C)])
    src = g.op("Add", [src, g.attention(g.layernorm_op(src, C), C, 4, ctx=tokens, dctx=C)])
    tokens = g.op("Add", [tokens, g.mlp(g.layernorm_op(tokens, C), C, 2 * C)])
    emb = g.op("Reshape", [g.op("Transpose", [src], perm=[0, 2, 1]), g.op("Shape", [img_emb])])
    up = g.op("ConvTranspose", [emb, g.w([C, 16, 2, 2]), g.w([16], 0.02)], kernel_shape=[2, 2], strides=[2, 2])
    up = g.gelu(up)
    mtok = g.op("Slice", [tokens, g.ci([1]), g.ci([3]), g.ci([1])])
    hyper = g.linear(g.op("Relu", [g.linear(mtok, C, C)]), C, 16)
    masks = g.op("MatMul", [hyper, g.op("Reshape", [up, g.ci([1, 16, -1])])])
    hw = g.op("Slice", [g.op("Shape", [up]), g.ci([2]), g.ci([4])])
    masks = g.op("Reshape", [masks, g.cat_shape([g.ci([1, 2]), hw])])
    g.output(masks, F32, [1, 2, None, None])
    iou = g.gemm(g.op("Gather", [tokens, g.ci(0, scalar=True)], axis=1), C, 2)
    g.output(iou, F32, [1, 2])
    return b.model()


def sam_inputs(d, variant, rng):
    n = d["npts"]
    pts = rng.uniform(0, 1, (1, n, 2)) * np.array([d["W"], d["H"]])
    return {
        "image": rng.standard_normal((1, 3, d["H"], d["W"])).astype(np.float32),
        "points": pts.astype(np.float32),
        "labels": rng.integers(0, 2, (1, n)).astype(np.int64),
    }


# ------------------------------------------------------------------------------------------
# 4. Conformer: conv subsampling, masked MHSA, depthwise conv module (dynamic batch x time)
# ------------------------------------------------------------------------------------------
def conformer() -> onnx.ModelProto:
    b = Builder("conformer", 4)
    g = b.main
    D = 48
    feats = g.input("features", F32, ["batch", "time", 40])
    lens = g.input("lengths", I64, ["batch"])
    x = g.op("Relu", [g.conv(g.op("Unsqueeze", [feats, g.ci([1])]), 1, 8, 3, s=2, p=0)])
    x = g.op("Relu", [g.conv(x, 8, 8, 3, s=2, p=0)])
    x = g.op("Transpose", [x], perm=[0, 2, 1, 3])
    x = g.op("Reshape", [x, g.cat_shape([g.unsq0(g.dim(x, 0)), g.unsq0(g.dim(x, 1)), g.ci([72])])])
    x = g.linear(x, 72, D)
    for _ in range(2):
        lens = g.op("Add", [g.op("Div", [g.op("Sub", [lens, g.ci(3, scalar=True)]), g.ci(2, scalar=True)]), g.ci(1, scalar=True)])
    t2 = g.dim(x, 1)
    rng_t = g.op("Range", [g.ci(0, scalar=True), t2, g.ci(1, scalar=True)])
    valid = g.op("Less", [g.op("Unsqueeze", [rng_t, g.ci([0])]), g.op("Unsqueeze", [lens, g.ci([1])])])
    bias = g.op("Unsqueeze", [g.op("Where", [valid, g.cf(0.0), g.cf(-1e4)]), g.ci([1, 2])])

    def ffn(h):
        return g.linear(g.silu(g.linear(g.layernorm(h, D), D, 2 * D)), 2 * D, D)

    for _ in range(2):
        x = g.op("Add", [x, g.op("Mul", [ffn(x), g.cf(0.5)])])
        x = g.op("Add", [x, g.attention(g.layernorm(x, D), D, 4, bias=bias)])
        y = g.op("Transpose", [g.layernorm(x, D)], perm=[0, 2, 1])
        y = g.conv1d(y, D, 2 * D, 1)
        a, gate = g.op("Split", [y], n_out=2, axis=1)
        y = g.op("Mul", [a, g.op("Sigmoid", [gate])])
        y = g.conv1d(y, D, D, 15, groups=D)
        y = g.op("BatchNormalization", [y, b.ones_ish([D]), g.w([D], 0.02), g.w([D], 0.02), b.ones([D])], epsilon=1e-5)
        y = g.conv1d(g.silu(y), D, D, 1)
        x = g.op("Add", [x, g.op("Transpose", [y], perm=[0, 2, 1])])
        x = g.layernorm(g.op("Add", [x, g.op("Mul", [ffn(x), g.cf(0.5)])]), D)
    g.output(x, F32, ["batch", None, D])
    g.output(g.op("Identity", [lens]), I64, ["batch"])
    return b.model()


def conformer_inputs(d, variant, rng):
    bsz, t = d["batch"], d["time"]
    lens = rng.integers(7, t + 1, (bsz,))
    lens[0] = t
    return {
        "features": rng.standard_normal((bsz, t, 40)).astype(np.float32),
        "lengths": lens.astype(np.int64),
    }


# ------------------------------------------------------------------------------------------
# 5. CodeBERT (RoBERTa encoder): position ids from the padding mask, extended attention mask
# ------------------------------------------------------------------------------------------
def codebert(layers: int = 2, D: int = 64, V: int = 1000, P: int = 600, name: str = "codebert") -> onnx.ModelProto:
    b = Builder(name, 5)
    g = b.main
    ids = g.input("input_ids", I64, ["batch", "seq"])
    am = g.input("attention_mask", I64, ["batch", "seq"])
    notpad = g.op("Cast", [g.op("Not", [g.op("Equal", [ids, g.ci(1, scalar=True)])])], to=I64)
    pos = g.op("Add", [g.op("Mul", [g.op("CumSum", [notpad, g.ci(1, scalar=True)]), notpad]), g.ci(1, scalar=True)])
    tt = g.op("ConstantOfShape", [g.op("Shape", [ids])], value=helper.make_tensor("v", I64, [1], [0]))
    x = g.op("Add", [g.op("Gather", [g.w([V, D], 0.02), ids], axis=0), g.op("Gather", [g.w([P, D], 0.02), pos], axis=0)])
    x = g.layernorm(g.op("Add", [x, g.op("Gather", [g.w([1, D], 0.02), tt], axis=0)]), D)
    ext = g.op("Cast", [g.op("Unsqueeze", [am, g.ci([1, 2])])], to=F32)
    ext = g.op("Mul", [g.op("Sub", [g.cf(1.0), ext]), g.cf(-1e4)])
    for _ in range(layers):
        x = g.layernorm(g.op("Add", [x, g.attention(x, D, 4, bias=ext)]), D)
        x = g.layernorm(g.op("Add", [x, g.mlp(x, D, 4 * D)]), D)
    g.output(g.op("Identity", [x]), F32, ["batch", "seq", D])
    first = g.op("Gather", [x, g.ci(0, scalar=True)], axis=1)
    g.output(g.op("Tanh", [g.gemm(first, D, D)]), F32, ["batch", D])
    return b.model()


def codebert_inputs(d, variant, rng):
    bsz, s = d["batch"], d["seq"]
    ids = rng.integers(3, 1000, (bsz, s))
    mask = np.ones((bsz, s), np.int64)
    for i in range(1, bsz):
        n = int(rng.integers(1, s + 1))
        mask[i, n:] = 0
        ids[i, n:] = 1  # padding id
    ids[:, 0] = 0
    return {"input_ids": ids.astype(np.int64), "attention_mask": mask}


# ------------------------------------------------------------------------------------------
# 6. YOLO-V6-like: backbone, neck with Resize, anchor-free decode, NonZero/TopK/NMS postprocess
# ------------------------------------------------------------------------------------------
def yolov6() -> onnx.ModelProto:
    b = Builder("yolov6", 6)
    g = b.main
    NC = 3
    img = g.input("image", F32, [1, 3, "H", "W"])

    def cbr(x, cin, cout, k=3, s=1):
        return g.op("Relu", [g.conv(x, cin, cout, k, s=s)])

    c = cbr(cbr(img, 3, 8, s=2), 8, 16, s=2)
    p3 = cbr(c, 16, 16, s=2)
    p4 = cbr(p3, 16, 32, s=2)
    p5 = cbr(p4, 32, 32, s=2)
    n4 = cbr(g.op("Concat", [g.resize_like(cbr(p5, 32, 16, k=1), p4), p4], axis=1), 48, 16)
    n3 = cbr(g.op("Concat", [g.resize_like(cbr(n4, 16, 16, k=1), p3), p3], axis=1), 32, 16)
    all_boxes, all_scores = [], []
    for feat, stride in ((n3, 8.0), (n4, 16.0)):
        h, w = g.dim(feat, 2), g.dim(feat, 3)
        ys = g.op("Add", [g.op("Cast", [g.op("Range", [g.ci(0, scalar=True), h, g.ci(1, scalar=True)])], to=F32), g.cf(0.5)])
        xs = g.op("Add", [g.op("Cast", [g.op("Range", [g.ci(0, scalar=True), w, g.ci(1, scalar=True)])], to=F32), g.cf(0.5)])
        hw = g.cat_shape([g.unsq0(h), g.unsq0(w)])
        gx = g.op("Expand", [g.op("Unsqueeze", [xs, g.ci([0])]), hw])
        gy = g.op("Expand", [g.op("Unsqueeze", [ys, g.ci([1])]), hw])
        grid = g.op("Concat", [g.op("Unsqueeze", [gx, g.ci([-1])]), g.op("Unsqueeze", [gy, g.ci([-1])])], axis=-1)
        grid = g.op("Reshape", [grid, g.ci([1, -1, 2])])
        reg = g.op("Relu", [g.conv(feat, 16, 4, 1, p=0)])
        reg = g.op("Transpose", [g.op("Reshape", [reg, g.ci([1, 4, -1])])], perm=[0, 2, 1])
        lt = g.op("Slice", [reg, g.ci([0]), g.ci([2]), g.ci([2])])
        rb = g.op("Slice", [reg, g.ci([2]), g.ci([4]), g.ci([2])])
        x1y1 = g.op("Mul", [g.op("Sub", [grid, lt]), g.cf(stride)])
        x2y2 = g.op("Mul", [g.op("Add", [grid, rb]), g.cf(stride)])
        all_boxes.append(g.op("Concat", [x1y1, x2y2], axis=-1))
        cls = g.op("Reshape", [g.conv(feat, 16, NC, 1, p=0), g.ci([1, NC, -1])])
        all_scores.append(g.op("Sigmoid", [g.op("Transpose", [cls], perm=[0, 2, 1])]))
    boxes = g.op("Concat", all_boxes, axis=1)
    scores = g.op("Concat", all_scores, axis=1)
    g.output(boxes, F32, [1, None, 4])
    g.output(scores, F32, [1, None, NC])
    conf = g.op("ReduceMax", [scores], axes=[2], keepdims=0)
    nz = g.op("NonZero", [g.op("Greater", [conf, g.cf(0.3)])])
    idx = g.op("Gather", [nz, g.ci(1, scalar=True)], axis=0)
    cb = g.op("Gather", [boxes, idx], axis=1)
    cs = g.op("Gather", [scores, idx], axis=1)
    cc = g.op("Gather", [conf, idx], axis=1)
    k = g.op("Min", [g.op("Shape", [idx]), g.ci([100])])
    _, ti = g.op("TopK", [cc, k], n_out=2, axis=1)
    ti = g.op("Squeeze", [ti, g.ci([0])])
    tb = g.op("Gather", [cb, ti], axis=1)
    ts = g.op("Transpose", [g.op("Gather", [cs, ti], axis=1)], perm=[0, 2, 1])
    sel = g.op("NonMaxSuppression", [tb, ts, g.ci([20]), b.const_f32_vec([0.45]), b.const_f32_vec([0.3])])
    g.output(sel, I64, [None, 3])
    det = g.op("Gather", [tb, g.op("Gather", [sel, g.ci(2, scalar=True)], axis=1)], axis=1)
    g.output(det, F32, [1, None, 4])
    return b.model()


# ------------------------------------------------------------------------------------------
# Gated / early-exit CNNs (If and Loop whose choice depends on the data)
# ------------------------------------------------------------------------------------------
def _gate_logit(g: Graph, x: str, c: int, weight: float, bias: float) -> str:
    """[b] gate logit = weight * mean_c(GAP(x)) + bias, through Gemm as exported."""
    b = g.b
    w = b._init(np.full((1, c), weight / c, np.float32))
    bb = b._init(np.array([bias], np.float32))
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    return g.op("Gemm", [pooled, w, bb], transB=1)


def _block(g: Graph, x: str, c: int) -> str:
    y = g.op("Relu", [g.conv(x, c, c, 3)])
    return g.op("Relu", [g.op("Add", [g.conv(y, c, c, 3), x])])


def _if(g: Graph, cond: str, then_fn, else_fn, name: str) -> str:
    b = g.b
    outs = []
    branches = []
    for tag, fn in (("then", then_fn), ("else", else_fn)):
        sub = b.sub(f"{name}_{tag}")
        out = fn(sub)
        sub.output(out, F32, None)
        branches.append(sub.as_graph())
        outs.append(out)
    return g.op("If", [cond], then_branch=branches[0], else_branch=branches[1], name=name)


def skipnet(blocks: int = 4, name: str = "skipnet") -> onnx.ModelProto:
    b = Builder(name, 7)
    g = b.main
    x = g.input("image", F32, ["batch", 3, "H", "W"])
    x = g.op("Relu", [g.conv(x, 3, 16, 3, s=2)])
    c = 16
    for i in range(blocks):
        if i == 2:
            x = g.op("Relu", [g.conv(x, 16, 32, 3, s=2)])
            c = 32
        gate = g.op("Sigmoid", [_gate_logit(g, x, c, 2.0, -1.0)])
        cond = g.op("Greater", [g.op("ReduceMax", [gate], keepdims=0), g.cf(0.5)], name=f"gate{i}")
        cur, cc = x, c
        x = _if(g, cond, lambda s, cur=cur, cc=cc: _block(s, cur, cc), lambda s, cur=cur: s.op("Identity", [cur]), f"skip{i}")
    logits = g.gemm(g.op("Flatten", [g.op("GlobalAveragePool", [x])]), 32, 10)
    g.output(logits, F32, ["batch", 10])
    return b.model()


def dgnet() -> onnx.ModelProto:
    b = Builder("dgnet", 8)
    g = b.main
    C = 16
    x = g.input("image", F32, ["batch", 3, "H", "W"])
    x = g.op("Relu", [g.conv(x, 3, C, 3, s=2)])
    for i in range(2):
        keep = g.op("Greater", [g.op("Sigmoid", [g.op("Add", [g.conv(x, C, 1, 3, bias=False), g.cf(-1.0)])]), g.cf(0.5)])
        cgate = g.op("Cast", [g.op("Greater", [g.op("Sigmoid", [g.gemm(g.op("Flatten", [g.op("GlobalAveragePool", [x])]), C, C)]), g.cf(0.5)])], to=F32)
        cgate = g.op("Unsqueeze", [cgate, g.ci([2, 3])])
        any_kept = g.op("Greater", [g.op("ReduceSum", [g.op("Cast", [keep], to=F32)], keepdims=0), g.cf(0.0)], name=f"any_kept{i}")
        cur, kp, cg = x, keep, cgate

        def sparse(s: Graph, cur=cur, kp=kp, cg=cg):
            nhwc = s.op("Transpose", [cur], perm=[0, 2, 3, 1])
            feat = s.op("Reshape", [nhwc, s.ci([-1, C])])
            idx = s.op("Transpose", [s.op("NonZero", [s.op("Reshape", [kp, s.ci([-1])])])], perm=[1, 0])
            sel = s.op("GatherND", [feat, idx])
            y = s.op("Relu", [s.linear(sel, C, C)])
            zeros = s.op("ConstantOfShape", [s.op("Shape", [feat])], value=helper.make_tensor("v", F32, [1], [0.0]))
            dense = s.op("Transpose", [s.op("Reshape", [s.op("ScatterND", [zeros, idx, y]), s.op("Shape", [nhwc])])], perm=[0, 3, 1, 2])
            return s.op("Add", [cur, s.op("Mul", [dense, cg])])

        x = _if(g, any_kept, sparse, lambda s, cur=cur: s.op("Identity", [cur]), f"dyn{i}")
    logits = g.gemm(g.op("Flatten", [g.op("GlobalAveragePool", [x])]), C, 10)
    g.output(logits, F32, ["batch", 10])
    return b.model()


def convnet_aig() -> onnx.ModelProto:
    b = Builder("convnet_aig", 9)
    g = b.main
    x = g.input("image", F32, ["batch", 3, "H", "W"])
    x = g.op("Relu", [g.conv(x, 3, 16, 3, s=2)])
    c = 16
    for i in range(3):
        if i == 1:
            x = g.op("Relu", [g.conv(x, 16, 24, 3, s=2)])
            c = 24
        pooled = g.op("Flatten", [g.op("GlobalAveragePool", [x])])
        wg = b._init(np.stack([np.full(c, -1.0 / c), np.full(c, (1.5 + 0.5 * i) / c)]).astype(np.float32))
        logits = g.op("Gemm", [pooled, wg, b._init(np.array([0.0, -0.5], np.float32))], transB=1)
        hard = g.op("ArgMax", [logits], axis=1, keepdims=0)  # per-sample hard gate (inference)
        cond = g.op("Equal", [g.op("ReduceMax", [hard], keepdims=0), g.ci(1, scalar=True)], name=f"aig_gate{i}")
        mask = g.op("Reshape", [g.op("Cast", [hard], to=F32), g.ci([-1, 1, 1, 1])])
        cur, cc, mk = x, c, mask

        def gated(s: Graph, cur=cur, cc=cc, mk=mk):
            y = s.op("Relu", [s.conv(cur, cc, cc, 3)])
            y = s.conv(y, cc, cc, 3)
            return s.op("Relu", [s.op("Add", [cur, s.op("Mul", [y, mk])])])

        x = _if(g, cond, gated, lambda s, cur=cur: s.op("Identity", [cur]), f"aig{i}")
    logits = g.gemm(g.op("Flatten", [g.op("GlobalAveragePool", [x])]), 24, 10)
    g.output(logits, F32, ["batch", 10])
    return b.model()


def _if2(g: Graph, cond: str, then_fn, else_fn, name: str) -> list[str]:
    """An If whose branches return (logits f32, exit level i64 scalar)."""
    b = g.b
    branches = []
    for tag, fn in (("then", then_fn), ("else", else_fn)):
        sub = b.sub(f"{name}_{tag}")
        lg, lvl = fn(sub)
        sub.output(lg, F32, None)
        sub.output(lvl, I64, [])
        branches.append(sub.as_graph())
    return g.op("If", [cond], n_out=2, then_branch=branches[0], else_branch=branches[1], name=name)


def ranet() -> onnx.ModelProto:
    b = Builder("ranet", 10)
    g = b.main
    img = g.input("image", F32, ["batch", 3, "H", "W"])
    low = g.upsample(img, 0.5)
    f_low = g.op("Relu", [g.conv(g.op("Relu", [g.conv(low, 3, 16, 3, s=2)]), 16, 16, 3)])

    def head(s: Graph, f, c, temp):
        return s.op("Mul", [s.gemm(s.op("Flatten", [s.op("GlobalAveragePool", [f])]), c, 10), s.cf(temp)])

    def confident(s: Graph, logits, name):
        conf = s.op("ReduceMin", [s.op("ReduceMax", [s.op("Softmax", [logits], axis=1)], axes=[1], keepdims=0)], keepdims=0)
        return s.op("Greater", [conf, s.cf(0.6)], name=name)

    def exit_at(s: Graph, logits, level):
        return s.op("Identity", [logits]), s.op("Identity", [s.ci(level, scalar=True)])

    lg1 = head(g, f_low, 16, 0.2)
    exit1 = confident(g, lg1, "exit1")

    def stage2(s: Graph):
        f = s.op("Relu", [s.conv(img, 3, 16, 3, s=2)])
        fused = s.op("Concat", [f, s.resize_like(f_low, f)], axis=1)
        f2 = s.op("Relu", [s.conv(fused, 32, 24, 3, s=2)])
        lg2 = head(s, f2, 24, 2.0)
        exit2 = confident(s, lg2, "exit2")

        def deep(t: Graph):
            f3 = t.op("Relu", [t.conv(f2, 24, 32, 3, s=2)])
            return exit_at(t, head(t, f3, 32, 1.0), 3)

        return _if2(s, exit2, lambda t: exit_at(t, lg2, 2), deep, "level3")

    out, level = _if2(g, exit1, lambda s: exit_at(s, lg1, 1), stage2, "level2")
    g.output(g.op("Identity", [out]), F32, ["batch", 10])
    g.output(g.op("Identity", [level]), I64, [])
    return b.model()


def blockdrop() -> onnx.ModelProto:
    b = Builder("blockdrop", 11)
    g = b.main
    C, NB = 16, 4
    img = g.input("image", F32, ["batch", 3, "H", "W"])
    x = g.op("Relu", [g.conv(img, 3, C, 3, s=2)])
    # The policy network looks at the (pooled) image itself, as BlockDrop's does.
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", [img])])
    signs = np.array([1.0, -1.0, 1.0, -1.0], np.float32)[:, None]
    wp = b._init((signs * np.full((NB, 3), 10.0)).astype(np.float32))
    probs = g.op("Sigmoid", [g.op("Gemm", [pooled, wp, b._init(np.full(NB, -0.5, np.float32))], transB=1)])
    policy = g.op("Greater", [g.op("ReduceMax", [probs], axes=[0], keepdims=0), g.cf(0.5)], name="policy")
    w1 = g.w([NB, C, C, 3, 3])
    w2 = g.w([NB, C, C, 3, 3])
    body = b.sub("blockdrop_body")
    it = body.input("i", I64, [])
    cin = body.input("cond_in", BOOL, [])
    xin = body.input("x_in", F32, None)
    use = body.op("Gather", [policy, it], axis=0)
    k1 = body.op("Gather", [w1, it], axis=0)
    k2 = body.op("Gather", [w2, it], axis=0)

    def run(s: Graph):
        y = s.op("Relu", [s.op("Conv", [xin, k1], pads=[1, 1, 1, 1])])
        y = s.op("Conv", [y, k2], pads=[1, 1, 1, 1])
        return s.op("Relu", [s.op("Add", [y, xin])])

    xo = _if(body, use, run, lambda s: s.op("Identity", [xin]), "maybe_block")
    body.output(body.op("Identity", [cin]), BOOL, [])
    body.output(xo, F32, None)
    body.output(body.op("Cast", [use], to=I64), I64, [])
    del cin
    xf, decisions = g.op("Loop", [g.ci(NB, scalar=True), "", x], n_out=2, body=body.as_graph(), name="blocks")
    logits = g.gemm(g.op("Flatten", [g.op("GlobalAveragePool", [xf])]), C, 10)
    g.output(logits, F32, ["batch", 10])
    g.output(decisions, I64, [NB])
    return b.model()


# ------------------------------------------------------------------------------------------
def _hw(rng, lo=32, hi=160):
    return {"H": int(rng.integers(lo, hi)), "W": int(rng.integers(lo, hi))}


CNN_VARIANTS = ["base", "dark", "bright", "mid"]


def _cnn_sweep():
    return [
        Case("b1_32x32", {"batch": 1, "H": 32, "W": 32}),
        Case("b2_64x48", {"batch": 2, "H": 64, "W": 48}),
        Case("b1_225x303", {"batch": 1, "H": 225, "W": 303}),
        Case("b1_17x23", {"batch": 1, "H": 17, "W": 23}),
        Case("b3_96x96", {"batch": 3, "H": 96, "W": 96}),
        Case("b1_64x64_dark", {"batch": 1, "H": 64, "W": 64}, "dark"),
        Case("b1_64x64_bright", {"batch": 1, "H": 64, "W": 64}, "bright"),
        Case("b2_40x56_mid", {"batch": 2, "H": 40, "W": 56}, "mid"),
        Case("b1_48x48_dim", {"batch": 1, "H": 48, "W": 48}, "dim"),
    ]


def _cnn_rand(rng):
    return {"batch": int(rng.integers(1, 4)), **_hw(rng)}


SPECS: list[Spec] = [
    Spec("sd_text_encoder", "StableDiffusion (text)", sd_text_encoder, {"batch": (1, 8), "tokens": (1, 1024)},
         [Case("b1_s1", {"batch": 1, "tokens": 1}), Case("b1_s7", {"batch": 1, "tokens": 7}),
          Case("b2_s16", {"batch": 2, "tokens": 16}), Case("b1_s77", {"batch": 1, "tokens": 77}),
          Case("b2_s513", {"batch": 2, "tokens": 513})],
         text_inputs, lambda r: {"batch": int(r.integers(1, 5)), "tokens": int(r.integers(1, 200))}),
    Spec("sd_unet", "StableDiffusion (UNet)", sd_unet, {"batch": (1, 4), "H": (8, 128), "W": (8, 128), "ctx_len": (1, 77)},
         [Case("b1_8x8_c1", {"batch": 1, "H": 8, "W": 8, "ctx_len": 1}),
          Case("b1_16x16_c7", {"batch": 1, "H": 16, "W": 16, "ctx_len": 7}),
          Case("b2_32x24_c16", {"batch": 2, "H": 32, "W": 24, "ctx_len": 16}),
          Case("b1_33x47_c77", {"batch": 1, "H": 33, "W": 47, "ctx_len": 77}),
          Case("b1_64x64_c5", {"batch": 1, "H": 64, "W": 64, "ctx_len": 5})],
         unet_inputs, lambda r: {"batch": int(r.integers(1, 3)), "H": int(r.integers(8, 48)), "W": int(r.integers(8, 48)), "ctx_len": int(r.integers(1, 20))}),
    Spec("sam", "SegmentAnything", sam, {"H": (16, 1024), "W": (16, 1024), "npts": (1, 64)},
         [Case("64x64_p1", {"H": 64, "W": 64, "npts": 1}), Case("128x96_p2", {"H": 128, "W": 96, "npts": 2}),
          Case("225x303_p5", {"H": 225, "W": 303, "npts": 5}), Case("256x256_p7", {"H": 256, "W": 256, "npts": 7}),
          Case("97x113_p3", {"H": 97, "W": 113, "npts": 3})],
         sam_inputs, lambda r: {"H": int(r.integers(16, 200)), "W": int(r.integers(16, 200)), "npts": int(r.integers(1, 9))}),
    Spec("conformer", "Conformer (audio)", conformer, {"batch": (1, 8), "time": (7, 4096)},
         [Case("b1_t7", {"batch": 1, "time": 7}), Case("b2_t16", {"batch": 2, "time": 16}),
          Case("b1_t100", {"batch": 1, "time": 100}), Case("b3_t257", {"batch": 3, "time": 257}),
          Case("b2_t513", {"batch": 2, "time": 513})],
         conformer_inputs, lambda r: {"batch": int(r.integers(1, 4)), "time": int(r.integers(7, 300))}),
    Spec("codebert", "CodeBERT (text)", codebert, {"batch": (1, 8), "seq": (1, 514)},
         [Case("b1_s1", {"batch": 1, "seq": 1}), Case("b1_s7", {"batch": 1, "seq": 7}),
          Case("b2_s33", {"batch": 2, "seq": 33}), Case("b4_s128", {"batch": 4, "seq": 128}),
          Case("b1_s513", {"batch": 1, "seq": 513})],
         codebert_inputs, lambda r: {"batch": int(r.integers(1, 5)), "seq": int(r.integers(1, 200))}),
    Spec("yolov6", "YOLO-V6", yolov6, {"H": (32, 1280), "W": (32, 1280)},
         [Case("64x64", {"H": 64, "W": 64}), Case("96x128", {"H": 96, "W": 128}),
          Case("225x303", {"H": 225, "W": 303}), Case("320x320", {"H": 320, "W": 320}),
          Case("161x97", {"H": 161, "W": 97})],
         image_inputs(), lambda r: _hw(r, 32, 200)),
    Spec("skipnet", "SkipNet", skipnet, {"batch": (1, 8), "H": (8, 1024), "W": (8, 1024)},
         _cnn_sweep(), image_inputs(), _cnn_rand, CNN_VARIANTS),
    Spec("dgnet", "DGNet", dgnet, {"batch": (1, 8), "H": (8, 1024), "W": (8, 1024)},
         _cnn_sweep(), image_inputs(), _cnn_rand, CNN_VARIANTS),
    Spec("convnet_aig", "ConvNet-AIG", convnet_aig, {"batch": (1, 8), "H": (8, 1024), "W": (8, 1024)},
         _cnn_sweep(), image_inputs(), _cnn_rand, CNN_VARIANTS),
    Spec("ranet", "RaNet", ranet, {"batch": (1, 8), "H": (8, 1024), "W": (8, 1024)},
         _cnn_sweep(), image_inputs(), _cnn_rand, CNN_VARIANTS),
    Spec("blockdrop", "BlockDrop", blockdrop, {"batch": (1, 8), "H": (8, 1024), "W": (8, 1024)},
         _cnn_sweep(), image_inputs(), _cnn_rand, CNN_VARIANTS),
]

BY_NAME = {s.name: s for s in SPECS}
