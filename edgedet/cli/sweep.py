"""``edgedet sweep``: COCO AP and latency per threshold or proposal count, measured on exported engines."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "export one engine per threshold (or proposal count) and measure AP and latency of each beside eager PyTorch"


def add_args(p: argparse.ArgumentParser) -> None:
    v.add_model(p)
    v.add_dataset(p)
    v.add(p, "rpn-score-thresh", type=str, metavar="T,T,...", detail="values to sweep, e.g. 0,0.05,0.1,0.5")
    v.add(p, "rpn-post-nms-top-n", type=str, metavar="P,P,...", detail="values to sweep, e.g. 150,100,50")
    v.add(p, "score-thresh", type=str, metavar="T,T,...",
          detail="values to sweep, or one value for another sweep (default: the model's own)")
    v.add(p, "iou-thresh", detail="default: the model's own")
    v.add(p, "max-dets")
    v.add(p, "max-candidates")
    v.add(p, "imgsz")
    v.add(p, "nms", detail="of each exported engine")
    v.add(p, "nms-mode", type=str, choices=None, default=None, metavar="M,M,...",
          detail="values to sweep, e.g. standard,iou,score_iou (default standard)")
    v.add(p, "fp16", detail="sweep FP16 engines instead of FP32")
    v.add(p, "backend", choices=["auto", "onnxruntime", "openvino", "tensorrt"],
          detail="auto here: TensorRT plans where TensorRT is installed, else as above for the .onnx")
    p.add_argument("--no-reference", action="store_true", help="skip the eager PyTorch columns")
    v.add(p, "warmup", default=3, detail="before each timed pass")
    v.add(p, "out", default="runs/sweep", detail="a run folder")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from edgedet import log
    from edgedet.data import check_images, load_dataset
    from edgedet.data.checks import require_annotations
    from edgedet.sweep import (SweepOptions, parse_counts, parse_nms_modes, parse_thresholds, print_report, sweep,
                                write_outputs)

    opts = SweepOptions(
        model=args.model, weights=args.weights,
        rpn_score_thresh=parse_thresholds(args.rpn_score_thresh, "--rpn-score-thresh"),
        score_thresh=parse_thresholds(args.score_thresh, "--score-thresh"),
        rpn_post_nms_top_n=parse_counts(args.rpn_post_nms_top_n, "--rpn-post-nms-top-n"), iou_thresh=args.iou_thresh,
        nms_mode=parse_nms_modes(args.nms_mode),
        max_dets=args.max_dets, max_candidates=args.max_candidates,
        imgsz=v.parse_imgsz(args.imgsz),
        nms=args.nms, fp16=args.fp16, backend=args.backend, reference=not args.no_reference, device=args.device,
        warmup=args.warmup, out_dir=args.out,
    )
    dataset = load_dataset(args.data, args.images)
    if args.max_images:
        dataset = replace(dataset, samples=dataset.samples[: args.max_images])
    dataset = require_annotations(check_images(dataset, args.bad_images))
    report, out = sweep(opts, dataset)
    print_report(report)
    files = write_outputs(report, out)
    log.note(f"sweep: {len(report.points)} engines in {out / 'engines'}; table {files['markdown']}, "
             f"plot {files['plot']}, data {files['json']}")
    return 0
