"""The bridge from edgedet's torch-free datasets to torch's DataLoader."""

from __future__ import annotations

from typing import Any

import torch

from edgedet.data.types import DetectionDataset
from edgedet.train.augment import build_transform


class TorchDetectionDataset(torch.utils.data.Dataset):
    """Items are ``(image float [3,H,W] in [0,1], {"boxes": [N,4] xyxy, "labels": [N] 1-based})``."""

    def __init__(self, dataset: DetectionDataset, augment: str = "none") -> None:
        self.dataset = dataset
        self.transform = build_transform(augment)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, sample = self.dataset[index]
        img, boxes, labels = self.transform(image, sample.boxes, sample.labels)
        return img, {"boxes": boxes, "labels": labels + 1}  # torchvision's label 0 is background


def collate(batch: list[Any]) -> tuple[list, list]:
    images, targets = zip(*batch)
    return list(images), list(targets)
