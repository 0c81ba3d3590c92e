"""Training augmentations by name (torchvision.transforms.v2), as torchvision's detection references use them."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def _hflip(T: Any) -> list:
    return [T.RandomHorizontalFlip(p=0.5)]


def _ssdlite(T: Any) -> list:
    # PR 3757: SSDlite trains with IoU crops and flips, no zoom-out or photometric distortion.
    return [T.RandomIoUCrop(), T.RandomHorizontalFlip(p=0.5)]


def _ssd(T: Any) -> list:
    from torchvision import tv_tensors

    # SSD300's recipe: photometric distortion, zoom-out filled with the ImageNet mean, IoU crops, flips.
    fill = {tv_tensors.Image: (123, 117, 104), "others": 0}
    return [T.RandomPhotometricDistort(p=1.0), T.RandomZoomOut(fill=fill), T.RandomIoUCrop(), T.RandomHorizontalFlip(p=0.5)]


AUGMENTATIONS: dict[str, Callable[[Any], list] | None] = {
    "none": None,
    "hflip": _hflip,
    "ssdlite": _ssdlite,
    "ssd": _ssd,
}


def build_transform(name: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[Any, Any, Any]]:
    """``fn(image RGB uint8 HWC, boxes [N,4] xyxy, labels [N]) -> (float CHW in [0,1], boxes, labels)``."""
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import v2 as T

    steps = AUGMENTATIONS[name](T) if AUGMENTATIONS[name] else []
    pipeline = T.Compose([*steps, T.ToDtype(torch.float32, scale=True), T.SanitizeBoundingBoxes()])

    def apply(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray):
        img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
        bbs = tv_tensors.BoundingBoxes(torch.from_numpy(boxes).float().reshape(-1, 4), format="XYXY",
                                       canvas_size=image.shape[:2])
        img, target = pipeline(img, {"boxes": bbs, "labels": torch.from_numpy(labels)})
        return img.as_subclass(torch.Tensor), target["boxes"].as_subclass(torch.Tensor), target["labels"]

    return apply
