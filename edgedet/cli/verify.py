"""``edgedet verify``: engines against the PyTorch reference on COCO mAP, side by side, with a tolerance gate."""

from __future__ import annotations

import argparse

from edgedet.cli._common import add_backend_arg

HELP = "evaluate engines and the PyTorch reference on the same images; fail when an engine loses more AP than allowed"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", nargs="+", required=True, help="one or more .onnx/.plan files of the same model")
    add_backend_arg(p)
    p.add_argument("--model", help="zoo name (default: from the engine's metadata)")
    p.add_argument("--weights", required=True, help="the checkpoint the engines were exported from")
    p.add_argument("--data", required=True, help="annotations (COCO JSON or VOC folder)")
    p.add_argument("--images", help="image folder of --data (COCO)")
    p.add_argument("--max-images", type=int, help="evaluate the first N images only")
    p.add_argument("--tolerance", type=float, help="allowed AP drop in points (default by precision: fp32 0.1, fp16 0.3, int8 1.0)")
    p.add_argument("--device", help="device of the PyTorch reference (cpu, cuda)")
    p.add_argument("--allow-other-weights", action="store_true",
                   help="compare even when the engines' metadata records other weights than --weights")
    p.add_argument("--json", help="write the report as JSON here")
    p.add_argument("--report", help="write the report as Markdown here")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from edgedet import log
    from edgedet.data import check_images, load_dataset
    from edgedet.data.checks import require_annotations
    from edgedet.fileio import atomic_write_json, atomic_write_text
    from edgedet.verify import markdown, print_report, verify

    dataset = load_dataset(args.data, args.images)
    if args.max_images:
        dataset = replace(dataset, samples=dataset.samples[: args.max_images])
    dataset = require_annotations(check_images(dataset, "skip"))
    report = verify(args.engine, args.model, args.weights, dataset, tolerance=args.tolerance, device=args.device,
                    allow_other_weights=args.allow_other_weights, backend=args.backend)
    print_report(report)
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    if args.report:
        atomic_write_text(args.report, markdown(report))
    failed = [r.name for r in report.rows if r.passed is False]
    log.note(f"verify: {'PASS' if not failed else 'FAIL: ' + ', '.join(failed)}")
    return 0 if not failed else 1
