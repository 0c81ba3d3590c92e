"""``edgedet export``: static ONNX (FP32, optionally FP16) with in-graph NMS; a TensorRT plan where TensorRT is installed."""

from __future__ import annotations

import argparse

from edgedet.cli._common import add_model_args

HELP = "export a zoo model to static ONNX with in-graph NMS (ONNX op or TensorRT plugin), optional FP16 and parity check"


def add_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p, device=False)  # export traces on the CPU
    p.add_argument("--imgsz", type=int, nargs="+", metavar="N", help="network input: one size (square) or H W (default: the model's)")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=int, default=1, help="fixed batch size (default 1)")
    batch.add_argument("--dynamic-batch", type=int, metavar="MAX", help="dynamic batch up to MAX (SSD family)")
    p.add_argument("--nms", choices=["onnx", "efficient"], default="onnx",
                   help="onnx (default): NonMaxSuppression, TensorRT's native NMS layer on every TensorRT version, "
                        "ONNX Runtime and OpenVINO; efficient: the EfficientNMS_TRT plugin, TensorRT only, deprecated "
                        "since TensorRT 10.12 (kept for 10.x below 10.12, e.g. JetPack 6), score threshold >= 0.007")
    p.add_argument("--fp16", action="store_true", help="also write <name>.fp16.onnx (FP16 compute, FP32 I/O and NMS)")
    p.add_argument("--int8", action="store_true", help="also write <name>.int8.onnx: Q/DQ INT8 calibrated on --calib-images")
    p.add_argument("--calib-images", help="calibration source: image folder, COCO JSON or video")
    p.add_argument("--calib-count", type=int, default=256, help="calibration images (default 256)")
    p.add_argument("--calib-method", choices=["entropy", "minmax", "percentile"], default="percentile",
                   help="how activation ranges are chosen from the calibration images (default percentile)")
    p.add_argument("--score-thresh", type=float, default=0.25, help="minimum detection score kept in the graph (default 0.25)")
    p.add_argument("--iou-thresh", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    p.add_argument("--max-dets", type=int, default=100, help="detections per image, the outputs' K (default 100)")
    p.add_argument("--max-candidates", type=int, default=1000, help="candidates kept before NMS (<= 3840)")
    p.add_argument("--rpn-score-thresh", type=float, help="Faster R-CNN: mask RPN proposals below this score")
    p.add_argument("--rpn-post-nms-top-n", type=int, metavar="P",
                   help="Faster R-CNN: proposals per image the box head runs on (default: the model's); the engine's speed knob")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17; at least 17)")
    p.add_argument("-o", "--out", default="exports", help="output folder (default ./exports)")
    p.add_argument("--name", help="file stem (default: the model name)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--verify", type=int, default=0, metavar="N", help="compare N images through PyTorch and each graph")
    p.add_argument("--verify-source", help="image folder/glob for --verify (default: synthetic images)")
    p.add_argument("--no-check", action="store_true",
                   help="write graphs that fail `edgedet check` (TensorRT's parser rules); default: refuse them")


def run(args: argparse.Namespace) -> int:
    from edgedet.errors import EdgedetError

    if args.imgsz is not None and len(args.imgsz) not in (1, 2):
        raise EdgedetError("--imgsz takes one size or H W")
    from edgedet.export.nms import NMSConfig
    from edgedet.export.onnx_export import ExportOptions, export_model, summarize

    imgsz = None if args.imgsz is None else (tuple(args.imgsz) * 2)[:2] if len(args.imgsz) == 1 else tuple(args.imgsz)
    opts = ExportOptions(
        model=args.model, weights=args.weights, imgsz=imgsz, batch=args.batch, dynamic_batch=args.dynamic_batch,
        nms=NMSConfig(args.nms, args.score_thresh, args.iou_thresh, args.max_dets), fp16=args.fp16,
        int8=args.int8, calib_images=args.calib_images, calib_count=args.calib_count, calib_method=args.calib_method,
        rpn_score_thresh=args.rpn_score_thresh, rpn_post_nms_top_n=args.rpn_post_nms_top_n,
        max_candidates=args.max_candidates, opset=args.opset,
        out_dir=args.out, name=args.name, force=args.force, verify=args.verify, verify_source=args.verify_source,
        check=not args.no_check,
    )
    result = export_model(opts)
    summarize(result)
    _tensorrt_step(result, args)
    if result.parity and not result.passed:
        raise EdgedetError("parity check failed (see the report above and in the sidecar JSON)")
    return 0


def _tensorrt_step(result, args: argparse.Namespace) -> None:
    """Build the plan right away where TensorRT is installed; elsewhere say how to build it on the device."""
    import importlib.util

    from edgedet import log

    precision = next(p for p in ("int8", "fp16", "fp32") if p in result.artifacts)
    flag = {"int8": " --int8", "fp16": " --fp16", "fp32": ""}[precision]
    if importlib.util.find_spec("tensorrt") is None:
        log.note(f"TensorRT is not installed here; on the target device run: edgedet build {result.artifacts[precision]}{flag}")
        return
    from edgedet.export.trt_builder import BuildOptions, build_engine

    built = build_engine(BuildOptions(onnx=result.artifacts[precision], fp16=precision == "fp16",
                                      int8=precision == "int8", force=args.force))
    log.note(f"export: TensorRT plan {built.plan}")
