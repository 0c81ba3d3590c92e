"""IoU-Net's inference in PyTorch: IoU-guided NMS and optimization-based box refinement.

This is the reference the exported graph is judged against, so it is written as the paper's plain
sequential loop (Algorithm 1 of Jiang et al., ECCV 2018), independent of the export's formulation
(``NonMaxSuppression`` on the IoU ranking plus a K×K cluster-max step, ``edgedet.export.iou_nms``):

1. Rank the candidates of one class by predicted IoU (``rank="iou"``) or by score × IoU
   (``rank="score_iou"``, the variant of IoU-Net's public MMDetection reproduction).
2. Take the best remaining box; its cluster is it and every remaining box overlapping it by more than
   the IoU threshold. The cluster leaves the candidate set.
3. The kept box's score becomes the highest classification score in its cluster: the box that localizes
   best keeps the confidence of the box that classifies best.

Refinement (Algorithm 2) moves each kept box uphill on its predicted IoU; it needs a pooling layer with a
gradient with respect to the box (PrRoIPool), so it lives only here and is never exported.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

RANKS = ("iou", "score_iou")


def _pair_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def iou_guided_nms(boxes: np.ndarray, scores: np.ndarray, ious: np.ndarray, labels: np.ndarray,
                   iou_thresh: float, rank: str = "iou") -> tuple[np.ndarray, np.ndarray]:
    """Per-class IoU-guided NMS → ``(kept indices, their new scores)``, ordered by new score, best first.

    ``boxes [N, 4]`` x1y1x2y2, ``scores [N]`` classification, ``ious [N]`` predicted localization IoU,
    ``labels [N]``. A box is suppressed when its IoU with the kept box is strictly above ``iou_thresh``.
    """
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {RANKS}, not {rank!r}")
    boxes, scores = np.asarray(boxes, np.float64), np.asarray(scores, np.float64)
    ious, labels = np.asarray(ious, np.float64), np.asarray(labels)
    key = ious if rank == "iou" else scores * ious
    kept: list[int] = []
    new_scores: list[float] = []
    for cls in np.unique(labels):
        remaining = [int(i) for i in np.flatnonzero(labels == cls)]
        remaining.sort(key=lambda i: (-key[i], i))
        while remaining:
            best = remaining[0]
            overlap = _pair_iou(boxes[best], boxes[remaining])
            cluster = [r for r, o in zip(remaining, overlap) if r == best or o > iou_thresh]
            kept.append(best)
            new_scores.append(float(max(scores[c] for c in cluster)))
            in_cluster = set(cluster)
            remaining = [r for r in remaining if r not in in_cluster]
    order = sorted(range(len(kept)), key=lambda k: (-new_scores[k], kept[k]))
    return (np.array([kept[k] for k in order], np.int64), np.array([new_scores[k] for k in order], np.float64))


def refine_boxes(boxes: Tensor, predict_iou: Callable[[Tensor], Tensor], *, steps: int = 5, step_size: float = 2.0,
                 min_gain: float = 1e-3) -> tuple[Tensor, Tensor]:
    """Gradient ascent on the predicted IoU with respect to the box → ``(boxes, predicted IoU)``.

    Each step moves a box by ``step_size × (w, h, w, h) × ∂IoU/∂box`` (the paper's scale by box size);
    the reproduction found ``step_size = 2.0`` better than the paper's 0.5. A box stops, keeping its
    last better position, once a step raises its IoU by less than ``min_gain`` (or lowers it).
    ``predict_iou(boxes [N, 4]) -> [N]`` must be differentiable in the boxes.
    """
    if len(boxes) == 0:
        return boxes, boxes.new_zeros((0,))
    with torch.enable_grad():
        current = boxes.detach().clone().requires_grad_(True)
        score = predict_iou(current)
        active = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
        for _ in range(int(steps)):
            (grad,) = torch.autograd.grad(score.sum(), current)
            wh = (current[:, 2:] - current[:, :2]).detach().clamp(min=1.0).repeat(1, 2)
            proposal = (current.detach() + step_size * wh * grad).requires_grad_(True)
            new_score = predict_iou(proposal)
            better = active & (new_score.detach() > score.detach())
            active = better & (new_score.detach() - score.detach() >= min_gain)
            current = torch.where(better[:, None], proposal.detach(), current.detach()).requires_grad_(True)
            if not bool(active.any()):
                break
            score = predict_iou(current)
        final = predict_iou(current)
    return current.detach(), final.detach()
