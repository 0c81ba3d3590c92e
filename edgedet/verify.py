"""``verify``: engines against the PyTorch reference on the same images, gated on a one-sided AP tolerance
and on box agreement (parity's tolerance by precision), after checking that the engines were exported
from the weights given.

The reference sees exactly what an engine sees: images resized on the host the way the engine's
metadata says (stretch or letterbox), the engine's score/IoU thresholds and detection limit, and boxes
mapped back to original pixels the same way. A second reference row runs torchvision's own transform
on the original images, for information only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgedet.data.types import DetectionDataset
from edgedet.errors import EdgedetError
from edgedet.evaluate import EvalResult, evaluate_detections, evaluate_predictor, predict_dataset
from edgedet.runtime.detections import Detections
from edgedet.runtime.precisions import precision as precision_row


@dataclass
class VerifyRow:
    name: str
    precision: str
    stats: dict[str, float]
    ms_per_image: float
    delta_ap: float | None = None  # AP points against the reference
    tolerance: float | None = None
    backend: str = "pytorch"  # what computed the row: pytorch, onnxruntime, openvino, tensorrt
    agreement: float | None = None  # box agreement with the reference (parity.compare); None: not measured
    boxes_compared: int | None = None  # the boxes that agreement is a share of
    passed: bool | None = None
    note: str = ""


@dataclass
class VerifyReport:
    images: int
    rows: list[VerifyRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed is not False for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "passed": self.passed, "rows": [asdict(r) for r in self.rows]}


class ResizedReference:
    """The PyTorch predictor fed the engine's host-resized input; boxes mapped back like the runtime does."""

    def __init__(self, predictor: Any, size: tuple[int, int], resize: str, pad: tuple[int, int, int]) -> None:
        self.predictor, self.size, self.resize, self.pad = predictor, size, resize, pad

    def __call__(self, images: list[np.ndarray]) -> list[Detections]:
        from edgedet.runtime.preprocess import preprocess_batch

        batch, fits = preprocess_batch(images, self.size, self.resize, self.pad)
        dets = self.predictor(list(batch))
        return [Detections(fit.to_original(d.boxes), d.scores, d.labels) for d, fit in zip(dets, fits)]


def _row(name: str, precision: str, result: EvalResult) -> VerifyRow:
    return VerifyRow(name, precision, result.stats, result.ms_per_image)


def _eager_model(entry: Any, weights: str, meta: dict[str, Any], **kwargs: Any) -> Any:
    """The zoo model in eval mode with the engine's RPN settings (Faster R-CNN) from its metadata."""
    from edgedet.export.wrappers import set_rpn_proposals
    from edgedet.models import create_model

    if entry.deploy.two_stage:
        kwargs["rpn_score_thresh"] = meta.get("rpn_score_thresh")
    model = create_model(entry.name, weights=weights, **kwargs).eval()
    if meta.get("rpn_post_nms_top_n"):
        set_rpn_proposals(model, entry.deploy, meta["rpn_post_nms_top_n"])
    return model


def engine_reference(detector: Any, model_name: str | None, weights: str, *,
                     device: str | None = None) -> tuple[ResizedReference, str, list[str]]:
    """The eager PyTorch model configured as ``detector``'s engine was exported: input size, host resize,
    NMS thresholds, detection limit and RPN settings from the engine's metadata.

    Returns the predictor, the zoo name and the class names; the classes must match the engine's.
    """
    from edgedet.export.nms import NMSConfig
    from edgedet.export.wrappers import configure_reference
    from edgedet.models import get_model_entry
    from edgedet.reference import TorchPredictor, model_name_from_checkpoint

    meta = detector.metadata
    name = model_name or meta.get("model") or model_name_from_checkpoint(weights)
    entry = get_model_entry(name)
    size = detector.input_size
    model = _eager_model(entry, weights, meta, **entry.deploy.builder_sizes(size))
    model = configure_reference(model, entry.deploy, size, NMSConfig(**meta["nms"]))
    classes = list(model.edgedet_classes)
    if classes != detector.class_names:
        raise EdgedetError(f"the engine's classes {detector.class_names[:5]} differ from the model's "
                           f"{classes[:5]}: wrong --weights for this engine?")
    reference = ResizedReference(TorchPredictor(model, device=device), size, detector.resize, detector.pad_value)
    return reference, entry.name, classes


def check_same_weights(detectors: list, weights: str) -> None:
    """Each engine's metadata records the sha256 of the weights it was exported from; a reference built from
    other weights compares two different models (it used to PASS with 0 % box agreement and ΔAP +67.8)."""
    from pathlib import Path

    from edgedet.checkpoint import file_sha256

    if not Path(weights).is_file():
        return
    sha = file_sha256(weights)
    for det in detectors:
        recorded = det.metadata.get("weights_sha256")
        if recorded and recorded != sha:
            raise EdgedetError(f"{det.path.name} was exported from other weights than {weights} (sha256 "
                               f"{recorded[:12]}… vs {sha[:12]}…); pass the checkpoint it was exported from, or "
                               "--allow-other-weights to compare anyway")


# Untimed calls before each timed pass: the first PyTorch calls allocate and pick kernels (11 ms/img in the
# steady state here measured as 575 ms/img over a short set without them).
WARMUP = 3


def verify(engines: list[str], model_name: str | None, weights: str, dataset: DetectionDataset, *,
           tolerance: float | None = None, device: str | None = None, progress: bool = True,
           allow_other_weights: bool = False, backend: str = "auto", threads: int | None = None) -> VerifyReport:
    from edgedet.export.nms import NMSConfig
    from edgedet.export.parity import compare
    from edgedet.export.wrappers import set_thresholds
    from edgedet.models import get_model_entry
    from edgedet.reference import TorchPredictor
    from edgedet.runtime import Detector

    if not engines:
        raise EdgedetError("give at least one --engine")
    if tolerance is not None and not tolerance >= 0:
        raise EdgedetError(f"--tolerance must be 0 or more AP points, not {tolerance}")
    detectors = [Detector(p, backend=backend, threads=threads) for p in engines]
    first = detectors[0].metadata
    for det in detectors[1:]:
        if det.input_size != detectors[0].input_size or any(
                det.metadata.get(k) != first.get(k) for k in ("nms", "rpn_score_thresh", "rpn_post_nms_top_n")):
            raise EdgedetError(f"{det.path.name} was exported with another input size, NMS or RPN settings than "
                               f"{detectors[0].path.name}; verify them separately")
    if not allow_other_weights:
        check_same_weights(detectors, weights)
    reference, name, classes = engine_reference(detectors[0], model_name, weights, device=device)
    entry = get_model_entry(name)
    nms = NMSConfig(**first["nms"])

    report = VerifyReport(len(dataset))
    ref_dets, ref_ms = predict_dataset(reference, dataset, progress=progress, desc="reference", warmup=WARMUP)
    ref_result, _ = evaluate_detections(ref_dets, dataset, classes, ref_ms)
    report.rows.append(_row(f"PyTorch {name}", "fp32", ref_result))

    native = set_thresholds(_eager_model(entry, weights, first), entry.deploy, nms)  # torchvision's own resize
    native_result, _ = evaluate_predictor(TorchPredictor(native, device=device), dataset, classes, progress=progress,
                                          desc="torchvision transform", warmup=WARMUP)
    info = _row(f"PyTorch {name} (torchvision transform)", "fp32", native_result)
    info.note = "information only"
    report.rows.append(info)

    for det in detectors:
        precision = det.metadata.get("precision", "fp32")
        got, ms = predict_dataset(det, dataset, progress=progress, desc=det.path.name, warmup=WARMUP)
        result, _ = evaluate_detections(got, dataset, classes, ms)
        row = _row(det.path.name, precision, result)
        row.backend = det.backend
        row.delta_ap = 100.0 * (result.stats["AP"] - ref_result.stats["AP"])
        row.tolerance = tolerance if tolerance is not None else precision_row(precision).ap_tolerance
        parity = compare(ref_dets, got, precision, nms.score_thresh)
        report.rows.append(gate(row, parity))
    return report


def gate(row: VerifyRow, parity) -> VerifyRow:
    """PASS needs both gates: ΔAP within tolerance (which alone passes an engine of other weights that scores
    higher) and box agreement with the reference, measured on at least one box (nothing compared proves nothing,
    so it is never a PASS)."""
    row.agreement, row.boxes_compared = parity.agreement, parity.boxes_compared
    row.passed = row.delta_ap >= -row.tolerance and parity.passed is True
    if parity.passed is None:
        row.note = "FAIL: no box compared (nothing above --score-thresh on both sides, or only borderline ones)"
    return row


COLUMNS = [("AP", "AP"), ("AP50", "AP50"), ("AP75", "AP75"), ("APs", "AP_small"), ("APm", "AP_medium"),
           ("APl", "AP_large"), ("AR100", "AR100")]


def _cells(row: VerifyRow) -> list[str]:
    cells = [row.name, row.backend, row.precision] + [f"{row.stats[k] * 100:.1f}" if row.stats[k] >= 0 else "-" for _, k in COLUMNS]
    cells.append(f"{row.ms_per_image:.1f}")
    cells.append("" if row.delta_ap is None else f"{row.delta_ap:+.2f} (tol {row.tolerance:.1f})")
    if row.boxes_compared is None:
        cells.append("")
    else:
        cells.append("not measured (0 boxes)" if row.agreement is None
                     else f"{row.agreement * 100:.1f}% of {row.boxes_compared}")
    cells.append(row.note or ("" if row.passed is None else ("PASS" if row.passed else "FAIL")))
    return cells


HEADERS = ["engine", "backend", "precision", *[c for c, _ in COLUMNS], "ms/img", "ΔAP", "box agreement", "result"]


def print_report(report: VerifyReport) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"verify: {report.images} images, COCO box AP (×100)")
    for h in HEADERS:
        t.add_column(h, justify="left" if h in ("engine", "result") else "right")
    for row in report.rows:
        t.add_row(*_cells(row))
    Console(width=200).print(t)


def markdown(report: VerifyReport) -> str:
    lines = [f"# edgedet verify ({report.images} images): {'PASS' if report.passed else 'FAIL'}", "",
             "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in report.rows]
    return "\n".join(lines) + "\n"
