"""The bad inputs listed in docs/bad-inputs.md, each one clear line and exit 1, or handled with a warning (never a
traceback or a silent wrong result). Numbers in the test ids are the numbers of that list.

Engines here are real exports of ssdlite_tiny (random weights): the checks are about files and options,
not about what the model detects.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import assert_one_line_error, one_line, run_edgedet
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
    return run_edgedet("predict", "--engine", str(engine), "--images", str(synth.images_dir / "val_00320.jpg"))


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


@pytest.mark.parametrize("returned, name", [
    ([(1, 1), (1, 3, 4), (1, 7), (1, 2)], "boxes"),  # the reproduction: declared right, returned otherwise
    ([(1, 1), (1, 100, 4), (1, 100), (1, 99)], "labels"),
    ([(2, 1), (2, 100, 4), (2, 100), (2, 100)], "num_dets"),  # another batch than the one fed
])
def test_15_engine_returns_other_shapes_than_it_declares(export_dir, tmp_path, returned, name):
    from edgedet.runtime import Detector

    det = Detector(_copy(export_dir, tmp_path))
    dtypes = [np.int32, np.float32, np.float32, np.int32]
    det.engine = lambda images: [np.ones(shape, dtype) for shape, dtype in zip(returned, dtypes)]
    with pytest.raises(BackendError) as e:
        det(np.zeros((50, 50, 3), np.uint8))
    assert f"returned {name} of shape" in one_line(e) and "the engine contract" in str(e.value)


def test_15_engine_returns_num_dets_beyond_k(export_dir, tmp_path):
    from edgedet.runtime import Detector

    det = Detector(_copy(export_dir, tmp_path))
    det.engine = lambda images: [np.array([[101]], np.int32), np.zeros((1, 100, 4), np.float32),
                                 np.zeros((1, 100), np.float32), np.zeros((1, 100), np.int32)]
    with pytest.raises(BackendError, match="num_dets 101 outside 0..100"):
        det(np.zeros((50, 50, 3), np.uint8))


def test_18_sidecar_with_the_wrong_input_size(export_dir, tmp_path, synth):
    path = _copy(export_dir, tmp_path)
    meta = json.loads((tmp_path / "m.json").read_text())
    (tmp_path / "m.json").write_text(json.dumps({**meta, "input": {**meta["input"], "size": [320, 320]}}))
    assert_one_line_error(_predict(path, synth), "320x320", "160x160", "another export")


@pytest.mark.parametrize("ann_id, fragment", [("abc", "annotations[0].id must be an integer"),
                                              (None, "annotations[1].id 7 is used twice")])
def test_20_coco_annotation_ids(synth, tmp_path, ann_id, fragment):
    coco = json.loads(synth.val_json.read_text())
    anns = coco["annotations"]
    if ann_id is None:
        anns[0]["id"] = anns[1]["id"] = 7
    else:
        anns[0]["id"] = ann_id
    (tmp_path / "ids.json").write_text(json.dumps(coco))
    proc = run_edgedet("eval", "--model", "ssdlite_tiny", "--weights", "none", "--device", "cpu", "--data",
                       str(tmp_path / "ids.json"), "--images", str(synth.images_dir), "-o", str(tmp_path / "ev"))
    assert_one_line_error(proc, "ids.json", fragment)


def test_20_coco_annotations_without_ids_are_evaluated(synth, tmp_path):
    from edgedet.data import load_dataset
    from edgedet.evaluate import coco_evaluate

    coco = json.loads(synth.val_json.read_text())
    for ann in coco["annotations"]:
        del ann["id"]
    (tmp_path / "noids.json").write_text(json.dumps(coco))
    data = load_dataset(tmp_path / "noids.json", synth.images_dir)
    truth = [{"image_id": s.image_id, "category_id": data.category_ids[int(l)], "score": 1.0,
              "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
             for s in data.samples for b, l in zip(s.boxes, s.labels)]
    assert truth and coco_evaluate(data, truth).stats["AP50"] == pytest.approx(1.0)


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
    (["predict", "--engine", "m.onnx", "--images", "x.jpg", "--score-thresh", "1.5"], "--score-thresh: must be in [0, 1]"),
    (["run", "--engine", "m.onnx", "--video", "cam0", "--score-thresh", "-1"], "--score-thresh: must be in [0, 1]"),
    (["eval", "--weights", "none", "--model", "ssdlite_tiny", "--data", "d.json", "--batch", "0"], "--batch: must be at least 1"),
    (["bench", "--engine", "m.onnx", "--batch", "0"], "--batch: must be at least 1"),
    (["train", "--model", "ssdlite_tiny", "--data", "d.json", "--workers", "-2"], "--workers: must be 0 or more"),
    (["export", "--model", "ssdlite_tiny", "--weights", "none", "--max-candidates", "5000"], "--max-candidates must be in 1..3840"),
    (["export", "--model", "ssdlite_tiny", "--weights", "none", "--max-candidates", "0"], "--max-candidates: must be at least 1, not 0"),
])
def test_33_to_35_out_of_range_options(args, fragment):
    assert_one_line_error(run_edgedet(*args), fragment)


def test_40_output_path_that_is_a_directory(export_dir, synth, tmp_path):
    (tmp_path / "out.json").mkdir()
    proc = run_edgedet("predict", "--engine", str(export_dir / "ssdlite_tiny.onnx"), "--images",
                       str(synth.images_dir / "val_00320.jpg"), "--json", str(tmp_path / "out.json"), "--force")
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


def test_03_directory_as_weights(tmp_path, synth):
    proc = run_edgedet("predict", "--model", "ssdlite_tiny", "--weights", str(tmp_path), "--images",
                       str(synth.images_dir / "val_00320.jpg"))
    assert_one_line_error(proc, "is a directory", "best.pt")


@pytest.mark.parametrize("content, fragment", [
    (b"", "is empty (0 bytes)"),
    (b"hello", "not a PyTorch file"),
])
def test_49_files_that_are_not_checkpoints(tmp_path, synth, content, fragment):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    assert_one_line_error(run_edgedet("predict", "--model", "ssdlite_tiny", "--weights", str(bad), "--images",
                                      str(synth.images_dir / "val_00320.jpg")), fragment)


def test_48_a_pickle_that_would_run_code_is_named_unsafe(tmp_path, synth):
    import os

    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "PWNED"),))

    torch.save({"model": Evil()}, tmp_path / "evil.pt")
    proc = run_edgedet("predict", "--model", "ssdlite_tiny", "--weights", str(tmp_path / "evil.pt"), "--images",
                       str(synth.images_dir / "val_00320.jpg"))
    assert_one_line_error(proc, "not a safe checkpoint", "system", "never runs code")
    assert "weights_only=False" not in proc.stderr and not (tmp_path / "PWNED").exists()


def test_36_unknown_model_arg_is_refused_with_the_closest_option(synth, tmp_path):
    proc = run_edgedet("train", "--model", "ssdlite_tiny", "--data", str(synth.train_json), "--images",
                       str(synth.images_dir), "--epochs", "1", "--model-arg", "score_tresh=0.1", "--out",
                       str(tmp_path / "run"))
    assert_one_line_error(proc, "has no option 'score_tresh'", "did you mean 'score_thresh'?")
    assert not (tmp_path / "run").exists(), "refused before a run folder or checkpoint is written"


def test_07_decompression_bomb_warning_is_one_edgedet_line(tmp_path, capsys):
    from PIL import Image

    from edgedet.data.imageio import read_image

    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(path)
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 64 * 64 - 1  # over the limit but under twice it: a warning, not an error
    try:
        with _no_python_warnings():
            assert read_image(path).shape == (64, 64, 3)
    finally:
        Image.MAX_IMAGE_PIXELS = old
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgedet: warning:") and "big.png" in err[0], err


def _no_python_warnings():
    import contextlib
    import warnings

    @contextlib.contextmanager
    def guard():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        assert not caught, [str(w.message) for w in caught]

    return guard()


def test_40_verify_refuses_an_unusable_json_path_before_evaluating(export_dir, tmp_path):
    (tmp_path / "report.json").mkdir()
    proc = run_edgedet("verify", "--engine", str(export_dir / "ssdlite_tiny.onnx"), "--weights", "none",
                       "--data", str(tmp_path / "not-read-yet.json"), "--json", str(tmp_path / "report.json"))
    assert_one_line_error(proc, "report.json is a directory")  # not the missing --data: checked first


def test_39_full_disk_is_found_before_long_work(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from edgedet.errors import EdgedetError
    from edgedet.fileio import require_writable

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(2**30, 2**30 - 2**20, 2**20))
    with pytest.raises(EdgedetError, match="1.0 MiB free"):
        require_writable(tmp_path / "out.json")
    (tmp_path / "plain").write_text("x")
    monkeypatch.undo()
    with pytest.raises(EdgedetError, match="is a file"):
        require_writable(tmp_path / "plain" / "out.json")
    assert require_writable(tmp_path / "new" / "out.json") == tmp_path / "new" / "out.json"
    assert not (tmp_path / "new").exists(), "the check creates nothing"


def test_predict_on_a_coco_dataset_uses_its_image_ids(tiny_checkpoint, synth, tmp_path):
    import json

    out = tmp_path / "preds.json"
    proc = run_edgedet("predict", "--weights", str(tiny_checkpoint), "--data", str(synth.val_json),
                       "--images", str(synth.images_dir), "--max-images", "5", "--score-thresh", "0.3", "--json",
                       str(out))
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    want = [im["id"] for im in json.loads(synth.val_json.read_text())["images"][:5]]
    assert results and {r["image_id"] for r in results} <= set(want)
    assert set(want) != set(range(1, 6)), "the fixture's ids differ from 1..N, so this can tell them apart"


def test_predict_bad_images_fail(export_dir, synth, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(synth.images_dir / "val_00320.jpg", folder / "a.jpg")
    (folder / "b.jpg").write_bytes(b"not a jpeg")
    args = ["predict", "--engine", str(export_dir / "ssdlite_tiny.onnx"), "--images", str(folder)]
    skipped = run_edgedet(*args)
    assert skipped.returncode == 0 and "b.jpg" in skipped.stderr
    assert_one_line_error(run_edgedet(*args, "--bad-images", "fail"), "b.jpg")


def test_detector_device_spelling(export_dir, tmp_path):
    from edgedet.runtime import Detector

    assert Detector(export_dir / "ssdlite_tiny.onnx", device="cpu").engine is not None
    with pytest.raises(BackendError, match="cpu, cuda, cuda:N"):
        Detector(export_dir / "ssdlite_tiny.onnx", device="gpu0")
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x")
    with pytest.raises(BackendError, match="runs on a CUDA GPU"):
        Detector(plan, device="cpu")


def test_10_non_utf8_file_names_give_valid_json(tmp_path):
    import json

    from edgedet.predict import printable_path

    name = Path(os.fsdecode(b"caf\xe9.jpg"))  # Latin-1 bytes: lone surrogates in Python
    text = printable_path(name)
    assert text == "caf\ufffd.jpg"
    json.loads(json.dumps({"file_name": text}, ensure_ascii=False).encode("utf-8"))  # strict UTF-8 round trip
    assert printable_path(Path("图像.jpg")) == "图像.jpg"


@pytest.mark.parametrize("device", ["cuda", "cuda:7"])
def test_N28_cuda_device_for_an_onnx_engine_without_a_gpu_provider(export_dir, tmp_path, device):
    import onnxruntime as ort

    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()):
        pytest.skip("this ONNX Runtime has a GPU provider")
    path = _copy(export_dir, tmp_path)
    proc = run_edgedet("bench", "--engine", str(path), "--device", device, "--iters", "2")
    assert_one_line_error(proc, device, "no CUDA provider", "--device cpu")


@pytest.mark.slow
def test_N29_batch_of_one_through_batch_norm_on_a_1x1_map(synth, tmp_path):
    proc = run_edgedet("train", "--model", "ssdlite320", "--weights", "none", "--data", str(synth.train_json),
                       "--images", str(synth.images_dir), "--epochs", "1", "--batch", "1", "--device", "cpu",
                       "-o", str(tmp_path / "t1"))
    assert_one_line_error(proc, "--batch 1 cannot train ssdlite320", "--batch 2")


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (root only; skipped where mounting is not allowed), unmounted afterwards."""
    import subprocess

    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(disk: Path, leave: int) -> None:
    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


@pytest.mark.slow
def test_39_a_disk_that_fills_up_leaves_no_truncated_file(small_disk, synth):
    """Bad input 39 on a real full disk: synth left a truncated JPEG under its final name; train ended in torch's
    'unexpected pos' traceback. Now one line each, and every file under a final name is whole."""
    _fill(small_disk, 200_000)
    proc = run_edgedet("synth", "-o", str(small_disk / "s"), "--count", "40")
    assert_one_line_error(proc, "no space left")
    jpegs = list((small_disk / "s").rglob("*.jpg"))
    assert jpegs, "the disk filled before the first image: the test measured nothing"
    for jpeg in jpegs:  # a whole JPEG ends with the EOI marker
        assert jpeg.read_bytes()[-2:] == b"\xff\xd9", f"truncated {jpeg}"
    assert not list(small_disk.rglob("*.tmp")), "temporary files left behind"
    (small_disk / "filler").unlink()
    shutil.rmtree(small_disk / "s")
    _fill(small_disk, 400_000)  # less than a checkpoint of ssdlite_tiny
    proc = run_edgedet("train", "--model", "ssdlite_tiny", "--weights", "none", "--data", str(synth.val_json), "--images",
                       str(synth.images_dir), "--epochs", "1", "--device", "cpu", "-o", str(small_disk / "t"))
    assert_one_line_error(proc, "no space left")
    assert not [p for p in small_disk.rglob("*.pt") if p.stat().st_size == 0] and not list(small_disk.rglob("*.tmp"))
