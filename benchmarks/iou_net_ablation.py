"""IoU-Net's ablation (Jiang et al., ECCV 2018, table 4) on edgedet's own models: training variants × seeds, one
split to choose on and another to report.

Every variant is ``fasterrcnn_tiny`` trained from scratch with the same recipe and seed as the baseline; with the
IoU head the run sees the baseline's data order and samples (the jitter draws from the head's own generator), so
a difference between two rows of one seed is the head's. Each trained model is evaluated in PyTorch (score 0.05,
NMS IoU 0.5, 100 detections, torchvision's defaults) with standard NMS, IoU-guided NMS (ranked by IoU and by
score × IoU) and, for PrRoIPool variants, refinement (Algorithm 2, rescored by IoU). Rows report the mean over
seeds ± half the range (AP, AP50, AP75, AP80, AP90, ×100) and the difference from the baseline's mean.

Split discipline: ``best.pt`` of every run is picked on ``--choose-data`` (the val split passed to training),
variants are compared on it (``--split choose``), and the chosen variant is then reported on ``--report-data``
(``--split report``), which no run or choice has seen.

    edgedet synth --count 400 --seed 0 -o synth                     # 320 train / 80 choose
    edgedet synth --count 400 --seed 1 --val-fraction 0.5 -o held   # 200 report
    python benchmarks/iou_net_ablation.py --data synth/annotations/train.json --images synth/images \\
        --choose-data synth/annotations/val.json --report-data held/annotations/val.json --report-images held/images \\
        --work runs/iou_ablation --variants base,bce_prroi,smoothl1_norm_prroi --seeds 0 1 --split choose [--markdown]

Runs already trained under ``--work`` (``<variant>-s<seed>/best.pt``) are reused.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from _markdown import table as markdown_table
from edgedet.data import load_dataset
from edgedet.evaluate import evaluate_predictor
from edgedet.models import create_model
from edgedet.reference import TorchPredictor, model_name_from_checkpoint

COLUMNS = ("AP", "AP50", "AP75", "AP80", "AP90")
#: the IoU-Net options every variant shares (the tiny model's head size and RoI count)
HEAD = {"iou_head": True, "iou_rois_per_image": 128, "iou_head_size": 64}
#: training variants: model options on top of the baseline
VARIANTS: dict[str, dict] = {
    "base": {},
    "bce": {**HEAD},
    "bce_w1": {**HEAD, "iou_loss_weight": 1.0},
    "bce_detach": {**HEAD, "iou_detach": True},
    "smoothl1_norm": {**HEAD, "iou_loss": "smoothl1_norm"},
    "smoothl1_norm_detach": {**HEAD, "iou_loss": "smoothl1_norm", "iou_detach": True},
    "bce_prroi": {**HEAD, "iou_pool": "prroi"},
    "bce_prroi_detach": {**HEAD, "iou_pool": "prroi", "iou_detach": True},
    "bce_prroi_w1": {**HEAD, "iou_pool": "prroi", "iou_loss_weight": 1.0},
    "bce_prroi_detach_wide": {**HEAD, "iou_pool": "prroi", "iou_detach": True, "iou_head_size": 256},
    "smoothl1_norm_prroi": {**HEAD, "iou_loss": "smoothl1_norm", "iou_pool": "prroi"},
}
#: inference rows per trained model: (row suffix, options); refinement only where the head pools with PrRoIPool
INFERENCE = (("standard NMS", {}), ("IoU-guided NMS", {"nms_mode": "iou"}),
             ("score × IoU NMS", {"nms_mode": "score_iou"}))
#: refinement rows (PrRoIPool heads): 5 steps of Algorithm 2 at each step size λ asked for (2.0 edgedet's default,
#: 0.5 the paper's and the reproduction's config)
REFINE_STEPS = 5


def train_run(variant: str, seed: int, args: argparse.Namespace) -> Path:
    """``best.pt`` of one variant and seed, trained unless ``--work`` already has it."""
    from edgedet.train.config import make_config
    from edgedet.train.engine import train

    out = Path(args.work) / f"{variant}-s{seed}"
    best = out / "best.pt"
    if best.exists():
        return best
    cfg = make_config(model="fasterrcnn_tiny", data=args.data, images=args.images, val_data=args.choose_data,
                      preset="tiny", device="cpu", epochs=args.epochs, seed=seed, out=str(out), eval_every=1,
                      model_kwargs=dict(VARIANTS[variant]))
    return Path(train(cfg, progress=False).best)  # out itself: it did not exist


def _model(weights: Path):
    model = create_model(model_name_from_checkpoint(str(weights)), weights=str(weights)).eval()
    heads = model.roi_heads
    heads.score_thresh, heads.nms_thresh, heads.detections_per_img = 0.05, 0.5, 100
    return model


def _configure(model, opts: dict):
    """The model's heads set for one inference row (standard NMS when ``opts`` is empty)."""
    heads = model.roi_heads
    if hasattr(heads, "iou_head"):
        heads.nms_mode, heads.refine_steps = opts.get("nms_mode", "standard"), opts.get("refine_steps", 0)
        heads.refine_step_size = opts.get("refine_step_size", 2.0)
    return model


def exported(weights: Path, mode: str, out: Path):
    """The model exported with ``--nms-mode mode`` (K = every proposal × class pair), run by ONNX Runtime."""
    from edgedet.export.nms import NMSConfig
    from edgedet.export.onnx_export import ExportOptions, export_model
    from edgedet.runtime import Detector

    model = _model(weights)
    pairs = model.rpn.post_nms_top_n() * (model.roi_heads.box_predictor.cls_score.out_features - 1)
    result = export_model(ExportOptions(model=None, weights=str(weights), max_candidates=pairs, out_dir=str(out),
                                        name=f"{weights.parent.name}_{mode}", force=True,
                                        nms=NMSConfig(score_thresh=0.05, iou_thresh=0.5, max_dets=100, mode=mode)))
    return Detector(result.artifacts["fp32"], backend="onnxruntime")


def evaluate_rows(variant: str, weights: Path, dataset, export_dir: Path | None,
                  step_sizes: list[float]) -> list[tuple[str, dict]]:
    """(row name, COCO stats) for every inference row the variant's model has; with ``export_dir`` also the model
    exported (the baseline with standard NMS, an IoU-Net with score × IoU NMS) and run by ONNX Runtime."""
    rows = [("baseline, standard NMS", {})] if variant == "base" else [
        (f"{variant}, {name}", opts) for name, opts in
        (*INFERENCE, *((f"score × IoU NMS + refinement (λ {lam})",
                        {"nms_mode": "score_iou", "refine_steps": REFINE_STEPS, "refine_step_size": lam})
                       for lam in (step_sizes if VARIANTS[variant].get("iou_pool") == "prroi" else ())))]
    out = []
    model = _model(weights)  # read once, configured per row
    for name, opts in rows:
        _configure(model, opts)
        result, _ = evaluate_predictor(TorchPredictor(model, device="cpu"), dataset, model.edgedet_classes,
                                       progress=False, desc=name)
        out.append((name, result.stats))
    if export_dir is not None:  # the deployed engines, host resize included, like for like
        mode, name = ("standard", "baseline, exported") if variant == "base" else \
            ("score_iou", f"{variant}, score × IoU NMS, exported")
        engine = exported(weights, mode, export_dir)
        result, _ = evaluate_predictor(engine, dataset, engine.class_names, progress=False, desc="exported")
        out.append((f"{name} (ONNX Runtime)", result.stats))
    return out


def summarise(per_seed: dict[str, list[dict]]) -> list[tuple[str, dict, dict]]:
    """Per row: mean and half-range over seeds of every column."""
    rows = []
    for name, stats in per_seed.items():
        mean = {c: statistics.fmean(s[c] for s in stats) * 100 for c in COLUMNS}
        spread = {c: (max(s[c] for s in stats) - min(s[c] for s in stats)) * 50 for c in COLUMNS}
        rows.append((name, mean, spread))
    return rows


def markdown(rows: list[tuple[str, dict, dict]], seeds: int) -> str:
    """docs/performance.md's ablation table: mean ± half-range over seeds, and the AP and AP90 deltas from the
    baseline's mean."""
    base = next((m for name, m, _ in rows if name.startswith("baseline")), None)
    header = ["row", *COLUMNS, "ΔAP", "ΔAP90"]
    body = []
    for name, mean, spread in rows:
        cells = [f"{mean[c]:.1f} ± {spread[c]:.1f}" if seeds > 1 else f"{mean[c]:.1f}" for c in COLUMNS]
        delta = [f"{mean[c] - base[c]:+.1f}" if base else "" for c in ("AP", "AP90")]
        body.append((name, *cells, *delta))
    return markdown_table(header, body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="training annotations (COCO JSON)")
    ap.add_argument("--images", required=True)
    ap.add_argument("--choose-data", required=True, help="val split the runs pick best.pt on and variants are chosen on")
    ap.add_argument("--report-data", help="held-out split the chosen variants are reported on")
    ap.add_argument("--report-images", help="images of --report-data (default: --images)")
    ap.add_argument("--work", required=True, help="folder of the trained runs (reused when present)")
    ap.add_argument("--variants", default="base,bce_prroi,smoothl1_norm_prroi,bce_prroi_detach",
                    help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=16, help="training epochs (the tiny preset's 16)")
    ap.add_argument("--split", choices=("choose", "report"), default="choose")
    ap.add_argument("--refine-step-sizes", type=float, nargs="+", default=[2.0],
                    help="refinement rows, one per step size λ (PrRoIPool variants)")
    ap.add_argument("--train-only", action="store_true", help="train the missing runs and stop")
    ap.add_argument("--exported", action="store_true",
                    help="also evaluate each IoU-Net model exported with --nms-mode score_iou, in ONNX Runtime")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table (for docs/performance.md)")
    args = ap.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    runs = {(v, s): train_run(v, s, args) for s in args.seeds for v in variants}
    if args.train_only:
        return
    if args.split == "report":
        if not args.report_data:
            raise SystemExit("--split report needs --report-data")
        dataset = load_dataset(args.report_data, args.report_images or args.images)
    else:
        dataset = load_dataset(args.choose_data, args.images)
    per_seed: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for (variant, _), weights in runs.items():
            for name, stats in evaluate_rows(variant, weights, dataset, Path(tmp) if args.exported else None,
                                             args.refine_step_sizes):
                per_seed.setdefault(name, []).append(stats)
    rows = summarise(per_seed)
    if args.markdown:
        print(markdown(rows, len(args.seeds)))
        return
    table = Table(title=f"IoU-Net ablation, {args.split} split ({len(dataset)} images), seeds {args.seeds}, "
                        "COCO box AP ×100, mean ± half-range")
    for c in ("row", *COLUMNS):
        table.add_column(c, justify="left" if c == "row" else "right")
    for name, mean, spread in rows:
        table.add_row(name, *(f"{mean[c]:.1f} ± {spread[c]:.1f}" for c in COLUMNS))
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
