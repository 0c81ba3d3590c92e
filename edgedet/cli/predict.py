"""``edgedet predict``: the PyTorch reference (``--weights``) or an engine (``--engine``) on images; COCO results JSON and annotated images."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "run the PyTorch reference or an exported engine on images: COCO results JSON and/or annotated images"


def add_args(p: argparse.ArgumentParser) -> None:
    v.add(p, "model")
    v.add(p, "weights", required=False, detail="the PyTorch reference; or give --engine")
    v.add_engine(p, required=False)
    v.add(p, "server")
    v.add(p, "served-model")
    v.add(p, "images", deprecated=("--source",))
    v.add(p, "data", detail="predict its images, numbered by its image ids in --json")
    v.add(p, "max-images")
    v.add(p, "bad-images")
    v.add(p, "score-thresh", default=0.25, deprecated=("--conf",))
    v.add(p, "json", detail="COCO results", deprecated=("--save-json",))
    v.add(p, "out", detail="annotated images", deprecated=("--save-dir",))
    v.add(p, "force")


def run(args: argparse.Namespace) -> int:
    from edgedet.errors import EdgedetError
    from edgedet.predict import predict_images, resolve_items

    items = resolve_items(args.images, args.data, args.max_images)
    outputs = dict(save_json=args.json, save_dir=args.out, overwrite=args.force, on_bad_image=args.bad_images)
    if args.engine or args.server:
        if args.weights or args.model or (args.engine and args.server):
            raise EdgedetError("give one of --engine, --server or --model/--weights")
        detector = _engine_or_server(args)
        category_ids = detector.metadata.get("category_ids") or list(range(1, len(detector.class_names) + 1))
        predictor = lambda images: [d.filter(args.score_thresh) for d in detector(images)]  # noqa: E731
        return predict_images(predictor, detector.class_names, category_ids, items, **outputs)
    if not args.weights:
        raise EdgedetError("give --engine FILE, or --weights (and --model) for the PyTorch reference")
    from edgedet.checkpoint import category_ids as checkpoint_category_ids
    from edgedet.reference import load_reference

    predictor = load_reference(args.model, args.weights, device=args.device, score_thresh=args.score_thresh)
    category_ids = checkpoint_category_ids(args.weights, len(predictor.classes))
    return predict_images(predictor, predictor.classes, category_ids, items, **outputs)


def _engine_or_server(args: argparse.Namespace):
    """A local Detector (--engine), or the served end-to-end model (--server, --served-model)."""
    from edgedet.errors import EdgedetError

    if args.server:
        from edgedet.runtime.triton.client import ServedDetector

        if not args.served_model:
            raise EdgedetError("--server needs --served-model NAME (the <name>_e2e model of the repository)")
        return ServedDetector(args.server, args.served_model)
    if args.served_model:
        raise EdgedetError("--served-model goes with --server URL")
    from edgedet.runtime import Detector

    return Detector(args.engine, backend=args.backend, device=args.device, threads=args.threads)
