"""INT8 accuracy on this CPU's kernels: 7-bit against 8-bit weights, in ONNX Runtime and OpenVINO, against the exact
Q/DQ arithmetic.

x86 CPUs without VNNI/AMX sum pairs of uint8 x int8 products in saturating int16 (``PMADDUBSW``); 8-bit weights can
overflow it, 7-bit ones cannot. For each checkpoint this exports the same model twice (``--int8-weight-bits`` 7 and
8, calibrated on the same images) and reports, on the val split, the INT8 mAP drop against FP32 in:

- ``exact``: ONNX Runtime with every optimisation off, so every Q/DQ node runs as written in float: the
  arithmetic the graph defines, the same on every CPU;
- ``ORT``: ONNX Runtime as ``Detector`` runs it (exact U8U8 kernels for 8-bit weights on a saturating CPU);
- ``ORT raw``: ONNX Runtime's default kernels (what a user who loads the graph themselves gets);
- ``OpenVINO``;

and the deviation of the SSD heads' raw outputs from ``exact`` (mean and p99.9 of |difference|, 16 val images).

    python benchmarks/int8_cpu_kernels.py --weights runs/a/best.pt runs/b/best.pt --data val.json --images imgs/ \\
        --calib-images train.json [--labels "16 epochs, seed 0" "16 epochs, seed 1"] [--markdown]

Accuracy, not speed: nothing is timed here (``cpu_int8.py`` times the runtimes).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from rich.console import Console
from rich.table import Table

from _markdown import bold
from _markdown import table as markdown_table
import edgedet.runtime.onnx_engine as onnx_engine
from edgedet.data import load_dataset
from edgedet.evaluate import evaluate_predictor
from edgedet.export.nms import NMSConfig
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.runtime import Detector
from edgedet.runtime.onnx_engine import int8_products_saturate


@contextlib.contextmanager
def _ort_mode(mode: str) -> Iterator[None]:
    """``exact``: no graph optimisation (Q/DQ as written); ``raw``: ONNX Runtime's default kernels; else as shipped."""
    options, saturate = ort.SessionOptions, onnx_engine.int8_products_saturate

    def no_fusion() -> ort.SessionOptions:
        o = options()
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return o

    if mode == "exact":
        ort.SessionOptions = no_fusion
    elif mode == "raw":
        onnx_engine.int8_products_saturate = lambda: False
    try:
        yield
    finally:
        ort.SessionOptions, onnx_engine.int8_products_saturate = options, saturate


def _map(path: Path, val, backend: str, threads: int) -> float:
    det = Detector(path, backend=backend, threads=threads)
    result, _ = evaluate_predictor(lambda ims: det(ims), val, det.class_names, progress=False)
    return result.stats["AP"]


def _head_outputs(path: Path, images: np.ndarray, runner: str) -> np.ndarray:
    """The SSD heads' last convolutions (before decoding), flattened, for ``images`` one at a time."""
    model = onnx.load(str(path))
    names = [n.output[0] for n in model.graph.node
             if n.op_type == "Conv" and "/head/" in n.name and n.name.split("/")[-2].endswith(".1")]
    if not names:
        return np.zeros(0, np.float32)
    for name in names:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    feed = model.graph.input[0].name
    if runner == "openvino":
        import openvino as ov

        tapped = path.with_name(path.stem + ".heads.onnx")
        onnx.save(model, str(tapped))
        compiled = ov.Core().compile_model(str(tapped), "CPU")
        run = lambda x: [compiled({0: x})[compiled.output(n)] for n in names]  # noqa: E731
    else:
        opts = ort.SessionOptions()
        if runner == "exact":
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if runner == "ORT" and onnx_engine.full_range_int8_weights(model) and int8_products_saturate():
            opts.add_session_config_entry("session.x64quantprecision", "1")
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        run = lambda x: session.run(names, {feed: x})  # noqa: E731
    return np.concatenate([o.ravel() for i in range(len(images)) for o in run(images[i : i + 1])])


#: AP points: the INT8 drop tests/test_int8.py allows in both CPU runtimes.
GATE = 1.0
#: The runtime columns (``exact`` is the graph's own arithmetic, the same on every CPU, not a runtime's kernels).
RUNTIMES = ("ORT", "raw", "openvino")


def signed(value: float) -> str:
    """``+0.91`` / ``−0.05``: a difference in AP points with its sign, the minus typographic (U+2212)."""
    return f"{value:+.2f}".replace("-", "\u2212")


def markdown(checkpoints: list[dict]) -> str:
    """docs/performance.md's "INT8 accuracy and the CPU's kernels" table from ``main``'s per-checkpoint results
    (``label``, ``fp32_map``, ``drops``: weight bits → {exact, ORT, raw, openvino} drop in AP points): one row per
    weight width, the label and FP32 mAP on the first.

    Bold marks where the weight width decides the gate: "7-bit" when 7-bit weights keep every runtime within
    ``GATE``, and an 8-bit drop past ``GATE`` in a runtime where 7-bit weights stay within it. A checkpoint that
    misses the gate whatever its weights (an unconverged model) gets no bold.
    """
    body = []
    for c in checkpoints:
        seven = c["drops"].get(7)
        for i, bits in enumerate(sorted(c["drops"])):
            d = c["drops"][bits]
            width = bold(f"{bits}-bit", bits == 7 and all(d[k] <= GATE for k in RUNTIMES))
            body.append([c["label"] if i == 0 else "", f"{c['fp32_map']:.3f}" if i == 0 else "", width,
                         signed(d["exact"]),
                         *(bold(signed(d[k]), bits == 8 and seven is not None and seven[k] <= GATE < d[k])
                           for k in RUNTIMES)])
    return markdown_table(["fixture (trained with)", "FP32 mAP", "weights", "exact", "ORT", "ORT raw", "OpenVINO"],
                          body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="+", required=True, help="edgedet checkpoints (SSD: the head deviations too)")
    ap.add_argument("--data", required=True, help="val annotations (COCO JSON)")
    ap.add_argument("--images", required=True)
    ap.add_argument("--calib-images", required=True, help="calibration source (the train split)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--labels", nargs="+", help="--markdown's row label per --weights, e.g. how it was trained "
                                                "(default: the run folder's name)")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for docs/performance.md)")
    args = ap.parse_args()
    if args.labels and len(args.labels) != len(args.weights):
        ap.error(f"{len(args.labels)} --labels for {len(args.weights)} --weights")
    run_names = [Path(w).parent.parent.name or w for w in args.weights]
    labels = args.labels or run_names
    checkpoints = []
    val = load_dataset(args.data, args.images)
    console = Console()
    console.print(f"this CPU {'saturates' if int8_products_saturate() else 'does not saturate'} 8-bit INT8 products")
    rows = Table(title="INT8 mAP drop against FP32, AP points (val split)")
    for col in ("checkpoint", "FP32 mAP", "weights", "exact", "ORT", "ORT raw", "OpenVINO",
                "heads |d| mean / p99.9: ORT raw", "ORT", "OpenVINO"):
        rows.add_column(col)
    with tempfile.TemporaryDirectory() as tmp:
        for index, weights in enumerate(args.weights):
            base = None
            checkpoints.append({"label": labels[index], "drops": {}})
            for bits in (7, 8):
                res = export_model(ExportOptions(model=None, weights=weights, nms=NMSConfig("onnx", score_thresh=0.01),
                                                 int8=True, calib_images=args.calib_images, int8_weight_bits=bits,
                                                 out_dir=str(Path(tmp) / f"{index}-{bits}")))
                fp32, int8 = res.artifacts["fp32"], res.artifacts["int8"]
                if base is None:
                    base = {b: _map(fp32, val, b, args.threads) for b in ("onnxruntime", "openvino")}
                    checkpoints[-1]["fp32_map"] = base["onnxruntime"]
                drops = {}
                for mode in ("exact", "ORT", "raw"):
                    with _ort_mode(mode):
                        drops[mode] = 100 * (base["onnxruntime"] - _map(int8, val, "onnxruntime", args.threads))
                drops["openvino"] = 100 * (base["openvino"] - _map(int8, val, "openvino", args.threads))
                checkpoints[-1]["drops"][bits] = drops
                h, w = Detector(fp32).input_size
                images = np.stack([cv2.resize(val.load_image(i), (w, h)) for i in range(min(16, len(val)))])
                ref = _head_outputs(int8, images, "exact")
                dev = []
                for runner in ("raw", "ORT", "openvino"):
                    d = np.abs(_head_outputs(int8, images, runner) - ref) if ref.size else np.zeros(1)
                    dev.append(f"{d.mean():.3f} / {np.quantile(d, 0.999):.3f}" if ref.size else "—")
                rows.add_row(run_names[index], f"{base['onnxruntime']:.4f}", f"{bits}-bit",
                             *(f"{drops[k]:+.2f}" for k in ("exact", "ORT", "raw", "openvino")), *dev)
                console.print(f"{weights} {bits}-bit: " + "  ".join(f"{k} {v:+.2f}" for k, v in drops.items()))
    if args.markdown:
        print(markdown(checkpoints))
    else:
        console.print(rows)


if __name__ == "__main__":
    main()
