"""Boxes and labels drawn onto RGB frames with OpenCV (torch-free)."""

from __future__ import annotations

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
    """A copy of the image with one box and one ``name score`` tag per detection."""
    out = np.ascontiguousarray(image_rgb).copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 320))
    for (x1, y1, x2, y2), score, label in zip(det.boxes.tolist(), det.scores.tolist(), det.labels.tolist()):
        color = class_color(label)
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(out, p1, p2, color, thick, cv2.LINE_AA)
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        text = f"{name} {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, thick)
        ty = max(p1[1], th + base)
        cv2.rectangle(out, (p1[0], ty - th - base), (p1[0] + tw, ty), color, -1)
        cv2.putText(out, text, (p1[0], ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, (0, 0, 0), thick, cv2.LINE_AA)
    return out

