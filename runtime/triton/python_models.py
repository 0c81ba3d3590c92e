"""The Triton Python-backend models of an edgedet repository, built on ``edgedet.runtime`` (no torch).

``ContractModel`` serves the engine contract on machines without a GPU (the engine runs through
``edgedet.runtime.Detector``: OpenVINO or ONNX Runtime); ``EndToEndModel`` takes encoded images (JPEG/PNG
bytes), decodes and resizes them, runs the engine and returns detections in original-image pixels with class
names. Requests that Triton's dynamic batcher hands over together run as one batch. A bad request (an image
that does not decode, one over the size limits) gets its own error; the others in the batch are answered.

Tensors cross between Triton and numpy through DLPack: the Python backend of Triton 24.x (the server of the
nvidia-pytriton wheel) builds broken numpy arrays under numpy 2 (``as_numpy`` returned every byte equal to the
first, outputs arrived empty; measured), while its DLPack path is exact. DLPack has no strings, so class names
travel as each model's ``labels.txt`` (Triton's classification extension) and in its ``edgedet_metadata``.

The generated ``model.py`` of each model imports one of these classes as ``TritonPythonModel``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgedet.runtime.preprocess import pad_to_batch

MAX_IMAGE_BYTES = 32 << 20  # an encoded image larger than this is refused
MAX_IMAGE_PIXELS = 64_000_000  # and a decoded one with more pixels


def instance_device(args: dict[str, Any], params: dict[str, str]) -> str | None:
    """The device this model instance runs on: the repository's ``device`` parameter (``cpu`` for the CPU
    models), else the GPU Triton assigned the instance (``model_instance_kind`` GPU and
    ``model_instance_device_id``, the Python backend's ``initialize`` arguments): with ``instance_group``
    ``KIND_GPU`` on a multi-GPU server each instance gets its own GPU, never always GPU 0."""
    if params.get("device"):
        return params["device"]
    if args.get("model_instance_kind") == "GPU":
        return f"cuda:{int(args.get('model_instance_device_id', 0))}"
    return None


class _Model:
    def initialize(self, args: dict[str, Any]) -> None:
        import triton_python_backend_utils as pb_utils

        from edgedet.runtime import Detector

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        engine = Path(args["model_repository"]) / args["model_version"] / params["engine_file"]
        threads = int(params.get("threads", "0")) or None
        self.detector = Detector(engine, backend=params.get("backend", "auto"), device=instance_device(args, params),
                                 threads=threads)
        self.k = int(params["max_dets"])
        self.batched = int(config.get("max_batch_size", 0)) > 0

    def _error(self, message: str) -> Any:
        return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(message))

    def _input(self, request: Any, name: str) -> np.ndarray:
        return np.from_dlpack(_DLPack(self.pb.get_input_tensor_by_name(request, name)))

    def _outputs(self, rows: list[dict[str, np.ndarray]]) -> list[Any]:
        return [self.pb.Tensor.from_dlpack(key, np.ascontiguousarray(np.stack([r[key] for r in rows])))
                for key in ("num_dets", "boxes", "scores", "labels")]


class _DLPack:
    """A Triton input tensor as a DLPack producer numpy can import (CPU memory)."""

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def __dlpack__(self, stream: Any = None, **_: Any) -> Any:
        return self.tensor.to_dlpack()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU


class ContractModel(_Model):
    """uint8 images [B, H, W, 3] (already resized) → the four contract tensors."""

    def execute(self, requests: list[Any]) -> list[Any]:
        batches = [self._input(r, "images") for r in requests]
        stacked = np.concatenate(batches)
        size = self.detector.batch_size
        parts = []
        for start in range(0, len(stacked), size):
            chunk = stacked[start : start + size]
            raw = self.detector.raw(chunk if self.detector.dynamic_batch else pad_to_batch(chunk, size))
            parts.append({k: v[: len(chunk)] for k, v in raw.items()})
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        responses, start = [], 0
        for b in batches:
            rows = [{k: v[start + i] for k, v in merged.items()} for i in range(len(b))]
            responses.append(self.pb.InferenceResponse(output_tensors=self._outputs(rows)))
            start += len(b)
        return responses


class EndToEndModel(_Model):
    """Encoded images (UINT8 [1, n] per request) → num_dets, boxes (original pixels), scores, labels."""

    def execute(self, requests: list[Any]) -> list[Any]:
        decoded: list[list[np.ndarray] | str] = []
        for r in requests:
            try:
                encoded = self._input(r, "image")
                decoded.append([_decode(row) for row in encoded.reshape(len(encoded), -1)])
            except ValueError as e:
                decoded.append(str(e))
        images = [im for d in decoded if not isinstance(d, str) for im in d]
        detections = iter(self.detector(images) if images else [])
        responses = []
        for d in decoded:
            if isinstance(d, str):
                responses.append(self._error(d))
                continue
            rows = [self._row(next(detections)) for _ in d]
            responses.append(self.pb.InferenceResponse(output_tensors=self._outputs(rows)))
        return responses

    def _row(self, det: Any) -> dict[str, np.ndarray]:
        n = min(len(det), self.k)
        boxes = np.zeros((self.k, 4), np.float32)
        scores = np.zeros(self.k, np.float32)
        labels = np.zeros(self.k, np.int32)
        boxes[:n], scores[:n], labels[:n] = det.boxes[:n], det.scores[:n], det.labels[:n]
        return {"num_dets": np.array([n], np.int32), "boxes": boxes, "scores": scores, "labels": labels}


def _decode(data: Any) -> np.ndarray:
    """One encoded image → RGB uint8, or ValueError with the reason (the client gets it as its error)."""
    import cv2

    raw = np.asarray(data, np.uint8).tobytes()
    if not raw:
        raise ValueError("empty image: send the encoded JPEG/PNG bytes")
    if len(raw) > MAX_IMAGE_BYTES:
        raise ValueError(f"image of {len(raw)} bytes is over the limit of {MAX_IMAGE_BYTES}")
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the image does not decode (not a JPEG/PNG/BMP/TIFF/WebP file?)")
    if image.shape[0] * image.shape[1] > MAX_IMAGE_PIXELS:
        raise ValueError(f"image of {image.shape[1]}x{image.shape[0]} pixels is over the limit of {MAX_IMAGE_PIXELS}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
