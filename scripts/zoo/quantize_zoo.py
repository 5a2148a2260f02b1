"""int8 versions of zoo models, made with ONNX Runtime's own quantization tools (the pinned
onnxruntime of scripts/requirements.txt), into the zoo cache.

    codebert_int8    quantize_dynamic (int8 weights): DynamicQuantizeLinear + MatMulInteger for
                     every weight MatMul, the embedding tables as int8 + DequantizeLinear
    conformer_int8   quantize_dynamic with uint8 weights (ONNX Runtime's ConvInteger takes uint8
                     weights only): MatMulInteger, and ConvInteger for the subsampling, pointwise
                     and depthwise convolutions
    yolov6_int8      quantize_static, QDQ format, per-channel int8 weights, uint8 activations,
                     calibrated (MinMax) on the zoo's own inputs at the sweep shapes: Q/DQ pairs
                     around every Conv
    sd_unet_int8     quantize_static as above around every Conv, MatMul (weights and the
                     attention's two activations) and Gemm

Static models quantize Conv, MatMul and Gemm only (`op_types_to_quantize`), so the Q/DQ pairs sit
around the compute, as in the corpus's smart_turn_v3_int8, and the post-processing (boxes, NMS)
stays in float. The calibration inputs are the zoo's input generators at every sweep shape with
fixed seeds (other seeds than the checks use), so the output is the same bytes on every run; the
printed sha256 of each model shows it.

Cached in `<zoo cache>/int8/` (the folder `prepare.py` prints) under a key of this file and the
zoo's own key; rebuilt when either changes.

usage: python quantize_zoo.py [--root REPO_ROOT]     (prints the folder of the int8 models)
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))


@dataclasses.dataclass(frozen=True)
class QSpec:
    name: str
    base: str
    """The zoo model it quantizes."""
    method: str
    """"dynamic" or "static" (QDQ)."""
    op_types: tuple[str, ...] = ()
    """Static: the operator types to quantize (empty: ONNX Runtime's default)."""
    weights: str = "QInt8"
    """Dynamic: the weights' type (QInt8 or QUInt8)."""


QUANTIZED: list[QSpec] = [
    QSpec("codebert_int8", "codebert", "dynamic"),
    QSpec("conformer_int8", "conformer", "dynamic", weights="QUInt8"),
    QSpec("yolov6_int8", "yolov6", "static", ("Conv",)),
    QSpec("sd_unet_int8", "sd_unet", "static", ("Conv", "MatMul", "Gemm")),
]
BY_NAME = {q.name: q for q in QUANTIZED}


def seed(tag: str) -> int:
    return int(hashlib.sha256(tag.encode()).hexdigest()[:8], 16)


def calibration_feeds(base: str) -> list[dict[str, np.ndarray]]:
    """The zoo's inputs for `base` at each sweep shape (input variants included), fixed seeds."""
    from models import BY_NAME as SPECS

    spec = SPECS[base]
    return [spec.inputs(case.dims, case.variant, np.random.default_rng(seed(f"calibrate/{base}/{case.name}"))) for case in spec.sweep]


def quantize(q: QSpec, src: pathlib.Path, dst: pathlib.Path) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)

    if q.method == "dynamic":
        quantize_dynamic(str(src), str(dst), weight_type=QuantType[q.weights])
        return

    class Reader(CalibrationDataReader):
        def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    quantize_static(
        str(src), str(dst), Reader(calibration_feeds(q.base)),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        op_types_to_quantize=list(q.op_types) or None,
    )


def key(zoo: pathlib.Path) -> str:
    h = hashlib.sha256(pathlib.Path(__file__).read_bytes())
    h.update(zoo.name.encode())  # the zoo's own key: its generator, oracle and requirements
    return h.hexdigest()[:16]


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(zoo: pathlib.Path) -> pathlib.Path:
    """Quantizes into `zoo/int8` (once per key) and returns that folder."""
    out = zoo / "int8"
    k = key(zoo)
    done = out / "DONE"
    if done.exists() and done.read_text().split()[0] == k:
        print(f"int8 zoo cached ({done.read_text().strip()})", file=sys.stderr)
        return out
    t0 = time.time()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="sod2-quant-") as t:
        for q in QUANTIZED:
            # The quantizer writes calibration files next to its working copy: keep them out of the cache.
            src = pathlib.Path(t) / f"{q.base}.onnx"
            shutil.copyfile(zoo / "models" / f"{q.base}.onnx", src)
            dst = out / f"{q.name}.onnx"
            quantize(q, src, dst)
            print(f"{q.name:16} {q.method:7} {dst.stat().st_size:8d} B (f32 {src.stat().st_size} B) sha256 {sha256(dst)[:16]}", file=sys.stderr)
    done.write_text(f"{k} built in {time.time() - t0:.1f} s\n")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=pathlib.Path, default=HERE.parent.parent)
    args = ap.parse_args()
    zoo = pathlib.Path(subprocess.run([sys.executable, str(HERE / "prepare.py"), "--root", str(args.root)],
                                      check=True, capture_output=True, text=True).stdout.strip())
    print(build(zoo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
