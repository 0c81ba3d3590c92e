"""SSD-family export: parity with PyTorch, both NMS flavours, failure cases, artifacts."""

import json

import numpy as np
import onnx
import pytest

from edgedet.export.nms import NMSConfig
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.export.parity import contract_to_detections, match
from edgedet.runtime.metadata import read_metadata, sidecar_path
from edgedet.runtime.onnx_engine import OnnxEngine

from conftest import assert_runs_in_openvino, run_edgedet


@pytest.fixture(scope="module")
def tiny_exports(tiny_checkpoint, synth, tmp_path_factory):
    """The fixture model exported in both flavours, FP32 + FP16, verified on the synthetic val images."""
    out = tmp_path_factory.mktemp("export")
    results = {}
    for flavour, batch in (("onnx", 1), ("efficient", 4)):
        opts = ExportOptions(model=None, weights=str(tiny_checkpoint), nms=NMSConfig(flavour), fp16=True, batch=batch,
                             out_dir=str(out), name=f"tiny-{flavour}", verify=80, verify_source=str(synth.images_dir / "val_*.jpg"))
        results[flavour] = export_model(opts)
    return results


@pytest.mark.parametrize("flavour", ["onnx", "efficient"])
def test_parity_with_pytorch_on_synthetic_val(tiny_exports, flavour):
    parity = tiny_exports[flavour].parity
    assert parity["fp32"]["images"] == 80 and parity["fp32"]["reference_boxes"] > 80
    assert parity["fp32"]["agreement"] >= 0.99 and parity["fp32"]["max_score_diff"] < 1e-3
    assert parity["fp16"]["agreement"] >= 0.97
    assert all(r["passed"] for r in parity.values())


def test_artifacts_and_metadata(tiny_exports):
    res = tiny_exports["onnx"]
    for precision, path in res.artifacts.items():
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
        assert [o.name for o in model.graph.output] == ["num_dets", "boxes", "scores", "labels"]
        inp = model.graph.input[0]
        assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
        assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 160, 160, 3]
        side = json.loads(sidecar_path(path).read_text())
        props = json.loads({p.key: p.value for p in model.metadata_props}["edgedet"])
        assert side["precision"] == precision and side["classes"] == ["circle", "square", "triangle"]
        assert {k: v for k, v in props.items() if k != "parity"} == {k: v for k, v in side.items() if k != "parity"}
        assert side["parity"]["passed"] and side["weights_sha256"] and side["input"]["resize"] == "stretch"
    sidecar_path(res.artifacts["fp32"]).unlink()
    assert read_metadata(res.artifacts["fp32"])["model"] == "ssdlite_tiny", "falls back to metadata_props"
    fp16 = onnx.load(str(res.artifacts["fp16"]))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in fp16.graph.initializer)
    assert fp16.graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.FLOAT, "FP32 outputs"


def _run(path, images):
    return OnnxEngine(path)(images)


def _val_batch(synth, n=4):
    from edgedet.export.parity import verify_images

    return verify_images(n, str(synth.images_dir / "val_*.jpg"), (160, 160), "stretch", [128, 128, 128])


def test_flavours_agree(tiny_exports, synth):
    images = _val_batch(synth, 4)
    onnx_out = np.concatenate([_run(tiny_exports["onnx"].artifacts["fp32"], images[i:i + 1])[1] for i in range(4)])
    a = [contract_to_detections(_run(tiny_exports["onnx"].artifacts["fp32"], images[i:i + 1]))[0] for i in range(4)]
    b = contract_to_detections(_run(tiny_exports["efficient"].artifacts["fp32"], images))
    assert onnx_out.shape == (4, 100, 4)
    assert sum(len(x) for x in a) > 0, "no detections to compare"
    for x, y in zip(a, b):
        matched, _, sdiff, bdiff = match(x, y, score_thresh=0.25, margin=0.0)
        assert matched == len(x) == len(y) and sdiff < 1e-5 and bdiff < 1e-3


@pytest.mark.parametrize("flavour", ["onnx", "efficient"])
def test_black_image_gives_zero_padded_outputs(tiny_exports, flavour):
    path = tiny_exports[flavour].artifacts["fp32"]
    batch = 1 if flavour == "onnx" else 4
    num, boxes, scores, labels = _run(path, np.zeros((batch, 160, 160, 3), np.uint8))
    assert num.dtype == np.int32 and labels.dtype == np.int32 and boxes.dtype == np.float32
    assert (num == 0).all() and not boxes.any() and not scores.any() and not labels.any()


def test_no_detections_and_fewer_candidates_than_k(tiny_checkpoint, synth, tmp_path):
    # 3840 candidates > anchors × classes of the tiny model: the candidate set is padded.
    opts = ExportOptions(model=None, weights=str(tiny_checkpoint), nms=NMSConfig("onnx", score_thresh=0.999),
                         max_candidates=3840, out_dir=str(tmp_path))
    res = export_model(opts)
    num, boxes, scores, _ = _run(res.artifacts["fp32"], _val_batch(synth, 1))
    assert num[0, 0] == 0 and scores.shape == (1, 100)


def test_dynamic_batch(tiny_checkpoint, synth, tmp_path):
    res = export_model(ExportOptions(model=None, weights=str(tiny_checkpoint), dynamic_batch=8, out_dir=str(tmp_path), verify=6,
                                     verify_source=str(synth.images_dir / "val_*.jpg")))
    assert res.passed and res.metadata["batch"] == {"dynamic": True, "max": 8}
    images = _val_batch(synth, 3)
    num3, boxes3, _, _ = _run(res.artifacts["fp32"], images)
    num1, boxes1, _, _ = _run(res.artifacts["fp32"], images[1:2])
    assert boxes3.shape == (3, 100, 4) and num3[1, 0] == num1[0, 0]
    np.testing.assert_allclose(boxes3[1], boxes1[0], atol=1e-3)


@pytest.fixture(scope="module")
def ssdlite320_calibrated(tmp_path_factory):
    """ssdlite320 (3 classes) made numerically meaningful on the 2 synthetic images `export --verify 2` checks, as
    the Faster R-CNN tests do (test_export_fasterrcnn's module doc): random init scores every class near uniform,
    so nothing passes 0.5 and parity would be NOT MEASURED. BatchNorm statistics are measured on the images, the
    heads' last convolutions rescaled to class logits of std 2 (plus a class bias, so one class wins) and box
    deltas of std 0.2. Saved as an edgedet checkpoint, the way a user exports."""
    import torch
    from torch import nn

    from edgedet.checkpoint import save_checkpoint
    from edgedet.export.parity import verify_images
    from edgedet.export.wrappers import pad_value
    from edgedet.models import create_model

    classes = ["a", "b", "c"]
    torch.manual_seed(0)
    model = create_model("ssdlite320", classes=classes, weights="none").eval()
    images = verify_images(2, None, (320, 320), "stretch", pad_value(model))
    with torch.no_grad():
        x, _ = model.transform([torch.from_numpy(i).permute(2, 0, 1).float() / 255 for i in images])
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batch
            bn.train()
        model.head(list(model.backbone(x.tensors).values()))
        model.eval()
        feats = list(model.backbone(x.tensors).values())
        for head, std in ((model.head.classification_head, 2.0), (model.head.regression_head, 0.2)):
            for level, f in zip(head.module_list, feats):
                level[-1].weight.mul_(std / float(level(f).std()))
                level[-1].bias.zero_()
        n = len(classes) + 1  # background first
        for level in model.head.classification_head.module_list:
            level[-1].bias.copy_(torch.linspace(-1.0, 1.0, n).repeat(level[-1].bias.numel() // n))
    path = tmp_path_factory.mktemp("ssdlite320") / "ssdlite320.pt"
    save_checkpoint(path, {"model": "ssdlite320", "model_kwargs": dict(model.edgedet_kwargs), "classes": classes,
                           "state_dict": model.state_dict()})
    return path


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ssdlite320", "ssd300"])
@pytest.mark.parametrize("flavour", ["onnx", "efficient"])
def test_every_ssd_zoo_model_exports(model, flavour, tmp_path, request):
    # Random weights: ssd300 scores some boxes high, so at 0.5 there are few, well-separated boxes to compare
    # (at 0.01 thousands of near-equal scores make tie-breaking, not the graph, decide); ssdlite320 scores
    # every class near 1/91, so it is exported from its calibrated checkpoint (ssdlite320_calibrated): there
    # every image keeps its 100 boxes (measured: 200 compared, agreement 1.0, scores within 2e-6).
    import torch

    torch.manual_seed(0)
    source = (dict(model=None, weights=str(request.getfixturevalue("ssdlite320_calibrated"))) if model == "ssdlite320"
              else dict(model=model))
    res = export_model(ExportOptions(**source, nms=NMSConfig(flavour, score_thresh=0.5), out_dir=str(tmp_path),
                                     verify=2, max_candidates=3840))
    rep = res.parity["fp32"]
    assert res.passed, rep
    assert rep["verdict"] == "PASS" and rep["boxes_compared"] > 10 and rep["agreement"] >= 0.99, rep
    assert res.metadata["model"] == model
    assert res.artifacts["fp32"].stat().st_size > 1e6
    assert all(r["passed"] for r in res.metadata["check"].values()), res.metadata["check"]
    if flavour == "onnx":
        from edgedet.export.parity import verify_images

        inp = res.metadata["input"]
        assert_runs_in_openvino(res.artifacts["fp32"], verify_images(2, None, tuple(inp["size"]), "stretch", inp["pad_value"]))




def test_cli_keeps_existing_files_and_rejects_bad_options(tiny_checkpoint, tmp_path):
    ok = run_edgedet("export", "--weights", str(tiny_checkpoint), "-o", str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert "edgedet build" in ok.stderr, "says how to build the plan on the target"
    before = (tmp_path / "ssdlite_tiny.onnx").read_bytes()
    again = run_edgedet("export", "--weights", str(tiny_checkpoint), "-o", str(tmp_path), "--score-thresh", "0.5")
    assert again.returncode == 1 and "--force" in again.stderr and "Traceback" not in again.stderr
    assert (tmp_path / "ssdlite_tiny.onnx").read_bytes() == before
    bad = run_edgedet("export", "--weights", str(tiny_checkpoint), "-o", str(tmp_path / "x"), "--max-dets", "5000")
    assert bad.returncode == 1 and "--max-dets" in bad.stderr and "Traceback" not in bad.stderr
    assert not list(tmp_path.glob(".*")), "no temporary files left behind"
