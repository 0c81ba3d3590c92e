"""Host-side preprocessing of the engine contract: resize only, then map boxes back exactly.

The graph casts, scales and normalises; the host resizes into the network's fixed H×W, either
stretching (as torchvision's SSD transform does) or letterboxing (aspect kept, image at the top-left,
padding at the bottom/right with the normalisation mean — what torchvision's Faster R-CNN transform
feeds its backbone after batching).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

RESIZE_MODES = ("stretch", "letterbox")


@dataclass(frozen=True)
class Resize:
    """How one image was fitted: network coords = original coords * (sx, sy)."""

    sx: float
    sy: float
    width: int  # original image size
    height: int

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes ``[N, 4]`` x1y1x2y2 in network pixels → original pixels, clipped to the image."""
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = np.clip(out[:, [0, 2]] / self.sx, 0, self.width)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]] / self.sy, 0, self.height)
        return out

    def to_network(self, boxes: np.ndarray) -> np.ndarray:
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] *= self.sx
        out[:, [1, 3]] *= self.sy
        return out


def resize_into(
    image: np.ndarray, out: np.ndarray, mode: str = "stretch", pad_value: tuple[int, int, int] = (0, 0, 0)
) -> Resize:
    """Resize RGB uint8 ``image`` into the preallocated ``out`` ``[H, W, 3]``; returns the mapping."""
    h, w = image.shape[:2]
    H, W = out.shape[:2]
    if mode == "stretch":
        cv2.resize(image, (W, H), dst=out, interpolation=cv2.INTER_LINEAR)
        return Resize(W / w, H / h, w, h)
    if mode != "letterbox":
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, not {mode!r}")
    scale = min(W / w, H / h)
    nw, nh = max(1, min(W, round(w * scale))), max(1, min(H, round(h * scale)))
    out[...] = np.asarray(pad_value, dtype=np.uint8)
    out[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return Resize(nw / w, nh / h, w, h)


def preprocess_batch(
    images: list[np.ndarray], size: tuple[int, int], mode: str, pad_value: tuple[int, int, int] = (0, 0, 0),
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, list[Resize]]:
    """Stack resized images into ``out`` (``uint8 [B, H, W, 3]``, allocated if None)."""
    H, W = size
    if out is None or out.shape[0] < len(images):
        out = np.empty((len(images), H, W, 3), np.uint8)
    fits = [resize_into(im, out[i], mode, pad_value) for i, im in enumerate(images)]
    return out[: len(images)], fits


def pad_to_batch(images: np.ndarray, size: int) -> np.ndarray:
    """``images`` (``[n, ...]``) filled up to a fixed batch of ``size`` by repeating the first image: what a
    fixed-batch engine is fed, and what calibration sees (a copy of a real image, never a black one). The
    results of the filler rows are dropped by the caller."""
    n = len(images)
    if n >= size:
        return images
    out = np.empty((size, *images.shape[1:]), images.dtype)
    out[:n] = images
    out[n:] = images[:1]
    return out


def scale_16_to_8(values: np.ndarray) -> np.ndarray:
    """Round 0..65535 onto 0..255 (65535 -> 255, 257 -> 1), for 16-bit files and arrays alike; PIL's own
    conversion clips at 255 instead."""
    wide = np.clip(values.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)
