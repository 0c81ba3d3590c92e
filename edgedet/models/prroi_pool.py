"""Precise RoI Pooling (PrRoIPool, Jiang et al., ECCV 2018) in plain PyTorch.

Why it exists: IoU-Net's optimization-based refinement moves a box along the gradient of its predicted
IoU, and torchvision's ``roi_align`` has no gradient with respect to the box. PrRoIPool averages the
bilinearly interpolated feature map *exactly* over each bin (an integral, no sampling points), so every
output is a smooth function of the box coordinates.

How: bilinear interpolation is ``f(x, y) = Σ_ij F[i, j] · hat(y - i) · hat(x - j)`` with the triangle
kernel ``hat(u) = max(0, 1 - |u|)``, so the integral over a bin ``[a, b] × [c, d]`` separates into
``Σ_ij F[i, j] · (H(d - i) - H(c - i)) · (H(b - j) - H(a - j))`` where ``H`` is hat's antiderivative.
Per RoI that is two small matrix products, ``Wy · F · Wxᵀ``, divided by the bin area: no custom CUDA
kernel, differentiable by autograd, and built only from elementwise ops and ``MatMul`` when exported.

Coordinates: a box in image pixels maps to feature coordinates ``x · scale - 0.5`` (the feature value
``F[i, j]`` sits at the centre of its cell, as RoIAlign's ``aligned=True``); the map is zero outside.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _hat_integral(t: Tensor) -> Tensor:
    """``H(t) = ∫_{-inf}^{t} max(0, 1 - |u|) du``: 0 below -1, 1 above 1, two quadratic pieces between."""
    t = t.clamp(-1.0, 1.0)
    return torch.where(t < 0, 0.5 * (t + 1.0) ** 2, 1.0 - 0.5 * (1.0 - t) ** 2)


def _bin_weights(start: Tensor, end: Tensor, bins: int, size: int) -> Tensor:
    """``[N, bins, size]``: the integral of each cell's kernel over each of ``bins`` equal bins of ``[start, end]``."""
    steps = torch.arange(bins + 1, dtype=start.dtype, device=start.device) / bins
    edges = start[:, None] + (end - start)[:, None] * steps  # [N, bins + 1]
    cells = torch.arange(size, dtype=start.dtype, device=start.device)
    cum = _hat_integral(edges[:, :, None] - cells)  # [N, bins + 1, size]
    return cum[:, 1:] - cum[:, :-1]


def prroi_pool_image(feature: Tensor, boxes: Tensor, output_size: tuple[int, int], spatial_scale: float) -> Tensor:
    """One image: ``feature [C, H, W]``, ``boxes [N, 4]`` x1y1x2y2 image pixels → ``[N, C, out_h, out_w]``.

    Each output is the mean of the interpolated map over its bin (zero for an empty bin). A flipped box
    (x2 < x1 or y2 < y1, reachable when refinement takes a large step) has its width or height clamped to 0, as
    PreciseRoIPooling's kernel does, and pools to 0 (the signed integral divided by a negative area gave ~-25 000).
    """
    out_h, out_w = int(output_size[0]), int(output_size[1])
    height, width = int(feature.shape[-2]), int(feature.shape[-1])
    b = boxes * spatial_scale - 0.5
    b = torch.cat([b[:, :2], torch.maximum(b[:, 2:], b[:, :2])], dim=1)
    wy = _bin_weights(b[:, 1], b[:, 3], out_h, height)  # [N, out_h, H]
    wx = _bin_weights(b[:, 0], b[:, 2], out_w, width)  # [N, out_w, W]
    # [N, 1, out_h, H] @ [1, C, H, W] → [N, C, out_h, W]; @ [N, 1, W, out_w] → [N, C, out_h, out_w]
    pooled = torch.matmul(torch.matmul(wy[:, None], feature[None]), wx.transpose(1, 2)[:, None])
    bin_area = ((b[:, 2] - b[:, 0]) / out_w) * ((b[:, 3] - b[:, 1]) / out_h)
    return pooled / bin_area.clamp(min=1e-6)[:, None, None, None]


def prroi_pool(feature: Tensor, boxes: list[Tensor], output_size: tuple[int, int], spatial_scale: float) -> Tensor:
    """A batch: ``feature [B, C, H, W]``, one ``[N_b, 4]`` box tensor per image → ``[ΣN_b, C, out_h, out_w]``."""
    parts = [prroi_pool_image(feature[i], b, output_size, spatial_scale) for i, b in enumerate(boxes)]
    return torch.cat(parts) if parts else feature.new_zeros((0, feature.shape[1], *output_size))


class MultiScalePrRoIPool(nn.Module):
    """``MultiScaleRoIAlign``'s interface and FPN level mapping, with PrRoIPool instead of RoIAlign.

    ``forward(features: dict, boxes: list[Tensor[N, 4]], image_shapes) -> Tensor[ΣN, C, h, w]``; boxes
    keep their gradient. Each box is pooled on the level torchvision's ``LevelMapper`` assigns it.
    """

    def __init__(self, featmap_names: list[str], output_size: int | tuple[int, int],
                 canonical_scale: int = 224, canonical_level: int = 4) -> None:
        super().__init__()
        self.featmap_names = list(featmap_names)
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        self.canonical_scale, self.canonical_level = canonical_scale, canonical_level

    def forward(self, features: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        from torchvision.ops.poolers import _filter_input, _setup_scales

        maps = _filter_input(features, self.featmap_names)
        scales, mapper = _setup_scales(maps, image_shapes, self.canonical_scale, self.canonical_level)
        if len(maps) == 1:
            return prroi_pool(maps[0], boxes, self.output_size, scales[0])
        levels = mapper(boxes)
        flat = torch.cat(boxes)
        image_of = torch.cat([torch.full((len(b),), i, device=flat.device) for i, b in enumerate(boxes)])
        out = flat.new_zeros((len(flat), maps[0].shape[1], *self.output_size))
        for level, (fmap, scale) in enumerate(zip(maps, scales)):
            for i in range(len(boxes)):
                idx = torch.where((levels == level) & (image_of == i))[0]
                if len(idx):
                    out = out.index_put((idx,), prroi_pool_image(fmap[i], flat[idx], self.output_size, scale))
        return out
