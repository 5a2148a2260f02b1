"""Runs ONNX's own backend node tests through sod2 and prints pass / fail / unsupported per op.

The tests ship inside the `onnx` package (1.22: onnx/backend/test/data/node/*/ with model.onnx
and test_data_set_*/{input,output}_*.pb). A test belongs to the op its name starts with
(`test_reduce_sum_keepdims` -> ReduceSum). It is *unsupported* when that op is not in sod2's
registry (`sod2 ops`) and some node of its graph is not either (an `_expanded` test written in
supported primitives is attempted), or when its data are not plain tensors.

Shape mode (default) checks the analysis: every output's symbolic shape from
`sod2 analyze --json`, evaluated with the symbols bound from the test's inputs, must equal the
expected output's shape, and the dtypes must agree. Outputs whose size is execution-determined
(a fresh symbol, bound from the expected output itself) are counted as "runtime-bound".

Value mode (--values) executes every test through sod2: `sod2 compile`, then `sod2 run` on
the test's inputs, and compares every output with the expected one (ONNX's backend tolerances:
rtol 1e-3, atol 1e-7 for floats; integers and bools exactly).

usage: python node_tests.py --sod2 BIN [--values] [--filter REGEX] [--min-pass-rate R]
                           [--min-quant-pass-rate R] [--verbose]
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from conformance import IDENT, eval_dim  # noqa: E402

DTYPES = {
    "float32": "f32", "float64": "f64", "float16": "f16", "int8": "i8", "int16": "i16", "int32": "i32",
    "int64": "i64", "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64", "bool": "bool",
    "bfloat16": "bf16", "int4": "i4", "uint4": "u4", "int2": "i2", "uint2": "u2",
}
# Element types NumPy has no npy code for: ml_dtypes stores them as voids of their byte width.
VOID_TYPES = {"bfloat16": "V2", "int4": "V1", "uint4": "V1", "int2": "V1", "uint2": "V1"}


# Not counted in the coverage figure over all tests (the coverage issue's definition): training-only
# ops, random ops, the quantization family (its own issue), and tests whose data are strings,
# float8 or 4-bit integers.
TRAINING = {"Adagrad", "Adam", "Momentum", "Gradient"}
RANDOM = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial"}
QUANT = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger"}
EXCLUDED_TYPES = {onnx.TensorProto.STRING, onnx.TensorProto.INT4, onnx.TensorProto.UINT4} | {
    getattr(onnx.TensorProto, n) for n in ("FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "FLOAT4E2M1", "FLOAT8E8M0") if hasattr(onnx.TensorProto, n)
}
# The quantization figure also leaves out 2-bit integers (sub-byte, like the 4-bit ones).
QUANT_EXCLUDED_TYPES = EXCLUDED_TYPES | {getattr(onnx.TensorProto, n) for n in ("INT2", "UINT2") if hasattr(onnx.TensorProto, n)}


def random_dropout(tdir: pathlib.Path) -> bool:
    """A Dropout test run in training mode with a nonzero ratio: its mask is drawn at random (the
    expected outputs come from one NumPy seed), so no implementation can reproduce them."""
    try:
        ins = load_tensors(tdir / "test_data_set_0", "input")
    except Exception:
        return False
    ratio = float(ins[1]) if len(ins) > 1 else 0.5
    return len(ins) > 2 and bool(ins[2]) and ratio != 0.0


def excluded(op: str, model: onnx.ModelProto, tdir: pathlib.Path | None = None) -> str | None:
    """Why a test is outside the all-tests coverage figure, or None."""
    if op in TRAINING or op.startswith("ai.onnx.preview.training"):
        return "training"
    if op in RANDOM or (op == "Dropout" and tdir is not None and random_dropout(tdir)):
        return "random"
    if op in QUANT:
        return "quantization"
    if odd_types(model):
        return "data type"
    return None


def odd_types(model: onnx.ModelProto, types: set = EXCLUDED_TYPES) -> bool:
    """Whether the graph's inputs or outputs hold one of `types` (strings, float8, ...)."""
    return any(vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type in types
               for vi in list(model.graph.input) + list(model.graph.output))


def quant_eligible(op: str, model: onnx.ModelProto) -> bool:
    """Whether a test counts in the quantization figure: an op of the family, on data types
    sod2 models (not float8, 4- or 2-bit integers, strings)."""
    return op in QUANT and not odd_types(model, QUANT_EXCLUDED_TYPES)


def all_nodes_supported(g: onnx.GraphProto, supported: set[str]) -> bool:
    """Whether every node of `g` (and of its subgraphs) is an op sod2 runs: such a test (the
    `_expanded` form of an op written out in primitives, for one) is attempted even when the op
    it is named after is not supported."""
    for n in g.node:
        name = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
        if n.op_type != "Constant" and name not in supported:
            return False
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH and not all_nodes_supported(a.g, supported):
                return False
    return True


ALIASES = {"mvn": "MeanVarianceNormalization", "tril": "Trilu", "triu": "Trilu", "batchnorm": "BatchNormalization", "scan9": "Scan"}


def op_of(test: str, model: onnx.ModelProto, schemas: list[str]) -> str:
    """The op a test exercises: the single node's op, else the op its name starts with."""
    nodes = [n for n in model.graph.node if n.op_type != "Constant"]
    if len(nodes) == 1:
        n = nodes[0]
        return n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
    rest = test[len("test_"):]
    head = rest.split("_")[0]
    if head in ALIASES:
        return ALIASES[head]
    flat = rest.replace("_", "").lower()
    best = max((name for name in schemas if flat.startswith(name.lower())), key=len, default="")
    return best or head


class Seq(list):
    """A sequence value of a test (a list of arrays)."""


class Absent:
    """An absent optional value of a test."""

    dtype = None


def _read_value(f: pathlib.Path, vtype: onnx.TypeProto | None):
    """One test-data file: an array, a `Seq` of arrays, or `Absent`, by the declared type."""
    kind = (vtype.WhichOneof("value") if vtype is not None else None) or "tensor_type"
    if kind == "sequence_type":
        sp = onnx.SequenceProto()
        sp.ParseFromString(f.read_bytes())
        if sp.elem_type != onnx.SequenceProto.TENSOR:
            raise ValueError("a sequence of non-tensors")
        return Seq(numpy_helper.to_list(sp))
    if kind == "optional_type":
        op = onnx.OptionalProto()
        op.ParseFromString(f.read_bytes())
        v = numpy_helper.to_optional(op)
        if v is None:
            return Absent()
        if isinstance(v, list):
            return Seq(v)
        if not isinstance(v, np.ndarray):
            raise ValueError("an optional of a non-tensor")
        return v
    if kind != "tensor_type":
        raise ValueError(f"{kind} values")
    t = onnx.TensorProto()
    t.ParseFromString(f.read_bytes())
    if not t.data_type:
        raise ValueError("not a tensor")
    return numpy_helper.to_array(t)


def load_tensors(d: pathlib.Path, kind: str, types: list | None = None):
    out = []
    for f in sorted(d.glob(f"{kind}_*.pb"), key=lambda p: int(p.stem.split("_")[1])):
        k = len(out)
        out.append(_read_value(f, types[k] if types is not None and k < len(types) else None))
    return out


def arrays_of(v) -> list:
    """The arrays a test value holds."""
    if isinstance(v, Seq):
        return list(v)
    if isinstance(v, Absent):
        return []
    return [v]


def load_case(tdir: pathlib.Path):
    """(model, inputs, outputs), or a string saying why the test is unsupported."""
    model = onnx.load(tdir / "model.onnx", load_external_data=False)
    data = tdir / "test_data_set_0"
    init_names = {t.name for t in model.graph.initializer}
    in_types = [i.type for i in model.graph.input if i.name not in init_names]
    out_types = [o.type for o in model.graph.output]
    try:
        inputs = load_tensors(data, "input", in_types)
        outputs = load_tensors(data, "output", out_types)
    except Exception as e:  # maps, sequences of maps...
        return f"non-tensor test data ({e})"
    odd = [str(a.dtype) for v in inputs + outputs for a in arrays_of(v) if str(a.dtype) not in DTYPES]
    if odd:  # float8, int4, strings...: element types sod2 does not model
        return f"element types {sorted(set(odd))}"
    return model, inputs, outputs


def check_shape(name: str, t: dict, arr, fresh: set, env: dict) -> tuple[str | None, bool]:
    """Compares the analysed fact `t` with one expected value; (failure or None, runtime-bound)."""
    if isinstance(arr, Absent):
        return None, False
    if isinstance(arr, Seq):
        # The fact describes every element: its rank, and the dims all elements share.
        want = DTYPES.get(str(arr[0].dtype)) if arr else None
        if want and t["dtype"] != want:
            return f"{name}: dtype {t['dtype']}, expected {want}", False
        sym = t["shape"]
        if sym is None:
            return None, True
        for a in arr:
            if len(sym) != a.ndim:
                return f"{name}: element rank {len(sym)} vs {a.shape}", False
            for s, v in zip(sym, a.shape):
                if s == "?" or (IDENT.match(s) and s in fresh):
                    continue
                try:
                    got = eval_dim(s, env)
                except NameError:
                    continue
                if got != v:
                    return f"{name}: element dims {sym} vs {a.shape}", False
        return None, "?" in sym or any(IDENT.match(s) and s in fresh for s in sym) or not arr
    runtime_bound = False
    sym = t["shape"]
    if sym is None:
        return f"{name}: no shape ({t['state']})", False
    if len(sym) != arr.ndim:
        return f"{name}: rank {len(sym)} vs expected {arr.shape}", False
    for s, v in zip(sym, arr.shape):
        if IDENT.match(s) and s in fresh:
            env.setdefault(s, v)
            runtime_bound = True
    try:
        got = [eval_dim(s, env) for s in sym]
    except NameError as e:
        return f"{name}: {sym} cannot be evaluated ({e})", False
    if got != list(arr.shape):
        return f"{name}: {sym} = {got}, expected {list(arr.shape)}", False
    want = DTYPES.get(str(arr.dtype))
    if want and t["dtype"] != want:
        return f"{name}: dtype {t['dtype']}, expected {want}", False
    return None, runtime_bound


def run_test(sod2: str, tdir: pathlib.Path) -> tuple[str, str]:
    """Returns (status, detail); status in pass, runtime-bound, fail, unsupported."""
    case = load_case(tdir)
    if isinstance(case, str):
        return "unsupported", case
    model, inputs, outputs = case
    proc = subprocess.run([sod2, "analyze", "--json", str(tdir / "model.onnx")], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        return "fail", proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "sod2 failed"
    facts = json.loads(proc.stdout)
    shapes = {t["name"]: t for t in facts["tensors"]}
    fresh = {s["name"] for s in facts["symbols"] if s["origin"]}
    env: dict[str, int] = {}
    init_names = {t.name for t in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in init_names]
    for vi, arr in zip(real_inputs, inputs):
        if not isinstance(arr, np.ndarray):
            continue  # a sequence's or optional's dims bind no symbol
        sym = shapes.get(vi.name, {}).get("shape")
        if sym and len(sym) == arr.ndim:
            for s, v in zip(sym, arr.shape):
                if IDENT.match(s) and s not in fresh:
                    env.setdefault(s, v)
    runtime_bound = False
    for vo, arr in zip(model.graph.output, outputs):
        t = shapes.get(vo.name)
        if t is None:
            return "fail", f"{vo.name}: no fact"
        why, bound = check_shape(vo.name, t, arr, fresh, env)
        if why:
            return "fail", why
        runtime_bound |= bound
    return ("runtime-bound" if runtime_bound else "pass"), ""


def compare(name: str, f: pathlib.Path, want: np.ndarray) -> str | None:
    """Why output file `f` differs from `want` (None: it matches)."""
    if not f.exists():
        return f"{name}: no output"
    got = np.load(f)
    if str(want.dtype) in VOID_TYPES:
        if got.dtype != np.dtype(VOID_TYPES[str(want.dtype)]):  # how sod2 writes them
            return f"{name}: dtype {got.dtype}, expected {want.dtype}"
        # compared as f32 (numpy's float checks do not know these types)
        got, want = got.view(want.dtype).astype(np.float32), want.astype(np.float32)
    if got.shape != want.shape:
        return f"{name}: shape {got.shape}, expected {want.shape}"
    if got.dtype != want.dtype:
        return f"{name}: dtype {got.dtype}, expected {want.dtype}"
    if np.issubdtype(want.dtype, np.floating):
        if not np.allclose(got, want, rtol=1e-3, atol=1e-7, equal_nan=True):
            err = np.abs(got.astype(np.float64) - want.astype(np.float64))
            return f"{name}: max abs error {np.nanmax(err):.3g}"
    elif not np.array_equal(got, want):
        return f"{name}: values differ"
    return None


# Extra `sod2 compile` flags of values mode (`--opt LEVEL`).
COMPILE_FLAGS: list[str] = []
# Extra `sod2 run` flags of values mode (`--poison-arena`).
RUN_FLAGS: list[str] = []


def run_values(sod2: str, tdir: pathlib.Path) -> tuple[str, str]:
    """Compiles and runs one node test through sod2 and compares the outputs."""
    import tempfile

    from plan_names import sanitize

    case = load_case(tdir)
    if isinstance(case, str):
        return "unsupported", case
    model, inputs, outputs = case
    init_names = {t.name for t in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in init_names]
    with tempfile.TemporaryDirectory(prefix="sod2-nt-") as tmp:
        t = pathlib.Path(tmp)
        r = subprocess.run([sod2, "compile", str(tdir / "model.onnx"), "-o", str(t / "m.sod2"), *COMPILE_FLAGS], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return "fail", "compile: " + (r.stderr.strip().splitlines() or ["?"])[-1]
        args = []
        for vi, arr in zip(real_inputs, inputs):
            f = t / f"in_{len(args)}"
            if isinstance(arr, Absent):
                args.append(f"--input={vi.name}=none")
                continue
            if isinstance(arr, Seq):
                f.mkdir()
                for k, a in enumerate(arr):
                    np.save(f / f"{k}.npy", a)
            else:
                f = f.with_suffix(".npy")
                np.save(f, arr)
            args.append(f"--input={vi.name}={f}")
        r = subprocess.run([sod2, "run", str(t / "m.sod2"), *args, "--out", str(t / "out"), *RUN_FLAGS], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return "fail", "run: " + (r.stderr.strip().splitlines() or ["?"])[-1]
        for vo, want in zip(model.graph.output, outputs):
            base = t / "out" / sanitize(vo.name)
            if isinstance(want, Absent):
                if not pathlib.Path(str(base) + ".none").exists():
                    return "fail", f"{vo.name}: expected an absent optional"
                continue
            if isinstance(want, Seq):
                if not base.is_dir():
                    return "fail", f"{vo.name}: no sequence output"
                n = len(list(base.glob("*.npy")))
                if n != len(want):
                    return "fail", f"{vo.name}: sequence of {n}, expected {len(want)}"
                pairs = [(f"{vo.name}[{k}]", base / f"{k}.npy", w) for k, w in enumerate(want)]
            else:
                pairs = [(vo.name, pathlib.Path(str(base) + ".npy"), want)]
            for name, f, w in pairs:
                why = compare(name, f, w)
                if why:
                    return "fail", why
    return "pass", ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sod2", required=True)
    ap.add_argument("--filter", default=None)
    ap.add_argument("--min-pass-rate", type=float, default=0.0, help="fail when (pass + runtime-bound) / in-registry is lower")
    ap.add_argument("--min-quant-pass-rate", type=float, default=0.0,
                    help="fail when the pass rate over the eligible quantization tests is lower")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--values", action="store_true", help="execute the tests through sod2 and compare values")
    ap.add_argument("--opt", default=None, help="values mode: compile at this --opt level (default: sod2's; `none` runs every op's own kernel, no rewrite or fusion)")
    ap.add_argument("--poison-arena", action="store_true",
                    help="values mode: `sod2 run --poison-arena` (the arena and every output buffer filled with NaNs first)")
    args = ap.parse_args()
    if args.opt:
        COMPILE_FLAGS.extend(["--opt", args.opt])
    if args.poison_arena:
        RUN_FLAGS.append("--poison-arena")
    root = pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"
    if not root.exists():
        print(f"no node tests under {root} (onnx {onnx.__version__} does not ship them)")
        return 1
    supported = set(subprocess.run([args.sod2, "ops"], capture_output=True, text=True, check=True).stdout.split()[::2])
    schemas = sorted({s.name for s in onnx.defs.get_all_schemas() if s.domain == ""})
    tests = sorted(p for p in root.iterdir() if (p / "model.onnx").exists())
    if args.filter:
        tests = [t for t in tests if re.search(args.filter, t.name)]
    by_op: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    jobs = {}
    eligible = collections.Counter()  # the all-tests figure: status counts over eligible tests
    quant = collections.Counter()  # the quantization figure: status counts over its eligible tests
    why_out = collections.Counter()
    with cf.ThreadPoolExecutor(max_workers=4) as ex:
        for t in tests:
            model = onnx.load(t / "model.onnx", load_external_data=False)
            op = op_of(t.name, model, schemas)
            why = excluded(op, model, t)
            if why:
                why_out[why] += 1
            in_quant = quant_eligible(op, model)
            if op not in supported and not all_nodes_supported(model.graph, supported):
                by_op[op]["unsupported"] += 1
                if not why:
                    eligible["unsupported"] += 1
                if in_quant:
                    quant["unsupported"] += 1
                continue
            jobs[ex.submit(run_values if args.values else run_test, args.sod2, t)] = (t.name, op, why, in_quant)
        for fut in cf.as_completed(jobs):
            name, op, why, in_quant = jobs[fut]
            try:
                status, detail = fut.result()
            except Exception as e:
                status, detail = "fail", f"runner error: {e}"
            by_op[op][status] += 1
            if not why:
                eligible[status] += 1
            if in_quant:
                quant[status] += 1
            if status in ("fail", "unsupported") and args.verbose:
                print(f"{status.upper()} {name}: {detail}")
    total = collections.Counter()
    print("| op | pass | runtime-bound | fail | unsupported |")
    print("|---|---|---|---|---|")
    for op in sorted(by_op):
        c = by_op[op]
        total.update(c)
        print(f"| {op} | {c['pass']} | {c['runtime-bound']} | {c['fail']} | {c['unsupported']} |")
    in_reg = total["pass"] + total["runtime-bound"] + total["fail"]
    rate = (total["pass"] + total["runtime-bound"]) / in_reg if in_reg else 0.0
    mode = "values" if args.values else "shapes"
    print(f"\nnode tests ({mode}): {len(tests)} total; {in_reg} attempted (op in the registry, or every node of the graph): "
          f"{total['pass']} pass, {total['runtime-bound']} runtime-bound, {total['fail']} fail "
          f"({100 * rate:.1f}%); {total['unsupported']} unsupported")
    n_el = sum(eligible.values())
    ok_el = eligible["pass"] + eligible["runtime-bound"]
    print(f"node tests ({mode}) over all eligible tests: {ok_el} of {n_el} pass ({100 * ok_el / max(n_el, 1):.1f}%); "
          f"{eligible['unsupported']} unsupported, {eligible['fail']} fail; not counted: "
          + ", ".join(f"{v} {k}" for k, v in sorted(why_out.items())))
    n_q = sum(quant.values())
    ok_q = quant["pass"] + quant["runtime-bound"]
    q_rate = ok_q / n_q if n_q else 0.0
    print(f"node tests ({mode}) over quantization tests: {ok_q} of {n_q} pass ({100 * q_rate:.1f}%); "
          f"{quant['unsupported']} unsupported, {quant['fail']} fail (float8, 4- and 2-bit tests not counted)")
    failed = 0
    if rate < args.min_pass_rate:
        print(f"pass rate {100 * rate:.1f}% is below the required {100 * args.min_pass_rate:.1f}%")
        failed = 1
    if n_q and q_rate < args.min_quant_pass_rate:  # a --filter may select no quantization test
        print(f"quantization pass rate {100 * q_rate:.1f}% is below the required {100 * args.min_quant_pass_rate:.1f}%")
        failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main())
