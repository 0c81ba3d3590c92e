"""``edgedet verify``: engines against the PyTorch reference on COCO mAP, side by side, with a tolerance gate."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "evaluate engines and the PyTorch reference on the same images; fail when an engine loses more AP than allowed"


def _points(text: str) -> float:
    """argparse type: an allowed AP drop, 0 or more points (a negative one would fail a perfect engine)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of AP points, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more AP points, not {text}")
    return value


def add_args(p: argparse.ArgumentParser) -> None:
    v.add(p, "engine", required=True, nargs="+", detail="one or more of the same model")
    v.add(p, "backend", choices=list(_backends()))
    v.add(p, "threads")
    v.add_model(p)
    v.add_dataset(p)
    p.add_argument("--tolerance", type=_points, metavar="POINTS",
                   help="allowed AP drop in points (default by precision: fp32 0.1, fp16 0.3, int8 1.0)")
    p.add_argument("--allow-other-weights", action="store_true",
                   help="compare even when the engines' metadata records other weights than --weights")
    v.add(p, "json", detail="the report")
    p.add_argument("--report", metavar="FILE", help="write the report as Markdown to FILE")
    v.add(p, "force")


def _backends() -> tuple[str, ...]:
    from edgedet.runtime.detector import BACKENDS

    return BACKENDS


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from edgedet import log
    from edgedet.data import check_images, load_dataset
    from edgedet.data.checks import require_annotations
    from edgedet.cli._output import check_output_target, write_json
    from edgedet.fileio import atomic_write_text
    from edgedet.verify import markdown, print_report, verify

    check_output_target(args.json, force=args.force)  # before minutes of evaluation, not after
    check_output_target(args.report, force=args.force)
    dataset = load_dataset(args.data, args.images)
    if args.max_images:
        dataset = replace(dataset, samples=dataset.samples[: args.max_images])
    dataset = require_annotations(check_images(dataset, args.bad_images))
    report = verify(args.engine, args.model, args.weights, dataset, tolerance=args.tolerance, device=args.device,
                    allow_other_weights=args.allow_other_weights, backend=args.backend, threads=args.threads)
    if args.json != "-":
        print_report(report)
    if args.json:
        write_json(args.json, report.to_dict(), force=args.force)
    if args.report:
        atomic_write_text(args.report, markdown(report), overwrite=args.force)
    failed = [r.name for r in report.rows if r.passed is False]
    log.note(f"verify: {'PASS' if not failed else 'FAIL: ' + ', '.join(failed)}")
    return 0 if not failed else 1
