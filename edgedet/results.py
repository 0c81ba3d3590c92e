"""Shared output of every predictor: COCO results JSON and annotated images.

The PyTorch ``predict`` and the engine ``predict`` both write through here, so their files compare
line by line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from edgedet.errors import DataError
from edgedet.fileio import atomic_path, atomic_write_json
from edgedet.runtime.detections import Detections
from edgedet.runtime.draw import draw_detections


def coco_results(
    image_ids: Sequence[int], detections: Sequence[Detections], category_ids: Sequence[int]
) -> list[dict]:
    """COCO results entries (``bbox`` as x, y, w, h); ``category_ids[label]`` maps class indices to ids."""
    out: list[dict] = []
    for image_id, det in zip(image_ids, detections):
        for (x1, y1, x2, y2), score, label in zip(det.boxes.tolist(), det.scores.tolist(), det.labels.tolist()):
            out.append({
                "image_id": int(image_id), "category_id": int(category_ids[label]),
                "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                "score": round(float(score), 5),
            })
    return out


def save_results_json(path: str | Path, results: list[dict], *, overwrite: bool = False) -> Path:
    return atomic_write_json(path, results, overwrite=overwrite)


def save_annotated(path: str | Path, image_rgb: np.ndarray, det: Detections, class_names: Sequence[str]) -> Path:
    """Write the image with boxes drawn, atomically; the format follows the suffix."""
    bgr = cv2.cvtColor(draw_detections(image_rgb, det, class_names), cv2.COLOR_RGB2BGR)
    suffix = Path(path).suffix or ".jpg"
    ok, buf = cv2.imencode(suffix, bgr)
    if not ok:
        raise DataError(f"cannot encode an image as {suffix}: {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return Path(path)
