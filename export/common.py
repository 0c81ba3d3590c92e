"""Pieces every deploy wrapper shares: in-graph input normalisation and the constant candidate TopK."""

from __future__ import annotations

import torch
from torch import nn

from edgedet.runtime.input_format import UINT8_NHWC


class NormalizeInput(nn.Module):
    """uint8 NHWC RGB (or float32 NCHW RGB in 0..255) → float NCHW, scaled to [0, 1] and normalised, inside
    the graph (engine contract; ``input_format`` is one of :data:`edgedet.runtime.input_format.INPUT_FORMATS`).

    The Cast comes first: TensorRT's ONNX parser rejects any UINT8 tensor that is not a network input
    or output, so a Transpose of the uint8 input (permute before cast) fails every TensorRT build.
    Per-channel mean/std stay here for the float input too: DeepStream's nvinfer, which feeds it, has one
    scale factor for all channels. The compute dtype follows the buffers, so ``wrapper.double()`` gives a
    float64 reference.
    """

    def __init__(self, mean: list[float], std: list[float], input_format: str = UINT8_NHWC) -> None:
        super().__init__()
        self.input_format = input_format
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.mean.dtype)
        if self.input_format == UINT8_NHWC:
            x = x.permute(0, 3, 1, 2)
        return (x / 255.0 - self.mean) / self.std


def topk_candidates(
    boxes: torch.Tensor, scores: torch.Tensor, k: int, per_class: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best ``k`` (box, class) pairs per image, padded with zeros to exactly ``k``.

    ``boxes [B, N, 4]`` shared by all classes or ``[B, N, C, 4]`` per class; ``scores [B, N, C]``
    already masked (0 where thresholded) → boxes ``[B, k, 4]``, scores ``[B, k]``, labels ``[B, k]``
    int64. A constant ``k`` keeps every shape static whatever the image holds.

    ``per_class`` first keeps each class's best ``per_class`` anchors, as torchvision's SSD does
    (``topk_candidates``) before its NMS: without it, a class with more than that many anchors above
    the threshold kept low-scoring boxes eager PyTorch never sees (measured: 100 instead of 88
    detections on a synthetic image at score 0.01).
    """
    b, n, c = scores.shape
    if per_class is not None and per_class < n:
        if boxes.dim() == 4:
            raise ValueError("per-class candidates need boxes shared by all classes")
        class_scores, class_anchors = scores.transpose(1, 2).topk(per_class, dim=2)  # [B, C, per_class]
        flat, anchors_of = class_scores.reshape(b, c * per_class), class_anchors.reshape(b, c * per_class)
        total, per_label = c * per_class, per_class
    else:
        flat, anchors_of, total, per_label = scores.reshape(b, n * c), None, n * c, None
    if total < k:  # fewer candidates than K: pad so the output shape never depends on the model
        flat = torch.cat([flat, flat.new_zeros(b, k - total)], dim=1)
    vals, idx = flat.topk(k, dim=1)
    idx = torch.clamp(idx, max=total - 1)
    if anchors_of is not None:
        anchor = torch.gather(anchors_of, 1, idx)
        labels = torch.div(idx, per_label, rounding_mode="floor")
    else:
        anchor = torch.div(idx, c, rounding_mode="floor")
        labels = idx - anchor * c
    if boxes.dim() == 4:
        per_class_boxes = boxes.reshape(b, n * c, 4)
        picked = torch.gather(per_class_boxes, 1, idx.unsqueeze(-1).expand(b, k, 4))
    else:
        picked = torch.gather(boxes, 1, anchor.unsqueeze(-1).expand(b, k, 4))
    return picked, vals, labels


def decode_boxes(rel_codes: torch.Tensor, anchors: torch.Tensor, weights: tuple[float, ...], clip: float,
                 size: tuple[int, int]) -> torch.Tensor:
    """torchvision's ``BoxCoder.decode_single`` for ``rel_codes [B, N, 4]`` against ``anchors [N, 4]``
    by broadcasting (no per-batch Tile of the anchors), then clipped to the ``(H, W)`` image."""
    wx, wy, ww, wh = weights
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    ctr_x = anchors[:, 0] + 0.5 * widths
    ctr_y = anchors[:, 1] + 0.5 * heights
    dx, dy = rel_codes[..., 0] / wx, rel_codes[..., 1] / wy
    dw = torch.clamp(rel_codes[..., 2] / ww, max=clip)
    dh = torch.clamp(rel_codes[..., 3] / wh, max=clip)
    cx, cy = dx * widths + ctr_x, dy * heights + ctr_y
    half_w, half_h = 0.5 * torch.exp(dw) * widths, 0.5 * torch.exp(dh) * heights
    h, w = size
    return torch.stack([(cx - half_w).clamp(0, w), (cy - half_h).clamp(0, h),
                        (cx + half_w).clamp(0, w), (cy + half_h).clamp(0, h)], dim=-1)
