"""Calibration images: a folder, the images of a COCO JSON, or frames of a video, preprocessed exactly as
the runtime does (resize only; the graph normalises). Torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from edgedet import log
from edgedet.data.imageio import IMAGE_SUFFIXES
from edgedet.errors import DataError, ImageReadError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm"}
MIN_RECOMMENDED = 32  # fewer images give unstable activation ranges


def _listed_files(source: Path, count: int, seed: int) -> list[Path]:
    if source.is_dir():
        files = sorted(f for f in source.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    elif source.suffix.lower() == ".json":
        try:
            doc = json.loads(source.read_text())
            files = [source.parent / im["file_name"] for im in doc["images"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"cannot read calibration image list from {source}: {e}") from None
        images_dir = source.parent.parent / "images"
        if files and not files[0].exists() and images_dir.is_dir():  # COCO layout: annotations/ beside images/
            files = [images_dir / f.name for f in files]
    else:
        raise DataError(f"calibration source must be an image folder, a COCO JSON or a video, not {source}")
    if not files:
        raise DataError(f"no calibration images in {source}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))[: min(count, len(files))]
    return [files[i] for i in sorted(order)]


def _video_frames(source: Path, count: int) -> Iterator[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise DataError(f"cannot open calibration video {source}")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or count
    step = max(1, total // count)
    index = 0
    try:
        while index < total:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = cap.read()
            if not ok:
                break
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += step
    finally:
        cap.release()


def calibration_images(source: str | Path, *, count: int = 256, seed: int = 0, progress: bool = True) -> list[np.ndarray]:
    """Up to ``count`` RGB images (random but reproducible by ``seed``); unreadable files are skipped with
    a warning; fewer than :data:`MIN_RECOMMENDED` usable images warns, none is an error."""
    from tqdm import tqdm

    from edgedet.data.imageio import read_image

    src = Path(source)
    if not src.exists():
        raise DataError(f"calibration source not found: {src}")
    if src.is_file() and src.suffix.lower() in VIDEO_SUFFIXES:
        images = list(_video_frames(src, count))
    else:
        images = []
        for path in tqdm(_listed_files(src, count, seed), desc="calibration images", unit="img", disable=None if progress else True, leave=False):
            try:
                images.append(read_image(path))
            except ImageReadError as e:
                log.warn(f"skipped: {e}")
    if not images:
        raise DataError(f"no readable calibration images in {src}")
    if len(images) < MIN_RECOMMENDED:
        log.warn(f"only {len(images)} calibration images (at least {MIN_RECOMMENDED} recommended): INT8 ranges may be unstable")
    return images


def preprocessed_batches(images: list[np.ndarray], size: tuple[int, int], resize: str, pad_value: tuple[int, int, int],
                         batch: int = 1) -> Iterator[np.ndarray]:
    """uint8 NHWC batches exactly as the runtime feeds the engine (the last one filled up, :func:`pad_to_batch`)."""
    from edgedet.runtime.preprocess import pad_to_batch, preprocess_batch

    for start in range(0, len(images), batch):
        out, _ = preprocess_batch(images[start : start + batch], size, resize, pad_value)
        yield pad_to_batch(out, batch).copy()
