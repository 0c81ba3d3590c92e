"""Decode every image once before long work starts, so a corrupt file costs seconds, not a crashed run."""

from __future__ import annotations

import dataclasses
import sys
from typing import Literal

from edgedet.data.types import DetectionDataset
from edgedet.errors import DataError, ImageReadError
from edgedet.log import warn


def check_images(
    dataset: DetectionDataset,
    on_bad_image: Literal["skip", "fail"] = "skip",
    progress: bool = True,
) -> DetectionDataset:
    """A copy of ``dataset`` without unreadable images (``skip``), or the first one's ImageReadError (``fail``).

    A decoded size that differs from the annotated one only warns: EXIF rotation explains it in a
    correctly labelled dataset, and the boxes may still be right.
    """
    if on_bad_image not in ("skip", "fail"):
        raise ValueError(f"on_bad_image must be 'skip' or 'fail', not {on_bad_image!r}")
    from tqdm import tqdm

    kept = []
    for index in tqdm(range(len(dataset)), desc="checking images", unit="img", disable=None if progress else True):
        sample = dataset.samples[index]
        try:
            height, width = dataset.load_image(index).shape[:2]
        except ImageReadError as e:
            if on_bad_image == "fail":
                raise
            _warn(f"skipping bad image: {e}")
            continue
        if (width, height) != (sample.width, sample.height):
            _warn(f"{dataset.image_path(index)}: decoded size {width}x{height} differs from the annotated "
                  f"{sample.width}x{sample.height} (EXIF rotation?); kept")
        kept.append(sample)
    if len(dataset) and not kept:
        raise DataError(f"none of the {len(dataset)} images of {dataset.source or 'the dataset'} could be read from "
                        f"{dataset.images_dir} (is the image folder right?)")
    return dataclasses.replace(dataset, samples=kept)


def require_annotations(dataset: DetectionDataset) -> DetectionDataset:
    """Evaluation needs ground truth: a dataset without a single box gives COCO's undefined -1, not a score."""
    if not any(len(s.boxes) for s in dataset.samples):
        raise DataError(f"{dataset.source or 'the dataset'} has no annotations in its {len(dataset)} images: "
                        "nothing to evaluate against")
    return dataset


def _warn(message: str) -> None:
    from tqdm import tqdm

    with tqdm.external_write_mode(file=sys.stderr):  # keeps the bar from being torn by the line
        warn(message)
