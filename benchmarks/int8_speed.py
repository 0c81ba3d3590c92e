"""INT8 Q/DQ against FP32 latency in ONNX Runtime on this CPU, one run, same model and images.

    python benchmarks/int8_speed.py [--model ssdlite320] [--threads 2] [--iters 50]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgedet.data.synth import make_synthetic_dataset
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.runtime import Detector
from edgedet.runtime.bench import benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ssdlite320")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        synth = make_synthetic_dataset(Path(tmp) / "data", images=64)
        res = export_model(ExportOptions(model=args.model, int8=True, calib_images=str(synth.images_dir), calib_count=64,
                                         out_dir=str(Path(tmp) / "export")))
        rows = []
        for precision, path in res.artifacts.items():
            r = benchmark(Detector(path, threads=args.threads), iters=args.iters, warmup=10)
            rows.append((precision, path.stat().st_size / 1e6, r.p50_ms, r.mean_ms))
    fp32_p50 = rows[0][2]
    table = Table(title=f"{args.model}: INT8 Q/DQ vs FP32, ONNX Runtime CPU, {args.threads} threads, batch 1")
    for col in ("precision", "MB", "p50 ms", "mean ms", "speed-up (p50)"):
        table.add_column(col, justify="right")
    for precision, mb, p50, mean in rows:
        table.add_row(precision, f"{mb:.1f}", f"{p50:.2f}", f"{mean:.2f}", f"{fp32_p50 / p50:.2f}×")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
