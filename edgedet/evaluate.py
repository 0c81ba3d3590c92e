"""COCO evaluation of any predictor on any dataset, through pycocotools.

A predictor is any callable ``(list of RGB uint8 images) -> list[Detections]``: the PyTorch reference
today, ONNX Runtime and TensorRT engines later. ``verify`` compares them through this same code.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgedet.data.types import DetectionDataset
from edgedet.errors import DataError
from edgedet.results import coco_results
from edgedet.runtime.detections import Detections

Predictor = Callable[[list[np.ndarray]], list[Detections]]

STAT_NAMES = [
    "AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large",
]
STAT_LABELS = [
    "AP @[IoU=0.50:0.95 | all | maxDets=100]", "AP @[IoU=0.50 | all | maxDets=100]",
    "AP @[IoU=0.75 | all | maxDets=100]", "AP @[IoU=0.50:0.95 | small | maxDets=100]",
    "AP @[IoU=0.50:0.95 | medium | maxDets=100]", "AP @[IoU=0.50:0.95 | large | maxDets=100]",
    "AR @[IoU=0.50:0.95 | all | maxDets=1]", "AR @[IoU=0.50:0.95 | all | maxDets=10]",
    "AR @[IoU=0.50:0.95 | all | maxDets=100]", "AR @[IoU=0.50:0.95 | small | maxDets=100]",
    "AR @[IoU=0.50:0.95 | medium | maxDets=100]", "AR @[IoU=0.50:0.95 | large | maxDets=100]",
]
#: AP at single high IoU thresholds beyond pycocotools' summary (where better localization shows: IoU-Net)
HIGH_IOU_AP = {"AP80": 0.8, "AP90": 0.9}


@dataclass
class EvalResult:
    stats: dict[str, float]  # the 12 COCO numbers by STAT_NAMES and HIGH_IOU_AP; -1 where undefined (no such objects)
    per_class_ap: dict[str, float] = field(default_factory=dict)  # AP@[.5:.95] per class, -1 if no GT
    num_images: int = 0
    ms_per_image: float = 0.0

    def to_dict(self) -> dict:
        return {"stats": self.stats, "per_class_ap": self.per_class_ap,
                "num_images": self.num_images, "ms_per_image": self.ms_per_image}


def category_mapping(model_classes: Sequence[str] | None, dataset: DetectionDataset) -> list[int]:
    """Dataset category id for each model class index.

    A model with ``model_classes=None`` uses torchvision's 91-slot COCO layout, where label ``i + 1``
    *is* the COCO category id. Otherwise classes are matched by name, so a model trained on a subset
    or another order of the dataset's classes still scores correctly.
    """
    if model_classes is None:
        return list(range(1, 92))
    by_name = dict(zip(dataset.classes, dataset.category_ids))
    missing = [c for c in model_classes if c not in by_name]
    if len(missing) == len(model_classes):
        raise DataError(
            f"none of the model's classes {list(model_classes)[:5]} are in the dataset's classes {dataset.classes[:5]}"
        )
    # Classes the dataset lacks get an id no ground truth uses: they count as false positives.
    unused = max(dataset.category_ids, default=0) + 1
    return [by_name.get(c, unused) for c in model_classes]


def predict_dataset(
    predictor: Predictor, dataset: DetectionDataset, *, batch_size: int = 1, progress: bool = True,
    desc: str = "predict", warmup: int = 0, latencies: list[float] | None = None,
) -> tuple[list[Detections], float]:
    """Run ``predictor`` over every image; returns detections and milliseconds per image (model time).

    ``warmup`` untimed calls on the first image come first (session start-up, allocator growth), and
    ``latencies`` (when given) receives each call's milliseconds, for medians that one slow call cannot move.
    """
    from tqdm import tqdm

    dets: list[Detections] = []
    elapsed = 0.0
    if warmup and len(dataset):
        first = [dataset.load_image(0)]
        for _ in range(warmup):
            predictor(first)
    with tqdm(total=len(dataset), desc=desc, unit="img", disable=None if progress else True, leave=False) as bar:
        for start in range(0, len(dataset), batch_size):
            idx = range(start, min(start + batch_size, len(dataset)))
            images = [dataset.load_image(i) for i in idx]
            t0 = time.perf_counter()
            dets.extend(predictor(images))
            dt = time.perf_counter() - t0
            elapsed += dt
            if latencies is not None:
                latencies.append(1000.0 * dt)
            bar.update(len(idx))
    return dets, 1000.0 * elapsed / max(1, len(dataset))


def _coco_gt(dataset: DetectionDataset):
    """pycocotools' COCO built from the original JSON when there is one (keeps crowd regions), else derived."""
    from pycocotools.coco import COCO

    gt_dict = dataset.to_coco()
    if dataset.source.endswith(".json") and Path(dataset.source).is_file():
        gt_dict = json.loads(Path(dataset.source).read_text())
        anns = gt_dict.setdefault("annotations", [])
        free = 1 + max([a["id"] for a in anns if isinstance(a.get("id"), int)], default=0)
        for n, ann in enumerate(a for a in anns if "id" not in a):  # COCO allows none; pycocotools indexes by it
            ann["id"] = free + n
    coco = COCO()
    coco.dataset = gt_dict
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_evaluate(dataset: DetectionDataset, results: list[dict]) -> EvalResult:
    """The 12 COCO box numbers and per-class AP of ``results`` against ``dataset``'s ground truth."""
    from pycocotools.cocoeval import COCOeval

    gt = _coco_gt(dataset)
    img_ids = [s.image_id for s in dataset.samples]
    if not results:  # pycocotools cannot load an empty result list; nothing detected scores zero
        return EvalResult({k: 0.0 for k in [*STAT_NAMES, *HIGH_IOU_AP]}, {c: 0.0 for c in dataset.classes}, len(img_ids))
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes([dict(r) for r in results])
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = {k: float(v) for k, v in zip(STAT_NAMES, ev.stats)}
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    for key, thr in HIGH_IOU_AP.items():  # as pycocotools' AP50/AP75: all areas, 100 detections
        p = precision[int(np.argmin(np.abs(ev.params.iouThrs - thr))), :, :, 0, -1]
        stats[key] = float(p[p > -1].mean()) if (p > -1).any() else -1.0
    per_class = {}
    for k, cat_id in enumerate(ev.params.catIds):
        name = gt.cats[cat_id].get("name", str(cat_id))
        p = precision[:, :, k, 0, -1]
        per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else -1.0
    return EvalResult(stats, per_class, len(img_ids))


def evaluate_detections(dets: list[Detections], dataset: DetectionDataset, model_classes: Sequence[str] | None,
                        ms_per_image: float = 0.0) -> tuple[EvalResult, list[dict]]:
    """Score already-made detections (one per image of ``dataset``); returns the result and COCO results."""
    results = coco_results([s.image_id for s in dataset.samples], dets, category_mapping(model_classes, dataset))
    result = coco_evaluate(dataset, results)
    result.ms_per_image = ms_per_image
    return result, results


def evaluate_predictor(
    predictor: Predictor,
    dataset: DetectionDataset,
    model_classes: Sequence[str] | None,
    *,
    batch_size: int = 1,
    progress: bool = True,
    desc: str = "eval",
    warmup: int = 0,
) -> tuple[EvalResult, list[dict]]:
    """Predict every image of ``dataset`` and score it; returns the result and the COCO results list."""
    category_mapping(model_classes, dataset)  # a class mismatch fails before any prediction
    dets, ms = predict_dataset(predictor, dataset, batch_size=batch_size, progress=progress, desc=desc, warmup=warmup)
    return evaluate_detections(dets, dataset, model_classes, ms)


def print_eval(result: EvalResult, title: str = "COCO box evaluation") -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"{title} ({result.num_images} images, {result.ms_per_image:.1f} ms/image)")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for label, name in zip(STAT_LABELS, STAT_NAMES):
        t.add_row(label, f"{result.stats[name]:.3f}")
    console.print(t)
    if result.per_class_ap:
        pc = Table(title="per-class AP @[IoU=0.50:0.95]")
        pc.add_column("class")
        pc.add_column("AP", justify="right")
        for name, ap in result.per_class_ap.items():
            pc.add_row(name, "n/a (no ground truth)" if ap < 0 else f"{ap:.3f}")
        console.print(pc)
