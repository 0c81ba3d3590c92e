"""Latency and throughput of an engine, with host pre- and post-processing timed apart from the model."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from edgedet.runtime.detector import Detector


@dataclass
class BenchResult:
    engine: str
    backend: str
    batch: int
    iters: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_ips: float  # images per second through the model alone
    preprocess_ms: float  # host resize per batch
    postprocess_ms: float  # host box mapping per batch

    def to_dict(self) -> dict:
        return asdict(self)


def _synthetic_frames(n: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Camera-sized frames with some structure (not all zeros, which some kernels shortcut)."""
    rng = np.random.default_rng(seed)
    h, w = 480, 640
    base = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    import cv2

    return [cv2.resize(np.roll(base, i, axis=1), (w, h), interpolation=cv2.INTER_LINEAR) for i in range(n)]


def benchmark(detector: Detector, *, batch: int | None = None, iters: int = 100, warmup: int = 10) -> BenchResult:
    from edgedet.runtime.preprocess import preprocess_batch

    batch = batch or detector.batch_size
    frames = _synthetic_frames(batch, detector.input_size)
    buf = np.zeros((max(batch, detector.batch_size), *detector.input_size, 3), np.uint8)
    resized, fits = preprocess_batch(frames, detector.input_size, detector.resize, detector.pad_value, out=buf)
    feed = resized if detector.dynamic_batch else buf[: detector.batch_size]
    for _ in range(warmup):
        detector.raw(feed)
    model_ms, pre_ms, post_ms = [], [], []
    for _ in range(iters):
        t0 = time.perf_counter()
        _, fits = preprocess_batch(frames, detector.input_size, detector.resize, detector.pad_value, out=buf)
        t1 = time.perf_counter()
        r = detector.raw(feed)
        t2 = time.perf_counter()
        for b in range(batch):
            fits[b].to_original(r["boxes"][b, : int(r["num_dets"][b, 0])])
        t3 = time.perf_counter()
        pre_ms.append((t1 - t0) * 1e3)
        model_ms.append((t2 - t1) * 1e3)
        post_ms.append((t3 - t2) * 1e3)
    lat = np.array(model_ms)
    return BenchResult(
        str(detector.path), detector.backend, batch, iters, float(lat.mean()), float(np.percentile(lat, 50)),
        float(np.percentile(lat, 90)), float(np.percentile(lat, 99)), 1000.0 * batch / float(lat.mean()),
        float(np.mean(pre_ms)), float(np.mean(post_ms)),
    )
