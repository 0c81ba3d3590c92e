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
gradient with respect to the box (PrRoIPool), so it lives only here and is never exported. The module imports
torch only for refinement: the export's graph builder (``edgedet.export.iou_nms``) shares its constants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

RANKS = ("iou", "score_iou")
#: floor of the ranking key of a candidate: a predicted IoU of ~0 still ranks (and, exported, still enters
#: ``NonMaxSuppression``, which keeps only keys above its threshold); keys below it tie, resolved by candidate index
KEY_FLOOR = 1e-5
#: Algorithm 2's early-stop thresholds (the paper's and the reproduction's): a box freezes once a step changes its
#: predicted IoU by less than OMEGA_1 or lowers it by more than -OMEGA_2
OMEGA_1, OMEGA_2 = 1e-3, -0.01


def ranking_key(scores: np.ndarray, ious: np.ndarray, rank: str) -> np.ndarray:
    """The key IoU-guided NMS ranks by, floored at :data:`KEY_FLOOR` (as the exported graph does)."""
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {RANKS}, not {rank!r}")
    key = ious if rank == "iou" else scores * ious
    return np.maximum(key, KEY_FLOOR)


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
    ``labels [N]``. A box is suppressed when its IoU with the kept box is strictly above ``iou_thresh``. The key
    is computed in float32, as the graph does, so equal keys (ties, resolved by the lower index) are the graph's.
    """
    boxes, scores = np.asarray(boxes, np.float64), np.asarray(scores, np.float64)
    ious, labels = np.asarray(ious, np.float64), np.asarray(labels)
    key = ranking_key(scores.astype(np.float32), ious.astype(np.float32), rank).astype(np.float64)
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
                 omega_1: float = OMEGA_1, omega_2: float = OMEGA_2) -> tuple[Tensor, Tensor]:
    """Algorithm 2 of the paper: gradient ascent on the predicted IoU with respect to the box → ``(boxes, IoU)``.

    Every step is applied: a box moves by ``step_size × (w, h, w, h) × ∂IoU/∂box`` (the paper's scale by box
    size; the reproduction found ``step_size = 2.0`` better than the paper's 0.5) and, once the step changed its
    predicted IoU by less than ``omega_1`` or lowered it by more than ``-omega_2``, it freezes where that step
    left it (as the paper and the reproduction do; a step may lower the IoU). ``predict_iou(boxes [N, 4]) -> [N]``
    must be differentiable in the boxes; the IoU returned is the prediction at each box's final position.
    """
    import torch

    if len(boxes) == 0:
        return boxes, boxes.new_zeros((0,))
    with torch.enable_grad():
        current = boxes.detach().clone().requires_grad_(True)
        score = predict_iou(current)
        active = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
        for _ in range(int(steps)):
            (grad,) = torch.autograd.grad(score.sum(), current)
            wh = (current[:, 2:] - current[:, :2]).detach().clamp(min=1.0).repeat(1, 2)
            moved = torch.where(active[:, None], current.detach() + step_size * wh * grad, current.detach())
            current = moved.requires_grad_(True)
            new_score = predict_iou(current)
            delta = (new_score - score).detach()
            active = active & ~((delta.abs() < omega_1) | (delta < omega_2))
            score = new_score
            if not bool(active.any()):
                break
    return current.detach(), score.detach()
