"""``edgedet run``: frames in, detections drawn, FPS measured; a window when possible, else headless."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2

from edgedet import log
from edgedet.runtime.detector import Detector
from edgedet.runtime.draw import draw_detections
from edgedet.runtime.video import FrameReader, VideoSink, gui_available, parse_source

WINDOW = "edgedet"


@dataclass
class RunStats:
    frames: int
    seconds: float
    detections: int
    model_ms: float  # mean time inside the detector call (resize + engine + mapping)
    stopped_by: str  # "end", "max-frames", "user" or the error text of a broken source

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def _quiet_qt_fonts() -> None:
    """opencv-python's Qt looks for fonts in its own wheel, finds none and warns on every start; point it at
    the system's fonts where the user has not chosen any."""
    import os

    for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype", "/usr/share/fonts"):
        if os.path.isdir(folder):
            os.environ.setdefault("QT_QPA_FONTDIR", folder)
            return


def run_video(detector: Detector, source: str, *, save: str | None = None, headless: bool = False,
              conf: float = 0.4, max_frames: int | None = None, classes: set[int] | None = None,
              overwrite: bool = False) -> RunStats:
    reader = FrameReader(parse_source(source))
    show = not headless and gui_available()
    if not headless and not show:
        log.note("no display or OpenCV GUI support: running headless (`edgedet doctor` shows which)")
    if show:
        _quiet_qt_fonts()
    sink = None
    frames = dets_total = 0
    model_s = 0.0
    stopped_by = "end"
    start = time.perf_counter()
    fps = 0.0
    try:
        for frame in reader:
            t0 = time.perf_counter()
            det = detector(frame).filter(conf, classes)
            model_s += time.perf_counter() - t0
            frames += 1
            dets_total += len(det)
            if show or save:
                canvas = draw_detections(frame, det, detector.class_names)
                elapsed = time.perf_counter() - start
                fps = frames / elapsed if elapsed else 0.0
                cv2.putText(canvas, f"{fps:.1f} FPS", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA)
                if save:
                    if sink is None:
                        h, w = canvas.shape[:2]
                        sink = VideoSink(save, reader.fps, (w, h), overwrite=overwrite)
                    sink.write(canvas)
                if show:
                    cv2.imshow(WINDOW, cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
                    key = cv2.waitKey(1) & 0xFF
                    if key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                        stopped_by = "user"  # q, Esc, or the window closed
                        break
            if max_frames and frames >= max_frames:
                stopped_by = "max-frames"
                break
    except KeyboardInterrupt:
        stopped_by = "user"
    finally:
        reader.stop()
        if sink is not None:
            sink.close()
        if show:
            cv2.destroyAllWindows()
    if reader.error and stopped_by == "end":
        stopped_by = reader.error
        log.warn(reader.error)
    seconds = time.perf_counter() - start
    return RunStats(frames, seconds, dets_total, 1000 * model_s / max(frames, 1), stopped_by)
