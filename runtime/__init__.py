"""Torch-free inference runtime that applications embed on the device.

``from edgedet.runtime import Detector`` needs numpy, OpenCV and one backend (ONNX Runtime or
TensorRT); names load on first use so ``import edgedet.runtime`` stays fast.
"""

from typing import Any

__all__ = ["Detector", "Detections", "StreamPipeline", "FrameResult", "ByteTracker"]


def __getattr__(name: str) -> Any:
    if name == "Detector":
        from edgedet.runtime.detector import Detector

        return Detector
    if name == "Detections":
        from edgedet.runtime.detections import Detections

        return Detections
    if name in ("StreamPipeline", "FrameResult"):
        from edgedet.runtime import streams

        return getattr(streams, name)
    if name == "ByteTracker":
        from edgedet.runtime.tracker import ByteTracker

        return ByteTracker
    raise AttributeError(name)
