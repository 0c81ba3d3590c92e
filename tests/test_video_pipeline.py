"""``edgedet run`` on several streams: batched through one engine, tracked, per-stream outputs, live sources.

Real videos from ``synth``; a real live source: an MJPEG-over-HTTP server (``multipart/x-mixed-replace``, what
IP cameras serve) on 127.0.0.1 that OpenCV's FFmpeg reads as it would a camera.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import assert_one_line_error, run_edgedet, video_frames
from edgedet.data.mjpeg import MjpegCamera

SCORE = 0.3


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Three different synthetic videos of 120 frames."""
    from edgedet.data.synth import write_video

    out = tmp_path_factory.mktemp("streams")
    return [write_video(out / f"{name}.mp4", seed=seed) for name, seed in (("a", 0), ("b", 5), ("c", 9))]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _frame_count(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, _ = cap.read()
    cap.release()
    return n if ok else 0


def test_several_streams_every_frame_in_order_with_the_detectors_boxes(fixture_exports, videos, tmp_path):
    """Three file streams, one run: each stream's JSON Lines has every frame once, in order, with the boxes the
    Detector finds on that stream's own frames (streams never mixed up); each MP4 has every frame."""
    from edgedet.runtime import Detector

    out = tmp_path / "out"
    proc = run_edgedet("run", "--engine", str(fixture_exports["dyn4"]), *sum((["--video", str(v)] for v in videos), []),
                       "--save", str(out), "--headless", "--score-thresh", str(SCORE))
    assert proc.returncode == 0, proc.stderr
    assert "360 frames" in proc.stderr and "stopped: end" in proc.stderr, proc.stderr
    det = Detector(fixture_exports["fp32"])
    compared = 0
    for video in videos:
        records = _jsonl(out / f"{video.stem}.jsonl")
        assert [r["frame"] for r in records] == list(range(120)), video.stem
        assert {r["stream"] for r in records} == {video.stem}
        assert _frame_count(out / f"{video.stem}.mp4") == 120
        for frame, record in zip(video_frames(video), records):
            want = det(frame).filter(SCORE)
            got = record["detections"]
            assert [d["class_id"] for d in got] == want.labels.tolist()
            if len(want):
                np.testing.assert_allclose([d["box"] for d in got], want.boxes, atol=0.02)
                np.testing.assert_allclose([d["score"] for d in got], want.scores, atol=1e-3)
            compared += len(want)
    assert compared > 100, compared
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


def test_streams_share_batched_engine_calls(fixture_exports, videos):
    """Four streams through a dynamic-batch export: engine calls carry several streams' frames."""
    from edgedet.runtime import Detector, StreamPipeline

    det = Detector(fixture_exports["dyn4"])
    seen: dict[int, list[int]] = {}
    with StreamPipeline(det, [str(v) for v in (*videos, videos[0])], score_thresh=SCORE) as pipe:
        for r in pipe:
            seen.setdefault(r.stream, []).append(r.index)
        batches = pipe.batches
    assert sorted(seen) == [0, 1, 2, 3] and all(v == list(range(120)) for v in seen.values())
    assert 480 / batches >= 2.0, f"{batches} engine calls for 480 frames: not batched"


def test_tracking_ids_are_per_stream(fixture_exports, videos, tmp_path):
    """The same video as two streams gets the same track ids in both (one tracker per stream, ids from 1), and
    tracks persist: far fewer ids than detections."""
    out = tmp_path / "tracked.jsonl"
    proc = run_edgedet("run", "--engine", str(fixture_exports["fp32"]), "--video", str(videos[0]), "--video",
                       str(videos[0]), "--track", "--jsonl", str(out), "--headless", "--score-thresh", str(SCORE))
    assert proc.returncode == 0, proc.stderr
    records = _jsonl(out)
    by_stream: dict[str, list] = {}
    for r in records:
        by_stream.setdefault(r["stream"], []).append([d["track_id"] for d in r["detections"]])
    assert sorted(by_stream) == ["a", "a-2"]
    first, second = by_stream["a"], by_stream["a-2"]
    assert first == second and len(first) == 120
    ids = [t for frame in first for t in frame]
    assert ids and None not in ids and min(ids) == 1
    assert len(set(ids)) * 10 <= len(ids), (len(set(ids)), len(ids))


def test_a_live_stream_that_breaks_is_reported_once_and_the_others_go_on(fixture_exports, videos, tmp_path):
    camera = MjpegCamera(video_frames(videos[1])[:40])
    try:
        out = tmp_path / "all.jsonl"
        proc = run_edgedet("run", "--engine", str(fixture_exports["fp32"]), "--video", str(videos[0]), "--video",
                           camera.url, "--jsonl", str(out), "--headless")
    finally:
        camera.close()
    assert proc.returncode == 1, proc.stderr  # a camera that stops is an error, after the others finished
    assert proc.stderr.count("stopped delivering frames") == 3, proc.stderr  # warning, stream line, run line
    assert proc.stderr.count("warning") == 1, proc.stderr
    records = _jsonl(out)
    files = [r["frame"] for r in records if r["stream"] == "a"]
    live = [r for r in records if r["stream"] == "stream1"]
    assert files == list(range(120))
    assert 0 < len(live) <= 40
    assert all(r["timestamp"] > 1.6e9 for r in live), "live timestamps are the wall clock at capture"


def test_a_live_stream_keeps_only_its_newest_frame(fixture_exports, videos):
    """A consumer slower than the camera: frames are dropped at the source, and latency stays bounded."""
    from edgedet.runtime import Detector, StreamPipeline

    camera = MjpegCamera(video_frames(videos[0])[:90], fps=30)
    latencies, indices = [], []
    try:
        with StreamPipeline(Detector(fixture_exports["fp32"]), [camera.url]) as pipe:
            for r in pipe:
                time.sleep(0.1)  # a 10 FPS consumer on a 30 FPS camera
                latencies.append(time.perf_counter() - r.captured)
                indices.append(r.index)
    finally:
        camera.close()
    assert 5 < len(indices) < 60, len(indices)  # about a third of 90
    steps = np.diff(indices)
    assert steps.min() >= 1 and steps.max() > 1, indices  # in order, with frames skipped
    assert max(latencies) < 0.6, max(latencies)


def test_sigint_finalises_every_output(fixture_exports, tmp_path):
    """Ctrl-C in the middle of two long streams: exit 0, every MP4 readable with as many frames as its JSON Lines."""
    from edgedet.data.synth import write_video

    sources = [write_video(tmp_path / f"long{i}.mp4", frames=3000, size=(160, 120), seed=i) for i in range(2)]
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "edgedet", "run", "--engine", str(fixture_exports["fp32"]),
                             "--video", str(sources[0]), "--video", str(sources[1]), "--save", str(out),
                             "--headless"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob(".long*.mp4.*.tmp"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not start writing"
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and "stopped: user" in err and "Traceback" not in err, err
    for name in ("long0", "long1"):
        lines = _jsonl(out / f"{name}.jsonl")
        assert 0 < len(lines) < 3000
        assert _frame_count(out / f"{name}.mp4") == len(lines), name
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


def test_output_refusals_are_one_line(fixture_exports, videos, tmp_path):
    engine = str(fixture_exports["fp32"])
    two = ["--video", str(videos[0]), "--video", str(videos[1])]
    assert_one_line_error(run_edgedet("run", "--engine", engine, *two, "--save", str(tmp_path / "x.mp4"), "--headless"),
                          "one file holds one stream")
    folder = tmp_path / "kept"
    folder.mkdir()
    (folder / "b.jsonl").write_text("mine\n")
    assert_one_line_error(run_edgedet("run", "--engine", engine, *two, "--save", str(folder), "--headless"),
                          "b.jsonl exists", "--force")
    assert (folder / "b.jsonl").read_text() == "mine\n" and not (folder / "a.mp4").exists()
    assert_one_line_error(run_edgedet("run", "--engine", engine, *two, "--jsonl", str(folder / "b.jsonl"),
                                      "--headless"), "b.jsonl exists", "--force")
    assert (folder / "b.jsonl").read_text() == "mine\n"
    assert_one_line_error(run_edgedet("run", "--engine", engine, *two, "--video", "nofile.mp4", "--headless"),
                          "video source not found: nofile.mp4")
