"""The detections every predictor returns, whatever runs it (PyTorch reference, ONNX Runtime, TensorRT).

Torch-free so the runtime, ``predict`` and ``verify`` share one type and one output path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Detections of one image in original-image pixels.

    ``boxes`` float32 ``[N, 4]`` x1, y1, x2, y2; ``scores`` float32 ``[N]`` descending;
    ``labels`` int64 ``[N]`` 0-based indices into the model's class list.
    ``track_ids`` int64 ``[N]`` or None: set by a tracker (``runtime.tracker.ByteTracker``), ids from 1,
    per stream; None for plain detections.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    track_ids: np.ndarray | None = None

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def filter(self, min_score: float = 0.0, classes: set[int] | None = None) -> "Detections":
        keep = self.scores >= min_score
        if classes is not None:
            keep &= np.isin(self.labels, list(classes))
        track_ids = None if self.track_ids is None else self.track_ids[keep]
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep], track_ids)
