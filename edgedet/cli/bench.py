"""``edgedet bench``: engine latency percentiles and throughput, host pre/post timed separately."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "benchmark an engine: latency mean/p50/p90/p99, throughput, host pre/post-processing time"


def add_args(p: argparse.ArgumentParser) -> None:
    v.add_engine(p)
    v.add(p, "batch", detail="default: the engine's batch")
    p.add_argument("--iters", type=v.positive_int, default=100, metavar="N", help="timed calls (default 100)")
    v.add(p, "warmup", default=10)
    v.add(p, "json")
    v.add(p, "force")


def run(args: argparse.Namespace) -> int:
    from edgedet.errors import EdgedetError
    from edgedet.runtime.bench import benchmark
    from edgedet.runtime.detector import Detector

    from edgedet.cli._output import write_json

    det = Detector(args.engine, backend=args.backend, device=args.device, threads=args.threads)
    if args.batch and not det.dynamic_batch and args.batch != det.batch_size:
        raise EdgedetError(f"{args.engine} has a fixed batch of {det.batch_size}; export with --dynamic-batch for others")
    if args.batch and det.dynamic_batch and args.batch > det.batch_size:
        raise EdgedetError(f"--batch {args.batch} exceeds the engine's maximum batch {det.batch_size}")
    r = benchmark(det, batch=args.batch, iters=args.iters, warmup=args.warmup)
    _note_slower_int8(det, r, args)
    if args.json:
        write_json(args.json, r.to_dict(), force=args.force)
        if args.json == "-":
            return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{r.engine} ({r.backend}, batch {r.batch}, {r.iters} iterations)")
    for col in ("mean ms", "p50 ms", "p90 ms", "p99 ms", "images/s", "host pre ms", "host post ms"):
        t.add_column(col, justify="right")
    t.add_row(*(f"{v:.2f}" for v in (r.mean_ms, r.p50_ms, r.p90_ms, r.p99_ms)), f"{r.throughput_ips:.1f}",
              f"{r.preprocess_ms:.2f}", f"{r.postprocess_ms:.3f}")
    Console().print(t)
    return 0


def _note_slower_int8(det, result, args: argparse.Namespace) -> None:
    """An INT8 graph that this runtime runs slower than its FP32 twin (the ``<stem>.onnx`` beside it, measured
    now on the same backend and batch) gets one line saying so: INT8 is only worth it where it is faster."""
    from pathlib import Path

    from edgedet import log
    from edgedet.runtime.bench import benchmark
    from edgedet.runtime.detector import Detector
    from edgedet.runtime.precisions import fp32_twin

    if det.metadata.get("precision") != "int8" or det.backend == "tensorrt":
        return
    twin = fp32_twin(det.path)
    if twin == Path(det.path) or not twin.is_file():
        return
    fp32 = benchmark(Detector(twin, backend=det.backend, threads=args.threads), batch=result.batch,
                     iters=max(10, args.iters // 2), warmup=args.warmup)
    if result.p50_ms > fp32.p50_ms:
        hint = "; OpenVINO runs these Q/DQ graphs as INT8 kernels: --backend openvino" if det.backend == "onnxruntime" else ""
        log.note(f"bench: this INT8 graph is slower than its FP32 twin on {det.backend} ({result.p50_ms:.2f} vs "
                 f"{fp32.p50_ms:.2f} ms p50, {twin.name}){hint}")

