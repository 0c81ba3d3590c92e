"""Many video streams through one engine: decode per stream, batch + infer (+ track), results out.

    from edgedet.runtime import Detector, StreamPipeline
    with StreamPipeline(Detector("model.onnx"), ["a.mp4", "cam0"], track=True) as pipe:
        for r in pipe:                        # FrameResult, per stream in frame order
            print(r.stream_name, r.index, r.detections.track_ids)

Why stages: a detector on an edge box is the scarce resource. Each source decodes on its own thread; one
inference thread takes a frame from every stream that has one ready and runs them as one batch (up to the
engine's batch; file streams add consecutive frames when fewer streams than that are ready), then filters and
tracks (one tracker per stream, so track ids are per stream); the consumer — drawing, encoding, a window, the
application — reads results from a bounded queue on its own time. Files lose no frame: a full queue makes the
stages wait. Live sources lose stale frames at their reader instead, so latency stays at about one frame.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from edgedet import log
from edgedet.runtime.detections import Detections
from edgedet.runtime.video import Frame, FrameReader, Source, parse_source

_DONE = object()  # the inference thread's last item
TRACK_LOW_THRESH = 0.1  # ByteTrack's low-score floor


@dataclass
class FrameResult:
    """One frame of one stream with its (tracked) detections in the frame's pixels."""

    stream: int
    stream_name: str
    index: int  # per stream, from 0: a file's frame number
    timestamp: float  # seconds into the file, or the wall clock at capture (live), seconds since the epoch
    captured: float  # time.perf_counter() at decode: latency = perf_counter() at output - captured
    image: np.ndarray  # RGB
    detections: Detections  # track_ids set when tracking


@dataclass
class StreamInfo:
    """What a run knows about each of its sources."""

    name: str  # unique per run, safe as a file name: outputs are named after it
    source: Source
    fps: float
    frames: int = 0  # frames taken for inference
    ended_by: str | None = None  # "end", "max-frames", "stopped" or the error text of a broken source


def stream_names(sources: Sequence[str]) -> list[str]:
    """Names for outputs: a file's stem, ``camN``/``csiN``, else ``streamN``; repeated names get ``-K``."""
    import re

    names, seen = [], {}
    for i, src in enumerate(sources):
        if re.fullmatch(r"(cam|csi)\d+", src):
            base = src
        elif "!" in src or "://" in src:
            base = f"stream{i}"
        else:
            base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(src).stem) or f"stream{i}"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


class StreamPipeline:
    """Sources in, ``FrameResult`` out (iterate it; each stream's results come in frame order).

    ``score_thresh``/``classes`` filter the detections; ``track`` gives each a per-stream track id (ByteTrack,
    ``tracker`` keyword arguments passed on: ``score_thresh`` is its high threshold, so every detection shown
    untracked is tracked, and a tracked object stays through boxes down to 0.1); ``max_frames`` ends each stream after that many frames.
    ``results_queue`` bounds how far inference may run ahead of the consumer (default 8, 2 with a live source). A stream that ends or breaks is
    reported once and the others go on; the iteration ends when every stream has ended or ``stop()`` is called.
    """

    def __init__(self, detector, sources: Sequence[str], *, score_thresh: float = 0.0,
                 classes: set[int] | None = None, track: bool = False, tracker: dict | None = None,
                 max_frames: int | None = None, results_queue: int | None = None, file_queue: int = 4) -> None:
        if not sources:
            raise ValueError("StreamPipeline needs at least one source")
        self.detector = detector
        self.score_thresh, self.classes, self.max_frames = score_thresh, classes, max_frames
        parsed = [parse_source(s) for s in sources]  # every source checked before any thread starts
        self._arrived = threading.Event()
        self._stop = threading.Event()
        self.readers: list[FrameReader] = []
        try:
            for i, src in enumerate(parsed):
                self.readers.append(FrameReader(src, stream=i, queue_size=file_queue, notify=self._arrived))
        except Exception:
            self._stop_readers()
            raise
        self.streams = [StreamInfo(name, r.source, r.fps) for name, r in zip(stream_names(sources), self.readers)]
        self.trackers = None
        if track:
            from edgedet.runtime.tracker import ByteTracker

            # ByteTrack's "high" detections are the ones shown without tracking; boxes down to low_thresh may
            # carry a track through a dip in confidence (its second association) but start none
            # and across labels: detectors flip between similar classes, and per-class tracks pay each flip with
            # an ID switch (benchmarks/tracking_mot.py: 75 -> 31 switches over 5 videos with the tiny fixture)
            kwargs = {"track_thresh": score_thresh, "new_track_thresh": score_thresh, "class_agnostic": True,
                      "low_thresh": min(TRACK_LOW_THRESH, score_thresh), **(tracker or {})}
            self.trackers = [ByteTracker(frame_rate=r.fps, **kwargs) for r in self.readers]
            self.score_thresh = kwargs["low_thresh"]
        self.batches = 0  # engine calls made, for the statistics
        self.infer_seconds = 0.0
        live = any(r.source.live for r in self.readers)  # results waiting for a slow consumer are latency
        self._results: queue.Queue = queue.Queue(maxsize=results_queue or (2 if live else 8))
        self._thread = threading.Thread(target=self._infer_loop, name="edgedet-infer", daemon=True)
        self._thread.start()

    # --- the inference stage ------------------------------------------------------------------------------------
    def _end(self, stream: int, why: str) -> None:
        info = self.streams[stream]
        if info.ended_by is None:
            info.ended_by = why
            if why not in ("end", "max-frames", "stopped"):
                log.warn(f"stream {info.name}: {why}")  # once; the other streams go on

    def _gather(self) -> list[Frame]:
        """Up to the engine's batch of ready frames: one per stream first, then more from file streams."""
        cap = max(len(self.readers), int(getattr(self.detector, "batch_size", 1) or 1))
        batch: list[Frame] = []
        for rounds in range(cap):
            took = False
            for i, reader in enumerate(self.readers):
                if self.streams[i].ended_by is not None or len(batch) >= cap:
                    continue
                if rounds and reader.source.live:
                    continue  # a live stream gives its newest frame, once per batch
                frame = reader.poll()
                if frame is None:
                    if reader.finished:
                        self._end(i, reader.error or "end")
                    continue
                batch.append(frame)
                took = True
                self.streams[i].frames += 1
                if self.max_frames and self.streams[i].frames >= self.max_frames:
                    self._end(i, "max-frames")
                    reader.stop()
            if not took:
                break
        return batch

    def _infer_loop(self) -> None:
        import time

        try:
            while not self._stop.is_set():
                if all(s.ended_by is not None for s in self.streams):
                    break
                self._arrived.clear()
                batch = self._gather()
                if not batch:
                    self._arrived.wait(0.05)
                    continue
                t0 = time.perf_counter()
                found = self.detector([f.image for f in batch])
                self.infer_seconds += time.perf_counter() - t0
                self.batches += 1
                for frame, det in zip(batch, found):
                    det = det.filter(self.score_thresh, self.classes)
                    if self.trackers is not None:
                        det = self.trackers[frame.stream].update(det)
                    info = self.streams[frame.stream]
                    self._put(FrameResult(frame.stream, info.name, frame.index, frame.timestamp, frame.captured,
                                          frame.image, det))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(e)
        finally:
            self._put(_DONE)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._results.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # --- the consumer's side --------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[FrameResult]:
        return self.results()

    def results(self, until: Callable[[], bool] | None = None) -> Iterator[FrameResult]:
        """The results in order; ``until`` (asked before each result, and every 0.1 s while none comes) ends the
        iteration when it returns True, so a caller can stop between two results rather than inside one."""
        while True:
            if until is not None and until():
                return
            try:
                item = self._results.get(timeout=0.1)
            except queue.Empty:
                if not self._thread.is_alive() and self._results.empty():
                    return
                continue
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        """End every stage: readers, then the inference thread; results not yet taken are dropped."""
        self._stop.set()
        self._thread.join(timeout=10.0)
        self._stop_readers()
        for i in range(len(self.streams)):
            self._end(i, "stopped")

    def _stop_readers(self) -> None:
        for reader in self.readers:
            reader.stop()

    def __enter__(self) -> "StreamPipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
