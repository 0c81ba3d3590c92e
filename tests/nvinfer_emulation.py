"""DeepStream ``nvinfer`` emulated from its sources, for tests: what it writes into the input binding and what it
does with the parser's objects. DeepStream cannot run here; each step cites the function it follows (DeepStream
8.0 sources; the same code in 6.1 and 9.1):

- ``get_converted_buffer`` (gstnvinfer.cpp): the frame's size rounded down to even; with maintain-aspect-ratio
  the scaled side is truncated (``guint``), the image goes to the top-left (symmetric-padding=0) or the centre,
  and the rest of the network-size buffer is cleared to 0 (black); ``scaling-filter=1`` is bilinear.
- ``NvDsInferConvert_*`` (nvdsinfer_conversion.cu): ``out = net-scale-factor * (pixel - offsets[c])``, NCHW float32.
- ``preClusteringThreshold`` + ``fillUnclusteredOutput`` (nvdsinfer_context_impl_output_parsing.cpp, cluster-mode
  4): objects of class >= num-detected-classes or below the class's pre-cluster-threshold dropped; the rest
  grouped by class, class 0 first.
- ``attach_metadata_detector`` (gstnvinfer_meta_utils.cpp): ``left = (left - offset_left) / scale_ratio_x``, sizes
  divided by the ratios, left/top clamped at 0, and with crop-objects-to-roi-boundary=1 right/bottom clipped to
  the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Scaled:
    ratio_x: float
    ratio_y: float
    offset_left: int
    offset_top: int
    width: int  # the frame nvinfer scaled (even-sized)
    height: int


def scaled_size(src_w: int, src_h: int, net_w: int, net_h: int, keep_aspect: bool) -> tuple[int, int]:
    if not keep_aspect:
        return net_w, net_h
    hdest = net_w * src_h / src_w
    if hdest <= net_h:
        return net_w, int(hdest)
    return int(net_h * src_w / src_h), net_h


def network_input(frame: np.ndarray, net_h: int, net_w: int, *, keep_aspect: bool, symmetric: bool = False,
                  scale: float = 1.0, offsets=(0.0, 0.0, 0.0), pad=(0, 0, 0)) -> tuple[np.ndarray, Scaled]:
    """RGB uint8 ``frame`` → float32 ``[1, 3, net_h, net_w]`` as nvinfer writes it, and how it was scaled.
    ``pad`` is nvinfer's black; another colour measures what the padding alone changes."""
    h, w = frame.shape[0] & ~1, frame.shape[1] & ~1
    frame = frame[:h, :w]
    dw, dh = scaled_size(w, h, net_w, net_h, keep_aspect)
    x0, y0 = ((net_w - dw) // 2, (net_h - dh) // 2) if symmetric else (0, 0)
    canvas = np.empty((net_h, net_w, 3), np.uint8)
    canvas[...] = np.asarray(pad, np.uint8)
    canvas[y0:y0 + dh, x0:x0 + dw] = cv2.resize(frame, (dw, dh), interpolation=cv2.INTER_LINEAR)
    tensor = np.float32(scale) * (canvas.astype(np.float32) - np.asarray(offsets, np.float32))
    return np.ascontiguousarray(tensor.transpose(2, 0, 1)[None]), Scaled(dw / w, dh / h, x0, y0, w, h)


def frame_objects(objects: list[dict], scaled: Scaled, num_classes: int, thresholds: list[float]) -> list[dict]:
    """The parser's objects (network pixels) → what nvinfer attaches to the frame (frame pixels)."""
    kept = [o for o in objects if o["class_id"] < num_classes and o["confidence"] >= thresholds[o["class_id"]]]
    kept.sort(key=lambda o: o["class_id"])  # stable: engine order within a class
    out = []
    for o in kept:
        left = (o["left"] - scaled.offset_left) / scaled.ratio_x
        top = (o["top"] - scaled.offset_top) / scaled.ratio_y
        width, height = o["width"] / scaled.ratio_x, o["height"] / scaled.ratio_y
        top, left = max(top, 0.0), max(left, 0.0)
        if left + width >= scaled.width:
            width = scaled.width - left
        if top + height > scaled.height:
            height = scaled.height - top
        out.append({**o, "left": left, "top": top, "width": width, "height": height})
    return out
