"""LSTM, GRU and RNN through sod2 against ONNX Runtime, at symbolic seq and batch dims.

Builds one model per attribute combination (direction forward / reverse / bidirectional,
layout 0 / 1, with and without B, sequence_lens, initial_h, initial_c, P, clip,
linear_before_reset 0 / 1, input_forget, non-default activations with their alpha / beta,
and outputs left out by empty names), with X's seq and batch dims named (`seq`, `batch`) and
the weights as initializers, as exporters write them. Each model is compiled once with
`sod2 compile` and run at several (seq, batch) shapes with `sod2 run --check-allocs`; every
output must match ONNX Runtime's (rtol 1e-4, atol 1e-5). Sequence lengths are drawn in
1..=seq per shape.

The PyTorch export pattern comes first: a bidirectional LSTM (layout 0, no sequence_lens,
initial_h / initial_c given) whose Y goes through Transpose(0, 2, 1, 3) and Reshape(0, 0, -1),
stacked twice, compiled at every optimisation level.

usage: python rnn_ops.py --sod2 BIN [--filter REGEX] [--verbose]
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

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from sod2_cli import run_plan  # noqa: E402

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
SHAPES = [(1, 1), (5, 3), (17, 2), (3, 8), (4, 19)]  # batch 19: past the kernel's small-batch path
RTOL, ATOL = 1e-4, 1e-5


def rnn_node(name, op, x, hidden, *, dirs, layout, opt, inputs, weights, outputs, attrs, rng, in_size):
    """Adds weights (initializers) and graph inputs for one recurrent node; returns the node."""
    g = GATES[op]
    w = (rng.standard_normal((dirs, g * hidden, in_size)) * 0.6).astype(np.float32)
    r = (rng.standard_normal((dirs, g * hidden, hidden)) * 0.6).astype(np.float32)
    weights += [numpy_helper.from_array(w, f"{name}_W"), numpy_helper.from_array(r, f"{name}_R")]
    names = [x, f"{name}_W", f"{name}_R"]
    if "B" in opt:
        b = (rng.standard_normal((dirs, 2 * g * hidden)) * 0.4).astype(np.float32)
        weights.append(numpy_helper.from_array(b, f"{name}_B"))
        names.append(f"{name}_B")
    else:
        names.append("")
    if "lens" in opt:
        inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, ["batch"]))
        names.append("lens")
    else:
        names.append("")
    state = ["batch", dirs, hidden] if layout else [dirs, "batch", hidden]
    for s in ["h0", "c0"] if op == "LSTM" else ["h0"]:
        if s in opt:
            inputs.append(helper.make_tensor_value_info(f"{name}_{s}", TensorProto.FLOAT, state))
            names.append(f"{name}_{s}")
        else:
            names.append("")
    if op == "LSTM" and "P" in opt:
        p = (rng.standard_normal((dirs, 3 * hidden)) * 0.5).astype(np.float32)
        weights.append(numpy_helper.from_array(p, f"{name}_P"))
        names.append(f"{name}_P")
    while names and names[-1] == "":
        names.pop()
    return helper.make_node(op, names, outputs, name=name, hidden_size=hidden, **attrs)


def model_of(nodes, inputs, outputs, weights):
    g = helper.make_graph(nodes, "rnn", inputs, [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], weights)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 22)])
    m.ir_version = 10
    return m


def single_case(op, direction, layout, opt, attrs, want, seed):
    """A model with one recurrent node; `want`: which of Y, Y_h, Y_c are graph outputs."""
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    in_size, hidden = 4, 5
    xshape = ["batch", "seq", in_size] if layout else ["seq", "batch", in_size]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, xshape)]
    weights = []
    outs = [o if o in want else "" for o in (["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"])]
    while outs and outs[-1] == "":
        outs.pop()
    a = dict(attrs, direction=direction)
    if layout:
        a["layout"] = 1
    if "clip" in opt:
        a["clip"] = 1.5
    node = rnn_node("rnn", op, "X", hidden, dirs=dirs, layout=layout, opt=opt, inputs=inputs,
                    weights=weights, outputs=outs, attrs=a, rng=rng, in_size=in_size)
    return model_of([node], inputs, [o for o in outs if o], weights)


def pytorch_case(op, layers, seed):
    """PyTorch's export of a bidirectional multi-layer LSTM / GRU: per layer the recurrent node
    (layout 0, initial states given), then Transpose(0, 2, 1, 3) and Reshape(0, 0, -1) into the
    next layer's input; the last layer's output and final states are graph outputs."""
    rng = np.random.default_rng(seed)
    hidden, in_size = 6, 5
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["seq", "batch", in_size])]
    weights = [numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape_00m1")]
    nodes, outputs, x = [], [], "X"
    for k in range(layers):
        st = [f"Y_h{k}"] + ([f"Y_c{k}"] if op == "LSTM" else [])
        nodes.append(rnn_node(f"l{k}", op, x, hidden, dirs=2, layout=0, opt={"B", "h0", "c0"}, inputs=inputs,
                              weights=weights, outputs=[f"Y{k}"] + st, attrs={"direction": "bidirectional"},
                              rng=rng, in_size=in_size if k == 0 else 2 * hidden))
        nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"T{k}"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"T{k}", "shape_00m1"], [f"out{k}"]))
        x = f"out{k}"
        outputs += st
    outputs.append(x)
    return model_of(nodes, inputs, outputs, weights)


def cases():
    """(name, model, compile options, oracle model) for every combination. ONNX Runtime does not
    run layout 1 (batch-first) recurrent nodes, so a layout-1 model's oracle is the same model with
    layout 0 (same seed, same weights), fed transposed inputs, its outputs transposed back."""
    out = []
    for op in ["LSTM", "GRU"]:
        for layers in [1, 2]:
            m = pytorch_case(op, layers, seed=layers)
            for level in ["none", "all"]:
                out.append((f"pytorch_{op.lower()}_bidir_{layers}layer_opt_{level}", m, ["--opt", level], None))
    full = {"B", "lens", "h0", "c0", "P", "clip"}
    seed = 100
    for op in ["LSTM", "GRU", "RNN"]:
        for direction in ["forward", "reverse", "bidirectional"]:
            for layout in [0, 1]:
                for k, opt in enumerate([set(), full, {"B", "h0"}, {"lens", "c0", "P"}]):
                    seed += 1
                    attrs = {}
                    if op == "GRU":
                        attrs["linear_before_reset"] = (k + layout) % 2
                    if op == "LSTM" and k == 3:
                        attrs["input_forget"] = 1
                    want = {"Y", "Y_h", "Y_c"} if k != 2 else ({"Y_h", "Y_c"} if op == "LSTM" else {"Y_h"})
                    if k == 3 and op == "LSTM":
                        want = {"Y", "Y_c"}
                    name = f"{op.lower()}_{direction}_layout{layout}_{'+'.join(sorted(opt)) or 'bare'}"
                    if attrs:
                        name += "_" + "_".join(f"{a}{v}" for a, v in attrs.items())
                    out.append((name, single_case(op, direction, layout, opt, attrs, want, seed), [],
                                single_case(op, direction, 0, opt, attrs, want, seed) if layout else None))
    # Every other activation, with explicit alpha / beta (ONNX Runtime does not fill in the
    # operators' defaults); a bidirectional cell lists both directions' functions.
    acts = [
        ("LSTM", ["HardSigmoid", "LeakyRelu", "Softsign"], [0.3, 0.05], [0.45]),
        ("LSTM", ["Sigmoid", "ScaledTanh", "Elu"], [0.9, 1.2], [0.7]),
        ("GRU", ["HardSigmoid", "Softplus"], [0.25], [0.55]),
        ("GRU", ["Sigmoid", "Affine"], [0.8], [0.1]),
        ("RNN", ["ThresholdedRelu"], [0.1], []),
        ("RNN", ["Relu"], [], []),
        ("RNN", ["Softsign"], [], []),
    ]
    for op, fns, alpha, beta in acts:
        for direction in ["forward", "bidirectional"]:
            seed += 1
            n = 2 if direction == "bidirectional" else 1  # the list names every direction's
            attrs = {"activations": fns * n}
            if alpha:
                attrs["activation_alpha"] = alpha * n
            if beta:
                attrs["activation_beta"] = beta * n
            name = f"{op.lower()}_{direction}_{'_'.join(fns)}"
            out.append((name, single_case(op, direction, 0, {"B", "lens", "h0"}, attrs, {"Y", "Y_h", "Y_c"}, seed), [], None))
    seed += 1
    both = {"activations": ["Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Softsign", "Tanh"],
            "activation_alpha": [0.3], "activation_beta": [0.4]}
    out.append(("lstm_bidirectional_per_direction_activations",
                single_case("LSTM", "bidirectional", 1, {"B", "lens", "P"}, both, {"Y", "Y_h", "Y_c"}, seed), [],
                single_case("LSTM", "bidirectional", 0, {"B", "lens", "P"}, both, {"Y", "Y_h", "Y_c"}, seed)))
    return out


def feeds(model, seq, batch, rng):
    f = {}
    for vi in model.graph.input:
        dims = [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
        shape = [{"seq": seq, "batch": batch}.get(d, d) for d in dims]
        if vi.type.tensor_type.elem_type == TensorProto.INT32:
            f[vi.name] = rng.integers(1, seq + 1, size=shape).astype(np.int32)
        else:
            f[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return f


def oracle_run(sess, layout0, outs, f):
    """ONNX Runtime's outputs for feeds `f`; with a layout-0 oracle for a layout-1 model, inputs
    and outputs are transposed between batch-first and sequence-first."""
    if not layout0:
        return sess.run(outs, f)
    swap = {k: (v if v.ndim == 1 else v.transpose(1, 0, 2)) for k, v in f.items()}
    got = sess.run(outs, swap)
    return [g.transpose(2, 0, 1, 3) if g.ndim == 4 else g.transpose(1, 0, 2) for g in got]


def run_case(sod2, name, model, copts, oracle, tmp: pathlib.Path):
    """Compiles once and runs every shape; returns a list of failure messages."""
    path = tmp / f"{name}.onnx"
    onnx.save(model, path)
    plan = tmp / f"{name}.sod2"
    r = subprocess.run([sod2, "compile", str(path), "-o", str(plan), *copts], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return [f"compile: {r.stderr.strip()}"]
    sess = ort.InferenceSession((oracle or model).SerializeToString(), providers=["CPUExecutionProvider"])
    outs = [o.name for o in model.graph.output]
    fails = []
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for seq, batch in SHAPES:
        f = feeds(model, seq, batch, rng)
        want = oracle_run(sess, oracle is not None, outs, f)
        try:
            gots = run_plan(sod2, plan, f, tmp, outs, extra=("--check-allocs",), timeout=120)
        except RuntimeError as e:
            fails.append(f"seq={seq} batch={batch}: {e}")
            continue
        for o, w in zip(outs, want):
            got = gots[o]
            if got.shape != w.shape:
                fails.append(f"seq={seq} batch={batch}: {o} shape {got.shape}, expected {w.shape}")
            elif not np.allclose(got, w, rtol=RTOL, atol=ATOL):
                err = np.max(np.abs(got.astype(np.float64) - w))
                fails.append(f"seq={seq} batch={batch}: {o} max abs error {err:.3g}")
    return fails


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--filter", default=None)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    selected = [c for c in cases() if not args.filter or re.search(args.filter, c[0])]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="sod2-rnn-") as tmp:
        for name, model, copts, oracle in selected:
            fails = run_case(args.sod2, name, model, copts, oracle, pathlib.Path(tmp))
            if fails:
                failed += 1
                print(f"FAIL {name}")
                for f in fails:
                    print(f"    {f}")
            elif args.verbose:
                print(f"ok   {name}")
    print(f"recurrent ops vs ONNX Runtime: {len(selected) - failed} of {len(selected)} models pass "
          f"at {len(SHAPES)} shapes each")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
