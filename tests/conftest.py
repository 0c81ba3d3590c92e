"""Shared fixtures: synthetic data and the tiny model trained on it once per session.

Tests marked ``gpu`` or ``tensorrt`` skip cleanly where CUDA or TensorRT is absent; with
``EDGEDET_REQUIRE_TENSORRT_TEST=1`` (a TensorRT machine's CI) the ``tensorrt`` tests and ``need_cuda_binding`` fail
instead of skipping, so a broken TensorRT or CUDA install cannot pass as "skipped".
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE_MIN_AP50 = 0.6


def run_edgedet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The CLI in a subprocess, as a user runs it: exit code and stderr are what tests assert. ``env``
    entries are added to this process's environment."""
    return subprocess.run([sys.executable, "-m", "edgedet", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env} if env else None)


def video_frames(path) -> list:
    """Every frame of a video file, decoded by OpenCV, as RGB arrays."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """A CLI run that failed the way a user should see it: exit 1, no traceback, one error line naming
    every fragment."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for f in fragments:
        assert f in errors[0], errors[0]


def one_line(e: pytest.ExceptionInfo) -> str:
    """The message of a raised library error, asserted to be one line."""
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def assert_runs_in_openvino(path, images) -> dict:
    """The export compiles in OpenVINO (stricter than ONNX Runtime) and returns the contract on ``images``."""
    from edgedet.runtime import Detector

    det = Detector(path, backend="openvino")
    out = det.raw(images[: det.batch_size])
    k = out["scores"].shape[1]
    assert out["num_dets"].dtype == out["labels"].dtype == "int32" and out["boxes"].shape[-2:] == (k, 4)
    assert ((0 <= out["num_dets"]) & (out["num_dets"] <= k)).all()
    return out


def tensorrt_required() -> bool:
    """``EDGEDET_REQUIRE_TENSORRT_TEST=1``: a missing TensorRT, CUDA binding or device fails the tests that need them."""
    return os.environ.get("EDGEDET_REQUIRE_TENSORRT_TEST") == "1"


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


#: Session fixtures that train or export a model (minutes on 2 cores before the first test that needs them can
#: run): every test that uses one is marked ``slow``, so ``pytest -m "not slow"`` (the fast subset) never builds them.
SLOW_FIXTURES = frozenset({"trained_tiny", "tiny_checkpoint", "fixture_exports", "fasterrcnn_checkpoint",
                           "iou_checkpoint"})  # test_iou_net's IoU-head Faster R-CNN, trained (about 10 min)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_trt = pytest.mark.skip(reason="needs TensorRT")
    has_cuda = _has_cuda()
    has_trt = importlib.util.find_spec("tensorrt") is not None
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "tensorrt" in item.keywords and not has_trt and not tensorrt_required():
            item.add_marker(skip_trt)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if "tensorrt" in item.keywords and tensorrt_required() and importlib.util.find_spec("tensorrt") is None:
        pytest.fail("EDGEDET_REQUIRE_TENSORRT_TEST=1 but TensorRT is not installed (pip install -e .[tensorrt])",
                    pytrace=False)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory):
    """400 synthetic images (320 train / 80 val) and a short video."""
    from edgedet.data.synth import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("synth"), images=400, seed=0, video=True)


@pytest.fixture(scope="session")
def trained_tiny(synth, tmp_path_factory: pytest.TempPathFactory):
    """The tiny model trained from scratch on the synthetic train split (the ``tiny`` preset, 16 epochs, about
    100 s on 2 cores).

    Later stages compare engines against it, so it must detect its objects well, on every CPU: its loss breaks
    out at epoch 8-10 depending on seed and CPU kernels, and the 12 epochs it once trained for ended at the edge
    of FIXTURE_MIN_AP50 (and left a model so little converged that INT8 lost 3 AP points); at 16 it measured
    AP50 0.96-0.97 on two seeds and with oneDNN capped at SSE4.1.
    """
    from edgedet.train.config import make_config
    from edgedet.train.engine import train

    cfg = make_config(model="ssdlite_tiny", data=str(synth.train_json), images=str(synth.images_dir),
                      val_data=str(synth.val_json), preset="tiny", device="cpu",
                      out=str(tmp_path_factory.mktemp("train") / "run"), eval_every=1000)
    result = train(cfg, progress=False)
    print(f"\nssdlite_tiny fixture: val AP50 {result.history[-1]['val']['AP50']:.3f} after {len(result.history)} epochs")
    assert result.history[-1]["val"]["AP50"] >= FIXTURE_MIN_AP50, result.history[-1]
    return result


@pytest.fixture(scope="session")
def tiny_checkpoint(trained_tiny) -> Path:
    return Path(trained_tiny.best)


@pytest.fixture
def need_cuda_binding():
    """TensorRT tests also need a usable CUDA binding (cuda-python or pycuda) and a device; without them they skip,
    or fail under EDGEDET_REQUIRE_TENSORRT_TEST=1."""
    from edgedet.errors import BackendError
    from edgedet.runtime.cuda import load_cuda

    try:
        load_cuda(0).release()
    except BackendError as e:
        if tensorrt_required():
            pytest.fail(f"EDGEDET_REQUIRE_TENSORRT_TEST=1 but {e}", pytrace=False)
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def fasterrcnn_checkpoint(tmp_path_factory):
    """fasterrcnn_mobilenet_v3_large_320_fpn with spread, tie-free scores (see test_export_fasterrcnn), saved as an
    edgedet checkpoint: the letterbox model of the OpenVINO and C++ runtime tests."""
    from test_export_fasterrcnn import CLASSES, _model

    from edgedet.checkpoint import save_checkpoint

    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    model = _model(name, size=(160, 160), calibrate_seeds=(0, 1, 2))
    path = tmp_path_factory.mktemp("frcnn") / "frcnn.pt"
    save_checkpoint(path, {"model": name, "model_kwargs": dict(model.edgedet_kwargs), "classes": CLASSES,
                           "state_dict": model.state_dict()})
    return path


@pytest.fixture(scope="session")
def fixture_exports(tiny_checkpoint, synth, tmp_path_factory) -> dict:
    """The trained fixture exported at batch 1 (FP32, FP16, INT8: keys fp32, fp16, int8) and with a dynamic batch
    of up to 4 (FP32: key dyn4), for the tests that run one export in two places (C++ and Python, Triton and a
    local Detector)."""
    from edgedet.export.nms import NMSConfig
    from edgedet.export.onnx_export import ExportOptions, export_model

    out = tmp_path_factory.mktemp("fixture-exports")
    nms = NMSConfig("onnx", score_thresh=0.05)
    fixed = export_model(ExportOptions(model=None, weights=str(tiny_checkpoint), nms=nms, fp16=True, int8=True,
                                       calib_images=str(synth.images_dir), calib_count=64, out_dir=str(out)))
    dyn = export_model(ExportOptions(model=None, weights=str(tiny_checkpoint), nms=nms, dynamic_batch=4,
                                     name="tiny_dyn4", out_dir=str(out)))
    return {**fixed.artifacts, "dyn4": dyn.artifacts["fp32"]}
