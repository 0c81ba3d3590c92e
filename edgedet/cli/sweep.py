"""``edgedet sweep``: COCO AP and latency per threshold or proposal count, measured on exported engines."""

from __future__ import annotations

import argparse

HELP = "export one engine per threshold (or proposal count) and measure AP and latency of each beside eager PyTorch"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="zoo name (optional when --weights is an edgedet checkpoint)")
    p.add_argument("--weights", required=True, help="edgedet checkpoint FILE, default/ENUM (torchvision, needs network) or none")
    p.add_argument("--data", required=True, help="annotations (COCO JSON or VOC folder)")
    p.add_argument("--images", help="image folder of --data (COCO)")
    p.add_argument("--max-images", type=int, help="evaluate the first N images only")
    p.add_argument("--rpn-score-thresh", metavar="T,T,...", help="Faster R-CNN: RPN proposal thresholds, e.g. 0,0.05,0.1,0.5")
    p.add_argument("--rpn-post-nms-top-n", metavar="P,P,...",
                   help="Faster R-CNN: proposals per image the box head runs on, e.g. 150,100,50 (the engine's speed knob)")
    p.add_argument("--score-thresh", metavar="T,T,...",
                   help="detection score thresholds to sweep, or one value for another sweep (default: the model's own)")
    p.add_argument("--iou-thresh", type=float, help="NMS IoU threshold (default: the model's own)")
    p.add_argument("--max-dets", type=int, default=100, help="detections per image, the outputs' K (default 100)")
    p.add_argument("--max-candidates", type=int, default=1000, help="candidates kept before NMS (<= 3840)")
    p.add_argument("--imgsz", type=int, nargs="+", metavar="N", help="network input: one size or H W (default: the model's)")
    p.add_argument("--nms", choices=["onnx", "efficient"], default="onnx",
                   help="NMS flavour of each exported engine (see edgedet export --help)")
    p.add_argument("--fp16", action="store_true", help="sweep FP16 engines instead of FP32")
    p.add_argument("--backend", choices=["auto", "onnxruntime", "openvino", "tensorrt"], default="auto",
                   help="auto: TensorRT plans where TensorRT is installed, else ONNX Runtime; openvino: OpenVINO on the CPU")
    p.add_argument("--no-reference", action="store_true", help="skip the eager PyTorch columns")
    p.add_argument("--device", help="device of the PyTorch reference (cpu, cuda)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs before each timed pass (default 3)")
    p.add_argument("-o", "--out", default="runs/sweep", help="run folder, numbered if it exists (default runs/sweep)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from edgedet import log
    from edgedet.data import check_images, load_dataset
    from edgedet.data.checks import require_annotations
    from edgedet.errors import EdgedetError
    from edgedet.sweep import SweepOptions, parse_counts, parse_thresholds, print_report, sweep, write_outputs

    if args.imgsz is not None and len(args.imgsz) not in (1, 2):
        raise EdgedetError("--imgsz takes one size or H W")
    if args.max_images is not None and args.max_images < 1:
        raise EdgedetError("--max-images must be at least 1")
    if args.warmup < 0:
        raise EdgedetError("--warmup must be 0 or more")
    opts = SweepOptions(
        model=args.model, weights=args.weights,
        rpn_score_thresh=parse_thresholds(args.rpn_score_thresh, "--rpn-score-thresh"),
        score_thresh=parse_thresholds(args.score_thresh, "--score-thresh"),
        rpn_post_nms_top_n=parse_counts(args.rpn_post_nms_top_n, "--rpn-post-nms-top-n"), iou_thresh=args.iou_thresh,
        max_dets=args.max_dets, max_candidates=args.max_candidates,
        imgsz=None if args.imgsz is None else (tuple(args.imgsz) * 2)[:2],
        nms=args.nms, fp16=args.fp16, backend=args.backend, reference=not args.no_reference, device=args.device,
        warmup=args.warmup, out_dir=args.out,
    )
    dataset = load_dataset(args.data, args.images)
    if args.max_images:
        dataset = replace(dataset, samples=dataset.samples[: args.max_images])
    dataset = require_annotations(check_images(dataset, "skip"))
    report, out = sweep(opts, dataset)
    print_report(report)
    files = write_outputs(report, out)
    log.note(f"sweep: {len(report.points)} engines in {out / 'engines'}; table {files['markdown']}, "
             f"plot {files['plot']}, data {files['json']}")
    return 0
