"""INT8 Q/DQ ONNX with ONNX Runtime's static quantizer, in the form TensorRT builds INT8 engines from.

Per-channel symmetric INT8 weights, symmetric INT8 activations (zero zero-points: TensorRT rejects
others), QDQ format. Weights use 7 bits (values in [-64, 64], ``reduce_range``) by default: x86 CPUs without
VNNI/AMX multiply uint8 activations by int8 weights with ``PMADDUBSW``, whose int16 pair sums saturate for
8-bit weights (255 x 127 x 2 > 32 767) and cannot for 7-bit ones (255 x 64 x 2 = 32 640). Both CPU runtimes
do it: measured on an AVX2 CPU, ONNX Runtime and OpenVINO deviated from the exact Q/DQ arithmetic 1.4x and
1.5x more (mean; 2.3x and 2.6x at p99.9) with 8-bit weights, and OpenVINO lost 1.46 AP points on one trained
fixture where 7-bit weights lost 0.23. ``weight_bits=8`` keeps full-range weights for GPU-only deployments. Only the compute-heavy ops (Conv, Gemm, MatMul) are quantized, so the input
cast/normalisation and the NMS tail stay in float. The graph given here is the candidate graph
(before the NMS tail) so ONNX Runtime can run it while collecting ranges whatever NMS flavour follows.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import onnx

from edgedet import log
from edgedet.errors import EdgedetError

METHODS = ("entropy", "minmax", "percentile")
WEIGHT_BITS = (7, 8)
QUANTIZED_OPS = ["Conv", "Gemm", "MatMul"]


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader protocol over preprocessed batches."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._it: Iterator[np.ndarray] = iter(batches)
        self.input_name = input_name
        self.images = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        if batch is None:
            return None
        self.images += len(batch)
        log.debug(f"calibration: {self.images} images through the FP32 graph")
        return {self.input_name: batch}

    def rewind(self) -> None:  # part of the protocol in recent ONNX Runtime; one pass is enough here
        pass


class _FromQuantizer(logging.Filter):
    """Drops the records ONNX Runtime's quantizer logs on the root logger (pre-processing advice)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/onnxruntime/" not in record.pathname.replace("\\", "/")


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantizer prints its calibration progress to stdout and advice to the root logger; edgedet's
    stdout is for results and the root logger is the application's, so both are kept out without changing
    any logger's level."""
    root, quiet, out = logging.getLogger(), _FromQuantizer(), io.StringIO()
    root.addFilter(quiet)
    try:
        with contextlib.redirect_stdout(out):
            yield
    finally:
        root.removeFilter(quiet)
        for line in out.getvalue().splitlines():  # shown with --verbose
            if line.strip():
                log.debug(f"quantizer: {line.strip()}")


def quantize_qdq(model: onnx.ModelProto, batches: Iterable[np.ndarray], *, method: str = "percentile",
                 weight_bits: int = 7) -> onnx.ModelProto:
    """Calibrate ``model`` on ``batches`` (uint8 NHWC) and return its Q/DQ twin with ``weight_bits``-bit weights."""
    if method not in METHODS:
        raise EdgedetError(f"calibration method must be one of {', '.join(METHODS)}, not {method!r}")
    if weight_bits not in WEIGHT_BITS:
        raise EdgedetError(f"INT8 weight bits must be 7 or 8, not {weight_bits!r}")
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise EdgedetError("INT8 export needs ONNX Runtime: pip install onnxruntime") from None
    calibrate = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
                 "percentile": CalibrationMethod.Percentile}[method]
    with tempfile.TemporaryDirectory(prefix="edgedet-int8-") as tmp, _quiet_quantizer():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        quantize_static(
            str(src), str(dst), _Reader(model.graph.input[0].name, batches),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTIZED_OPS, per_channel=True,
            reduce_range=weight_bits == 7,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=calibrate,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        )
        return _drop_dangling_qdq(onnx.load(str(dst)))


def _drop_dangling_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove the Q/DQ pairs whose dequantized value never reaches another QuantizeLinear.

    The QDQ quantizer puts a Q/DQ pair on the output of every quantized op, including the detection
    heads' last Conv/Gemm, whose outputs only feed the float box decoding and score post-processing
    (Reshape/Transpose/Concat/Gather/Softmax/TopK...). Those pairs buy no INT8 compute anywhere: they
    only round the box deltas and logits to 8 bits. Worse, the SSD heads concatenate six such outputs,
    each with its own scale, and then Gather one coordinate with a scalar index: OpenVINO's
    low-precision transformations move the dequantization past the Concat as a per-anchor
    ``[1, A, 1]`` scale, skip gathering that scale, and the ``[1, A]`` decode broadcasts to
    ``[1, A, A]``, so compile_model fails on ``/Unsqueeze`` (a Reshape of 3234² elements to
    ``[1, 3234, 1]``). Dropping the pairs keeps the heads' inputs and weights INT8 and their outputs float.
    """
    g = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in g.output}
    reaches_q: dict[str, bool] = {}  # tensor → does some path from it reach a QuantizeLinear?
    for node in reversed(g.node):  # ONNX graphs are topologically sorted
        for name in node.output:
            reaches_q[name] = any(c.op_type == "QuantizeLinear" or any(reaches_q.get(o, False) for o in c.output)
                                  for c in consumers.get(name, []))
    removed: set[int] = set()
    rename: dict[str, str] = {}
    for q in g.node:
        if q.op_type != "QuantizeLinear":
            continue
        dqs = consumers.get(q.output[0], [])
        if not dqs or any(d.op_type != "DequantizeLinear" or reaches_q[d.output[0]] or d.output[0] in outputs
                          for d in dqs):
            continue
        removed.update(id(n) for n in (q, *dqs))
        rename.update({d.output[0]: q.input[0] for d in dqs})
    if not removed:
        return model
    kept = [n for n in g.node if id(n) not in removed]
    for node in kept:
        node.input[:] = [rename.get(i, i) for i in node.input]
    dropped = [n for n in g.node if id(n) in removed]
    del g.node[:]
    g.node.extend(kept)
    used = {i for n in kept for i in n.input}
    params = {i for n in dropped for i in n.input[1:]} - used  # the dropped pairs' scales and zero points
    kept_inits = [t for t in g.initializer if t.name not in params]
    del g.initializer[:]
    g.initializer.extend(kept_inits)
    gone = {o for n in dropped for o in n.output}  # their value_info would describe tensors no longer there
    kept_info = [v for v in g.value_info if v.name not in gone]
    del g.value_info[:]
    g.value_info.extend(kept_info)
    return model
