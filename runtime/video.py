"""Video sources (USB/CSI cameras, files, URLs, GStreamer pipelines) read on their own thread, and sinks.

Capture overlaps inference: a reader thread decodes into a small queue. Files deliver every frame in
order; live sources keep only the newest frames so latency does not build up when inference is slower.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from edgedet.errors import DataError
from edgedet.fileio import atomic_path

CSI_PIPELINE = (
    "nvarguscamerasrc sensor-id={id} ! video/x-raw(memory:NVMM),width={w},height={h},framerate={fps}/1 ! "
    "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=2"
)


@dataclass(frozen=True)
class Source:
    target: Any  # what cv2.VideoCapture opens
    api: int
    live: bool
    label: str


def parse_source(src: str, *, csi_size: tuple[int, int] = (1280, 720), csi_fps: int = 30) -> Source:
    """``camN`` (USB camera N), ``csiN`` (Jetson CSI camera), a GStreamer pipeline (contains ``!``),
    an RTSP/HTTP URL, or a video file."""
    m = re.fullmatch(r"cam(\d+)", src)
    if m:
        return Source(int(m.group(1)), cv2.CAP_ANY, True, src)
    m = re.fullmatch(r"csi(\d+)", src)
    if m:
        pipe = CSI_PIPELINE.format(id=m.group(1), w=csi_size[0], h=csi_size[1], fps=csi_fps)
        return Source(pipe, cv2.CAP_GSTREAMER, True, src)
    if "!" in src:
        return Source(src, cv2.CAP_GSTREAMER, True, "gstreamer pipeline")
    if re.match(r"^(rtsp|rtmp|http|https)://", src):
        return Source(src, cv2.CAP_FFMPEG, True, src)
    if not Path(src).is_file():
        raise DataError(f"video source not found: {src} (use camN, csiN, a file, an rtsp:// URL or a GStreamer pipeline)")
    return Source(src, cv2.CAP_ANY, False, src)


def open_capture(source: Source) -> cv2.VideoCapture:
    quiet = getattr(getattr(cv2, "utils", None), "logging", None)
    if quiet is not None:  # OpenCV's own multi-line warnings would bury our one-line error
        quiet.setLogLevel(quiet.LOG_LEVEL_ERROR)
    cap = cv2.VideoCapture(source.target, source.api)
    if not cap.isOpened():
        hint = ""
        if source.api == cv2.CAP_GSTREAMER and not opencv_has_gstreamer():
            hint = " (this OpenCV has no GStreamer support; `edgedet doctor` shows it)"
        raise DataError(f"cannot open video source {source.label}{hint}")
    return cap


@dataclass
class Frame:
    """One decoded frame of one stream, with what the outputs and the latency figures need."""

    stream: int  # the stream's position among the run's sources
    index: int  # 0-based, per stream: a file's frame number
    timestamp: float  # seconds into the file (files), or the wall clock at capture, seconds since the epoch (live)
    captured: float  # time.perf_counter() when decoded: capture-to-output latency starts here
    image: np.ndarray  # RGB


class FrameReader:
    """Decode one source on a background thread into a small queue.

    Files deliver every frame in order (the reader waits when the queue is full); live sources keep only the
    newest frame (the queue holds one, the older one is dropped), so latency does not build up when inference
    is slower than the camera. ``poll()`` takes what is ready without waiting; iterating waits; ``stop()`` ends
    it early. ``notify`` is set whenever a frame (or the end) arrives, so one consumer can wait on many readers.
    """

    def __init__(self, source: Source, *, stream: int = 0, queue_size: int = 4,
                 notify: threading.Event | None = None) -> None:
        self.source = source
        self.stream = stream
        self.cap = open_capture(source)
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        self.frames: queue.Queue = queue.Queue(maxsize=1 if source.live else queue_size)
        self.error: str | None = None
        self.finished = False  # the end was taken from the queue
        self._notify = notify
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"edgedet-capture-{stream}", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                if self.source.live:  # never wait: a reader that waits leaves the frames in the socket, late
                    self.frames.put_nowait(item)
                else:
                    self.frames.put(item, timeout=0.1)
                break
            except queue.Full:
                if self.source.live:  # live: drop the oldest frame rather than fall behind
                    try:
                        self.frames.get_nowait()
                    except queue.Empty:
                        pass
        if self._notify is not None:
            self._notify.set()

    def _read(self) -> None:
        index = 0
        try:
            while not self._stop.is_set():
                ok, frame = self.cap.read()
                if not ok or frame is None:
                    if self.source.live:
                        self.error = f"{self.source.label} stopped delivering frames"
                    break
                now = time.time() if self.source.live else index / self.fps
                self._put(Frame(self.stream, index, now, time.perf_counter(), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
                index += 1
        except cv2.error as e:
            self.error = f"{self.source.label} broke mid-stream: {str(e).strip().splitlines()[-1]}"
        finally:
            self._put(None)

    def poll(self) -> Frame | None:
        """The next frame if one is ready, else None; after the end, ``finished`` is True."""
        if self.finished:
            return None
        try:
            frame = self.frames.get_nowait()
        except queue.Empty:
            return None
        self.finished = frame is None
        return frame

    def __iter__(self) -> Iterator[Frame]:
        while not self.finished:
            frame = self.frames.get()
            if frame is None:
                self.finished = True
                return
            yield frame

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.cap.release()


class VideoSink:
    """An MP4 written under a temporary name and renamed into place when closed, so an interrupted
    run never leaves a truncated file under the final name."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], *, overwrite: bool = False) -> None:
        self._ctx = atomic_path(path, overwrite=overwrite)
        self._atomic_tmp = self._ctx.__enter__()
        self._tmp = self._atomic_tmp.with_suffix(".mp4")  # OpenCV picks the container by suffix
        self.path = Path(path)
        self.writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            self._ctx.__exit__(None, None, None)
            raise DataError(f"cannot write video {path} (no mp4v encoder in this OpenCV)")

    def write(self, frame_rgb: np.ndarray) -> None:
        self.writer.write(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self.writer.release()
        self._tmp.replace(self._atomic_tmp)
        self._ctx.__exit__(None, None, None)


def opencv_build_field(name: str) -> str | None:
    """One field of ``cv2.getBuildInformation()`` (``GUI``, ``GStreamer`` …), whatever its padding; None if absent."""
    m = re.search(rf"^\s*{re.escape(name)}:\s*(.+?)\s*$", cv2.getBuildInformation(), re.MULTILINE)
    return m.group(1) if m else None


def opencv_gui_backend() -> str | None:
    """The GUI backend this OpenCV was built with (``QT5``, ``GTK3`` …), or None for a headless build."""
    gui = opencv_build_field("GUI")
    return None if gui is None or gui.upper() == "NONE" else gui


def opencv_has_gstreamer() -> bool:
    return (opencv_build_field("GStreamer") or "NO").upper().startswith("YES")


def gui_available() -> bool:
    """OpenCV built with a GUI backend and a display to show it on."""
    import os

    return opencv_gui_backend() is not None and bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
