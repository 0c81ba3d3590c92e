"""INT8 against FP32 on the CPU runtimes, interleaved: the same export's ``.onnx`` and ``.int8.onnx`` in ONNX
Runtime and OpenVINO, engine only (``Detector.raw`` on a prepared batch), at batch 1 and (dynamic-batch
export) batch 8. Ratios are medians of per-round ratios with their min–max spread.

    python benchmarks/cpu_int8.py [--model ssdlite320] [--weights none] [--threads 2] [--rounds 11] [--markdown]

``--weights`` takes an edgedet checkpoint (the demo's fixture: ``--weights runs/.../best.pt``; ``--markdown`` calls
it "fixture (its model)").
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from _interleave import Timings, interleave
from _markdown import table as markdown_table
from edgedet.data.synth import make_synthetic_dataset
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.runtime import Detector


#: The INT8 speed-up over FP32 that docs/performance.md weighs each runtime against (FP32 ms / INT8 ms); the
#: markdown bolds one that meets it.
INT8_TARGET = 1.3
#: Engine × precision, in the order of the columns.
VARIANTS = ("onnxruntime fp32", "onnxruntime int8", "openvino fp32", "openvino int8")


def _ms(values: list[float]) -> list[str]:
    """One precision per row, four significant digits for its largest value and at most two decimals
    (``13.00 … 33.43``, ``102.4 … 62.2``): the figures of a row are read against each other."""
    decimals = max(0, min(2, 3 - math.floor(math.log10(max(values)))))
    return [f"{v:.{decimals}f} ms" for v in values]


def markdown(model: str, results: list[tuple[int, Timings]]) -> str:
    """docs/performance.md's "CPU deployment" table for one model: per batch, the engine-only ms of every variant
    (OpenVINO INT8 with its images/s above batch 1), then the speed-ups, FP32 ms / INT8 ms and ORT ms / OpenVINO
    ms, as medians of per-round ratios (min–max)."""
    body = []
    speedups = [(f"{be} fp32", f"{be} int8") for be in ("onnxruntime", "openvino")]
    for batch, t in results:
        cells = _ms([t.median_ms(k) for k in VARIANTS])
        if batch > 1:
            cells[-1] += f" ({1000 * batch / t.median_ms('openvino int8'):.0f} img/s)"
        body.append([model, str(batch), *cells,
                     *(t.ratio_text(fp32, int8, emphasis=t.ratio(fp32, int8)[0] >= INT8_TARGET)
                       for fp32, int8 in speedups),
                     t.ratio_text("onnxruntime fp32", "openvino fp32"),
                     t.ratio_text("onnxruntime int8", "openvino int8")])
    return markdown_table(["model", "batch", "ORT FP32", "ORT INT8", "OpenVINO FP32", "OpenVINO INT8", "INT8/FP32, ORT",
                           "INT8/FP32, OpenVINO", "OpenVINO/ORT, FP32", "OpenVINO/ORT, INT8"], body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ssdlite320")
    ap.add_argument("--weights", default="none")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for docs/performance.md)")
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
        results = []
        for batch in args.batches:
            feed = np.full((batch, *dets["openvino fp32"].input_size, 3), 100, np.uint8)
            t = interleave({k: (lambda d=d: d.raw(feed)) for k, d in dets.items()}, rounds=args.rounds, iters=10)
            results.append((batch, t))
            table.add_row(str(batch), *(f"{t.median_ms(k):.2f}" for k in dets),
                          t.ratio_text("onnxruntime fp32", "onnxruntime int8"),
                          t.ratio_text("openvino fp32", "openvino int8"),
                          t.ratio_text("onnxruntime fp32", "openvino fp32"),
                          t.ratio_text("onnxruntime int8", "openvino int8"),
                          f"{1000 * batch / t.median_ms('openvino int8'):.0f}")
    if args.markdown:
        print(markdown(name if args.weights == "none" else f"fixture ({name})", results))
    else:
        Console(width=220).print(table)


if __name__ == "__main__":
    main()
