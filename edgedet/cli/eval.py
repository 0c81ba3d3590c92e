"""``edgedet eval``: COCO mAP of the PyTorch reference on a dataset (the same code `verify` runs engines through)."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "COCO evaluation of a model: the 12 COCO numbers and per-class AP, results JSON written"


def add_args(p: argparse.ArgumentParser) -> None:
    v.add_model(p)
    v.add_dataset(p)
    v.add(p, "batch", default=1, detail="per forward pass")
    v.add(p, "out", default="runs/eval/exp", detail="a run folder for results.json and metrics.json")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from edgedet import log
    from edgedet.data import check_images, load_dataset
    from edgedet.data.checks import require_annotations
    from edgedet.evaluate import evaluate_predictor, print_eval
    from edgedet.fileio import atomic_write_json, next_run_dir, require_writable
    from edgedet.reference import load_reference
    from edgedet.results import save_results_json

    out = require_writable(next_run_dir(args.out), folder=True)  # before the evaluation, not after
    predictor = load_reference(args.model, args.weights, device=args.device)
    dataset = load_dataset(args.data, args.images)
    if args.max_images:
        dataset = replace(dataset, samples=dataset.samples[: args.max_images])
    dataset = require_annotations(check_images(dataset, args.bad_images))
    result, results = evaluate_predictor(predictor, dataset, predictor.classes, batch_size=args.batch)
    print_eval(result, f"{predictor.model.edgedet_name} on {args.data}")
    save_results_json(out / "results.json", results)
    atomic_write_json(out / "metrics.json", result.to_dict())
    log.note(f"eval: mAP {result.stats['AP']:.3f}, mAP50 {result.stats['AP50']:.3f}; results in {out}")
    return 0
