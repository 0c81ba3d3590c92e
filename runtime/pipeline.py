"""``edgedet run``: the outputs stage over ``StreamPipeline`` — draw, encode, JSON Lines, a tiled window.

Inference runs on its own thread (``streams.py``); this stage runs on the main thread because OpenCV's window
must. Every output is finalised when the run ends, however it ends (the end of the files, ``--max-frames``, ``q``,
a closed window, Ctrl-C): MP4s and JSON Lines are written under temporary names and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from edgedet import log
from edgedet.errors import EdgedetError
from edgedet.fileio import atomic_path
from edgedet.runtime.draw import Trails, draw_detections, tile
from edgedet.runtime.streams import FrameResult, StreamPipeline, stream_names
from edgedet.runtime.video import VideoSink, gui_available

WINDOW = "edgedet"
_USER = "user"


@dataclass
class StreamStats:
    name: str
    frames: int = 0  # frames through the outputs
    detections: int = 0
    first: float | None = None  # perf_counter of the first output
    last: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # capture to output
    stopped_by: str = "end"

    @property
    def fps(self) -> float:
        span = self.last - self.first if self.first is not None else 0.0
        return (self.frames - 1) / span if span > 0 and self.frames > 1 else 0.0

    def latency(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0


@dataclass
class RunStats:
    frames: int
    seconds: float
    detections: int
    model_ms: float  # engine time per frame (batched calls divided by the frames in them)
    stopped_by: str  # "end", "max-frames", "user" or the error text of a broken source
    streams: list[StreamStats]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


class JsonLinesSink:
    """One JSON object per frame (every frame, with or without detections), to a file renamed into place when
    closed, or to stdout for ``-``."""

    def __init__(self, path: str, *, overwrite: bool) -> None:
        self._ctx = None
        if path == "-":
            self._file = sys.stdout
            return
        self._ctx = atomic_path(path, overwrite=overwrite)
        self._file = open(self._ctx.__enter__(), "w", encoding="utf-8")

    def write(self, r: FrameResult, class_names: Sequence[str]) -> None:
        det = r.detections
        ids = det.track_ids if getattr(det, "track_ids", None) is not None else [None] * len(det)
        dets = [{"label": class_names[k] if 0 <= k < len(class_names) else str(k), "class_id": int(k),
                 "score": round(float(s), 4), "box": [round(float(v), 2) for v in b],
                 "track_id": None if t is None else int(t)}
                for b, s, k, t in zip(det.boxes, det.scores, det.labels.tolist(), ids)]
        self._file.write(json.dumps({"stream": r.stream_name, "frame": r.index, "timestamp": round(r.timestamp, 6),
                                     "detections": dets}) + "\n")

    def close(self) -> None:
        if self._ctx is None:
            self._file.flush()
            return
        self._file.close()
        self._ctx.__exit__(None, None, None)


def output_paths(sources: Sequence[str], save: str | None, *, overwrite: bool,
                 jsonl: str | None = None) -> tuple[list[Path | None], list[Path | None]]:
    """Per stream: the MP4 and the JSON Lines ``save`` asks for. A path ending in ``.mp4`` is one stream's video
    (as before); anything else is a folder with ``<stream>.mp4`` and ``<stream>.jsonl`` per stream. Existing files
    (those and ``jsonl``, all streams in one file) are refused here, before any stream starts, unless ``overwrite``."""
    n = len(sources)
    if not overwrite and jsonl not in (None, "-") and Path(jsonl).exists():
        raise EdgedetError(f"{jsonl} exists; pass --force to overwrite it")
    if save is None:
        return [None] * n, [None] * n
    if save.lower().endswith(".mp4"):
        if n > 1:
            raise EdgedetError(f"--save {save}: one file holds one stream; give a folder for {n} streams")
        videos, jsonls = [Path(save)], [None]
    else:
        folder = Path(save)
        if folder.exists() and not folder.is_dir():
            raise EdgedetError(f"--save {save}: not a folder (give a folder, or a .mp4 file for one stream)")
        names = stream_names(sources)
        videos, jsonls = [folder / f"{m}.mp4" for m in names], [folder / f"{m}.jsonl" for m in names]
    if not overwrite:
        for p in videos + jsonls:
            if p is not None and p.exists():
                raise EdgedetError(f"{p} exists; pass --force to overwrite it")
    return videos, jsonls


def _quiet_qt_fonts() -> None:
    """opencv-python's Qt looks for fonts in its own wheel, finds none and warns on every start; point it at
    the system's fonts where the user has not chosen any."""
    import os

    for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype", "/usr/share/fonts"):
        if os.path.isdir(folder):
            os.environ.setdefault("QT_QPA_FONTDIR", folder)
            return


class _Window:
    """The streams tiled in one window; redrawn at most ~30 times a second when there are several."""

    def __init__(self, streams: int) -> None:
        _quiet_qt_fonts()
        self.canvases: list[np.ndarray | None] = [None] * streams
        self._shown = 0.0

    def show(self, stream: int, canvas: np.ndarray) -> bool:
        """False when the user asked to stop (q, Esc, or the window closed)."""
        self.canvases[stream] = canvas
        now = time.perf_counter()
        if len(self.canvases) == 1 or now - self._shown >= 1 / 30:
            image = tile(self.canvases)
            cv2.imshow(WINDOW, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            self._shown = now
        key = cv2.waitKey(1) & 0xFF
        return not (key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1)


@contextlib.contextmanager
def _stop_between_frames() -> Iterator[list[bool]]:
    """Ctrl-C and SIGTERM (how systemd and Docker stop a service) set a flag the outputs loop reads between frames,
    so a frame's JSON line and its video frame are written together or not at all (a KeyboardInterrupt raised
    between the two left a JSON Lines file one line longer than its MP4). A second Ctrl-C raises as usual. Signal
    handlers belong to the main thread; elsewhere the application's own handling stands."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame) -> None:
        if flag[0] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag[0] = True

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_video(detector, sources: str | Sequence[str], *, save: str | None = None, jsonl: str | None = None,
              headless: bool = False, conf: float = 0.4, max_frames: int | None = None,
              classes: set[int] | None = None, track: bool = False, overwrite: bool = False) -> RunStats:
    """Run ``detector`` on every source at once until they end, ``max_frames`` each, or the user stops."""
    sources = [sources] if isinstance(sources, str) else list(sources)
    videos, jsonls = output_paths(sources, save, overwrite=overwrite, jsonl=jsonl)
    show = not headless and gui_available()
    if not headless and not show:
        log.note("no display or OpenCV GUI support: running headless (`edgedet doctor` shows which)")
    pipe = StreamPipeline(detector, sources, score_thresh=conf, classes=classes, track=track, max_frames=max_frames)
    names = [s.name for s in pipe.streams]
    stats = [StreamStats(n) for n in names]
    sinks: list[VideoSink | None] = [None] * len(sources)
    lines = [JsonLinesSink(str(p), overwrite=overwrite) if p else None for p in jsonls]
    shared = JsonLinesSink(jsonl, overwrite=overwrite) if jsonl else None
    trails = [Trails() for _ in sources] if track else None
    window = _Window(len(sources)) if show else None
    user_stop = False
    start = time.perf_counter()
    with _stop_between_frames() as stop_requested:
        try:
            for r in pipe.results(until=lambda: stop_requested[0]):
                st = stats[r.stream]
                if st.first is None:
                    st.first = time.perf_counter()
                st.frames += 1
                st.detections += len(r.detections)
                for sink in (lines[r.stream], shared):
                    if sink is not None:
                        sink.write(r, detector.class_names)
                if window is not None or videos[r.stream] is not None:
                    canvas = draw_detections(r.image, r.detections, detector.class_names)
                    if trails is not None:
                        trails[r.stream].update(r.detections)
                        trails[r.stream].draw(canvas)
                    label = f"{st.fps:.1f} FPS" if len(sources) == 1 else f"{r.stream_name}  {st.fps:.1f} FPS"
                    cv2.putText(canvas, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA)
                    if videos[r.stream] is not None:
                        if sinks[r.stream] is None:
                            h, w = canvas.shape[:2]
                            sinks[r.stream] = VideoSink(videos[r.stream], pipe.streams[r.stream].fps, (w, h),
                                                        overwrite=overwrite)
                        sinks[r.stream].write(canvas)
                    if window is not None and not window.show(r.stream, canvas):
                        user_stop = True
                        break
                st.last = time.perf_counter()
                st.latencies_ms.append(1000 * (st.last - r.captured))
        except KeyboardInterrupt:
            user_stop = True
        finally:
            pipe.stop()
            for sink in [*sinks, *lines, shared]:
                if sink is not None:
                    sink.close()
            if window is not None:
                cv2.destroyAllWindows()
    user_stop = user_stop or stop_requested[0]
    seconds = time.perf_counter() - start
    for st, info in zip(stats, pipe.streams):
        st.stopped_by = _USER if user_stop else (info.ended_by or "end")
    frames = sum(s.frames for s in stats)
    return RunStats(frames, seconds, sum(s.detections for s in stats), 1000 * pipe.infer_seconds / max(frames, 1),
                    _overall(stats), stats)


def _overall(stats: list[StreamStats]) -> str:
    """One word for the run: the first broken stream's error, else user, max-frames or end."""
    reasons = [s.stopped_by for s in stats]
    broken = [r for r in reasons if r not in ("end", "max-frames", _USER, "stopped")]
    if broken:
        return broken[0]
    for word in (_USER, "max-frames"):
        if word in reasons:
            return word
    return "end"
