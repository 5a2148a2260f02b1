"""ONNX Runtime oracle for the zoo.

For every model x case (the shape sweep plus seeded random bindings) it writes

    OUT/<model>/<case>/inputs/<name>.npy      the inputs (deterministic per model and case)
    OUT/<model>/<case>/outputs/<name>.npy     ONNX Runtime's outputs of the unmodified model
    OUT/<model>/<case>/case.json              dims, variant, the shape and dtype of every
                                              main-graph tensor (from an instrumented copy that
                                              exposes them all), control-flow decisions
    OUT/<model>/<case>/intermediates/*.npy    every main-graph tensor (only with --intermediates)

usage: python oracle.py ZOO_DIR OUT_DIR [--only NAME ...] [--intermediates]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from models import SPECS, Spec  # noqa: E402

# Outputs that report which path a model took (besides main-graph If conditions).
PATH_OUTPUTS = {"ranet": ["exit level"], "blockdrop": ["block decisions"]}


def instrumented(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy whose outputs are every main-graph tensor that has a known element type."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        if vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    m = onnx.ModelProto()
    m.CopyFrom(model)
    existing = {o.name for o in m.graph.output}
    names = [o.name for o in m.graph.output]
    for node in m.graph.node:
        for o in node.output:
            if o and o not in existing and o in types:
                m.graph.output.append(onnx.helper.make_tensor_value_info(o, types[o], None))
                existing.add(o)
                names.append(o)
    return m, names


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def case_seed(model: str, case: str) -> int:
    return int(hashlib.sha256(f"{model}/{case}".encode()).hexdigest()[:8], 16)


def if_conditions(model: onnx.ModelProto) -> dict[str, str]:
    """Main-graph If nodes: node name -> condition tensor name."""
    return {n.name: n.input[0] for n in model.graph.node if n.op_type == "If"}


def run_spec(spec: Spec, zoo: pathlib.Path, out: pathlib.Path, intermediates: bool) -> None:
    model = onnx.load(zoo / f"{spec.name}.onnx")
    plain = session(model)
    inst_model, names = instrumented(model)
    inst = session(inst_model)
    conds = if_conditions(model)
    out_names = [o.name for o in model.graph.output]
    for case in spec.cases():
        d = out / spec.name / case.name
        (d / "inputs").mkdir(parents=True, exist_ok=True)
        (d / "outputs").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(case_seed(spec.name, case.name))
        feeds = spec.inputs(case.dims, case.variant, rng)
        for k, v in feeds.items():
            np.save(d / "inputs" / f"{k}.npy", v)
        outs = plain.run(None, feeds)
        for k, v in zip(out_names, outs):
            np.save(d / "outputs" / f"{k}.npy", np.asarray(v))
        fetched = dict(zip(names, inst.run(names, feeds)))
        # ONNX Runtime occasionally returns None for an exposed intermediate; record it as such.
        unobserved = sorted(k for k, v in fetched.items() if v is None)
        every = {k: v for k, v in fetched.items() if v is not None}
        every.update(feeds)
        if intermediates:
            (d / "intermediates").mkdir(exist_ok=True)
            for k, v in every.items():
                np.save(d / "intermediates" / f"{k.replace('/', '_')}.npy", np.asarray(v))
        paths = {f"If {n}": bool(np.asarray(every[c]).item()) for n, c in conds.items() if c in every}
        if spec.name == "ranet":
            paths["exit level"] = int(np.asarray(outs[1]).item())
        if spec.name == "blockdrop":
            for i, v in enumerate(np.asarray(outs[1]).tolist()):
                paths[f"block {i}"] = bool(v)
        meta = {
            "model": spec.name,
            "case": case.name,
            "dims": case.dims,
            "variant": case.variant,
            "tensors": {k: {"shape": list(np.asarray(v).shape), "dtype": str(np.asarray(v).dtype)} for k, v in every.items()},
            "paths": paths,
            "unobserved": unobserved,
        }
        (d / "case.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    print(f"{spec.name:16} {len(spec.cases()):3} cases -> {out / spec.name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("zoo", type=pathlib.Path)
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--intermediates", action="store_true", help="also save every main-graph tensor as .npy")
    args = ap.parse_args()
    for spec in SPECS:
        if args.only and spec.name not in args.only:
            continue
        run_spec(spec, args.zoo, args.out, args.intermediates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
