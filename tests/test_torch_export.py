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
    _assert_normalisation_in_fp32(new)
    size = tuple(new.metadata["input"]["size"])
    assert_runs_in_openvino(new.artifacts["fp32"], verify_images(1, None, size, "stretch", [0, 0, 0]))


def _assert_normalisation_in_fp32(result) -> None:
    """The FP16 graph computes the normalisation (cast, layout, /255, mean, std) in FP32, as the TorchScript FP16
    graph does: each of its nodes reads only its own outputs, FP32 weights or casts to FLOAT (torch-export names its nodes by op,
    so the normalisation is found from the FP32 graph's module scopes)."""
    from edgedet.export.onnx_export import _in_normalize

    names = {n.name for n in onnx.load(str(result.artifacts["fp32"])).graph.node if _in_normalize(n)}
    assert len(names) >= 4, names  # Cast, Transpose, Div, Sub, Div
    half = onnx.load(str(result.artifacts["fp16"])).graph
    producer = {o: n for n in half.node for o in n.output}
    fp32_weights = {t.name for t in half.initializer if t.data_type == onnx.TensorProto.FLOAT}
    to_float = lambda n: n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT  # noqa: E731
    nodes = [n for n in half.node if n.name in names]
    assert {n.name for n in nodes} == names
    for node in nodes:
        for name in node.input:
            source = producer.get(name)
            assert (name == "images" or name in fp32_weights if source is None else source.name in names or to_float(source)), (node.name, name)


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


def test_cli_default_is_torch_export_and_prints_no_warning(tmp_path):
    """Without --exporter the graph comes from torch.export (metadata and opset say so), and the export prints only
    its own lines: no deprecation note from either exporter, no warning."""
    proc = run_edgedet("export", "--model", "ssdlite_tiny", "--weights", "none", "--fp16", "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("edgedet: ") for line in lines), lines
    assert not any(word in proc.stderr.lower() for word in ("warning", "deprecat", "torchscript")), proc.stderr
    meta = json.loads(sidecar_path(tmp_path / "ssdlite_tiny.onnx").read_text())
    assert meta["exporter"]["name"] == "torch-export" and meta["opset"] == 18
    assert graph_opset(onnx.load(str(tmp_path / "ssdlite_tiny.fp16.onnx"))) == 18


@pytest.mark.parametrize("exporter", ["torch-export", "torchscript"])
def test_an_exporter_that_fails_is_one_line_naming_the_other(exporter, monkeypatch, tmp_path):
    """Either path failing inside PyTorch (torch.export on a construct it cannot capture, or a PyTorch that has removed
    the TorchScript exporter) ends in one line that names the other exporter, and writes nothing."""
    import torch

    def removed(*args, **kwargs):
        raise RuntimeError("the exporter is not available\nsecond line")

    monkeypatch.setattr(torch.onnx, "export", removed)
    with pytest.raises(EdgedetError) as e:
        export_model(ExportOptions(model="ssdlite_tiny", exporter=exporter, out_dir=str(tmp_path)))
    other = "torchscript" if exporter == "torch-export" else "torch-export"
    assert f"--exporter {exporter} cannot export" in one_line(e) and f"--exporter {other}" in one_line(e)
    assert "the exporter is not available" in one_line(e) and "second line" not in str(e.value)
    assert not list(tmp_path.iterdir())
