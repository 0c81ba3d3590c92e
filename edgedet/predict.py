"""Images in, detections out: source resolution and the shared output path of every ``predict``."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Sequence

from edgedet import log
from edgedet.errors import DataError, ImageReadError
from edgedet.evaluate import Predictor

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def resolve_source(source: str) -> list[Path]:
    """A file, a folder (its images, sorted) or a glob pattern; nothing found is an error."""
    p = Path(source)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {p}")
        return files
    if any(ch in source for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(source, recursive=True) if Path(f).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"no images match {source}")
        return files
    raise DataError(f"source not found: {source}")


def predict_images(
    predictor: Predictor,
    class_names: Sequence[str],
    category_ids: Sequence[int],
    source: str,
    *,
    save_json: str | None = None,
    save_dir: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> int:
    """Predict every image of ``source``; unreadable images are skipped with a warning naming them."""
    from tqdm import tqdm

    from edgedet.data.imageio import read_image
    from edgedet.results import coco_results, save_annotated, save_results_json

    files = resolve_source(source)
    if save_json and Path(save_json).exists() and not overwrite:
        raise DataError(f"{save_json} exists; pass --force to overwrite it")
    results: list[dict] = []
    done = 0
    for image_id, path in enumerate(tqdm(files, desc="predict", unit="img", disable=None if progress else True, leave=False), 1):
        try:
            image = read_image(path)
        except ImageReadError as e:
            log.warn(f"skipped: {e}")
            continue
        det = predictor([image])[0]
        entries = coco_results([image_id], [det], category_ids)
        for e in entries:
            e["file_name"] = str(path)
        results.extend(entries)
        if save_dir:
            out = Path(save_dir) / path.name
            if out.exists() and not overwrite:
                raise DataError(f"{out} exists; pass --force to overwrite it")
            save_annotated(out, image, det, class_names)
        done += 1
        if not save_json and not save_dir:
            print(f"{path}: {len(det)} detections" + "".join(
                f"\n  {class_names[l]} {s:.2f} [{', '.join(f'{v:.1f}' for v in b)}]"
                for b, s, l in zip(det.boxes.tolist(), det.scores.tolist(), det.labels.tolist())))
    if done == 0:
        raise DataError(f"none of the {len(files)} images in {source} could be read")
    if save_json:
        save_results_json(save_json, results, overwrite=overwrite)
    log.note(f"predict: {done} images, {len(results)} detections"
             + (f"; JSON {save_json}" if save_json else "") + (f"; images in {save_dir}" if save_dir else ""))
    return 0
