"""Writes two ONNX models that differ only in weight bytes (1 MB and 200 MB): a dynamic-batch
MatMul chain, for the plan load-time benchmark.

usage: python make_weight_models.py OUT_DIR
"""
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(mb: int) -> onnx.ModelProto:
    """Four square [k, k] f32 matrices with 4 * k * k * 4 bytes ~= `mb` MB."""
    k = int((mb * 1024 * 1024 / 16) ** 0.5)
    rng = np.random.default_rng(0)
    inits, nodes = [], []
    x = "x"
    for i in range(4):
        name = f"w{i}"
        inits.append(numpy_helper.from_array(rng.standard_normal((k, k), dtype=np.float32) * 0.01, name))
        nodes.append(helper.make_node("MatMul", [x, name], [f"y{i}"]))
        x = f"y{i}"
    g = helper.make_graph(nodes, f"weights_{mb}mb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k])], [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def main() -> int:
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for mb in (1, 200):
        m = model(mb)
        size = sum(t.ByteSize() for t in m.graph.initializer)
        onnx.save(m, out / f"weights_{mb}mb.onnx")
        print(f"weights_{mb}mb.onnx: {size / 1e6:.1f} MB of weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
