"""`edgedet verify`: engines of three precisions pass against the reference; a broken engine fails the gate."""

import json

import onnx
import pytest
from onnx import numpy_helper

from conftest import run_edgedet
from edgedet.export.onnx_export import ExportOptions, export_model


@pytest.fixture(scope="module")
def engines(tiny_checkpoint, synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("verify")
    res = export_model(ExportOptions(model=None, weights=str(tiny_checkpoint), fp16=True, int8=True,
                                     calib_images=str(synth.train_json), out_dir=str(out)))  # the default 256 calibration images
    return res.artifacts


def _verify(engines, tiny_checkpoint, synth, tmp_path, *extra):
    out = tmp_path / "report.json"
    proc = run_edgedet("verify", "--engine", *map(str, engines), "--weights", str(tiny_checkpoint), "--data",
                       str(synth.val_json), "--images", str(synth.images_dir), "--json", str(out),
                       "--report", str(tmp_path / "report.md"), "--device", "cpu", *extra)
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def test_three_precisions_pass(engines, tiny_checkpoint, synth, tmp_path):
    proc, report = _verify(engines.values(), tiny_checkpoint, synth, tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in report["rows"]}
    assert report["passed"] and report["images"] == 80
    assert [r["precision"] for r in report["rows"][2:]] == ["fp32", "fp16", "int8"]
    for name in ("ssdlite_tiny.onnx", "ssdlite_tiny.fp16.onnx", "ssdlite_tiny.int8.onnx"):
        assert rows[name]["passed"] and rows[name]["agreement"] >= 0.9 and rows[name]["boxes_compared"] > 0
    assert rows["ssdlite_tiny.onnx"]["delta_ap"] >= -0.1
    assert "AP50" in proc.stdout and "information only" in proc.stdout
    assert "| engine |" in (tmp_path / "report.md").read_text()


def test_wrong_normalisation_fails_the_gate(engines, tiny_checkpoint, synth, tmp_path):
    model = onnx.load(str(engines["fp32"]))
    for init in model.graph.initializer:
        if init.name == "normalize.mean":  # as if exported with mean 0 instead of the model's 0.5
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 0, init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    (tmp_path / "broken.json").write_text(engines["fp32"].with_suffix(".json").read_text())
    proc, report = _verify([broken], tiny_checkpoint, synth, tmp_path)
    assert proc.returncode == 1 and "FAIL" in proc.stderr and "Traceback" not in proc.stderr
    assert report["rows"][-1]["delta_ap"] < -1.0 and not report["passed"]


def test_parity_on_zero_boxes_is_not_measured():
    """Both sides empty proves nothing: no agreement, neither PASS nor FAIL (it used to be 100 %, PASS)."""
    import numpy as np

    from edgedet.export.parity import compare
    from edgedet.runtime.detections import Detections

    empty = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    rep = compare([empty, empty], [empty, empty], "fp32", 0.25)
    assert (rep.agreement, rep.passed, rep.verdict, rep.boxes_compared) == (None, None, "NOT MEASURED", 0)
    one = Detections(np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32), np.array([1]))
    rep = compare([one], [empty], "fp32", 0.25)
    assert (rep.agreement, rep.passed, rep.boxes_compared) == (0.0, False, 1)


def test_a_gate_that_compared_no_box_never_passes():
    """Bad input N32: a reference that finds nothing made the engine row PASS on ΔAP +41.8 alone."""
    import numpy as np

    from edgedet.export.parity import compare
    from edgedet.runtime.detections import Detections
    from edgedet.verify import VerifyRow, gate

    empty = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    row = gate(VerifyRow(name="e.onnx", precision="fp32", stats={}, ms_per_image=1.0, delta_ap=41.8, tolerance=1.0),
               compare([empty], [empty], "fp32", 0.25))
    assert row.passed is False and row.boxes_compared == 0 and "no box compared" in row.note


def test_engine_of_other_weights_is_refused_then_fails_on_agreement(engines, tiny_checkpoint, synth, tmp_path):
    """An engine verified against a checkpoint it was not exported from: a clear error; forced, the AP gate
    alone would PASS (the trained engine beats the untrained reference), the box agreement gate fails it."""
    from conftest import assert_one_line_error
    from edgedet.checkpoint import load_checkpoint, save_checkpoint
    from edgedet.models import create_model

    trained = load_checkpoint(tiny_checkpoint)
    untrained = create_model("ssdlite_tiny", classes=trained["classes"], weights="none")
    other = save_checkpoint(tmp_path / "untrained.pt", {"model": "ssdlite_tiny", "classes": trained["classes"],
                                                        "model_kwargs": trained["model_kwargs"],
                                                        "state_dict": untrained.state_dict()})
    proc, _ = _verify([engines["fp32"]], other, synth, tmp_path)
    assert_one_line_error(proc, "exported from other weights", "--allow-other-weights")
    proc, report = _verify([engines["fp32"]], other, synth, tmp_path, "--allow-other-weights")
    row = report["rows"][-1]
    assert proc.returncode == 1 and row["delta_ap"] > 10 and row["agreement"] < 0.5 and not row["passed"], row
