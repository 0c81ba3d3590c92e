"""The whole zoo × precision matrix: every model exported FP32/FP16/INT8 (``--nms onnx``, plus the
``efficient`` flavour in FP32), judged by ``edgedet check`` for every TensorRT target, compiled and run by
OpenVINO, and compared with ONNX Runtime on the same images.

CI runs a representative subset (tests/test_openvino.py, test_conformance.py, the zoo export tests); this
script runs all of it and prints one Markdown table. Weights are random (no downloads here), so the
ONNX Runtime / OpenVINO box agreement is information only: random-init detectors score many boxes
alike, and tie-breaking then differs between runtimes. The agreement gate is measured in the tests on
models whose scores are spread (the trained fixture and a rescaled Faster R-CNN).

    python benchmarks/conformance_matrix.py [--models 'ssd*'] [--fasterrcnn-imgsz 320] [--json out.json]
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


def run_one(model: str, out: Path, calib: Path, imgsz: tuple[int, int] | None, score: float) -> list[dict]:
    from edgedet.export.conformance import TRT_TARGETS, check_model
    from edgedet.export.nms import NMSConfig
    from edgedet.export.onnx_export import ExportOptions, export_model

    import onnx

    rows = []
    t0 = time.perf_counter()
    res = export_model(ExportOptions(model=model, imgsz=imgsz, nms=NMSConfig("onnx", score_thresh=score), fp16=True,
                                     int8=True, calib_images=str(calib), calib_count=8, out_dir=str(out), force=True))
    eff = export_model(ExportOptions(model=model, imgsz=imgsz, nms=NMSConfig("efficient", score_thresh=max(score, 0.007)),
                                     out_dir=str(out), name=f"{model}-efficient", force=True))
    export_s = time.perf_counter() - t0
    meta = res.metadata
    images = _images(tuple(meta["input"]["size"]), meta["input"]["resize"], meta["input"]["pad_value"], 6)
    for precision, path in [*res.artifacts.items(), ("fp32 efficient", eff.artifacts["fp32"])]:
        graph = onnx.load(str(path))
        checks = {t: check_model(graph, t) for t in TRT_TARGETS}
        row = {"model": model, "graph": precision, "nodes": checks["trt10.3"].nodes,
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
        row["export_s"] = round(export_s, 1)
        rows.append(row)
    return rows


COLUMNS = ["model", "graph", "nodes", "trt10.3", "trt10", "trt11", "warnings", "openvino", "black", "boxes",
           "agreement"]


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
    ap.add_argument("--json", help="also write the rows as JSON")
    args = ap.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edgedet-matrix-") as tmp:
        calib = make_synthetic_dataset(Path(tmp) / "synth", images=16, seed=0, video=False).images_dir
        for model in list_models(args.models):
            family = get_model_entry(model).family
            imgsz = (args.fasterrcnn_imgsz,) * 2 if family == "fasterrcnn" else None
            t0 = time.perf_counter()
            try:
                rows += run_one(model, Path(tmp) / model, calib, imgsz, args.score_thresh)
            except Exception as e:  # noqa: BLE001
                rows.append({"model": model, "graph": "export", "trt10.3": f"FAIL {str(e).splitlines()[0][:120]}"})
            print(f"{model}: {time.perf_counter() - t0:.0f} s", flush=True)
    print("\n" + markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
