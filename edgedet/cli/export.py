"""``edgedet export``: static ONNX (FP32, optionally FP16) with in-graph NMS; a TensorRT plan where TensorRT is installed."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "export a zoo model to static ONNX with in-graph NMS (ONNX op or TensorRT plugin), optional FP16 and parity check"


def add_args(p: argparse.ArgumentParser) -> None:
    from edgedet.export.exporters import DEFAULT_EXPORTER, EXPORTERS

    v.add_model(p, device=False)  # export traces on the CPU
    batch = p.add_mutually_exclusive_group()
    v.add(batch, "batch", default=1, detail="the graph's fixed batch")
    batch.add_argument("--dynamic-batch", type=v.positive_int, metavar="MAX", help="dynamic batch up to MAX (SSD family)")
    v.add(p, "input-format")
    v.add_detection(p)
    v.add(p, "rpn-score-thresh")
    v.add(p, "rpn-post-nms-top-n")
    v.add(p, "fp16", detail="also write <name>.fp16.onnx")
    v.add(p, "int8", detail="also write <name>.int8.onnx")
    v.add(p, "calib-images")
    v.add(p, "calib-count")
    v.add(p, "calib-method", default="percentile", detail="onnxruntime.quantization's calibrators")
    p.add_argument("--int8-weight-bits", type=int, choices=[7, 8], default=7,
                   help="INT8 weight range: 7 (default) never saturates the int16 sums of x86 CPUs without VNNI "
                        "(ONNX Runtime, OpenVINO); 8 for GPU-only (TensorRT) deployments")
    p.add_argument("--exporter", choices=list(EXPORTERS), default=DEFAULT_EXPORTER,
                   help=f"how PyTorch writes the ONNX: torch-export (torch.onnx.export on torch.export) or torchscript "
                        f"(the tracer PyTorch deprecates); default {DEFAULT_EXPORTER}")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's oldest, 18 torch-export, 17 "
                                             "torchscript)")
    v.add(p, "out", default="exports")
    p.add_argument("--name", help="file stem (default: the model name)")
    v.add(p, "force")
    p.add_argument("--verify", type=v.non_negative_int, default=0, metavar="N",
                   help="compare N images through PyTorch and each graph")
    p.add_argument("--verify-source", metavar="SRC", help="image folder/glob for --verify (default: synthetic images)")
    v.add(p, "no-check", detail="default: refuse a graph TensorRT would reject")


def run(args: argparse.Namespace) -> int:
    from edgedet.errors import EdgedetError

    imgsz = v.parse_imgsz(args.imgsz)
    from edgedet.export.nms import NMSConfig
    from edgedet.export.onnx_export import ExportOptions, export_model, summarize

    opts = ExportOptions(
        model=args.model, weights=args.weights, imgsz=imgsz, batch=args.batch, dynamic_batch=args.dynamic_batch,
        nms=NMSConfig(args.nms, args.score_thresh, args.iou_thresh, args.max_dets, args.nms_mode), fp16=args.fp16,
        int8=args.int8, calib_images=args.calib_images, calib_count=args.calib_count, calib_method=args.calib_method,
        int8_weight_bits=args.int8_weight_bits,
        rpn_score_thresh=args.rpn_score_thresh, rpn_post_nms_top_n=args.rpn_post_nms_top_n,
        max_candidates=args.max_candidates, opset=args.opset, exporter=args.exporter,
        input_format=args.input_format,
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
        log.note(f"TensorRT is not installed here; on the target device run: edgedet build --engine {result.artifacts[precision]}{flag}")
        return
    from edgedet.export.trt_builder import BuildOptions, build_engine

    built = build_engine(BuildOptions(onnx=result.artifacts[precision], fp16=precision == "fp16",
                                      int8=precision == "int8", force=args.force))
    log.note(f"export: TensorRT plan {built.plan}")
