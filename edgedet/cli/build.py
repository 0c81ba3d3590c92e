"""``edgedet build``: an ONNX export → a TensorRT plan (+ ``<stem>.json`` sidecar), on the target device.

TensorRT is imported only after every option has been checked against the ONNX file, so mistakes are one
line on any machine, and a machine without TensorRT says where to run the build instead.
"""

from __future__ import annotations

import argparse

HELP = "build a TensorRT plan from an edgedet ONNX export (FP32/FP16/INT8, dynamic batch, DLA, timing cache)"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("onnx", metavar="MODEL.onnx", help="an ONNX file written by edgedet export")
    p.add_argument("-o", "--out", metavar="MODEL.plan", help="plan path (default: the ONNX path with .plan)")
    p.add_argument("--fp16", action="store_true",
                   help="TensorRT 10: FP16 kernels; TensorRT 11 is strongly typed: build the .fp16.onnx instead")
    p.add_argument("--int8", action="store_true",
                   help="INT8: a Q/DQ ONNX as it is, or (TensorRT 10) calibration with --calib-images")
    p.add_argument("--calib-images", metavar="DIR", help="images for INT8 calibration (TensorRT 10)")
    p.add_argument("--calib-cache", metavar="FILE",
                   help="calibration cache, TensorRT's format: read if present, else written (default: <onnx stem>.calib)")
    p.add_argument("--calibrator", choices=["entropy", "minmax"], default="entropy",
                   help="entropy: IInt8EntropyCalibrator2 (default); minmax: IInt8MinMaxCalibrator")
    p.add_argument("--calib-batch", type=int, default=8, metavar="N", help="calibration batch (dynamic-batch ONNX)")
    p.add_argument("--calib-max-images", type=int, default=512, metavar="N", help="at most N calibration images")
    p.add_argument("--workspace", type=float, metavar="GB", help="builder workspace limit in GB (default: TensorRT's)")
    p.add_argument("--min-batch", type=int, metavar="N", help="dynamic batch: profile minimum (default 1)")
    p.add_argument("--opt-batch", type=int, metavar="N", help="dynamic batch: size to tune for (default: max)")
    p.add_argument("--max-batch", type=int, metavar="N", help="dynamic batch: profile maximum (default: the export's)")
    p.add_argument("--dla", type=int, metavar="N", help="run on DLA core N with GPU fallback (Jetson Xavier/Orin; FP16/INT8)")
    p.add_argument("--timing-cache", metavar="FILE", help="TensorRT timing cache: loaded if present, saved after the build")
    p.add_argument("--device", type=int, default=0, help="CUDA device to build on (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing plan")
    p.add_argument("--no-check", action="store_true",
                   help="build without running `edgedet check` for this TensorRT version first")


def run(args: argparse.Namespace) -> int:
    from edgedet import log
    from edgedet.export.trt_builder import BuildOptions, build_engine

    opts = BuildOptions(
        onnx=args.onnx, out=args.out, fp16=args.fp16, int8=args.int8, calib_images=args.calib_images,
        calib_cache=args.calib_cache, calibrator=args.calibrator, calib_batch=args.calib_batch,
        calib_max_images=args.calib_max_images, workspace_gb=args.workspace, min_batch=args.min_batch,
        opt_batch=args.opt_batch, max_batch=args.max_batch, dla=args.dla, timing_cache=args.timing_cache,
        force=args.force, device=args.device, check=not args.no_check,
    )
    result = build_engine(opts)
    calib = ", calibrated" if result.calibrated else ""
    log.note(f"build: {result.plan} ({result.size_bytes / 2**20:.1f} MB, {result.precision}{calib}, "
             f"TensorRT {result.tensorrt} on {result.device}, {result.seconds:.1f}s)")
    return 0
