"""``edgedet build``: an ONNX export → a TensorRT plan (+ ``<stem>.json`` sidecar), on the target device.

TensorRT is imported only after every option has been checked against the ONNX file, so mistakes are one
line on any machine, and a machine without TensorRT says where to run the build instead.
"""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "build a TensorRT plan from an edgedet ONNX export (FP32/FP16/INT8, dynamic batch, DLA, timing cache)"


def add_args(p: argparse.ArgumentParser) -> None:
    v.add_engine_positional(p)
    v.add(p, "out", detail="default: the ONNX file's folder; the plan is <stem>.plan (a FILE.plan, the old "
                           "spelling, is still taken as the plan's path)")
    v.add(p, "fp16", detail="TensorRT 10; TensorRT 11 is strongly typed: build the .fp16.onnx instead")
    v.add(p, "int8", detail="a Q/DQ ONNX as it is, or (TensorRT 10) calibration with --calib-images")
    v.add(p, "calib-images", detail="TensorRT 10 calibration")
    v.add(p, "calib-count", deprecated=("--calib-max-images",))
    v.add(p, "calib-method", choices=["entropy", "minmax"], default="entropy",
          detail="TensorRT's IInt8EntropyCalibrator2 or IInt8MinMaxCalibrator", deprecated=("--calibrator",))
    p.add_argument("--calib-cache", metavar="FILE",
                   help="calibration cache, TensorRT's format: read if present, else written (default: <onnx stem>.calib)")
    p.add_argument("--calib-batch", type=v.positive_int, default=8, metavar="N",
                   help="calibration batch (dynamic-batch ONNX; default 8)")
    p.add_argument("--workspace", type=float, metavar="GB", help="builder workspace limit in GB (default: TensorRT's)")
    p.add_argument("--min-batch", type=v.positive_int, metavar="N", help="dynamic batch: profile minimum (default 1)")
    p.add_argument("--opt-batch", type=v.positive_int, metavar="N", help="dynamic batch: size to tune for (default: max)")
    p.add_argument("--max-batch", type=v.positive_int, metavar="N",
                   help="dynamic batch: profile maximum (default: the export's)")
    p.add_argument("--dla", type=v.non_negative_int, metavar="N",
                   help="run on DLA core N with GPU fallback (Jetson Xavier/Orin; FP16/INT8)")
    p.add_argument("--timing-cache", metavar="FILE", help="TensorRT timing cache: loaded if present, saved after the build")
    v.add(p, "device", detail="the GPU to build on (default cuda:0)")
    v.add(p, "force")
    v.add(p, "no-check")


def plan_path(onnx: str, out: str | None) -> str | None:
    """``-o DIR`` → ``DIR/<stem>.plan``; ``-o FILE.plan`` (earlier releases) is the plan's own path."""
    from pathlib import Path

    from edgedet.runtime.detector import TRT_SUFFIXES

    if out is None:
        return None
    if Path(out).suffix.lower() in TRT_SUFFIXES and not Path(out).is_dir():
        from edgedet import log

        log.warn("-o FILE.plan is deprecated and will be removed in the next release; -o takes the output folder",
                 once=True)
        return out
    return str(Path(out) / Path(onnx).with_suffix(".plan").name)


def run(args: argparse.Namespace) -> int:
    from edgedet import log
    from edgedet.export.trt_builder import BuildOptions, build_engine

    onnx = v.resolve_engine_positional(args)
    if args.device == "cpu":
        from edgedet.errors import EdgedetError

        raise EdgedetError("TensorRT builds on a CUDA GPU: --device cuda:N")
    opts = BuildOptions(
        onnx=onnx, out=plan_path(onnx, args.out), fp16=args.fp16, int8=args.int8, calib_images=args.calib_images,
        calib_cache=args.calib_cache, calib_method=args.calib_method, calib_batch=args.calib_batch,
        calib_count=args.calib_count, workspace_gb=args.workspace, min_batch=args.min_batch,
        opt_batch=args.opt_batch, max_batch=args.max_batch, dla=args.dla, timing_cache=args.timing_cache,
        force=args.force, device=v.cuda_index(args.device), check=not args.no_check,
    )
    result = build_engine(opts)
    calib = ", calibrated" if result.calibrated else ""
    log.note(f"build: {result.plan} ({result.size_bytes / 2**20:.1f} MB, {result.precision}{calib}, "
             f"TensorRT {result.tensorrt} on {result.device}, {result.seconds:.1f}s)")
    return 0
