"""``sweep``: accuracy against latency across thresholds and proposal counts, measured on exported engines.

torchvision PR 3205 added ``rpn_score_thresh`` to trade Faster R-CNN accuracy for speed; its table was
measured in eager PyTorch, where a threshold *removes* proposals and the box head runs on fewer of them.
An exported graph has static shapes: the threshold only masks proposals, the box head still runs on
``rpn_post_nms_top_n`` of them, so the threshold alone saves the engine almost nothing. The sweep measures
that instead of assuming it, reports how many proposals eager PyTorch keeps at each threshold, and can
sweep ``rpn_post_nms_top_n`` itself: the static engine's real speed knob.

Each point is a real export of the same weights, evaluated with COCO mAP on the same images and timed per
image; eager PyTorch at the same settings (the engine's host resize, thresholds and detection limit, as
``verify`` does) runs beside it, with box-level agreement, so the table also proves each point faithful.
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

#: what can be swept, with its flag and the short name engine files get
PARAMS = {"rpn_score_thresh": ("--rpn-score-thresh", "rpn"), "score_thresh": ("--score-thresh", "score"),
          "rpn_post_nms_top_n": ("--rpn-post-nms-top-n", "props"), "nms_mode": ("--nms-mode", "nms-")}
FASTERRCNN_ONLY = ("rpn_score_thresh", "rpn_post_nms_top_n", "nms_mode")


def parse_thresholds(text: str | None, flag: str) -> list[float] | None:
    """``"0,0.05,0.5"`` → ``[0.0, 0.05, 0.5]``; every value in [0, 1), none repeated."""
    values = _parse_list(text, flag, float, "0,0.05,0.5")
    if values and any(not 0.0 <= v < 1.0 for v in values):
        raise EdgedetError(f"{flag} values must be in [0, 1), got {text!r}")
    return values


def parse_counts(text: str | None, flag: str) -> list[int] | None:
    """``"300,100,50"`` → ``[300, 100, 50]``; positive integers, none repeated."""
    values = _parse_list(text, flag, int, "300,100,50")
    if values and any(v < 1 for v in values):
        raise EdgedetError(f"{flag} values must be positive, got {text!r}")
    return values


def parse_nms_modes(text: str | None, flag: str = "--nms-mode") -> list[str] | None:
    """``"standard,iou"`` → ``["standard", "iou"]``: NMS modes of the export (``edgedet.export.nms.MODES``)."""
    from edgedet.export.nms import MODES

    values = _parse_list(text, flag, str, "standard,iou,score_iou")
    bad = [v for v in values or [] if v not in MODES]
    if bad:
        raise EdgedetError(f"{flag} values must be among {', '.join(MODES)}, not {bad[0]!r}")
    return values


def _fmt(value: float | str) -> str:
    """A swept value as the table and file names show it."""
    return value if isinstance(value, str) else f"{value:g}"


def _parse_list(text: str | None, flag: str, kind: type, example: str) -> list | None:
    if text is None:
        return None
    try:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EdgedetError(f"{flag} takes comma-separated {kind.__name__}s such as {example}, not {text!r}") from None
    if not values:
        raise EdgedetError(f"{flag} needs at least one value")
    if len(set(values)) != len(values):
        raise EdgedetError(f"{flag} repeats a value: {text!r}")
    return values


@dataclass
class SweepOptions:
    model: str | None
    weights: str
    rpn_score_thresh: list[float] | None = None
    score_thresh: list[float] | None = None
    rpn_post_nms_top_n: list[int] | None = None
    nms_mode: list[str] | None = None  # standard, iou, score_iou (IoU-Net models)
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
    value: float | str  # of the swept parameter
    rpn_score_thresh: float | None  # None: the model's own
    score_thresh: float
    rpn_post_nms_top_n: int | None  # None: the model's own
    nms_mode: str
    engine: str
    stats: dict[str, float]
    ms_p50: float
    ms_mean: float
    dets_per_image: float
    ref_stats: dict[str, float] | None = None
    ref_ms_p50: float | None = None
    ref_ms_mean: float | None = None
    ref_dets_per_image: float | None = None
    ref_proposals_mean: float | None = None  # Faster R-CNN: proposals eager PyTorch keeps per image
    ref_proposals_max: int | None = None
    delta_ap: float | None = None  # engine − reference, AP points
    agreement: float | None = None  # box agreement with the reference (parity.compare); None: not measured
    boxes_compared: int | None = None


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


def _resolve(opts: SweepOptions) -> tuple[str, str, list[dict[str, Any]], float]:
    """Zoo name, swept parameter, each point's export settings and the IoU threshold, checked before any export."""
    from edgedet.models import create_model, get_model_entry
    from edgedet.reference import model_name_from_checkpoint

    name = opts.model or model_name_from_checkpoint(opts.weights)
    entry = get_model_entry(name)
    given = {k: getattr(opts, k) for k in PARAMS if getattr(opts, k) is not None}
    for k in given:
        if k in FASTERRCNN_ONLY and not entry.deploy.two_stage:
            raise EdgedetError(f"{PARAMS[k][0]} applies to Faster R-CNN models; sweep {entry.name} with --score-thresh")
    if not given:
        raise EdgedetError("give the values to sweep: --score-thresh, or for Faster R-CNN --rpn-score-thresh "
                           "or --rpn-post-nms-top-n")
    swept = [k for k, v in given.items() if len(v) > 1] or list(given)[:1]
    if len(swept) > 1:
        raise EdgedetError("sweep one parameter at a time: give several values to one of "
                           f"{', '.join(PARAMS[k][0] for k in swept)} and at most one to the others")
    model = create_model(name, weights=opts.weights).eval()  # its own thresholds are the defaults
    own = entry.deploy.postprocess_owner(model)
    iou = own.nms_thresh if opts.iou_thresh is None else opts.iou_thresh
    fixed = {"rpn_score_thresh": None, "score_thresh": float(own.score_thresh), "rpn_post_nms_top_n": None,
             "nms_mode": "standard"}
    fixed.update({k: v[0] for k, v in given.items()})
    param = swept[0]
    return entry.name, param, [{**fixed, param: v} for v in given[param]], float(iou)


def _backend(requested: str) -> str:
    import importlib.util

    if requested not in ("auto", "onnxruntime", "openvino", "tensorrt"):
        raise EdgedetError(f"--backend must be auto, onnxruntime, openvino or tensorrt, not {requested!r}")
    has_trt = importlib.util.find_spec("tensorrt") is not None
    if requested == "tensorrt" and not has_trt:
        raise EdgedetError("--backend tensorrt needs TensorRT, which is not installed here")
    return requested if requested != "auto" else ("tensorrt" if has_trt else "onnxruntime")


def _export_point(opts: SweepOptions, name: str, point: dict[str, Any], iou: float, stem: str,
                  out: Path, backend: str) -> tuple[Path, str]:
    from edgedet.export.nms import NMSConfig
    from edgedet.export.onnx_export import ExportOptions, export_model

    nms = NMSConfig(opts.nms, point["score_thresh"], iou, opts.max_dets, point["nms_mode"])
    result = export_model(ExportOptions(
        model=name, weights=opts.weights, imgsz=opts.imgsz, nms=nms, fp16=opts.fp16,
        rpn_score_thresh=point["rpn_score_thresh"], rpn_post_nms_top_n=point["rpn_post_nms_top_n"],
        max_candidates=opts.max_candidates, out_dir=str(out), name=stem))
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
    """Export, evaluate and time one engine per setting; returns the report and the run folder."""
    from edgedet.fileio import next_run_dir
    from edgedet.runtime import Detector

    if not len(dataset):
        raise EdgedetError("the dataset has no images to sweep on")
    name, param, points, iou = _resolve(opts)
    backend = _backend(opts.backend)
    out = next_run_dir(opts.out_dir)
    report = SweepReport(name, param, backend, "fp16" if opts.fp16 else "fp32", len(dataset))
    for k, point in enumerate(points, 1):
        value = point[param]
        log.note(f"sweep: [{k}/{len(points)}] {param} {_fmt(value)}: export, evaluate and time on {len(dataset)} images")
        engine, precision = _export_point(opts, name, point, iou, f"{name}_{PARAMS[param][1]}{_fmt(value)}",
                                          out / "engines", backend)
        det = Detector(engine, backend=backend)
        dets, p50, mean, per_image = _timed(det, dataset, opts.warmup, opts.progress, engine.name)
        result, _ = evaluate_detections(dets, dataset, det.class_names, mean)
        row = SweepPoint(value if isinstance(value, str) else float(value), **point, engine=str(engine), stats=result.stats, ms_p50=p50, ms_mean=mean,
                         dets_per_image=per_image)
        if opts.reference:
            _reference_columns(row, det, dets, name, opts, dataset, precision)
        report.points.append(row)
    return report, out


def _reference_columns(row: SweepPoint, det: Any, dets: list, name: str, opts: SweepOptions,
                       dataset: DetectionDataset, precision: str) -> None:
    """Eager PyTorch at the same settings: AP, latency, box agreement, and (Faster R-CNN) how many RPN
    proposals survive the threshold: the count a static engine's ``--rpn-post-nms-top-n`` can shrink to."""
    from edgedet.export.parity import compare
    from edgedet.verify import engine_reference

    reference, _, classes = engine_reference(det, name, opts.weights, device=opts.device)
    model = reference.predictor.model
    proposals: list[int] = []
    hook = None
    if hasattr(model, "rpn"):
        hook = model.rpn.register_forward_hook(lambda _m, _i, out: proposals.extend(len(b) for b in out[0]))
    try:
        ref_dets, row.ref_ms_p50, row.ref_ms_mean, row.ref_dets_per_image = _timed(
            reference, dataset, opts.warmup, opts.progress, "PyTorch")
    finally:
        if hook is not None:
            hook.remove()
    ref_result, _ = evaluate_detections(ref_dets, dataset, classes, row.ref_ms_mean)
    row.ref_stats = ref_result.stats
    row.delta_ap = 100.0 * (row.stats["AP"] - ref_result.stats["AP"])
    parity = compare(ref_dets, dets, precision, row.score_thresh)
    row.agreement, row.boxes_compared = parity.agreement, parity.boxes_compared
    if proposals:
        timed = proposals[opts.warmup:] if len(proposals) > opts.warmup else proposals
        row.ref_proposals_mean, row.ref_proposals_max = sum(timed) / len(timed), max(timed)


HEADERS = ["AP", "AP50", "AR100", "dets/img", "ms p50", "ms mean"]


def _has_proposals(report: SweepReport) -> bool:
    return any(p.ref_proposals_mean is not None for p in report.points)


def _cells(report: SweepReport, p: SweepPoint) -> list[str]:
    cells = [_fmt(p.value), f"{p.stats['AP'] * 100:.1f}", f"{p.stats['AP50'] * 100:.1f}",
             f"{p.stats['AR100'] * 100:.1f}", f"{p.dets_per_image:.1f}", f"{p.ms_p50:.2f}", f"{p.ms_mean:.2f}"]
    if p.ref_stats is not None:
        cells += [f"{p.ref_stats['AP'] * 100:.1f}", f"{p.ref_dets_per_image:.1f}", f"{p.ref_ms_p50:.2f}",
                  f"{p.ref_ms_p50 / p.ms_p50:.1f}×" if p.ms_p50 > 0 else "-", f"{p.delta_ap:+.2f}",
                  "0 boxes" if p.agreement is None else f"{p.agreement * 100:.1f}% of {p.boxes_compared}"]
        if _has_proposals(report):
            cells.append(f"{p.ref_proposals_mean:.0f}/{p.ref_proposals_max}")
    return cells


def _headers(report: SweepReport) -> list[str]:
    engine = [f"engine {h}" for h in HEADERS]
    ref = ["PyTorch AP", "PyTorch dets/img", "PyTorch ms p50", "engine speed-up", "ΔAP", "box agreement"]
    if _has_proposals(report):
        ref.append("PyTorch proposals mean/max")
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
