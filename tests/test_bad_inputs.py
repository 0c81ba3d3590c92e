"""Rows of ../shared/bad-inputs.md that were BAD (a traceback, a silent wrong result), each now one clear line
and exit 1, or handled with a warning. Numbers in the test ids are the rows of that list.

Engines here are real exports of ssdlite_tiny (random weights): the checks are about files and options,
not about what the model detects.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import onnx
import pytest

from conftest import assert_one_line_error, run_edgedet
from edgedet.errors import BackendError, DataError


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    from edgedet.export.onnx_export import ExportOptions, export_model

    out = tmp_path_factory.mktemp("bad-engines")
    export_model(ExportOptions(model="ssdlite_tiny", out_dir=str(out)))
    return out


def _copy(export_dir, tmp_path, name="m"):
    onnx_path = tmp_path / f"{name}.onnx"
    shutil.copy(export_dir / "ssdlite_tiny.onnx", onnx_path)
    shutil.copy(export_dir / "ssdlite_tiny.json", tmp_path / f"{name}.json")
    return onnx_path


def _predict(engine, synth):
    return run_edgedet("predict", "--engine", str(engine), "--source", str(synth.images_dir / "val_00320.jpg"))


def test_11_zero_byte_onnx(tmp_path, synth):
    (tmp_path / "empty.onnx").write_bytes(b"")
    assert_one_line_error(_predict(tmp_path / "empty.onnx", synth), "empty.onnx")


def test_15_contract_names_with_wrong_shapes(export_dir, tmp_path, synth):
    path = _copy(export_dir, tmp_path)
    model = onnx.load(str(path))
    scores = next(o for o in model.graph.output if o.name == "scores")
    scores.type.tensor_type.shape.dim.add().dim_value = 2  # [B, K] → [B, K, 2]
    onnx.save(model, str(path))
    assert_one_line_error(_predict(path, synth), "'scores'", "the engine contract")


@pytest.mark.parametrize("text, fragment", [("{not json", "not valid JSON"), ("", "not valid JSON"),
                                            ("[1, 2]", "not a JSON object"),
                                            ('{"schema_version": 99, "input": {}, "classes": []}', "schema version 99"),
                                            ('{"classes": ["a"]}', "lacks 'input'")])
def test_16_unusable_sidecar(export_dir, tmp_path, synth, text, fragment):
    path = _copy(export_dir, tmp_path)
    (tmp_path / "m.json").write_text(text)
    assert_one_line_error(_predict(path, synth), "m.", fragment)


def test_17_sidecar_with_too_few_classes(export_dir, tmp_path):
    from edgedet.runtime import Detector

    path = _copy(export_dir, tmp_path)
    meta = json.loads((tmp_path / "m.json").read_text())
    (tmp_path / "m.json").write_text(json.dumps({**meta, "classes": ["only-one"], "category_ids": [1]}))
    det = Detector(path)
    labels = np.ones((1, 100), np.int32) * 2  # the engine answers with class 2 of its three
    det.engine = lambda images: [np.array([[1]], np.int32), np.zeros((1, 100, 4), np.float32),
                                 np.ones((1, 100), np.float32), labels]
    with pytest.raises(BackendError, match="returned class 2 but its metadata lists 1 classes"):
        det(np.zeros((50, 50, 3), np.uint8))


def test_18_sidecar_with_the_wrong_input_size(export_dir, tmp_path, synth):
    path = _copy(export_dir, tmp_path)
    meta = json.loads((tmp_path / "m.json").read_text())
    (tmp_path / "m.json").write_text(json.dumps({**meta, "input": {**meta["input"], "size": [320, 320]}}))
    assert_one_line_error(_predict(path, synth), "320x320", "160x160", "another export")


def test_23_dataset_without_annotations(synth, tmp_path):
    coco = json.loads(synth.val_json.read_text())
    (tmp_path / "empty.json").write_text(json.dumps({**coco, "annotations": []}))
    proc = run_edgedet("eval", "--model", "ssdlite_tiny", "--weights", "none", "--data", str(tmp_path / "empty.json"),
                       "--images", str(synth.images_dir), "--out", str(tmp_path / "eval"))
    assert_one_line_error(proc, "no annotations")


def test_24_eval_where_no_image_can_be_read(synth, tmp_path):
    (tmp_path / "imgs").mkdir()
    proc = run_edgedet("eval", "--model", "ssdlite_tiny", "--weights", "none", "--data", str(synth.val_json),
                       "--images", str(tmp_path / "imgs"), "--out", str(tmp_path / "eval"))
    assert_one_line_error(proc, "none of the 80 images", "image folder")
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("args, fragment", [
    (["predict", "--engine", "m.onnx", "--source", "x.jpg", "--conf", "1.5"], "--conf: must be in [0, 1]"),
    (["run", "--engine", "m.onnx", "--video", "cam0", "--conf", "-1"], "--conf: must be in [0, 1]"),
    (["eval", "--weights", "none", "--model", "ssdlite_tiny", "--data", "d.json", "--batch", "0"], "--batch: must be at least 1"),
    (["bench", "--engine", "m.onnx", "--batch", "0"], "--batch: must be at least 1"),
    (["train", "--model", "ssdlite_tiny", "--data", "d.json", "--workers", "-2"], "--workers: must be 0 or more"),
    (["export", "--model", "ssdlite_tiny", "--weights", "none", "--max-candidates", "5000"], "--max-candidates must be in 1..3840"),
    (["export", "--model", "ssdlite_tiny", "--weights", "none", "--max-candidates", "0"], "--max-candidates must be in 1..3840"),
])
def test_33_to_35_out_of_range_options(args, fragment):
    assert_one_line_error(run_edgedet(*args), fragment)


def test_40_output_path_that_is_a_directory(export_dir, synth, tmp_path):
    (tmp_path / "out.json").mkdir()
    proc = run_edgedet("predict", "--engine", str(export_dir / "ssdlite_tiny.onnx"), "--source",
                       str(synth.images_dir / "val_00320.jpg"), "--save-json", str(tmp_path / "out.json"), "--force")
    assert_one_line_error(proc, "out.json is a directory")
    assert (tmp_path / "out.json").is_dir() and not list((tmp_path / "out.json").iterdir())


def test_45_resume_from_best_pt(tiny_checkpoint, synth):
    proc = run_edgedet("train", "--resume", str(tiny_checkpoint), "--data", str(synth.train_json), "--images",
                       str(synth.images_dir), "--epochs", "99")
    assert_one_line_error(proc, "no optimizer state", "last.pt")


def test_50_51_none_and_float_images(export_dir, capsys):
    from edgedet.runtime import Detector

    det = Detector(export_dir / "ssdlite_tiny.onnx")
    with pytest.raises(DataError, match="cv2.imread"):
        det(None)
    with pytest.raises(DataError, match="cv2.imread"):
        det([None])
    image = np.random.default_rng(0).integers(0, 256, (120, 90, 3)).astype(np.uint8)
    want = det(image)
    got = det(image.astype(np.float32) / 255.0)  # the same picture as floats in [0, 1]
    assert "scaled by 255" in capsys.readouterr().err
    np.testing.assert_allclose(got.boxes, want.boxes, atol=1.0)


def test_files_get_the_mode_a_plain_open_gives(tmp_path):
    from edgedet.fileio import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        (tmp_path / "b.txt").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644
