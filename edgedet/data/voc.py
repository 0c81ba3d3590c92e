"""Pascal-VOC XML (one file per image) into a :class:`DetectionDataset`.

Three layouts are found without options, because all three are common in the wild: VOC's own
(``Annotations/`` + ``JPEGImages/``), the road-sign tutorial dataset's (``annotations/`` + ``images/``),
and XML files lying next to their images, as labelImg writes them.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgedet.data.types import DetectionDataset, Sample
from edgedet.errors import DataError
from edgedet.log import warn

_ANNOTATION_DIRS = ("Annotations", "annotations")
_IMAGE_DIRS = ("JPEGImages", "images")
_BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


def load_voc(
    root: str | os.PathLike,
    classes: Sequence[str] | None = None,
    *,
    images_dir: str | os.PathLike | None = None,
) -> DetectionDataset:
    """Read every ``*.xml`` of the layout under ``root``; ``images_dir`` overrides where the images are.

    ``classes`` fixes the class order (and drops objects of other names, with one warning); without it
    the classes are the sorted names found. Category ids are 1..N in class order; image ids 1.. in file order.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"VOC folder {root} does not exist")
    xml_files = sorted(_first_dir(root, _ANNOTATION_DIRS).glob("*.xml"))
    if not xml_files:
        looked = ", ".join(f"{name}/" for name in _ANNOTATION_DIRS)
        raise DataError(f"no .xml annotation files in {root} (looked in {looked} and the folder itself)")
    records = [_read_xml(path) for path in xml_files]
    if classes is None:
        # Difficult objects' names count: the class list should not hinge on how hard the examples are.
        classes = sorted({name for rec in records for name, _, _ in rec.objects})
    elif len(set(classes)) != len(classes):
        raise DataError(f"class list for {root} names a class twice: {list(classes)}")
    samples = _samples(records, list(classes), root)
    return DetectionDataset(
        classes=list(classes),
        category_ids=list(range(1, len(classes) + 1)),
        samples=samples,
        images_dir=Path(images_dir) if images_dir is not None else _first_dir(root, _IMAGE_DIRS),
        source=str(root),
    )


def is_voc_dir(path: Path) -> bool:
    return path.is_dir() and any(_first_dir(path, _ANNOTATION_DIRS).glob("*.xml"))


def _first_dir(root: Path, names: Sequence[str]) -> Path:
    # On a case-insensitive file system both spellings hit the same folder, which is fine.
    return next((root / name for name in names if (root / name).is_dir()), root)


@dataclass
class _Record:
    """What one XML file says; boxes already in the dataset's 0-based x1y1x2y2 convention."""

    file_name: str
    width: int
    height: int
    objects: list[tuple[str, list[float], bool]]  # name, box, difficult


def _read_xml(path: Path) -> _Record:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DataError(f"{path}: invalid XML: {e}") from e
    except OSError as e:
        raise DataError(f"cannot read annotation file {path}: {(e.strerror or str(e)).lower()}") from e
    if root.tag != "annotation":
        raise DataError(f"{path}: root element is <{root.tag}>, a VOC file has <annotation>")
    fields = _Fields(path)
    objects = []
    for i, obj in enumerate(root.findall("object")):
        where = f"object[{i}]"
        name = fields.text(obj, "name", where)
        difficult = bool(fields.number(obj, "difficult", where, default=0))
        box = obj.find("bndbox")
        if box is None:
            raise DataError(f"{path}: {where}.bndbox is missing")
        xmin, ymin, xmax, ymax = (fields.number(box, key, f"{where}.bndbox") for key in _BOX_FIELDS)
        # VOC pixels are 1-based: the first column is xmin=1, i.e. x1=0. Some tools write 0 anyway.
        objects.append((name, [max(xmin - 1, 0.0), max(ymin - 1, 0.0), xmax, ymax], difficult))
    return _Record(
        file_name=fields.text(root, "filename", "annotation"),
        width=fields.size(root, "width"),
        height=fields.size(root, "height"),
        objects=objects,
    )


class _Fields:
    """Reads child elements of one XML file; errors name the file and the element path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def text(self, parent: ET.Element, key: str, where: str) -> str:
        value = (parent.findtext(key) or "").strip()
        if not value:
            raise DataError(f"{self.path}: {where}.{key} is missing or empty")
        return value

    def number(self, parent: ET.Element, key: str, where: str, *, default: float | None = None) -> float:
        if parent.find(key) is None and default is not None:
            return default
        text = self.text(parent, key, where)
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise DataError(f"{self.path}: {where}.{key} must be a number, got {text!r}")
        return value

    def size(self, root: ET.Element, key: str) -> int:
        size = root.find("size")
        if size is None:
            raise DataError(f"{self.path}: annotation.size is missing")
        value = self.number(size, key, "size")
        if value <= 0 or value != int(value):
            raise DataError(f"{self.path}: size.{key} must be a positive integer, got {value:g}")
        return int(value)


def _samples(records: list[_Record], classes: list[str], root: Path) -> list[Sample]:
    label_of = {name: i for i, name in enumerate(classes)}
    unknown: Counter[str] = Counter()
    degenerate = 0
    samples = []
    for image_id, rec in enumerate(records, start=1):
        rows = []
        for name, (x1, y1, x2, y2), difficult in rec.objects:
            if difficult:
                continue
            if name not in label_of:
                unknown[name] += 1
            elif x2 <= x1 or y2 <= y1:
                degenerate += 1
            else:
                rows.append([x1, y1, x2, y2, label_of[name]])
        table = np.array(rows, np.float64).reshape(-1, 5)
        samples.append(Sample(image_id, rec.file_name, rec.width, rec.height,
                              table[:, :4].astype(np.float32), table[:, 4].astype(np.int64)))
    if unknown:
        warn(f"{root}: skipped {sum(unknown.values())} object(s) of classes not in the class list: "
             f"{', '.join(sorted(unknown))}")
    if degenerate:
        warn(f"{root}: dropped {degenerate} object(s) with zero or negative width or height")
    return samples
