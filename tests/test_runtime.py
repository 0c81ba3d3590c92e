"""The torch-free runtime: Detector, preprocessing round trips, bad inputs, run/bench/predict --engine."""

import json

import cv2
import numpy as np
import onnx
import pytest

from edgedet.errors import BackendError, DataError
from edgedet.runtime.preprocess import Resize, resize_into

from conftest import assert_one_line_error, run_edgedet




@pytest.fixture(scope="module")
def engine(tiny_checkpoint, tmp_path_factory):
    from edgedet.export.onnx_export import ExportOptions, export_model

    out = tmp_path_factory.mktemp("engine")
    return export_model(ExportOptions(model=None, weights=str(tiny_checkpoint), out_dir=str(out))).artifacts["fp32"]


@pytest.mark.parametrize("mode", ["stretch", "letterbox"])
@pytest.mark.parametrize("shape", [(240, 320), (320, 240), (100, 100)])
def test_resize_round_trip(mode, shape):
    image = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    out = np.empty((160, 192, 3), np.uint8)
    fit = resize_into(image, out, mode, (1, 2, 3))
    boxes = np.array([[0, 0, shape[1], shape[0]], [10.5, 20.25, 50, 60]], np.float32)
    np.testing.assert_allclose(fit.to_original(fit.to_network(boxes)), boxes, atol=1e-4)
    if mode == "letterbox":
        assert abs(fit.sx - fit.sy) < 0.02, "aspect ratio kept"
        net = fit.to_network(boxes[:1])[0]
        assert net[2] <= 192 + 1e-3 and net[3] <= 160 + 1e-3
        if net[2] < 191:
            assert (out[:, int(np.ceil(net[2])) + 1 :] == (1, 2, 3)).all(), "padding on the right"
        if net[3] < 159:
            assert (out[int(np.ceil(net[3])) + 1 :] == (1, 2, 3)).all(), "padding at the bottom"
    else:
        assert fit == Resize(192 / shape[1], 160 / shape[0], shape[1], shape[0])


def test_detector_matches_pytorch_reference(engine, tiny_checkpoint, synth):
    from edgedet.data import load_dataset
    from edgedet.export.parity import compare
    from edgedet.reference import load_reference
    from edgedet.runtime import Detector

    det = Detector(engine)
    assert det.class_names == ["circle", "square", "triangle"] and det.input_size == (160, 160)
    val = load_dataset(synth.val_json, synth.images_dir)
    images = [val.load_image(i) for i in range(len(val))]
    ref = load_reference(None, str(tiny_checkpoint), device="cpu", score_thresh=0.25)
    ref.model.nms_thresh = 0.45
    got = [det(im) for im in images]
    report = compare([r.filter(0.25) for r in ref(images)], got, "fp32", 0.25)
    # the reference resizes with torch's bilinear kernel, the runtime with OpenCV's: near-identical
    assert report.agreement >= 0.97, report
    batch = det(images[:3])
    assert len(batch) == 3 and all(len(b) == len(g) for b, g in zip(batch, got[:3]))


def test_grayscale_rgba_and_black_images(engine, synth):
    """Grayscale and RGBA detect what their RGB equivalents detect, on an image with objects (on noise they
    compared nothing)."""
    import cv2

    from edgedet.runtime import Detector

    det = Detector(engine)
    for path in sorted(synth.images_dir.iterdir())[-20:]:  # a colour model: find an image it still sees in gray
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        as_rgb = det(np.dstack([gray] * 3))
        if len(as_rgb):
            break
    alpha = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    pairs = [(det(gray), as_rgb), (det(gray[:, :, None]), as_rgb), (det(alpha), det(rgb))]
    for got, want in pairs:
        assert len(want) > 0, "no detections to compare"
        assert np.array_equal(got.labels, want.labels) and np.allclose(got.boxes, want.boxes)
        assert np.allclose(got.scores, want.scores)
    empty = det(np.zeros((50, 70, 3), np.uint8))
    assert len(empty) == 0 and empty.boxes.shape == (0, 4)
    with pytest.raises(DataError):
        det(np.zeros((10, 10, 2), np.uint8))


def test_engine_files_that_cannot_be_used(engine, tmp_path):
    from edgedet.runtime import Detector

    with pytest.raises(BackendError, match="engine not found"):
        Detector(tmp_path / "missing.onnx")
    (tmp_path / "corrupt.onnx").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(BackendError, match="corrupt.onnx"):
        Detector(tmp_path / "corrupt.onnx")
    (tmp_path / "model.tflite").write_bytes(b"x")
    with pytest.raises(BackendError, match="unknown engine type"):
        Detector(tmp_path / "model.tflite")
    with pytest.raises(BackendError, match="edgedet build"):
        Detector(engine, backend="tensorrt")


def test_missing_metadata_falls_back_to_the_engine(engine, tmp_path, capsys):
    from edgedet.runtime import Detector

    model = onnx.load(str(engine))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    det = Detector(bare)
    assert "no metadata" in capsys.readouterr().err
    assert det.input_size == (160, 160) and det.class_name(2) == "2"
    det(np.zeros((60, 80, 3), np.uint8))


def test_run_cli_on_video(engine, synth, tmp_path):
    out = tmp_path / "out.mp4"
    proc = run_edgedet("run", "--engine", str(engine), "--video", str(synth.video), "--save", str(out), "--headless", "--score-thresh", "0.3")
    assert proc.returncode == 0, proc.stderr
    assert "120 frames" in proc.stderr and "stopped: end" in proc.stderr
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 120
    limited = run_edgedet("run", "--engine", str(engine), "--video", str(synth.video), "--headless", "--max-frames", "7")
    assert limited.returncode == 0 and "7 frames" in limited.stderr
    kept = run_edgedet("run", "--engine", str(engine), "--video", str(synth.video), "--save", str(out), "--headless")
    assert kept.returncode == 1 and "--force" in kept.stderr


@pytest.mark.parametrize("source, message", [("cam9", "cannot open video source cam9"), ("nofile.mp4", "video source not found")])
def test_run_cli_bad_sources(engine, source, message):
    proc = run_edgedet("run", "--engine", str(engine), "--video", source, "--headless")
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_run_on_a_video_that_breaks_mid_stream(engine, synth, tmp_path):
    """Damaged frames in the middle: the run decodes what it can, reports the end and exits 0."""
    data = bytearray(synth.video.read_bytes())
    n = len(data)
    data[n // 3 : n // 2] = bytes(n // 2 - n // 3)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    proc = run_edgedet("run", "--engine", str(engine), "--video", str(broken), "--headless")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "stopped: end" in proc.stderr and " 0 frames" not in proc.stderr


def test_run_on_a_truncated_video_is_one_line(engine, synth, tmp_path):
    """Cut in half, the MP4 loses its index (moov atom, written last): it cannot be opened at all."""
    data = synth.video.read_bytes()
    broken = tmp_path / "truncated.mp4"
    broken.write_bytes(data[: len(data) // 2])
    assert_one_line_error(run_edgedet("run", "--engine", str(engine), "--video", str(broken), "--headless"),
                          "cannot open video source")


def test_bench_cli_json(engine):
    proc = run_edgedet("bench", "--engine", str(engine), "--iters", "5", "--warmup", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["p50_ms"] > 0 and r["throughput_ips"] > 0 and r["preprocess_ms"] >= 0 and r["batch"] == 1


def test_predict_engine_matches_reference_output_format(engine, tiny_checkpoint, synth, tmp_path):
    a, b = tmp_path / "engine.json", tmp_path / "torch.json"
    src = str(synth.images_dir / "val_0032*.jpg")
    assert run_edgedet("predict", "--engine", str(engine), "--images", src, "--json", str(a)).returncode == 0
    assert run_edgedet("predict", "--weights", str(tiny_checkpoint), "--images", src, "--json", str(b)).returncode == 0
    ea, eb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ea and set(ea[0]) == set(eb[0])  # the same keys in every result
    assert {e["file_name"] for e in ea} <= {e["file_name"] for e in eb}  # no image detected by the engine alone
    assert abs(len(ea) - len(eb)) <= 1


@pytest.mark.slow
def test_ten_thousand_frames_headless_with_bounded_memory(engine, tmp_path):
    """A long headless run must not grow memory (queues, buffers and sessions are reused)."""
    import resource

    from edgedet.data.synth import write_video
    from edgedet.runtime import Detector
    from edgedet.runtime.pipeline import run_video

    video = write_video(tmp_path / "long.mp4", frames=10_000, size=(160, 120))
    det = Detector(engine, threads=2)
    run_video(det, str(video), headless=True, max_frames=500)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    stats = run_video(det, str(video), headless=True)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert stats.frames == 10_000 and stats.stopped_by == "end"
    assert (after - before) / 1024 < 64, f"peak memory grew by {(after - before) / 1024:.1f} MiB"


def test_no_progress_bars_when_stderr_is_not_a_terminal(engine, synth, tmp_path):
    """Logs and CI output get the result lines, not carriage-return progress bars."""
    proc = run_edgedet("predict", "--engine", str(engine), "--images", str(synth.images_dir / "val_0032*.jpg"),
                       "--json", str(tmp_path / "p.json"))
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "it/s" not in proc.stderr and "img/s" not in proc.stderr, proc.stderr
    assert "predict: 10 images" in proc.stderr


def test_detector_reads_pil_images_and_refuses_ambiguous_arrays(engine, synth):
    """A PIL image is one image (it was a TypeError); bool and int8 arrays, integers outside 0..255 and objects that
    are no images are one-line DataErrors naming what is accepted (they were converted silently)."""
    from PIL import Image

    from edgedet.data.imageio import read_image
    from edgedet.errors import DataError
    from edgedet.runtime import Detector

    det = Detector(engine)
    path = sorted(synth.images_dir.glob("val_*.jpg"))[0]
    rgb = read_image(path)
    want = det(rgb)
    assert len(want) > 0
    for pil in (Image.open(path), Image.fromarray(rgb).convert("RGBA")):
        got = det(pil)
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
    assert len(det([Image.fromarray(rgb), rgb])) == 2
    bad = {"bool": rgb > 128, "int8": rgb.astype(np.int8), "int16 > 255": rgb.astype(np.int16) * 4}
    for what, image in bad.items():
        with pytest.raises(DataError, match="uint8") as e:
            det(image)
        assert "\n" not in str(e.value), what
    with pytest.raises(DataError, match="an image or a list of images"):
        det(42)
    ok = det(rgb.astype(np.int64))  # integers within 0..255 are an image
    np.testing.assert_array_equal(ok.labels, want.labels)
