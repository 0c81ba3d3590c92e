"""The whole zoo × precision matrix: every model exported FP32/FP16/INT8 (``--nms onnx``, plus the
``efficient`` flavour in FP32), judged by ``edgedet check`` for every TensorRT target, compiled and run by
OpenVINO, and compared with ONNX Runtime on the same images.

CI runs a representative subset (tests/test_openvino.py, test_conformance.py, the zoo export tests); this
script runs all of it and prints one Markdown table. Weights are random (no downloads here), so the
ONNX Runtime / OpenVINO box agreement is information only: random-init detectors score many boxes
alike, and tie-breaking then differs between runtimes. The agreement gate is measured in the tests on
models whose scores are spread (the trained fixture and a rescaled Faster R-CNN).

Each model is exported by both exporters (``--exporters``): the table gives each graph's size (nodes, initializer
MB) and export time, and for ``torch-export`` graphs the share of the TorchScript graph's boxes it reproduces in ONNX
Runtime (same weights, same images, IoU ≥ 0.99, same label).

    python benchmarks/conformance_matrix.py [--models 'ssd*'] [--fasterrcnn-imgsz 320] [--exporters torch-export]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from _markdown import table as markdown_table


def _images(size: tuple[int, int], resize: str, pad: list[int], n: int) -> np.ndarray:
    from edgedet.export.parity import verify_images

    return verify_images(n, None, size, resize, pad)  # synthetic shapes, the last one all black


def _agreement(path: Path, images: np.ndarray, score: float) -> tuple[int, float, bool]:
    from edgedet.export.parity import compare, engine_detections
    from edgedet.runtime import Detector

    ort, ov = Detector(path, backend="onnxruntime"), Detector(path, backend="openvino")
    a, b = engine_detections(ort, images), engine_detections(ov, images)
    black = int(ov.raw(np.zeros_like(images[:1]))["num_dets"][0, 0]) == 0
    rep = compare(a, b, "fp32", score)
    return rep.reference_boxes, rep.agreement, black


def initializer_mb(graph) -> float:
    """The weights a graph carries, in MB (tensors stored as typed fields are sized from their values)."""
    from onnx import numpy_helper

    return sum(len(t.raw_data) or numpy_helper.to_array(t).nbytes for t in graph.graph.initializer) / 1e6


def _same_as(path: Path, reference: Path, images: np.ndarray) -> str:
    """Share of ``reference``'s detections that ``path`` gives too (same label, IoU ≥ 0.99), in ONNX Runtime."""
    from edgedet.export.parity import engine_detections
    from edgedet.runtime import Detector
    from edgedet.runtime.plugins import iou_matrix

    a = engine_detections(Detector(reference, backend="onnxruntime"), images)
    b = engine_detections(Detector(path, backend="onnxruntime"), images)
    total = sum(len(d) for d in a)
    if total == 0:
        return "no boxes"
    found = 0
    for da, db in zip(a, b):
        if len(da) and len(db):
            iou = np.where(da.labels[:, None] == db.labels[None, :], iou_matrix(da.boxes, db.boxes), 0.0)
            found += int((iou.max(axis=1) >= 0.99).sum())
    return f"{100 * found / total:.1f} % of {total}"


def run_one(model: str, out: Path, calib: Path, imgsz: tuple[int, int] | None, score: float,
            exporter: str = "torchscript", reference: dict[str, Path] | None = None) -> list[dict]:
    """The rows of one model's graphs from one exporter; ``reference`` (precision → path) are the TorchScript
    graphs that the torch-export ones are compared with."""
    from edgedet.export.conformance import TRT_TARGETS, check_model
    from edgedet.export.nms import NMSConfig
    from edgedet.export.onnx_export import ExportOptions, export_model

    import onnx
    import torch

    rows = []
    t0 = time.perf_counter()
    torch.manual_seed(0)  # random weights: the same for both exporters' graphs
    res = export_model(ExportOptions(model=model, imgsz=imgsz, nms=NMSConfig("onnx", score_thresh=score), fp16=True,
                                     int8=True, calib_images=str(calib), calib_count=8, out_dir=str(out), force=True,
                                     exporter=exporter, name=f"{model}-{exporter}"))
    export_s = time.perf_counter() - t0
    eff = export_model(ExportOptions(model=model, imgsz=imgsz, nms=NMSConfig("efficient", score_thresh=max(score, 0.007)),
                                     out_dir=str(out), name=f"{model}-{exporter}-efficient", force=True,
                                     exporter=exporter))
    meta = res.metadata
    images = _images(tuple(meta["input"]["size"]), meta["input"]["resize"], meta["input"]["pad_value"], 6)
    for precision, path in [*res.artifacts.items(), ("fp32 efficient", eff.artifacts["fp32"])]:
        graph = onnx.load(str(path))
        checks = {t: check_model(graph, t) for t in TRT_TARGETS}
        row = {"model": model, "exporter": exporter, "graph": precision, "nodes": checks["trt10.3"].nodes,
               "init MB": round(initializer_mb(graph), 1),
               **{t: "PASS" if r.passed else f"FAIL {r.errors[0]}" for t, r in checks.items()},
               "warnings": sum(len(r.warnings) for r in checks.values())}
        if precision.endswith("efficient"):
            row.update(openvino="n/a (TensorRT plugin)", boxes="", agreement="", black="")
        else:
            try:
                boxes, agree, black = _agreement(path, images, score)
                row.update(openvino="compiles, runs", boxes=boxes, agreement=f"{agree * 100:.1f} %",
                           black="0 dets" if black else "DETECTS")
            except Exception as e:  # noqa: BLE001 - a row of the table, not a crash of the matrix
                row.update(openvino=f"FAIL {str(e).splitlines()[0][:100]}", boxes="", agreement="", black="")
        if reference and precision == "fp32":
            row["same as torchscript"] = _same_as(path, reference[precision], images)
        row["export s"] = round(export_s, 1)  # FP32 + FP16 + INT8 (calibration included)
        rows.append(row)
    rows[0]["artifacts"] = res.artifacts
    return rows


COLUMNS = ["model", "exporter", "graph", "nodes", "init MB", "export s", "trt10.3", "trt10", "trt11", "warnings",
           "openvino", "black", "boxes", "agreement", "same as torchscript"]


def markdown(rows: list[dict]) -> str:
    """The matrix as one markdown table, a row per graph; a cell a row lacks (an export that failed) is empty."""
    return markdown_table(COLUMNS, [[r.get(c, "") for c in COLUMNS] for r in rows])


def main() -> None:
    from edgedet.data.synth import make_synthetic_dataset
    from edgedet.models import get_model_entry, list_models

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="*", help="zoo wildcard (default: every model)")
    ap.add_argument("--fasterrcnn-imgsz", type=int, default=320, help="Faster R-CNN input side (default 320)")
    ap.add_argument("--score-thresh", type=float, default=0.01)
    ap.add_argument("--exporters", nargs="+", default=["torchscript", "torch-export"],
                    choices=["torchscript", "torch-export"], help="which exporters (default both)")
    ap.add_argument("--json", help="also write the rows as JSON")
    args = ap.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edgedet-matrix-") as tmp:
        calib = make_synthetic_dataset(Path(tmp) / "synth", images=16, seed=0, video=False).images_dir
        for model in list_models(args.models):
            family = get_model_entry(model).family
            imgsz = (args.fasterrcnn_imgsz,) * 2 if family == "fasterrcnn" else None
            reference = None
            for exporter in args.exporters:
                t0 = time.perf_counter()
                try:
                    got = run_one(model, Path(tmp) / model, calib, imgsz, args.score_thresh, exporter, reference)
                    if exporter == "torchscript":
                        reference = got[0]["artifacts"]
                    rows += got
                except Exception as e:  # noqa: BLE001
                    rows.append({"model": model, "exporter": exporter, "graph": "export",
                                 "trt10.3": f"FAIL {str(e).splitlines()[0][:120]}"})
                print(f"{model} ({exporter}): {time.perf_counter() - t0:.0f} s", flush=True)
    print("\n" + markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
