"""`edgedet sweep`: one exported engine per threshold, each scored and timed beside eager PyTorch."""

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import run_edgedet
from test_cli_errors import assert_one_line_error

pytestmark = pytest.mark.slow  # a random Faster R-CNN swept at every threshold, or the trained fixture


def _sweep(out, weights, synth, *extra):
    proc = run_edgedet("sweep", "--weights", str(weights), "--data", str(synth.val_json), "--images",
                       str(synth.images_dir), "--device", "cpu", "-o", str(out), *extra)
    return proc, (json.loads((out / "sweep.json").read_text()) if (out / "sweep.json").exists() else None)


def test_ssd_score_sweep(tiny_checkpoint, synth, tmp_path):
    proc, report = _sweep(tmp_path / "run", tiny_checkpoint, synth, "--score-thresh", "0.01,0.25,0.5")
    assert proc.returncode == 0, proc.stderr
    assert report["param"] == "score_thresh" and report["images"] == 80 and report["backend"] == "onnxruntime"
    points = report["points"]
    assert [p["value"] for p in points] == [0.01, 0.25, 0.5]
    aps = [p["stats"]["AP"] for p in points]
    # A higher threshold only cuts the low-score tail of the precision/recall curve: AP cannot rise.
    assert aps[0] >= aps[1] >= aps[2] and aps[0] - aps[2] > 0.05
    assert aps[0] > 0.5  # the fixture detects its objects: the sweep measures a real model
    dets = [p["dets_per_image"] for p in points]
    assert dets[0] > dets[1] >= dets[2]
    for p in points:
        assert abs(p["delta_ap"]) <= 0.1 and p["agreement"] >= 0.8  # each engine is faithful to PyTorch
        assert p["boxes_compared"] > 0
        assert p["ms_p50"] > 0 and p["ref_ms_p50"] > 0
        assert (tmp_path / "run" / "engines" / p["engine"].split("/")[-1]).is_file()
    assert (tmp_path / "run" / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| score_thresh |" in (tmp_path / "run" / "sweep.md").read_text()
    assert "engine AP" in proc.stdout and "PyTorch ms p50" in proc.stdout


@pytest.fixture(scope="module")
def random_frcnn(synth, tmp_path_factory):
    """A Faster R-CNN with the synthetic classes and fixed random weights: training one takes too long
    on 2 cores, but its RPN objectness (about 0.5-0.6) still makes thresholds cut proposals."""
    import torch

    from edgedet.checkpoint import save_checkpoint
    from edgedet.data import load_dataset
    from edgedet.models import create_model

    classes = load_dataset(synth.val_json, synth.images_dir).classes
    torch.manual_seed(0)
    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    model = create_model(name, classes=classes, weights="none")
    return save_checkpoint(tmp_path_factory.mktemp("frcnn") / "random.pt",
                           {"model": name, "state_dict": model.state_dict(), "classes": classes})


def test_frcnn_rpn_sweep_matches_pytorch_at_every_threshold(random_frcnn, synth, tmp_path):
    proc, report = _sweep(tmp_path / "run", random_frcnn, synth, "--rpn-score-thresh", "0,0.5,0.9",
                          "--imgsz", "160", "--max-images", "8", "--no-reference")
    assert proc.returncode == 0, proc.stderr
    assert report["param"] == "rpn_score_thresh" and "ref_stats" in report["points"][0]
    assert report["points"][0]["ref_stats"] is None  # --no-reference
    proc, report = _sweep(tmp_path / "ref", random_frcnn, synth, "--rpn-score-thresh", "0,0.5,0.9",
                          "--imgsz", "160", "--max-images", "8")
    assert proc.returncode == 0, proc.stderr
    points = report["points"]
    assert [p["rpn_score_thresh"] for p in points] == [0.0, 0.5, 0.9]
    dets = [p["dets_per_image"] for p in points]
    assert dets[0] >= dets[1] >= dets[2] and dets[0] > 0 and dets[2] == 0  # 0.9 masks every proposal
    for p in points[:2]:
        assert p["dets_per_image"] == p["ref_dets_per_image"] and p["agreement"] >= 0.9 and p["boxes_compared"] > 0
    assert points[2]["agreement"] is None and points[2]["boxes_compared"] == 0  # nothing on either side: not measured
    assert [p["ref_proposals_max"] for p in points][2] == 0


def test_frcnn_proposal_count_sweep(random_frcnn, synth, tmp_path):
    """Fewer proposals is what makes a static engine faster; PyTorch keeps exactly the same count."""
    proc, report = _sweep(tmp_path / "run", random_frcnn, synth, "--rpn-post-nms-top-n", "150,20",
                          "--imgsz", "160", "--max-images", "8", "--rpn-score-thresh", "0")
    assert proc.returncode == 0, proc.stderr
    points = report["points"]
    assert report["param"] == "rpn_post_nms_top_n" and [p["rpn_post_nms_top_n"] for p in points] == [150, 20]
    assert all(p["rpn_score_thresh"] == 0.0 for p in points)
    assert [p["ref_proposals_max"] for p in points] == [150, 20]
    for p in points:
        assert p["dets_per_image"] == p["ref_dets_per_image"] and p["agreement"] >= 0.9 and p["boxes_compared"] > 0
    meta = json.loads(Path(points[1]["engine"]).with_suffix(".json").read_text())
    assert meta["rpn_post_nms_top_n"] == 20 and meta["rpn_score_thresh"] == 0.0


@pytest.mark.parametrize("args, fragment", [
    (["--rpn-score-thresh", "0,0.5"], "applies to Faster R-CNN"),
    (["--rpn-post-nms-top-n", "100"], "applies to Faster R-CNN"),
    (["--score-thresh", "0.1,x"], "comma-separated floats"),
    (["--score-thresh", "0.1,1.5"], "must be in [0, 1)"),
    (["--score-thresh", "0.1,0.1"], "repeats a value"),
    (["--nms-mode", "standard,iou"], "applies to Faster R-CNN"),
    ([], "give the values to sweep"),
])
def test_bad_sweep_arguments(tiny_checkpoint, synth, tmp_path, args, fragment):
    proc, _ = _sweep(tmp_path / "run", tiny_checkpoint, synth, *args)
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "run").exists()


def test_one_threshold_at_a_time(random_frcnn, synth, tmp_path):
    proc, _ = _sweep(tmp_path / "run", random_frcnn, synth, "--rpn-score-thresh", "0,0.5", "--score-thresh", "0.1,0.2")
    assert_one_line_error(proc, "one parameter at a time")
    proc, _ = _sweep(tmp_path / "run", random_frcnn, synth, "--rpn-post-nms-top-n", "100,0")
    assert_one_line_error(proc, "must be positive")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_backend_without_tensorrt(tiny_checkpoint, synth, tmp_path):
    proc, _ = _sweep(tmp_path / "run", tiny_checkpoint, synth, "--score-thresh", "0.25", "--backend", "tensorrt")
    assert_one_line_error(proc, "needs TensorRT")


@pytest.mark.tensorrt
def test_sweep_on_tensorrt_plans(tiny_checkpoint, synth, tmp_path, need_cuda_binding):
    proc, report = _sweep(tmp_path / "run", tiny_checkpoint, synth, "--score-thresh", "0.05,0.25", "--backend", "tensorrt")
    assert proc.returncode == 0, proc.stderr
    assert report["backend"] == "tensorrt"
    for p in report["points"]:
        assert p["engine"].endswith(".plan") and abs(p["delta_ap"]) <= 0.1 and p["agreement"] >= 0.8
