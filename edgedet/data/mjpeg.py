"""A live source on 127.0.0.1 for tests and benchmarks: frames served as MJPEG over HTTP
(``multipart/x-mixed-replace``), what IP cameras serve, so ``edgedet run`` reads it through OpenCV's FFmpeg as
it would a camera — paced at the camera's rate, frames lost when the reader is late, and a hang-up at the end."""

from __future__ import annotations

import http.server
import threading
import time
from typing import Sequence

import cv2
import numpy as np


class MjpegCamera:
    """``frames`` (RGB) as JPEGs at ``fps`` to each client, then the connection closes; ``url`` to open it."""

    def __init__(self, frames: Sequence[np.ndarray], fps: float = 30.0) -> None:
        jpegs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                start = time.perf_counter()
                try:
                    for i, jpeg in enumerate(jpegs):
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpeg) + jpeg + b"\r\n")
                        self.wfile.flush()
                        time.sleep(max(0.0, start + (i + 1) / fps - time.perf_counter()))
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:  # no request lines on stderr
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.mjpg"
        self._thread = threading.Thread(target=self.server.serve_forever, name="edgedet-mjpeg", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
