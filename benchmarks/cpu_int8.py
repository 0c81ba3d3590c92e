"""INT8 against FP32 on the CPU runtimes, interleaved: the same export's ``.onnx`` and ``.int8.onnx`` in ONNX
Runtime and OpenVINO, engine only (``Detector.raw`` on a prepared batch), at batch 1 and (dynamic-batch
export) batch 8. Ratios are medians of per-round ratios with their min–max spread.

    python benchmarks/cpu_int8.py [--model ssdlite320] [--weights none] [--threads 2] [--rounds 11]

``--weights`` takes an edgedet checkpoint (the demo's fixture: ``--weights runs/.../best.pt``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from _interleave import interleave
from edgedet.data.synth import make_synthetic_dataset
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.runtime import Detector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ssdlite320")
    ap.add_argument("--weights", default="none")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        synth = make_synthetic_dataset(Path(tmp) / "data", images=128)
        model = args.model if args.weights == "none" else None
        res = export_model(ExportOptions(model=model, weights=args.weights, int8=True, dynamic_batch=max(args.batches),
                                         calib_images=str(synth.images_dir), calib_count=128,
                                         out_dir=str(Path(tmp) / "export")))
        dets = {f"{be} {p}": Detector(res.artifacts[p], backend=be, threads=args.threads)
                for be in ("onnxruntime", "openvino") for p in ("fp32", "int8")}
        name = res.metadata["model"]
        table = Table(title=f"{name}: engine-only ms, CPU, {args.threads} threads, {args.rounds} interleaved rounds")
        for col in ("batch", *dets, "INT8 vs FP32, ORT", "INT8 vs FP32, OpenVINO", "OpenVINO vs ORT, FP32",
                    "OpenVINO vs ORT, INT8", "OpenVINO INT8 images/s"):
            table.add_column(col, justify="right")
        for batch in args.batches:
            feed = np.full((batch, *dets["openvino fp32"].input_size, 3), 100, np.uint8)
            t = interleave({k: (lambda d=d: d.raw(feed)) for k, d in dets.items()}, rounds=args.rounds, iters=10)
            table.add_row(str(batch), *(f"{t.median_ms(k):.2f}" for k in dets),
                          t.ratio_text("onnxruntime fp32", "onnxruntime int8"),
                          t.ratio_text("openvino fp32", "openvino int8"),
                          t.ratio_text("onnxruntime fp32", "openvino fp32"),
                          t.ratio_text("onnxruntime int8", "openvino int8"),
                          f"{1000 * batch / t.median_ms('openvino int8'):.0f}")
    Console(width=220).print(table)


if __name__ == "__main__":
    main()
