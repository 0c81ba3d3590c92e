"""An exported ONNX graph run by OpenVINO on the CPU, returning the contract's four outputs.

OpenVINO reads ONNX directly and is stricter than ONNX Runtime about shapes and types, which makes it
edgedet's second judge of every export. The ``EfficientNMS_TRT`` plugin is TensorRT's alone, so a graph
with it is refused with the flavour to export instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedet.errors import BackendError
from edgedet.runtime.input_format import to_engine_input
from edgedet.runtime.onnx_engine import OUTPUT_NAMES, read_contract_model
from edgedet.runtime.plugins import EFFICIENT_NMS

INSTALL_HINT = "pip install openvino"


class OpenVinoEngine:
    def __init__(self, path: str | Path, *, device: str = "CPU", threads: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError as e:
            raise BackendError(f"OpenVINO is not installed ({e.name}); {INSTALL_HINT}") from None
        path = Path(path)
        model, self.input_name, self.input_batch, self.input_hw, self.input_format = read_contract_model(path)
        if any(n.op_type == EFFICIENT_NMS for n in model.graph.node):
            raise BackendError(f"{path.name} uses the TensorRT plugin {EFFICIENT_NMS}, which OpenVINO cannot run; "
                               "export with --nms onnx")
        config = {"INFERENCE_NUM_THREADS": int(threads)} if threads else {}
        core = ov.Core()
        try:
            # f32 inference precision: OpenVINO's CPU plugin would otherwise run FP32 graphs in bf16 on CPUs
            # with AMX/AVX512-BF16, and the engine must compute what the graph says.
            self._compiled = core.compile_model(str(path), device, {"INFERENCE_PRECISION_HINT": "f32", **config})
        except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError with multi-line messages
            raise BackendError(f"OpenVINO cannot compile {path.name}: {_first_line(e)}") from None
        self._request = self._compiled.create_infer_request()
        self._outputs = [self._compiled.output(name) for name in OUTPUT_NAMES]

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        """``images uint8 [B, H, W, 3]`` → num_dets, boxes, scores, labels (copies, not OpenVINO's buffers)."""
        try:
            result = self._request.infer({self.input_name: to_engine_input(images, self.input_format)})
        except Exception as e:  # noqa: BLE001
            raise BackendError(f"OpenVINO inference failed: {_first_line(e)}") from None
        return [np.array(result[o]) for o in self._outputs]


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.strip().startswith("Exception from")]
    return lines[0] if lines else type(e).__name__
