"""The two input tensors an export can take, and the one conversion between them. Torch-free.

``uint8-nhwc`` (the default): ``uint8 [B, H, W, 3]`` RGB, what OpenCV decodes and the cheapest to copy.
``float-nchw``: ``float32 [B, 3, H, W]`` RGB in 0..255, for consumers that write the input themselves in
that layout — DeepStream's ``nvinfer`` preprocessor writes float32 (or half) NCHW and has no uint8 input
(``NvDsInferDataType``). Both graphs normalise per channel inside, so both compute the same detections.

Every runtime resizes into a uint8 NHWC buffer; :func:`to_engine_input` turns it into what the engine takes.
"""

from __future__ import annotations

import numpy as np

UINT8_NHWC = "uint8-nhwc"
FLOAT_NCHW = "float-nchw"
INPUT_FORMATS = (UINT8_NHWC, FLOAT_NCHW)

#: Each format's (dtype, layout) as the metadata records them.
DESCRIPTION = {UINT8_NHWC: ("uint8", "NHWC"), FLOAT_NCHW: ("float32", "NCHW")}


def format_of(meta: dict) -> str:
    """The input format an export's metadata records (exports written before the option are uint8-nhwc)."""
    return str(meta.get("input", {}).get("format", UINT8_NHWC))


def shape_of(fmt: str, batch: int | None, size: tuple[int, int]) -> tuple:
    """The input tensor's shape in ``fmt`` for a batch and ``(H, W)``."""
    h, w = size
    return (batch, h, w, 3) if fmt == UINT8_NHWC else (batch, 3, h, w)


def recognise(dtype: str, dims: list) -> tuple[str, int | None, tuple[int, int]] | None:
    """``(format, batch or None, (H, W))`` of an input tensor of numpy ``dtype`` and ``dims``, or None when it is
    neither format. Dimensions may be None (dynamic) or negative (TensorRT's -1)."""
    if len(dims) != 4:
        return None
    batch = dims[0] if dims[0] and dims[0] > 0 else None
    if dtype == "uint8" and dims[3] == 3:
        return UINT8_NHWC, batch, (dims[1], dims[2])
    if dtype == "float32" and dims[1] == 3:
        return FLOAT_NCHW, batch, (dims[2], dims[3])
    return None


def to_engine_input(images: np.ndarray, fmt: str) -> np.ndarray:
    """A resized ``uint8 [B, H, W, 3]`` batch as the engine's input tensor (contiguous)."""
    if fmt == UINT8_NHWC:
        return np.ascontiguousarray(images)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32)
