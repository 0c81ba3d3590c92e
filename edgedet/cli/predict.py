"""``edgedet predict``: the PyTorch reference (``--weights``) or an engine (``--engine``) on images; COCO results JSON and annotated images."""

from __future__ import annotations

import argparse

from edgedet.cli._common import add_backend_arg, add_model_args, unit_interval

HELP = "run the PyTorch reference or an exported engine on images: COCO results JSON and/or annotated images"


def add_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p, required=False)
    p.add_argument("--engine", help="an exported .onnx or TensorRT .plan instead of --model/--weights")
    add_backend_arg(p)
    p.add_argument("--source", required=True, help="image file, folder or glob")
    p.add_argument("--conf", type=unit_interval, default=0.25, help="minimum score to keep (default 0.25)")
    p.add_argument("--save-json", help="write COCO results JSON here")
    p.add_argument("--save-dir", help="write annotated images into this folder")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")


def run(args: argparse.Namespace) -> int:
    from edgedet.errors import EdgedetError
    from edgedet.predict import predict_images

    if args.engine:
        if args.weights or args.model:
            raise EdgedetError("give either --engine or --model/--weights, not both")
        from edgedet.runtime import Detector

        detector = Detector(args.engine, backend=args.backend)
        classes = detector.class_names or [str(i) for i in range(1000)]
        category_ids = detector.metadata.get("category_ids") or list(range(1, len(classes) + 1))
        predictor = lambda images: [d.filter(args.conf) for d in detector(images)]  # noqa: E731
        return predict_images(predictor, classes, category_ids, args.source, save_json=args.save_json,
                              save_dir=args.save_dir, overwrite=args.force)
    if not args.weights:
        raise EdgedetError("give --engine PATH, or --weights (and --model) for the PyTorch reference")
    from edgedet.checkpoint import category_ids as checkpoint_category_ids
    from edgedet.reference import load_reference

    predictor = load_reference(args.model, args.weights, device=args.device, score_thresh=args.conf)
    category_ids = checkpoint_category_ids(args.weights, len(predictor.classes))
    return predict_images(predictor, predictor.classes, category_ids, args.source, save_json=args.save_json,
                          save_dir=args.save_dir, overwrite=args.force)

