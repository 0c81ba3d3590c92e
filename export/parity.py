"""``export --verify``: the same images through eager PyTorch and through each exported graph.

Both see the identical host-resized uint8 image, so differences come from the graph alone. A box
agrees when a detection of the other side has the same label and IoU ≥ 0.9 (greedy, by score).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgedet.runtime.detections import Detections
from edgedet.runtime.plugins import iou_matrix
from edgedet.runtime.precisions import precision as precision_row

MATCH_IOU = 0.9


@dataclass
class ParityReport:
    images: int
    reference_boxes: int
    engine_boxes: int
    matched: int
    borderline: int  # unmatched boxes within the precision's borderline of the score threshold, either side
    boxes_compared: int  # max(reference, engine) boxes - borderline: what the agreement is a share of
    agreement: float | None  # matched / boxes_compared; None when no box was compared ("not measured")
    max_score_diff: float
    max_box_diff: float  # pixels, over matched pairs
    tolerance: float
    passed: bool | None  # None: not measured (zero boxes compared), neither PASS nor FAIL

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "NOT MEASURED"}[self.passed]

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def match(ref: Detections, eng: Detections, *, score_thresh: float, margin: float) -> tuple[int, int, float, float]:
    """Greedy matching by reference score; returns (matched, borderline, max score diff, max box diff)."""
    iou = iou_matrix(ref.boxes, eng.boxes)
    used: set[int] = set()
    matched, score_diff, box_diff = 0, 0.0, 0.0
    ref_unmatched = []
    for i in np.argsort(-ref.scores, kind="stable"):
        cands = [j for j in np.argsort(-iou[i]) if j not in used and iou[i, j] >= MATCH_IOU and eng.labels[j] == ref.labels[i]]
        if cands:
            j = cands[0]
            used.add(j)
            matched += 1
            score_diff = max(score_diff, abs(float(ref.scores[i]) - float(eng.scores[j])))
            box_diff = max(box_diff, float(np.abs(ref.boxes[i] - eng.boxes[j]).max()))
        else:
            ref_unmatched.append(float(ref.scores[i]))
    eng_unmatched = [float(eng.scores[j]) for j in range(len(eng)) if j not in used]
    borderline = sum(abs(s - score_thresh) <= margin for s in ref_unmatched + eng_unmatched)
    return matched, borderline, score_diff, box_diff


def compare(reference: list[Detections], engine: list[Detections], precision: str, score_thresh: float) -> ParityReport:
    """Box agreement of ``engine`` with ``reference``, gated by ``precision``'s row (``runtime/precisions.py``)."""
    row = precision_row(precision)
    n_ref = sum(len(d) for d in reference)
    n_eng = sum(len(d) for d in engine)
    matched, borderline, sdiff, bdiff = 0, 0, 0.0, 0.0
    for r, e in zip(reference, engine):
        m, bl, s, b = match(r, e, score_thresh=score_thresh, margin=row.borderline)
        matched, borderline = matched + m, borderline + bl
        sdiff, bdiff = max(sdiff, s), max(bdiff, b)
    compared = max(n_ref, n_eng) - borderline
    agreement = min(1.0, matched / compared) if compared > 0 else None  # zero boxes prove nothing
    tol = row.box_agreement
    passed = None if agreement is None else agreement >= tol
    return ParityReport(len(reference), n_ref, n_eng, matched, borderline, max(compared, 0), agreement, sdiff, bdiff,
                        tol, passed)


def contract_to_detections(outputs: list[np.ndarray]) -> list[Detections]:
    """The four contract tensors → one Detections per image (network-input pixels)."""
    num, boxes, scores, labels = outputs
    return [Detections(boxes[b, : num[b, 0]].astype(np.float32), scores[b, : num[b, 0]].astype(np.float32),
                       labels[b, : num[b, 0]].astype(np.int64)) for b in range(len(num))]


def verify_images(count: int, source: str | None, size: tuple[int, int], resize: str, pad: list[int],
                  seed: int = 0) -> np.ndarray:
    """``count`` host-resized uint8 images: from a folder the user gives, else synthetic shapes."""
    from edgedet.runtime.preprocess import preprocess_batch

    if source:
        from edgedet.data.imageio import read_image
        from edgedet.predict import resolve_source

        images = [read_image(p) for p in resolve_source(source)[:count]]
    else:
        from edgedet.data.synth import IMAGE_SIZES, render_image

        rng = np.random.default_rng(seed)
        images = []
        for i in range(count):
            w, h = IMAGE_SIZES[i % len(IMAGE_SIZES)]
            kind = "black" if i == count - 1 and count > 2 else "objects"  # always include the all-black case
            images.append(render_image(rng, w, h, kind)[0])
    batch, _ = preprocess_batch(images, size, resize, tuple(pad))
    return batch


def run_in_batches(fn: Callable[[np.ndarray], list[Detections]], images: np.ndarray, batch: int) -> list[Detections]:
    """Feed a fixed-batch engine, the last batch filled up (:func:`pad_to_batch`)."""
    from edgedet.runtime.preprocess import pad_to_batch

    out: list[Detections] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        out.extend(fn(np.ascontiguousarray(pad_to_batch(chunk, batch)))[: len(chunk)])
    return out


def engine_detections(detector, images: np.ndarray) -> list[Detections]:
    """A runtime ``Detector``'s contract outputs on already-resized ``images``, one engine batch at a time."""
    return run_in_batches(lambda x: contract_to_detections(list(detector.raw(x).values())), images,
                          detector.batch_size)


def parity_check(model, artifacts: dict[str, Path], images: np.ndarray, batch: int, score_thresh: float) -> dict[str, dict]:
    """Eager ``model`` (already configured like the engine) vs every artifact; a report per precision."""
    from edgedet.reference import TorchPredictor
    from edgedet.runtime.onnx_engine import OnnxEngine

    predictor = TorchPredictor(model, device="cpu")
    reference = predictor(list(images))
    reports = {}
    for precision, path in artifacts.items():
        engine = OnnxEngine(path)
        got = run_in_batches(lambda x: contract_to_detections(engine(x)), images, batch)
        reports[precision] = compare(reference, got, precision, score_thresh).to_dict()
    return reports
