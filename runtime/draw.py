"""Boxes, labels, track ids and trails drawn onto RGB frames, and streams tiled into one image (OpenCV, torch-free)."""

from __future__ import annotations

from collections import deque
from typing import Sequence

import cv2
import numpy as np

from edgedet.runtime.detections import Detections


def class_color(label: int) -> tuple[int, int, int]:
    """A stable, well-separated colour per class (golden-ratio hue steps)."""
    hue = int((label * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def draw_detections(image_rgb: np.ndarray, det: Detections, class_names: Sequence[str]) -> np.ndarray:
    """A copy of the image with one box and one ``name score`` tag per detection (``name #id score`` when
    tracked)."""
    out = np.ascontiguousarray(image_rgb).copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 320))
    ids = getattr(det, "track_ids", None)
    ids = ids.tolist() if ids is not None else [None] * len(det)
    for (x1, y1, x2, y2), score, label, tid in zip(det.boxes.tolist(), det.scores.tolist(), det.labels.tolist(), ids):
        color = class_color(label)
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(out, p1, p2, color, thick, cv2.LINE_AA)
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        text = f"{name} {score:.2f}" if tid is None else f"{name} #{tid} {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, thick)
        ty = max(p1[1], th + base)
        cv2.rectangle(out, (p1[0], ty - th - base), (p1[0] + tw, ty), color, -1)
        cv2.putText(out, text, (p1[0], ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, (0, 0, 0), thick, cv2.LINE_AA)
    return out



class Trails:
    """The last ``length`` box centres of each track of one stream, drawn as a polyline in its class colour;
    tracks not seen for ``length`` frames are forgotten."""

    def __init__(self, length: int = 30) -> None:
        self.length = length
        self._points: dict[int, deque] = {}
        self._seen: dict[int, int] = {}
        self._labels: dict[int, int] = {}
        self._frame = 0

    def update(self, det: Detections) -> None:
        self._frame += 1
        if getattr(det, "track_ids", None) is None:
            return
        for (x1, y1, x2, y2), tid, label in zip(det.boxes.tolist(), det.track_ids.tolist(), det.labels.tolist()):
            self._points.setdefault(tid, deque(maxlen=self.length)).append((int((x1 + x2) / 2), int((y1 + y2) / 2)))
            self._seen[tid], self._labels[tid] = self._frame, label
        for tid in [t for t, f in self._seen.items() if self._frame - f >= self.length]:
            del self._points[tid], self._seen[tid], self._labels[tid]

    def draw(self, canvas: np.ndarray) -> None:
        thick = max(1, round(min(canvas.shape[:2]) / 320))
        for tid, points in self._points.items():
            if len(points) > 1:
                cv2.polylines(canvas, [np.array(points, np.int32)], False, class_color(self._labels[tid]), thick,
                              cv2.LINE_AA)


def tile(canvases: Sequence[np.ndarray | None], max_width: int = 1920) -> np.ndarray:
    """The streams in one image: one stream as it is; several in a near-square grid of equal tiles (the first
    stream's aspect), black where a stream has no frame yet."""
    frames = [c for c in canvases if c is not None]
    if len(canvases) == 1 and frames:
        return frames[0]
    cols = int(np.ceil(np.sqrt(len(canvases))))
    rows = int(np.ceil(len(canvases) / cols))
    h0, w0 = frames[0].shape[:2] if frames else (240, 320)
    tw = min(w0, max_width // cols)
    th = max(1, round(h0 * tw / w0))
    out = np.zeros((rows * th, cols * tw, 3), np.uint8)
    for i, c in enumerate(canvases):
        if c is not None:
            r, k = divmod(i, cols)
            out[r * th:(r + 1) * th, k * tw:(k + 1) * tw] = cv2.resize(c, (tw, th), interpolation=cv2.INTER_AREA)
    return out
