"""A second runtime, stricter than ONNX Runtime: OpenVINO compiles and runs every export and gives the same
detections as ONNX Runtime, through ``Detector(backend="openvino")``.

The detections compared come from models that detect something: the trained fixture (ssdlite_tiny, FP32,
FP16 and INT8 gated) and a Faster R-CNN made numerically meaningful with test_export_fasterrcnn's rescaling
(FP32 gated; its FP16/INT8 graphs run and keep the contract, see below why their agreement is not gated).
Every comparison asserts that boxes were compared. The whole zoo × precision matrix is ``benchmarks/conformance_matrix.py``; here
every zoo model's FP32 export runs in OpenVINO (test_export_zoo / test_export_ssd) and FP16/INT8 run for
the fixture and one Faster R-CNN.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino")

from edgedet.errors import BackendError  # noqa: E402
from edgedet.export.nms import NMSConfig  # noqa: E402
from edgedet.export.onnx_export import ExportOptions, export_model  # noqa: E402
from edgedet.export.parity import compare, engine_detections, verify_images  # noqa: E402
from edgedet.runtime import Detector  # noqa: E402

#: Minimum share of ONNX Runtime's boxes that OpenVINO reproduces (same label, IoU >= 0.9).
AGREEMENT = {"fp32": 0.99, "fp16": 0.99, "int8": 0.97}


def runtimes_agree(path, images: np.ndarray, precision: str, score_thresh: float) -> dict:
    """ONNX Runtime vs OpenVINO on already-resized ``images``, one call per engine batch; the report dict."""
    ort, ov = Detector(path, backend="onnxruntime"), Detector(path, backend="openvino")
    assert ov.backend == "openvino" and ort.backend == "onnxruntime"
    a, b = engine_detections(ort, images), engine_detections(ov, images)
    report = compare(a, b, precision, score_thresh).to_dict()  # the precision's borderline margin
    assert report["reference_boxes"] > 0, "nothing was compared"
    return report


@pytest.fixture(scope="module")
def tiny_exports(tiny_checkpoint, synth, tmp_path_factory):
    """The trained fixture at a low threshold (many boxes, borderline ones too), FP32/FP16/INT8."""
    res = export_model(ExportOptions(model=None, weights=str(tiny_checkpoint), nms=NMSConfig("onnx", score_thresh=0.05),
                                     fp16=True, int8=True, calib_images=str(synth.train_json), calib_count=64,
                                     out_dir=str(tmp_path_factory.mktemp("ov-tiny"))))
    return res.artifacts


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_fixture_model_agrees_in_openvino(tiny_exports, synth, precision):
    images = verify_images(80, str(synth.images_dir / "val_*.jpg"), (160, 160), "stretch", [128, 128, 128])
    rep = runtimes_agree(tiny_exports[precision], images, precision, 0.05)
    print(f"\nssdlite_tiny {precision}: OpenVINO vs ONNX Runtime {rep['agreement']:.4f} of {rep['reference_boxes']} boxes")
    assert rep["reference_boxes"] > 80 and rep["agreement"] >= AGREEMENT[precision], rep


def test_black_image_in_openvino(tiny_exports):
    """An all-black image keeps the contract in OpenVINO and gives ONNX Runtime's detections (whether the model
    finds anything in black is the model's business: the 16-epoch fixture finds a couple of low-score boxes)."""
    black = np.zeros((1, 160, 160, 3), np.uint8)
    out = Detector(tiny_exports["fp32"], backend="openvino").raw(black)
    ref = Detector(tiny_exports["fp32"], backend="onnxruntime").raw(black)
    assert out["num_dets"].dtype == np.int32 and out["labels"].dtype == np.int32
    n = int(out["num_dets"][0, 0])
    assert n == int(ref["num_dets"][0, 0]) and 0 <= n <= out["scores"].shape[1]
    assert not out["boxes"][0, n:].any() and not out["scores"][0, n:].any()
    np.testing.assert_array_equal(out["labels"][0, :n], ref["labels"][0, :n])
    np.testing.assert_allclose(out["scores"][0, :n], ref["scores"][0, :n], atol=1e-4)
    np.testing.assert_allclose(out["boxes"][0, :n], ref["boxes"][0, :n], atol=1e-2)


#: The rescaled model scores many boxes high; at 0.5 no image reaches max_dets, so no box is compared at the
#: rank cut-off, where a tiny score difference swaps which box is kept.
FRCNN_SCORE = 0.5


@pytest.fixture(scope="module")
def fasterrcnn_exports(fasterrcnn_checkpoint, synth, tmp_path_factory):
    res = export_model(ExportOptions(model=None, weights=str(fasterrcnn_checkpoint), imgsz=(160, 160),
                                     nms=NMSConfig("onnx", score_thresh=FRCNN_SCORE, max_dets=100), fp16=True, int8=True,
                                     calib_images=str(synth.images_dir), calib_count=16,
                                     out_dir=str(tmp_path_factory.mktemp("ov-frcnn-exp"))))
    return res.artifacts


def test_fasterrcnn_agrees_in_openvino(fasterrcnn_exports):
    from test_export_fasterrcnn import _image

    images = np.stack([_image(160, 160, seed).numpy() for seed in range(3, 9)])
    rep = runtimes_agree(fasterrcnn_exports["fp32"], images, "fp32", FRCNN_SCORE)
    print(f"\nfasterrcnn fp32: OpenVINO vs ONNX Runtime {rep['agreement']:.4f} of {rep['reference_boxes']} boxes")
    assert rep["reference_boxes"] > 20 and rep["agreement"] >= AGREEMENT["fp32"], rep


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_fasterrcnn_reduced_precision_runs_in_openvino(fasterrcnn_exports, precision):
    """Compiles, runs and keeps the contract. Its box agreement is not gated: the rescaled random Faster R-CNN
    amplifies rounding noise by about 32 dB through its backbone (measured), so even ONNX Runtime disagrees with
    itself on the INT8 graph at two optimisation levels (3.7 % of boxes); agreement in reduced precision is
    gated on the trained fixture above, and printed here."""
    from conftest import assert_runs_in_openvino
    from test_export_fasterrcnn import _image

    images = np.stack([_image(160, 160, seed).numpy() for seed in range(3, 9)])
    out = assert_runs_in_openvino(fasterrcnn_exports[precision], images[:1])
    assert out["num_dets"][0, 0] > 0
    rep = runtimes_agree(fasterrcnn_exports[precision], images, precision, FRCNN_SCORE)
    print(f"\nfasterrcnn {precision}: OpenVINO vs ONNX Runtime {rep['agreement']:.4f} of {rep['reference_boxes']} "
          "boxes (information)")


def test_openvino_refuses_the_plugin_flavour(tmp_path):
    res = export_model(ExportOptions(model="ssdlite_tiny", nms=NMSConfig("efficient"), out_dir=str(tmp_path)))
    with pytest.raises(BackendError, match="EfficientNMS_TRT.*--nms onnx"):
        Detector(res.artifacts["fp32"], backend="openvino")
    with pytest.raises(BackendError, match="TensorRT plan"):
        (tmp_path / "m.plan").write_bytes(b"x")
        Detector(tmp_path / "m.plan", backend="openvino")
