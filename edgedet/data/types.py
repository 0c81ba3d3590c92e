"""The in-memory form every dataset format is read into.

Torch-free on purpose: calibration and the runtime tools read datasets too.
Boxes are ``float32 [N, 4]`` x1, y1, x2, y2 in pixels of the (EXIF-corrected) image;
labels are ``int64 [N]`` 0-based indices into ``DetectionDataset.classes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Sample:
    image_id: int
    file_name: str  # relative to DetectionDataset.images_dir
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))


@dataclass
class DetectionDataset:
    classes: list[str]
    category_ids: list[int]  # dataset category id of each class, same order as classes
    samples: list[Sample]
    images_dir: Path
    source: str = ""  # where it was read from, for messages

    def __len__(self) -> int:
        return len(self.samples)

    def image_path(self, index: int) -> Path:
        return self.images_dir / self.samples[index].file_name

    def load_image(self, index: int) -> np.ndarray:
        """RGB uint8 ``[H, W, 3]``."""
        from edgedet.data.imageio import read_image

        return read_image(self.image_path(index))

    def __getitem__(self, index: int) -> tuple[np.ndarray, Sample]:
        return self.load_image(index), self.samples[index]

    def to_coco(self) -> dict:
        """Ground truth as a COCO dict (so VOC or synthetic data is evaluated by pycocotools too)."""
        images, anns = [], []
        for s in self.samples:
            images.append({"id": s.image_id, "file_name": s.file_name, "width": s.width, "height": s.height})
            for box, label in zip(s.boxes.tolist(), s.labels.tolist()):
                x1, y1, x2, y2 = box
                w, h = x2 - x1, y2 - y1
                anns.append({
                    "id": len(anns) + 1, "image_id": s.image_id, "category_id": self.category_ids[label],
                    "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0,
                })
        cats = [{"id": cid, "name": name} for name, cid in zip(self.classes, self.category_ids)]
        return {"images": images, "annotations": anns, "categories": cats}
