"""INT8 Q/DQ ONNX with ONNX Runtime's static quantizer, in the form TensorRT builds INT8 engines from.

Per-channel symmetric INT8 weights, symmetric INT8 activations (zero zero-points: TensorRT rejects
others), QDQ format. Only the compute-heavy ops (Conv, Gemm, MatMul) are quantized, so the input
cast/normalisation and the NMS tail stay in float. The graph given here is the candidate graph
(before the NMS tail) so ONNX Runtime can run it while collecting ranges whatever NMS flavour follows.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import onnx

from edgedet.errors import EdgedetError

METHODS = ("entropy", "minmax", "percentile")
QUANTIZED_OPS = ["Conv", "Gemm", "MatMul"]


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader protocol over preprocessed batches."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._it: Iterator[np.ndarray] = iter(batches)
        self.input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:  # part of the protocol in recent ONNX Runtime; one pass is enough here
        pass


def quantize_qdq(model: onnx.ModelProto, batches: Iterable[np.ndarray], *, method: str = "percentile") -> onnx.ModelProto:
    """Calibrate ``model`` on ``batches`` (uint8 NHWC) and return its Q/DQ twin."""
    if method not in METHODS:
        raise EdgedetError(f"calibration method must be one of {', '.join(METHODS)}, not {method!r}")
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise EdgedetError("INT8 export needs ONNX Runtime: pip install onnxruntime") from None
    calibrate = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
                 "percentile": CalibrationMethod.Percentile}[method]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs pre-processing advice on the root logger
    with tempfile.TemporaryDirectory(prefix="edgedet-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        try:
            quantize_static(
                str(src), str(dst), _Reader(model.graph.input[0].name, batches),
                quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTIZED_OPS, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=calibrate,
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
            )
        finally:
            root.setLevel(level)
        return onnx.load(str(dst))
