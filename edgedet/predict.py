"""Images in, detections out: source resolution and the shared output path of every ``predict``."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Sequence

from edgedet import log
from edgedet.data.imageio import IMAGE_SUFFIXES
from edgedet.errors import DataError, ImageReadError
from edgedet.evaluate import Predictor

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


def printable_path(path: Path) -> str:
    """``path`` as valid UTF-8 text: a file name that is not UTF-8 (held by Python as lone surrogates, which
    strict JSON readers reject) gets U+FFFD for its undecodable bytes."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def resolve_items(images: str | None, data: str | None = None, max_images: int | None = None) -> list[tuple[int, Path]]:
    """``(image id, path)`` of what to predict: a dataset's images with its own ids (``data``), or the files of
    ``images`` (a file, folder or glob) numbered 1..N."""
    if data:
        from edgedet.data import load_dataset

        dataset = load_dataset(data, images)
        items = [(s.image_id, dataset.image_path(i)) for i, s in enumerate(dataset.samples)]
        if not items:
            raise DataError(f"{data} lists no images")
    elif images:
        items = list(enumerate(resolve_source(images), 1))
    else:
        raise DataError("give the images to predict: --images FILE|DIR|GLOB, or --data ANN (with --images DIR)")
    return items[:max_images] if max_images else items


def predict_images(
    predictor: Predictor,
    class_names: Sequence[str],
    category_ids: Sequence[int],
    items: Sequence[tuple[int, Path]],
    *,
    save_json: str | None = None,
    save_dir: str | None = None,
    overwrite: bool = False,
    on_bad_image: str = "skip",
    progress: bool = True,
) -> int:
    """Predict every ``(image id, path)`` of ``items``; unreadable images are skipped with a warning naming them
    (``on_bad_image="fail"``: the first one is the error)."""
    from tqdm import tqdm

    from edgedet.data.imageio import read_image
    from edgedet.fileio import require_writable
    from edgedet.results import coco_results, save_annotated, save_results_json

    to_stdout = save_json == "-"
    if save_json and not to_stdout:
        if Path(save_json).exists() and not overwrite:
            raise DataError(f"{save_json} exists; pass --force to overwrite it")
        require_writable(save_json)
    if save_dir:
        require_writable(save_dir, folder=True)
    results: list[dict] = []
    done = 0
    for image_id, path in tqdm(items, desc="predict", unit="img", disable=None if progress else True, leave=False):
        try:
            image = read_image(path)
        except ImageReadError as e:
            if on_bad_image == "fail":
                raise
            log.warn(f"skipped: {e}")
            continue
        det = predictor([image])[0]
        entries = coco_results([image_id], [det], category_ids)
        for e in entries:
            e["file_name"] = printable_path(path)
        results.extend(entries)
        if save_dir:
            out = Path(save_dir) / path.name
            if out.exists() and not overwrite:
                raise DataError(f"{out} exists; pass --force to overwrite it")
            save_annotated(out, image, det, class_names)
        done += 1
        if not save_json and not save_dir:  # nothing asked for: the detections as text
            print(f"{path}: {len(det)} detections" + "".join(
                f"\n  {class_names[l]} {s:.2f} [{', '.join(f'{v:.1f}' for v in b)}]"
                for b, s, l in zip(det.boxes.tolist(), det.scores.tolist(), det.labels.tolist())))
    if done == 0:
        raise DataError(f"none of the {len(items)} images could be read")
    if to_stdout:
        import json

        print(json.dumps(results))
    elif save_json:
        save_results_json(save_json, results, overwrite=overwrite)
    log.note(f"predict: {done} images, {len(results)} detections"
             + (f"; JSON {save_json}" if save_json else "") + (f"; images in {save_dir}" if save_dir else ""))
    return 0
