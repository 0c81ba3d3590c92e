"""``sweep``: accuracy against latency across score thresholds, measured on exported engines.

torchvision PR 3205 added ``rpn_score_thresh`` to trade Faster R-CNN accuracy for speed; its table was
measured in eager PyTorch, where a threshold *removes* proposals and the box head runs on fewer of them.
An exported graph has static shapes: the threshold masks proposals instead, so how much time it saves
depends on the engine, and this sweep measures it rather than assuming it. Each point is a real export
of the same weights, evaluated with COCO mAP on the same images and timed per image; the eager reference
at the same threshold (host resize, thresholds and detection limit of the engine, as ``verify`` does)
runs beside it, with box-level agreement, so the table also proves every exported point is faithful.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgedet import log
from edgedet.data.types import DetectionDataset
from edgedet.errors import EdgedetError
from edgedet.evaluate import evaluate_detections, predict_dataset
from edgedet.fileio import atomic_path, atomic_write_json, atomic_write_text

PARAMS = {"rpn_score_thresh": "--rpn-score-thresh", "score_thresh": "--score-thresh"}


def parse_thresholds(text: str | None, flag: str) -> list[float] | None:
    """``"0,0.05,0.5"`` → ``[0.0, 0.05, 0.5]``; every value in [0, 1), none repeated."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EdgedetError(f"{flag} takes comma-separated numbers such as 0,0.05,0.5, not {text!r}") from None
    if not values:
        raise EdgedetError(f"{flag} needs at least one value")
    if any(not 0.0 <= v < 1.0 for v in values):
        raise EdgedetError(f"{flag} values must be in [0, 1), got {text!r}")
    if len(set(values)) != len(values):
        raise EdgedetError(f"{flag} repeats a value: {text!r}")
    return values


@dataclass
class SweepOptions:
    model: str | None
    weights: str
    rpn_score_thresh: list[float] | None = None
    score_thresh: list[float] | None = None
    iou_thresh: float | None = None  # None: the model's own
    max_dets: int = 100
    max_candidates: int = 1000
    imgsz: tuple[int, int] | None = None
    nms: str = "onnx"
    fp16: bool = False
    backend: str = "auto"  # auto: TensorRT plans where TensorRT is installed, else ONNX Runtime
    reference: bool = True
    device: str | None = None  # of the PyTorch reference
    warmup: int = 3
    out_dir: str = "runs/sweep"
    progress: bool = True


@dataclass
class SweepPoint:
    value: float  # of the swept parameter
    rpn_score_thresh: float | None
    score_thresh: float
    engine: str
    stats: dict[str, float]
    ms_p50: float
    ms_mean: float
    dets_per_image: float
    ref_stats: dict[str, float] | None = None
    ref_ms_p50: float | None = None
    ref_ms_mean: float | None = None
    ref_dets_per_image: float | None = None
    delta_ap: float | None = None  # engine − reference, AP points
    agreement: float | None = None  # box agreement with the reference (parity.compare)


@dataclass
class SweepReport:
    model: str
    param: str
    backend: str
    precision: str
    images: int
    points: list[SweepPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "points"}, "points": [asdict(p) for p in self.points]}


def _resolve(opts: SweepOptions) -> tuple[str, str, list[tuple[float | None, float]], float]:
    """Zoo name, swept parameter, the (rpn, score) points and the IoU threshold, checked before any export."""
    from edgedet.models import create_model, get_model_entry
    from edgedet.reference import model_name_from_checkpoint

    name = opts.model or model_name_from_checkpoint(opts.weights)
    entry = get_model_entry(name)
    if opts.rpn_score_thresh is not None and entry.family != "fasterrcnn":
        raise EdgedetError(f"--rpn-score-thresh applies to Faster R-CNN models; sweep {entry.name} with --score-thresh")
    if opts.rpn_score_thresh is None and opts.score_thresh is None:
        raise EdgedetError("give the thresholds to sweep: --rpn-score-thresh (Faster R-CNN) or --score-thresh")
    if opts.rpn_score_thresh and opts.score_thresh and len(opts.rpn_score_thresh) > 1 and len(opts.score_thresh) > 1:
        raise EdgedetError("sweep one threshold at a time: give several values to --rpn-score-thresh or to "
                           "--score-thresh, and at most one to the other")
    model = create_model(name, weights=opts.weights).eval()  # its own thresholds are the defaults
    own = model if entry.family == "ssd" else model.roi_heads
    iou = own.nms_thresh if opts.iou_thresh is None else opts.iou_thresh
    scores = opts.score_thresh or [float(own.score_thresh)]
    rpns: list[float | None] = list(opts.rpn_score_thresh or [None])
    param = "rpn_score_thresh" if opts.rpn_score_thresh and len(scores) == 1 else "score_thresh"
    points = [(r, s) for r in rpns for s in scores]
    return entry.name, param, points, float(iou)


def _backend(requested: str) -> str:
    import importlib.util

    if requested not in ("auto", "onnxruntime", "tensorrt"):
        raise EdgedetError(f"--backend must be auto, onnxruntime or tensorrt, not {requested!r}")
    has_trt = importlib.util.find_spec("tensorrt") is not None
    if requested == "tensorrt" and not has_trt:
        raise EdgedetError("--backend tensorrt needs TensorRT, which is not installed here")
    return requested if requested != "auto" else ("tensorrt" if has_trt else "onnxruntime")


def _export_point(opts: SweepOptions, name: str, rpn: float | None, score: float, iou: float, stem: str,
                  out: Path, backend: str) -> tuple[Path, str]:
    from edgedet.export.nms import NMSConfig
    from edgedet.export.onnx_export import ExportOptions, export_model

    result = export_model(ExportOptions(
        model=name, weights=opts.weights, imgsz=opts.imgsz, nms=NMSConfig(opts.nms, score, iou, opts.max_dets),
        fp16=opts.fp16, rpn_score_thresh=rpn, max_candidates=opts.max_candidates, out_dir=str(out), name=stem))
    precision = "fp16" if opts.fp16 else "fp32"
    engine = result.artifacts[precision]
    if backend == "tensorrt":
        from edgedet.export.trt_builder import BuildOptions, build_engine

        engine = build_engine(BuildOptions(onnx=engine, fp16=opts.fp16)).plan
    return Path(engine), precision


def _timed(predictor: Any, dataset: DetectionDataset, warmup: int, progress: bool, desc: str):
    latencies: list[float] = []
    dets, mean_ms = predict_dataset(predictor, dataset, progress=progress, desc=desc, warmup=warmup,
                                    latencies=latencies)
    p50 = statistics.median(latencies) if latencies else 0.0
    return dets, p50, mean_ms, sum(len(d) for d in dets) / max(1, len(dets))


def sweep(opts: SweepOptions, dataset: DetectionDataset) -> tuple[SweepReport, Path]:
    """Export, evaluate and time one engine per threshold; returns the report and the run folder."""
    from edgedet.export.parity import compare
    from edgedet.fileio import next_run_dir
    from edgedet.runtime import Detector
    from edgedet.verify import engine_reference

    if not len(dataset):
        raise EdgedetError("the dataset has no images to sweep on")
    name, param, points, iou = _resolve(opts)
    backend = _backend(opts.backend)
    out = next_run_dir(opts.out_dir)
    report = SweepReport(name, param, backend, "fp16" if opts.fp16 else "fp32", len(dataset))
    short = {"rpn_score_thresh": "rpn", "score_thresh": "score"}[param]
    for k, (rpn, score) in enumerate(points, 1):
        value = rpn if param == "rpn_score_thresh" else score
        log.note(f"sweep: [{k}/{len(points)}] {param} {value:g}: export, evaluate and time on {len(dataset)} images")
        engine, precision = _export_point(opts, name, rpn, score, iou, f"{name}_{short}{value:g}", out / "engines", backend)
        det = Detector(engine, backend=backend)
        dets, p50, mean, per_image = _timed(det, dataset, opts.warmup, opts.progress, engine.name)
        result, _ = evaluate_detections(dets, dataset, det.class_names, mean)
        point = SweepPoint(float(value), rpn, score, str(engine), result.stats, p50, mean, per_image)
        if opts.reference:
            reference, _, classes = engine_reference(det, name, opts.weights, device=opts.device)
            ref_dets, point.ref_ms_p50, point.ref_ms_mean, point.ref_dets_per_image = _timed(
                reference, dataset, opts.warmup, opts.progress, "PyTorch")
            ref_result, _ = evaluate_detections(ref_dets, dataset, classes, point.ref_ms_mean)
            point.ref_stats = ref_result.stats
            point.delta_ap = 100.0 * (result.stats["AP"] - ref_result.stats["AP"])
            point.agreement = compare(ref_dets, dets, precision, score).agreement
        report.points.append(point)
    return report, out


HEADERS = ["AP", "AP50", "AR100", "dets/img", "ms p50", "ms mean"]


def _cells(report: SweepReport, p: SweepPoint) -> list[str]:
    cells = [f"{p.value:g}", f"{p.stats['AP'] * 100:.1f}", f"{p.stats['AP50'] * 100:.1f}",
             f"{p.stats['AR100'] * 100:.1f}", f"{p.dets_per_image:.1f}", f"{p.ms_p50:.2f}", f"{p.ms_mean:.2f}"]
    if p.ref_stats is not None:
        cells += [f"{p.ref_stats['AP'] * 100:.1f}", f"{p.ref_dets_per_image:.1f}", f"{p.ref_ms_p50:.2f}",
                  f"{p.delta_ap:+.2f}", f"{p.agreement * 100:.1f}%"]
    return cells


def _headers(report: SweepReport) -> list[str]:
    engine = [f"engine {h}" for h in HEADERS]
    ref = ["PyTorch AP", "PyTorch dets/img", "PyTorch ms p50", "ΔAP", "box agreement"]
    return [report.param, *engine, *(ref if any(p.ref_stats for p in report.points) else [])]


def _title(report: SweepReport) -> str:
    return (f"sweep of {report.param}: {report.model}, {report.precision} on {report.backend}, "
            f"{report.images} images, COCO box AP (×100), latency per image")


def print_report(report: SweepReport) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=_title(report))
    for h in _headers(report):
        t.add_column(h, justify="right")
    for p in report.points:
        t.add_row(*_cells(report, p))
    Console(width=220).print(t)


def markdown(report: SweepReport) -> str:
    headers = _headers(report)
    lines = [f"# edgedet {_title(report)}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cells(report, p)) + " |" for p in report.points]
    return "\n".join(lines) + "\n"


def plot(report: SweepReport, path: str | Path) -> Path:
    """AP and latency against the threshold, engine beside eager PyTorch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [p.value for p in report.points]
    fig, (ax_ap, ax_ms) = plt.subplots(1, 2, figsize=(10, 4))
    ax_ap.plot(x, [p.stats["AP"] * 100 for p in report.points], marker="o", label=f"engine AP ({report.precision})")
    ax_ap.plot(x, [p.stats["AP50"] * 100 for p in report.points], marker="s", label="engine AP50")
    ax_ms.plot(x, [p.ms_p50 for p in report.points], marker="o", label=f"engine ({report.backend})")
    if all(p.ref_stats for p in report.points):
        ax_ap.plot(x, [p.ref_stats["AP"] * 100 for p in report.points], "--", marker="x", label="PyTorch AP")
        ax_ms.plot(x, [p.ref_ms_p50 for p in report.points], "--", marker="x", label="PyTorch")
    ax_ap.set(title="accuracy", xlabel=report.param, ylabel="COCO box AP (×100)")
    ax_ms.set(title="latency", xlabel=report.param, ylabel="ms per image (median)", ylim=(0, None))
    for ax in (ax_ap, ax_ms):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{report.model}: {report.images} images")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def write_outputs(report: SweepReport, out: Path) -> dict[str, Path]:
    """sweep.json, sweep.md and sweep.png in the run folder."""
    out.mkdir(parents=True, exist_ok=True)
    return {"json": atomic_write_json(out / "sweep.json", report.to_dict()),
            "markdown": atomic_write_text(out / "sweep.md", markdown(report)),
            "plot": plot(report, out / "sweep.png")}
