"""``edgedet eval``: COCO mAP of the PyTorch reference on a dataset (the same code `verify` runs engines through)."""

from __future__ import annotations

import argparse

from edgedet.cli._common import add_model_args, positive_int

HELP = "COCO evaluation of a model: the 12 COCO numbers and per-class AP, results JSON written"


def add_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--data", required=True, help="annotations (COCO JSON or VOC folder)")
    p.add_argument("--images", help="image folder of --data (COCO)")
    p.add_argument("--batch", type=positive_int, default=1, help="images per forward pass (default 1)")
    p.add_argument("--max-images", type=int, help="evaluate the first N images only")
    p.add_argument("--bad-images", choices=["skip", "fail"], default="skip",
                   help="unreadable images: skip with a warning naming each (default) or fail")
    p.add_argument("--out", default="runs/eval/exp", help="folder for results.json and metrics.json (numbered if it exists)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from edgedet import log
    from edgedet.data import check_images, load_dataset
    from edgedet.data.checks import require_annotations
    from edgedet.evaluate import evaluate_predictor, print_eval
    from edgedet.fileio import atomic_write_json, next_run_dir
    from edgedet.reference import load_reference
    from edgedet.results import save_results_json

    predictor = load_reference(args.model, args.weights, device=args.device)
    dataset = load_dataset(args.data, args.images)
    if args.max_images:
        dataset = replace(dataset, samples=dataset.samples[: args.max_images])
    dataset = require_annotations(check_images(dataset, args.bad_images))
    result, results = evaluate_predictor(predictor, dataset, predictor.classes, batch_size=args.batch)
    print_eval(result, f"{predictor.model.edgedet_name} on {args.data}")
    out = next_run_dir(args.out)
    save_results_json(out / "results.json", results)
    atomic_write_json(out / "metrics.json", result.to_dict())
    log.note(f"eval: mAP {result.stats['AP']:.3f}, mAP50 {result.stats['AP50']:.3f}; results in {out}")
    return 0
