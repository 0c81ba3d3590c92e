"""IoU-Net's ablation (Jiang et al., ECCV 2018, table 4) on edgedet's own models, in PyTorch, on one val split.

Rows, each a COCO evaluation of the same images (AP, AP50, AP75, AP80, AP90):

1. the baseline Faster R-CNN (``--baseline``, trained without the IoU head);
2. the IoU-Net model (``--iou``) with its head trained but unused (standard NMS);
3. + IoU-guided NMS (ranked by predicted IoU);
4. + score × IoU ranking (the MMDetection reproduction's variant);
5. the PrRoIPool-head model (``--prroi``) with standard NMS and with score × IoU, then
6. + optimization-based refinement (``--refine-steps``, step ``--refine-step-size``), PyTorch only.

Thresholds are the same for every row (score 0.05, NMS IoU 0.5, 100 detections, torchvision's defaults).

    python benchmarks/iou_net_ablation.py --baseline runs/base/best.pt --iou runs/iou/best.pt \
        --prroi runs/prroi/best.pt --data synth/annotations/val.json --images synth/images [--markdown]
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from _markdown import table as markdown_table
from edgedet.data import load_dataset
from edgedet.evaluate import evaluate_predictor
from edgedet.models import create_model
from edgedet.reference import TorchPredictor, model_name_from_checkpoint

COLUMNS = ("AP", "AP50", "AP75", "AP80", "AP90")


def _model(weights: str, *, nms_mode: str = "standard", refine_steps: int = 0, step_size: float = 2.0):
    model = create_model(model_name_from_checkpoint(weights), weights=weights).eval()
    heads = model.roi_heads
    heads.score_thresh, heads.nms_thresh, heads.detections_per_img = 0.05, 0.5, 100
    if hasattr(heads, "iou_head"):
        heads.nms_mode, heads.refine_steps, heads.refine_step_size = nms_mode, refine_steps, step_size
    elif nms_mode != "standard" or refine_steps:
        raise SystemExit(f"{weights} has no IoU head")
    return model


def markdown(results: list[tuple[str, dict, float]]) -> str:
    """docs/performance.md's IoU-Net ablation table from (row, COCO stats, ms per image) per row: AP ×100 to one
    decimal, whole milliseconds (PyTorch on a CPU; the tenths are noise)."""
    return markdown_table(["row", *COLUMNS, "ms/img"],
                          [(name, *(f"{stats[c] * 100:.1f}" for c in COLUMNS), f"{ms:.0f}")
                           for name, stats, ms in results])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="checkpoint trained without the IoU head")
    ap.add_argument("--iou", required=True, help="checkpoint trained with iou_head=true (RoIAlign)")
    ap.add_argument("--prroi", help="checkpoint trained with iou_head=true iou_pool=prroi (for refinement)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--refine-steps", type=int, default=5)
    ap.add_argument("--refine-step-size", type=float, default=2.0)
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for docs/performance.md)")
    args = ap.parse_args()
    dataset = load_dataset(args.data, args.images)
    rows = [("baseline Faster R-CNN", args.baseline, {}),
            ("IoU-Net, head unused (standard NMS)", args.iou, {}),
            ("+ IoU-guided NMS", args.iou, {"nms_mode": "iou"}),
            ("+ score × IoU ranking", args.iou, {"nms_mode": "score_iou"})]
    if args.prroi:
        rows += [("PrRoIPool head, standard NMS", args.prroi, {}),
                 ("PrRoIPool head, score × IoU", args.prroi, {"nms_mode": "score_iou"}),
                 (f"+ refinement ({args.refine_steps} steps, λ {args.refine_step_size}, PyTorch only)", args.prroi,
                  {"nms_mode": "score_iou", "refine_steps": args.refine_steps, "step_size": args.refine_step_size})]
    table = Table(title=f"IoU-Net ablation, PyTorch on the CPU, {len(dataset)} images, COCO box AP (×100)")
    table.add_column("row")
    for c in (*COLUMNS, "ms/img"):
        table.add_column(c, justify="right")
    results = []
    for name, weights, opts in rows:
        model = _model(weights, **opts)
        result, _ = evaluate_predictor(TorchPredictor(model, device="cpu"), dataset, model.edgedet_classes,
                                       progress=False, desc=name)
        results.append((name, result.stats, result.ms_per_image))
        table.add_row(name, *(f"{result.stats[c] * 100:.1f}" for c in COLUMNS), f"{result.ms_per_image:.1f}")
    if args.markdown:
        print(markdown(results))
    else:
        Console(width=160).print(table)


if __name__ == "__main__":
    main()
