"""ONNX's opset-23/24 Attention, opset-23 RotaryEmbedding, opset-27 LinearAttention and
CausalConvWithState, and ai.onnx.preview FlexAttention through sod2's import expansion, against
ONNX's reference implementation (ONNX Runtime 1.22 refuses opsets above 22).

Builds one small model per attribute and input combination with symbolic dims (batch `b`,
query length `s`, key/value length `kv`, past length `p`, total `t = p + s`, short mask
length `m`), checks that `sod2 analyze` leaves no tensor unknown and mints no fresh symbol
(every shape exact over the input symbols), compiles it once with `sod2 compile` (no flags) and
runs it at three shapes with `sod2 run`; every output must match
`onnx.reference.ReferenceEvaluator` (f32: rtol 1e-4, atol 1e-5; f16: rtol 1e-2, atol 2e-3).
Prints a table; exits non-zero on any failure.

usage: python attention_tests.py --sod2 BIN
"""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from sod2_cli import run_plan  # noqa: E402

# (b, s, kv, p, m): batch, query length, key/value length, past length, short mask length.
SHAPES = [(1, 1, 3, 2, 2), (2, 5, 5, 4, 3), (3, 9, 12, 7, 8)]
F32, F16, BOOL, I64 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BOOL, TensorProto.INT64
F64 = TensorProto.DOUBLE
PREVIEW = "ai.onnx.preview"
MAX_POS = 64


def vi(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def model(op, ins, outs, opset=23, domain="", **attrs) -> onnx.ModelProto:
    """One `op` node; `ins` are (name, elem, dims) with "" for an absent optional input."""
    node = helper.make_node(op, [i[0] for i in ins], outs, domain=domain, **attrs)
    g = helper.make_graph(
        [node], "attention", [vi(*i) for i in ins if i[0]], [vi(o, 0, None) for o in outs if o]
    )
    opsets = [helper.make_opsetid("", opset)]
    if domain == PREVIEW:
        opsets.append(helper.make_opsetid(PREVIEW, 1))
    m = helper.make_model(g, opset_imports=opsets)
    m.ir_version = 10
    return m


NONE = ("", 0, None)


def attention_cases():
    q4 = lambda h=3, d=8, e=F32: ("Q", e, ["b", h, "s", d])  # noqa: E731
    k4 = lambda h=3, d=8, e=F32: ("K", e, ["b", h, "kv", d])  # noqa: E731
    v4 = lambda h=3, d=8, e=F32: ("V", e, ["b", h, "kv", d])  # noqa: E731
    kp = lambda h=3, d=8, e=F32: ("K", e, ["b", h, "s", d])  # noqa: E731  (new tokens, with a past)
    vp = lambda h=3, d=8, e=F32: ("V", e, ["b", h, "s", d])  # noqa: E731
    past = lambda h=3, dk=8, dv=8, e=F32: [("past_key", e, ["b", h, "p", dk]), ("past_value", e, ["b", h, "p", dv])]  # noqa: E731
    yield "4-D", model("Attention", [q4(), k4(), v4()], ["Y"])
    yield "4-D GQA 6/2 heads, v head 5, causal", model(
        "Attention", [q4(6), k4(2), v4(2, 5)], ["Y"], is_causal=1
    )
    yield "4-D float mask [s,kv], scale, softcap", model(
        "Attention", [q4(), k4(), v4(), ("attn_mask", F32, ["s", "kv"])], ["Y"], scale=0.3, softcap=1.5
    )
    yield "4-D bool mask [b,3,s,kv]", model(
        "Attention", [q4(), k4(), v4(), ("attn_mask", BOOL, ["b", 3, "s", "kv"])], ["Y"]
    )
    yield "4-D float mask [b,1,s,kv], causal", model(
        "Attention", [q4(), k4(), v4(), ("attn_mask", F32, ["b", 1, "s", "kv"])], ["Y"], is_causal=1
    )
    yield "4-D past, bool mask [s,t], causal, qk out mode 0", model(
        "Attention", [q4(), kp(), vp(), ("attn_mask", BOOL, ["s", "t"]), *past()],
        ["Y", "present_key", "present_value", "qk"], is_causal=1,
    )
    for mode in (1, 2, 3):
        yield f"4-D GQA 4/2 past, mask [b,1,s,t], softcap, qk out mode {mode}", model(
            "Attention", [q4(4), kp(2), vp(2, 6), ("attn_mask", F32, ["b", 1, "s", "t"]), *past(2, 8, 6)],
            ["Y", "present_key", "present_value", "qk"], softcap=2.0, qk_matmul_output_mode=mode,
        )
    yield "3-D 3/3 heads, causal", model(
        "Attention", [("Q", F32, ["b", "s", 24]), ("K", F32, ["b", "kv", 24]), ("V", F32, ["b", "kv", 30])],
        ["Y"], q_num_heads=3, kv_num_heads=3, is_causal=1,
    )
    yield "3-D GQA 6/2 heads, past, mask [s,t], qk out mode 2", model(
        "Attention",
        [("Q", F32, ["b", "s", 48]), ("K", F32, ["b", "s", 16]), ("V", F32, ["b", "s", 10]),
         ("attn_mask", F32, ["s", "t"]), *past(2, 8, 5)],
        ["Y", "present_key", "present_value", "qk"], q_num_heads=6, kv_num_heads=2, qk_matmul_output_mode=2,
    )
    yield "4-D f16, softmax_precision f32, bool mask", model(
        "Attention", [q4(e=F16), k4(e=F16), v4(e=F16), ("attn_mask", BOOL, ["s", "kv"])], ["Y"],
        softmax_precision=TensorProto.FLOAT,
    )
    yield "opset 24: nonpad_kv_seqlen, short mask [b,3,s,m]", model(
        "Attention", [q4(), k4(), v4(), ("attn_mask", F32, ["b", 3, "s", "m"]), NONE, NONE, ("nonpad_kv_seqlen", I64, ["b"])],
        ["Y"], opset=24,
    )
    yield "opset 24: past, short bool mask [s,m], causal", model(
        "Attention", [q4(), kp(), vp(), ("attn_mask", BOOL, ["s", "m"]), *past()],
        ["Y", "present_key", "present_value"], opset=24, is_causal=1,
    )


def rotary_cases():
    x4 = ("X", F32, ["b", 4, "s", 8])
    pos = ("position_ids", I64, ["b", "s"])
    cache = lambda half: [("cos_cache", F32, [MAX_POS, half]), ("sin_cache", F32, [MAX_POS, half])]  # noqa: E731
    per_token = lambda half: [("cos_cache", F32, ["b", "s", half]), ("sin_cache", F32, ["b", "s", half])]  # noqa: E731
    yield "RoPE 4-D, position ids", model("RotaryEmbedding", [x4, *cache(4), pos], ["Y"])
    yield "RoPE 4-D interleaved, rotary dim 4", model(
        "RotaryEmbedding", [x4, *cache(2), pos], ["Y"], interleaved=1, rotary_embedding_dim=4
    )
    yield "RoPE 4-D no position ids, rotary dim 4", model(
        "RotaryEmbedding", [x4, *per_token(2)], ["Y"], rotary_embedding_dim=4
    )
    yield "RoPE 3-D 2 heads, interleaved", model(
        "RotaryEmbedding", [("X", F32, ["b", "s", 16]), *cache(4), pos], ["Y"], interleaved=1, num_heads=2
    )
    yield "RoPE 3-D 4 heads, no position ids, rotary dim 4", model(
        "RotaryEmbedding", [("X", F32, ["b", "s", 32]), *per_token(2)], ["Y"], num_heads=4, rotary_embedding_dim=4
    )


def linear_attention_cases():
    la = lambda ins, **a: model("LinearAttention", ins, ["output", "present_state"], opset=27, **a)  # noqa: E731
    x = lambda name, width, e=F32: (name, e, ["b", "s", width])  # noqa: E731
    yield "LinearAttention linear, 4/4 heads", la(
        [x("query", 32), x("key", 32), x("value", 32)], q_num_heads=4, kv_num_heads=4, update_rule="linear"
    )
    yield "LinearAttention gated_delta, GQA 8/4, past, decay per key, beta per head", la(
        [x("query", 64), x("key", 32), x("value", 24), ("past_state", F32, ["b", 4, 8, 6]),
         x("decay", 32), x("beta", 4)],
        q_num_heads=8, kv_num_heads=4,
    )
    yield "LinearAttention gated, decay per head, scale 0.3", la(
        [x("query", 24), x("key", 24), x("value", 24), NONE, x("decay", 3)],
        q_num_heads=3, kv_num_heads=3, update_rule="gated", scale=0.3,
    )
    yield "LinearAttention delta, MQA 4/1, shared beta, f16", la(
        [x("query", 32, F16), x("key", 8, F16), x("value", 8, F16), NONE, NONE, x("beta", 1, F16)],
        q_num_heads=4, kv_num_heads=1, update_rule="delta",
    )


def causal_conv_cases():
    cc = lambda ins, **a: model("CausalConvWithState", ins, ["output", "present_state"], opset=27, **a)  # noqa: E731
    yield "CausalConvWithState, k 3, no state", cc([("input", F32, ["b", 4, "s"]), ("weight", F32, [4, 1, 3])])
    yield "CausalConvWithState silu, bias, past state, k 4", cc(
        [("input", F32, ["b", 4, "s"]), ("weight", F32, [4, 1, 4]), ("bias", F32, [4]),
         ("past_state", F32, ["b", 4, 3])],
        activation="silu",
    )
    yield "CausalConvWithState swish, f16, k 2, symbolic channels, weight fixes them", cc(
        [("input", F16, ["b", "c", "s"]), ("weight", F16, [3, 1, 2])], activation="swish"
    )


def mod_graph(name, nodes, inits, elem=F32):
    """A FlexAttention modifier: `x` (B, H, L, S) -> `y`."""
    return helper.make_graph(
        nodes, name, [vi("x", elem, ["B", "H", "L", "S"])], [vi("y", elem, ["B", "H", "L", "S"])], inits
    )


def flex_cases():
    fa = lambda ins, **a: model("FlexAttention", ins, ["Y"], opset=26, domain=PREVIEW, **a)  # noqa: E731
    qkv = lambda hq=3, hkv=3, d=8, dv=8, e=F32: [  # noqa: E731
        ("Q", e, ["b", hq, "s", d]), ("K", e, ["b", hkv, "kv", d]), ("V", e, ["b", hkv, "kv", dv])
    ]
    i64 = lambda n, v: helper.make_tensor(n, I64, [len(v)] if isinstance(v, list) else [], v if isinstance(v, list) else [v])  # noqa: E731
    causal = mod_graph(
        "causal",
        [
            helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Gather", ["shape", "i2"], ["l"], axis=0),
            helper.make_node("Gather", ["shape", "i3"], ["sl"], axis=0),
            helper.make_node("Range", ["zero", "l", "one"], ["qr"]),
            helper.make_node("Reshape", ["qr", "qs"], ["qi"]),
            helper.make_node("Range", ["zero", "sl", "one"], ["kr"]),
            helper.make_node("Reshape", ["kr", "ks"], ["ki"]),
            helper.make_node("GreaterOrEqual", ["qi", "ki"], ["mask"]),
            helper.make_node("Where", ["mask", "x", "ninf"], ["y"]),
        ],
        [i64("zero", 0), i64("one", 1), i64("i2", 2), i64("i3", 3), i64("qs", [-1, 1]), i64("ks", [1, -1]),
         helper.make_tensor("ninf", F32, [], [-np.inf])],
    )
    cap = mod_graph(
        "soft_cap",
        [helper.make_node("Div", ["x", "cap"], ["d"]), helper.make_node("Tanh", ["d"], ["t"]),
         helper.make_node("Mul", ["t", "cap"], ["y"])],
        [helper.make_tensor("cap", F32, [], [5.0])],
    )
    half = mod_graph("half", [helper.make_node("Mul", ["x", "h"], ["y"])], [helper.make_tensor("h", F32, [], [0.5])])
    yield "FlexAttention GQA 6/2, v head 5", fa(qkv(6, 2, 8, 5))
    yield "FlexAttention causal score_mod, scale 0.2", fa(qkv(), score_mod=causal, scale=0.2)
    yield "FlexAttention f16, soft-cap score_mod, prob_mod", fa(qkv(4, 2, e=F16), score_mod=cap, prob_mod=half)
    yield "FlexAttention double", fa(qkv(2, 2, 4, 6, F64))


def feeds_for(m: onnx.ModelProto, shape, rng: np.random.Generator) -> dict[str, np.ndarray]:
    b, s, kv, p, mlen = shape
    sym = {"b": b, "s": s, "kv": kv, "p": p, "t": p + s, "m": mlen, "c": 3}
    feeds = {}
    for v in m.graph.input:
        dims = [sym.get(d.dim_param, d.dim_value) for d in v.type.tensor_type.shape.dim]
        elem = v.type.tensor_type.elem_type
        if v.name == "nonpad_kv_seqlen":
            feeds[v.name] = rng.integers(1, mlen + 1, size=dims).astype(np.int64)
        elif v.name == "position_ids":
            feeds[v.name] = rng.integers(0, MAX_POS, size=dims).astype(np.int64)
        elif v.name == "decay":
            feeds[v.name] = (-np.abs(rng.normal(0, 0.5, size=dims))).astype(np.float16 if elem == F16 else np.float32)
        elif v.name == "beta":
            feeds[v.name] = rng.random(size=dims).astype(np.float16 if elem == F16 else np.float32)
        elif elem == BOOL:
            x = rng.random(size=dims) < 0.7
            x[..., 0] = True  # every row attends somewhere
            feeds[v.name] = x
        else:
            dt = {F16: np.float16, F64: np.float64}.get(elem, np.float32)
            feeds[v.name] = rng.normal(0, 1.0, size=dims).astype(dt)
    return feeds


def oracle(m: onnx.ModelProto):
    """The reference evaluator and the feed conversion it needs. ONNX's reference turns a bool
    mask under `is_causal` into `(1 - mask) * -inf`, which is NaN where the mask is true; it
    is run on the model's float-mask twin there (`where(mask, 0, -inf)`, the function body's
    own conversion)."""
    node = m.graph.node[0]
    causal = any(a.name == "is_causal" and a.i == 1 for a in node.attribute)
    mask = next((v for v in m.graph.input if v.name == "attn_mask"), None)
    if not (causal and mask is not None and mask.type.tensor_type.elem_type == BOOL):
        return ReferenceEvaluator(m), lambda feeds: feeds
    twin = onnx.ModelProto()
    twin.CopyFrom(m)
    for v in twin.graph.input:
        if v.name == "attn_mask":
            v.type.tensor_type.elem_type = F32

    def convert(feeds):
        out = dict(feeds)
        out["attn_mask"] = np.where(feeds["attn_mask"], 0.0, -np.inf).astype(np.float32)
        return out

    return ReferenceEvaluator(twin), convert


def exact_shapes(sod2: str, path: pathlib.Path) -> str | None:
    """None when every tensor's shape is exact over the input symbols; else the summary."""
    r = subprocess.run([sod2, "analyze", str(path), "--brief"], capture_output=True, text=True)
    if r.returncode != 0:
        return "analyze failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:150]
    out = r.stdout
    ok = " 0 unknown, 0 undef" in out and "fresh symbols: 0" in out
    return None if ok else " ".join(out.split())[:150]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(11)
    rows, failed = [], 0
    cases = [*attention_cases(), *rotary_cases(), *linear_attention_cases(), *causal_conv_cases(), *flex_cases()]
    with tempfile.TemporaryDirectory(prefix="sod2-attention-") as t:
        tmp = pathlib.Path(t)
        for k, (name, m) in enumerate(cases):
            path, plan = tmp / f"m{k}.onnx", tmp / f"m{k}.sod2"
            onnx.save(m, path)
            why = exact_shapes(args.sod2, path)
            if why is not None:
                rows.append((name, "-", "FAIL: shapes not exact: " + why))
                failed += 1
                continue
            r = subprocess.run([args.sod2, "compile", str(path), "-o", str(plan)], capture_output=True, text=True)
            if r.returncode != 0:
                rows.append((name, "-", "FAIL: " + (r.stderr.strip().splitlines() or ["?"])[-1][:150]))
                failed += 1
                continue
            ref, convert = oracle(m)
            f16 = any(v.type.tensor_type.elem_type == F16 for v in m.graph.input)
            rtol, atol = (1e-2, 2e-3) if f16 else (1e-4, 1e-5)
            for shape in SHAPES:
                feeds = feeds_for(m, shape, rng)
                want = ref.run(None, convert(feeds))
                label = "b={} s={} kv={} p={} m={}".format(*shape)
                try:
                    gots = run_plan(args.sod2, plan, feeds, tmp / f"m{k}", [o.name for o in m.graph.output])
                except RuntimeError as e:
                    rows.append((name, label, f"FAIL: {e}"[:160]))
                    failed += 1
                    continue
                worst, ok = 0.0, True
                for o, w in zip(m.graph.output, want):
                    got = gots[o.name]
                    if got.shape != w.shape:
                        ok, worst = False, float("inf")
                        continue
                    w64, g64 = w.astype(np.float64), got.astype(np.float64)
                    same_inf = np.isinf(w64) & (w64 == g64)
                    err = np.where(same_inf, 0.0, np.abs(g64 - w64))
                    worst = max(worst, float(np.nan_to_num(err, nan=np.inf).max()) if err.size else 0.0)
                    ok &= bool(np.all((err <= atol + rtol * np.abs(np.where(same_inf, 0.0, w64))) | same_inf))
                rows.append((name, label, f"{'pass' if ok else 'FAIL'} (max abs error {worst:.2e})"))
                failed += 0 if ok else 1
    print("| op and case | shape | result |")
    print("|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\nattention ops: {len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
