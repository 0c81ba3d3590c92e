"""``edgedet bench``: engine latency percentiles and throughput, host pre/post timed separately."""

from __future__ import annotations

import argparse

from edgedet.cli._common import add_backend_arg, non_negative_int, positive_int

HELP = "benchmark an engine: latency mean/p50/p90/p99, throughput, host pre/post-processing time"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", required=True, help=".onnx or TensorRT .plan")
    add_backend_arg(p)
    p.add_argument("--batch", type=positive_int, help="images per call (default: the engine's batch)")
    p.add_argument("--iters", type=positive_int, default=100, help="timed calls (default 100)")
    p.add_argument("--warmup", type=non_negative_int, default=10, help="untimed calls first (default 10)")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    import json

    from edgedet.errors import EdgedetError
    from edgedet.runtime.bench import benchmark
    from edgedet.runtime.detector import Detector

    det = Detector(args.engine, backend=args.backend, threads=args.threads)
    if args.batch and not det.dynamic_batch and args.batch != det.batch_size:
        raise EdgedetError(f"{args.engine} has a fixed batch of {det.batch_size}; export with --dynamic-batch for others")
    if args.batch and det.dynamic_batch and args.batch > det.batch_size:
        raise EdgedetError(f"--batch {args.batch} exceeds the engine's maximum batch {det.batch_size}")
    r = benchmark(det, batch=args.batch, iters=args.iters, warmup=args.warmup)
    if args.json:
        print(json.dumps(r.to_dict(), indent=2))
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
