"""GridSample, RoiAlign, Col2Im, DeformConv, MaxUnpool and TensorScatter through sod2, at
symbolic dims, against ONNX Runtime or ONNX's reference evaluator.

Each model names its dims (`n`, `h`, `w`, ...) as exporters do, is compiled once with
`sod2 compile` and run at several shapes with `sod2 run --check-allocs` (a planned run must not
allocate; the MaxUnpool models' MaxPool, whose indices output still allocates, is run without
that check); every output must match the oracle (rtol 1e-4, atol 1e-5). The oracle is ONNX's
reference evaluator where the node tests come from it (GridSample, DeformConv, TensorScatter)
and ONNX Runtime otherwise. The models use these ops as real ones do: DeformConv with its
offsets and mask computed by convolutions of its input (DCNv2), MaxUnpool of a MaxPool's
indices with and without `output_shape = Shape(x)`, Col2Im with a constant image shape and
with one read from another tensor's dims, RoiAlign at opset 10 (old coordinate default) and
16, TensorScatter as a KV-cache update.

usage: python vision_ops.py --sod2 BIN [--filter REGEX] [--verbose]
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

RTOL, ATOL = 1e-4, 1e-5
F, I64 = TensorProto.FLOAT, TensorProto.INT64


def vi(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def model(nodes, inputs, outputs, inits=(), opset=22):
    g = helper.make_graph(nodes, "m", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def const(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


class Case:
    """A model, the shapes to run it at (symbol -> value), how to fill its inputs, its oracle."""

    def __init__(self, name, m, shapes, oracle="ref", fill=None, check_allocs=True):
        self.name, self.model, self.shapes, self.oracle = name, m, shapes, oracle
        self.fill = fill or {}
        self.check_allocs = check_allocs


def grid_cases():
    out = []
    for mode in ["nearest", "linear", "cubic"]:
        for pad in ["zeros", "border", "reflection"]:
            for align in [0, 1]:
                node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=pad, align_corners=align)
                m = model([node], [vi("x", F, ["n", "c", "h", "w"]), vi("grid", F, ["n", "oh", "ow", 2])], [vi("y", F, None)])
                shapes = [dict(n=1, c=2, h=4, w=5, oh=3, ow=7), dict(n=2, c=3, h=9, w=6, oh=5, ow=4)]
                out.append(Case(f"gridsample_{mode}_{pad}_align{align}", m, shapes, fill={"grid": (-1.25, 1.25)}))
    for mode in ["nearest", "linear"]:
        node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode="border")
        m = model([node], [vi("x", F, ["n", 2, "d", "h", "w"]), vi("grid", F, ["n", "od", "oh", "ow", 3])], [vi("y", F, None)])
        shapes = [dict(n=1, d=3, h=4, w=2, od=2, oh=3, ow=2), dict(n=2, d=2, h=3, w=5, od=1, oh=4, ow=3)]
        out.append(Case(f"gridsample_volumetric_{mode}", m, shapes, fill={"grid": (-1.1, 1.1)}))
    # Opset 16's names (bilinear, bicubic), as PyTorch 1.x exports write them.
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode="bicubic", align_corners=1)
    m = model([node], [vi("x", F, ["n", 3, "h", "w"]), vi("grid", F, ["n", "oh", "ow", 2])], [vi("y", F, None)], opset=16)
    out.append(Case("gridsample_opset16_bicubic", m, [dict(n=1, h=5, w=6, oh=4, ow=4)], oracle="ort", fill={"grid": (-1.0, 1.0)}))
    return out


def roi_cases():
    out = []
    for opset, ctm in [(10, None), (16, "half_pixel"), (16, "output_half_pixel")]:
        for mode in ["avg", "max"]:
            for ratio in [0, 2]:
                attrs = dict(mode=mode, output_height=3, output_width=4, sampling_ratio=ratio, spatial_scale=0.5)
                if ctm:
                    attrs["coordinate_transformation_mode"] = ctm
                node = helper.make_node("RoiAlign", ["x", "rois", "bi"], ["y"], **attrs)
                m = model([node], [vi("x", F, ["n", "c", "h", "w"]), vi("rois", F, ["r", 4]), vi("bi", I64, ["r"])],
                          [vi("y", F, None)], opset=opset)
                shapes = [dict(n=1, c=2, h=8, w=9, r=3), dict(n=3, c=4, h=12, w=10, r=5)]
                out.append(Case(f"roialign_opset{opset}_{ctm or 'default'}_{mode}_ratio{ratio}", m, shapes, oracle="ort"))
    return out


def col2im_cases():
    out = []
    # Blocks: (5 + 2 - 3) / 1 + 1 = 5 down, (7 + 1 - 3) / 2 + 1 = 3 across.
    node = helper.make_node("Col2Im", ["x", "image", "block"], ["y"], strides=[1, 2], pads=[1, 0, 1, 1], dilations=[2, 1])
    m = model([node], [vi("x", F, ["n", 12, 15])], [vi("y", F, None)],
              [const("image", np.array([5, 7], np.int64)), const("block", np.array([2, 3], np.int64))], opset=18)
    out.append(Case("col2im_constant_shapes", m, [dict(n=1), dict(n=3)], oracle="ort"))
    # The image shape read from another tensor's dims (Shape -> Slice): symbolic output dims.
    nodes = [
        helper.make_node("Shape", ["ref"], ["s"], start=2),
        helper.make_node("Col2Im", ["x", "s", "block"], ["y"], strides=[2, 2]),
    ]
    m = model(nodes, [vi("x", F, ["n", 8, "l"]), vi("ref", F, ["n", 1, "h", "w"])], [vi("y", F, None)],
              [const("block", np.array([2, 2], np.int64))], opset=18)
    shapes = [dict(n=1, h=4, w=6, l=6), dict(n=2, h=8, w=2, l=4)]
    out.append(Case("col2im_image_from_shape", m, shapes, oracle="ort"))
    return out


def deform_cases():
    out = []
    rng = np.random.default_rng(5)
    for name, group, og, mask, bias, stride, dil in [
        ("dcnv2", 1, 1, True, True, 1, 1),
        ("groups", 2, 2, False, True, 2, 1),
        ("offset_groups_dilated", 1, 2, True, False, 1, 2),
    ]:
        c_in, c_out, k = 4, 6, 3
        pad = dil
        w = (rng.standard_normal((c_out, c_in // group, k, k)) * 0.3).astype(np.float32)
        woff = (rng.standard_normal((og * k * k * 2, c_in, k, k)) * 0.2).astype(np.float32)
        inits = [const("w", w), const("woff", woff)]
        conv = dict(kernel_shape=[k, k], pads=[pad] * 4, strides=[stride] * 2, dilations=[dil] * 2)
        nodes = [helper.make_node("Conv", ["x", "woff"], ["off"], **conv)]
        ins = ["x", "w", "off"]
        if bias:
            inits.append(const("b", rng.standard_normal(c_out).astype(np.float32)))
            ins.append("b")
        else:
            ins.append("")
        if mask:
            inits.append(const("wm", (rng.standard_normal((og * k * k, c_in, k, k)) * 0.2).astype(np.float32)))
            nodes += [helper.make_node("Conv", ["x", "wm"], ["mlog"], **conv), helper.make_node("Sigmoid", ["mlog"], ["mask"])]
            ins.append("mask")
        nodes.append(helper.make_node("DeformConv", ins, ["y"], group=group, offset_group=og, **conv))
        m = model(nodes, [vi("x", F, ["n", c_in, "h", "w"])], [vi("y", F, None)], inits)
        out.append(Case(f"deformconv_{name}", m, [dict(n=1, h=5, w=6), dict(n=2, h=7, w=4)]))
    return out


def unpool_cases():
    out = []
    pool = helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2])
    for with_shape in [False, True]:
        nodes = [pool]
        ins = ["p", "i"]
        if with_shape:
            nodes.append(helper.make_node("Shape", ["x"], ["s"]))
            ins.append("s")
        nodes.append(helper.make_node("MaxUnpool", ins, ["y"], kernel_shape=[2, 2], strides=[2, 2]))
        m = model(nodes, [vi("x", F, ["n", "c", "h", "w"])], [vi("y", F, None)])
        # Even sizes only: with an output larger than the unpooled map, ONNX's reference (whose
        # node test sod2 follows) reads the indices in the unpooled map's shape and ONNX Runtime
        # in the output's, so the two disagree there.
        shapes = [dict(n=1, c=2, h=4, w=6), dict(n=2, c=3, h=8, w=10)]
        # MaxPool's indices output runs the N-d pooling path, which still allocates per run.
        out.append(Case(f"maxunpool_{'output_shape' if with_shape else 'inferred'}", m, shapes, oracle="ort",
                        check_allocs=False))
    return out


def scatter_cases():
    out = []
    for mode in ["linear", "circular"]:
        node = helper.make_node("TensorScatter", ["past", "upd", "wi"], ["present"], mode=mode)
        m = model([node], [vi("past", F, ["b", 2, "max", 4]), vi("upd", F, ["b", 2, "s", 4]), vi("wi", I64, ["b"])],
                  [vi("present", F, None)], opset=24)
        shapes = [dict(b=1, max=6, s=1), dict(b=3, max=8, s=3)]
        out.append(Case(f"tensorscatter_{mode}", m, shapes, fill={"wi": mode}))
    return out


def cases():
    return grid_cases() + roi_cases() + col2im_cases() + deform_cases() + unpool_cases() + scatter_cases()


def feeds(case, env, rng):
    f = {}
    for vi_ in case.model.graph.input:
        dims = [env.get(d.dim_param, d.dim_value) if d.dim_param else d.dim_value for d in vi_.type.tensor_type.shape.dim]
        name = vi_.name
        if name == "rois":
            h, w = env["h"], env["w"]
            x1 = rng.uniform(-2, 2 * w - 4, dims[0])
            y1 = rng.uniform(-2, 2 * h - 4, dims[0])
            f[name] = np.stack([x1, y1, x1 + rng.uniform(0.5, w, dims[0]), y1 + rng.uniform(0.5, h, dims[0])], 1).astype(np.float32)
        elif name == "bi":
            f[name] = rng.integers(0, env["n"], dims).astype(np.int64)
        elif name == "wi":
            room = env["max"] - env["s"]
            lo, hi = (0, room + 1) if case.fill["wi"] == "linear" else (-3, env["max"] + 3)
            f[name] = rng.integers(lo, hi, dims).astype(np.int64)
        else:
            lo, hi = case.fill.get(name, (-2.0, 2.0))
            f[name] = rng.uniform(lo, hi, dims).astype(np.float32)
    return f


def run_case(sod2, case, tmp: pathlib.Path):
    """Compiles once and runs every shape; returns a list of failure messages."""
    path = tmp / f"{case.name}.onnx"
    onnx.save(case.model, path)
    plan = tmp / f"{case.name}.sod2"
    r = subprocess.run([sod2, "compile", str(path), "-o", str(plan)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return [f"compile: {r.stderr.strip()}"]
    if case.oracle == "ort":
        sess = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
        oracle = lambda f: sess.run(None, f)  # noqa: E731
    else:
        ref = ReferenceEvaluator(case.model)
        oracle = lambda f: ref.run(None, f)  # noqa: E731
    outs = [o.name for o in case.model.graph.output]
    fails = []
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    for env in case.shapes:
        f = feeds(case, env, rng)
        want = oracle(f)
        check = ("--check-allocs",) if case.check_allocs else ()
        try:
            gots = run_plan(sod2, plan, f, tmp, outs, extra=check, timeout=120)
        except RuntimeError as e:
            fails.append(f"{env}: {e}")
            continue
        for o, w in zip(outs, want):
            got = gots[o]
            if got.shape != w.shape:
                fails.append(f"{env}: {o} shape {got.shape}, expected {w.shape}")
            elif not np.allclose(got, w, rtol=RTOL, atol=ATOL):
                err = np.max(np.abs(got.astype(np.float64) - w))
                fails.append(f"{env}: {o} max abs error {err:.3g}")
    return fails


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--filter", default=None)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    selected = [c for c in cases() if not args.filter or re.search(args.filter, c.name)]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="sod2-vision-") as tmp:
        for case in selected:
            fails = run_case(args.sod2, case, pathlib.Path(tmp))
            if fails:
                failed += 1
                print(f"FAIL {case.name}")
                for f in fails:
                    print(f"    {f}")
            elif args.verbose:
                print(f"ok   {case.name}")
    shapes = sum(len(c.shapes) for c in selected)
    print(f"vision and indexing ops vs oracles: {len(selected) - failed} of {len(selected)} models pass "
          f"({shapes} shapes)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
