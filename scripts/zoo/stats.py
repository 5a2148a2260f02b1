"""Per-model statistics of the zoo: nodes, distinct ops, parameters, dynamic dims, control flow,
and which ops are execution-determined (EDO).

usage: python stats.py ZOO_DIR
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from models import SPECS  # noqa: E402

EDO = {"NonZero", "NonMaxSuppression", "Unique", "If", "Loop"}


def walk(graph):
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from walk(a.g)


def main() -> int:
    zoo = pathlib.Path(sys.argv[1])
    print("| model | family | nodes (all bodies) | distinct ops | params (MB) | dynamic dims | If | Loop | EDO ops |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in SPECS:
        m = onnx.load(zoo / f"{spec.name}.onnx")
        nodes = list(walk(m.graph))
        ops = sorted({n.op_type for n in nodes})
        params = sum(numpy_helper.to_array(t).nbytes for t in m.graph.initializer) / 1e6
        dyn = sorted({d.dim_param for i in m.graph.input for d in i.type.tensor_type.shape.dim if d.dim_param})
        n_if = sum(1 for n in nodes if n.op_type == "If")
        n_loop = sum(1 for n in nodes if n.op_type == "Loop")
        edo = sorted({n.op_type for n in nodes if n.op_type in EDO})
        print(f"| {spec.name} | {spec.family} | {len(nodes)} | {len(ops)} | {params:.2f} | {', '.join(dyn)} | {n_if} | {n_loop} | {', '.join(edo) or '-'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
