"""COCO detection JSON into a :class:`DetectionDataset`.

Validation is strict and names the exact field (``annotations[3].bbox``): hand-edited and
converter-made COCO files are the usual reason a training run fails hours in, far from the cause.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgedet.data.types import DetectionDataset, Sample
from edgedet.errors import DataError
from edgedet.log import warn


def load_coco(ann_file: str | os.PathLike, images_dir: str | os.PathLike) -> DetectionDataset:
    """Classes are the categories sorted by id; crowd regions and empty boxes are left out of the targets."""
    ann_file, images_dir = Path(ann_file), Path(images_dir)
    if not images_dir.is_dir():
        raise DataError(f"images folder {images_dir} (for {ann_file}) does not exist")
    doc = _Doc(ann_file)
    categories = sorted(doc.categories())
    samples = doc.images()
    doc.add_annotations(samples, {cat_id: label for label, (cat_id, _) in enumerate(categories)})
    return DetectionDataset(
        classes=[name for _, name in categories],
        category_ids=[cat_id for cat_id, _ in categories],
        samples=samples,
        images_dir=images_dir,
        source=str(ann_file),
    )


def is_coco_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".json"


class _Doc:
    """One parsed COCO file; every error it raises starts with the file's path and names the field."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = _read_json(path)
        if not isinstance(self.root, dict):
            raise self.error("top level must be a JSON object with 'images' and 'categories'")

    def error(self, message: str) -> DataError:
        return DataError(f"{self.path}: {message}")

    def categories(self) -> list[tuple[int, str]]:
        seen: dict[int, str] = {}
        for where, rec in self._records("categories", required=True):
            cat_id = self._int(rec, "id", where)
            if cat_id in seen:
                raise self.error(f"{where}.id {cat_id} is used twice")
            seen[cat_id] = self._str(rec, "name", where)
        return list(seen.items())

    def images(self) -> list[Sample]:
        samples: dict[int, Sample] = {}
        for where, rec in self._records("images", required=True):
            image_id = self._int(rec, "id", where)
            if image_id in samples:
                raise self.error(f"{where}.id {image_id} is used twice")
            samples[image_id] = Sample(
                image_id=image_id,
                file_name=self._str(rec, "file_name", where),
                width=self._int(rec, "width", where, positive=True),
                height=self._int(rec, "height", where, positive=True),
            )
        return list(samples.values())

    def add_annotations(self, samples: list[Sample], label_of: dict[int, int]) -> None:
        """Fill each sample's boxes (xywh -> x1y1x2y2) and 0-based labels."""
        rows: dict[int, list[list[float]]] = {s.image_id: [] for s in samples}
        degenerate = 0
        seen: set[int] = set()
        for where, rec in self._records("annotations", required=False):
            if "id" in rec:  # pycocotools indexes annotations by it (evaluation reads the original file)
                ann_id = self._int(rec, "id", where)
                if ann_id in seen:
                    raise self.error(f"{where}.id {ann_id} is used twice")
                seen.add(ann_id)
            image_id = self._int(rec, "image_id", where)
            if image_id not in rows:
                raise self.error(f"{where}.image_id {image_id} is not in images")
            cat_id = self._int(rec, "category_id", where)
            if cat_id not in label_of:
                raise self.error(f"{where}.category_id {cat_id} is not in categories")
            x, y, w, h = self._bbox(rec, where)
            if self._crowd(rec, where):
                continue
            if w <= 0 or h <= 0:
                degenerate += 1
                continue
            rows[image_id].append([x, y, x + w, y + h, label_of[cat_id]])
        if degenerate:
            warn(f"{self.path}: dropped {degenerate} annotation(s) with zero or negative width or height")
        for s in samples:
            table = np.array(rows[s.image_id], np.float64).reshape(-1, 5)
            s.boxes = table[:, :4].astype(np.float32)
            s.labels = table[:, 4].astype(np.int64)

    def _records(self, key: str, *, required: bool):
        if key not in self.root:
            if required:
                raise self.error(f"missing '{key}'")
            return
        items = self.root[key]
        if not isinstance(items, list):
            raise self.error(f"'{key}' must be a list")
        for i, rec in enumerate(items):
            where = f"{key}[{i}]"
            if not isinstance(rec, dict):
                raise self.error(f"{where} must be an object")
            yield where, rec

    def _field(self, rec: dict, key: str, where: str) -> Any:
        if key not in rec:
            raise self.error(f"{where}.{key} is missing")
        return rec[key]

    def _int(self, rec: dict, key: str, where: str, *, positive: bool = False) -> int:
        value = self._field(rec, key, where)
        # 640.0 is accepted: converters that go through numpy often write integral floats.
        if not _is_number(value) or value != int(value) or (positive and value <= 0):
            raise self.error(f"{where}.{key} must be {'a positive' if positive else 'an'} integer, got {_show(value)}")
        return int(value)

    def _str(self, rec: dict, key: str, where: str) -> str:
        value = self._field(rec, key, where)
        if not isinstance(value, str) or not value:
            raise self.error(f"{where}.{key} must be a non-empty string, got {_show(value)}")
        return value

    def _bbox(self, rec: dict, where: str) -> list[float]:
        value = self._field(rec, "bbox", where)
        if not (isinstance(value, list) and len(value) == 4 and all(_is_number(v) for v in value)):
            raise self.error(f"{where}.bbox must be 4 numbers [x, y, width, height], got {_show(value)}")
        return [float(v) for v in value]

    def _crowd(self, rec: dict, where: str) -> bool:
        value = rec.get("iscrowd", 0)
        if value not in (0, 1):  # True/False compare equal to 1/0 and are fine too
            raise self.error(f"{where}.iscrowd must be 0 or 1, got {_show(value)}")
        return bool(value)


def _read_json(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read annotation file {path}: {(e.strerror or str(e)).lower()}") from e
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from e


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
