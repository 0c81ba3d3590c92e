"""``export --exporter torch-export`` (torch.onnx.export on torch.export) against the TorchScript exporter on the
same trained weights: the same detections (boxes compared > 0, same labels, IoU ≥ 0.99, scores within 1e-4 at
FP32), the graph's real opset and the exporter in the metadata, every TensorRT target's check (export refuses a
graph that fails it), and OpenVINO compiles the graph."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from conftest import assert_runs_in_openvino, one_line, run_edgedet
from edgedet.errors import EdgedetError
from edgedet.export.exporters import EXPORTERS, graph_opset, resolve_opset
from edgedet.export.nms import NMSConfig
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.export.parity import verify_images
from edgedet.runtime import Detector
from edgedet.runtime.metadata import sidecar_path
from edgedet.runtime.plugins import iou_matrix


def _export(weights, exporter: str, out, **options):
    return export_model(ExportOptions(model=None, weights=str(weights), nms=NMSConfig("onnx", score_thresh=0.05),
                                      exporter=exporter, out_dir=str(out), name=exporter.replace("-", "_"),
                                      **options))


def _assert_same_detections(a: Detector, b: Detector, images: list[np.ndarray]) -> int:
    """Every detection of ``a`` has one of ``b`` with its label, IoU ≥ 0.99 and a score within 1e-4, and the
    counts agree; returns the boxes compared."""
    compared = 0
    for image in images:
        da, db = a(image), b(image)
        assert len(da) == len(db)
        if len(da):
            iou = iou_matrix(da.boxes, db.boxes)
            same_label = da.labels[:, None] == db.labels[None, :]
            best = np.where(same_label, iou, -1.0).argmax(axis=1)
            assert (iou[np.arange(len(da)), best] >= 0.99).all()
            assert (da.labels == db.labels[best]).all()
            np.testing.assert_allclose(da.scores, db.scores[best], atol=1e-4)
            assert len(set(best.tolist())) == len(best)  # one to one
        compared += len(da)
    return compared


def _check_metadata(result, exporter: str) -> None:
    path = result.artifacts["fp32"]
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["exporter"]["name"] == exporter and meta["exporter"]["version"] == meta["versions"]["torch"]
    assert meta["opset"] == graph_opset(onnx.load(str(path))) == EXPORTERS[exporter]
    assert all(r["passed"] for r in meta["check"].values()) and len(meta["check"]) >= 3  # trt10.3, trt10, trt11


def test_ssd_same_detections_as_torchscript(tiny_checkpoint, synth, tmp_path):
    from edgedet.data.imageio import read_image

    old = _export(tiny_checkpoint, "torchscript", tmp_path)
    new = _export(tiny_checkpoint, "torch-export", tmp_path, fp16=True)
    _check_metadata(old, "torchscript")
    _check_metadata(new, "torch-export")
    images = [read_image(p) for p in sorted(synth.images_dir.glob("val_*.jpg"))[:24]]
    compared = _assert_same_detections(Detector(old.artifacts["fp32"]), Detector(new.artifacts["fp32"]), images)
    assert compared >= 24, compared  # the trained fixture finds its shapes
    half = Detector(new.artifacts["fp16"])
    assert sum(len(half(im)) for im in images[:8]) > 0
    size = tuple(new.metadata["input"]["size"])
    assert_runs_in_openvino(new.artifacts["fp32"], verify_images(1, None, size, "stretch", [0, 0, 0]))


@pytest.mark.parametrize("options", [{}, {"rpn_score_thresh": 0.5, "rpn_post_nms_top_n": 40}],
                         ids=["defaults", "rpn-masked-40-proposals"])
def test_fasterrcnn_same_detections_as_torchscript(fasterrcnn_checkpoint, tmp_path, options):
    """Letterboxed input, and the RPN's masked score threshold and static proposal count."""
    old = _export(fasterrcnn_checkpoint, "torchscript", tmp_path, imgsz=(160, 160), **options)
    new = _export(fasterrcnn_checkpoint, "torch-export", tmp_path, imgsz=(160, 160), **options)
    assert new.metadata["input"]["resize"] == "letterbox"
    for key, value in options.items():
        assert new.metadata[key] == value, (key, new.metadata.get(key))
    _check_metadata(new, "torch-export")
    pad = new.metadata["input"]["pad_value"]
    images = list(verify_images(12, None, (160, 160), "letterbox", pad))
    compared = _assert_same_detections(Detector(old.artifacts["fp32"]), Detector(new.artifacts["fp32"]), images)
    assert compared > 0
    assert_runs_in_openvino(new.artifacts["fp32"], np.stack(images[:1]))


def test_dynamic_batch_equals_one_by_one(tiny_checkpoint, synth, tmp_path):
    """A dynamic-batch torch-export graph (exported on a batch of 2: torch.export fixes a size-1 axis) runs
    batches of 1 and 3 with the fixed-batch graph's detections."""
    from edgedet.data.imageio import read_image

    fixed = Detector(_export(tiny_checkpoint, "torchscript", tmp_path).artifacts["fp32"])
    dyn = _export(tiny_checkpoint, "torch-export", tmp_path / "dyn", dynamic_batch=4)
    graph = onnx.load(str(dyn.artifacts["fp32"]))
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    det = Detector(dyn.artifacts["fp32"])
    images = [read_image(p) for p in sorted(synth.images_dir.glob("val_*.jpg"))[:3]]
    batched = det(images)
    assert sum(len(d) for d in batched) > 0
    for image, got in zip([*images, images[0]], [*batched, det(images[0])]):
        want = fixed(image)
        assert len(got) == len(want)
        np.testing.assert_allclose(np.sort(got.scores), np.sort(want.scores), atol=1e-4)


def test_opsets_each_exporter_writes():
    assert resolve_opset("torchscript", None) == 17 and resolve_opset("torch-export", None) == 18
    with pytest.raises(EdgedetError) as e:
        resolve_opset("torch-export", 17)
    assert "18.." in one_line(e) and "--exporter torchscript" in one_line(e)
    with pytest.raises(EdgedetError):
        resolve_opset("torchscript", 99)
    with pytest.raises(EdgedetError):
        resolve_opset("onnx-magic", None)


def test_cli_refuses_an_opset_the_exporter_cannot_write(tmp_path):
    proc = run_edgedet("export", "--model", "ssdlite_tiny", "--weights", "none", "--exporter", "torch-export",
                       "--opset", "17", "-o", str(tmp_path))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "--opset must be in 18.." in proc.stderr
    assert not list(tmp_path.iterdir())
