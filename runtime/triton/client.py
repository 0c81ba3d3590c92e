"""``predict --server`` and ``run --server``: an edgedet end-to-end model on a Triton server, called like a Detector.

Images go over the wire PNG-encoded (lossless, so the server decodes the pixels the client has and the
detections equal a local Detector's), over HTTP (``http://HOST:PORT``) or gRPC (``grpc://HOST:PORT``).
Connection failures (a server restarting) are retried a bounded number of times within a bounded time; a
request the server refuses (an image it cannot decode) is an error at once.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Sequence, Union

import numpy as np

from edgedet.errors import BackendError, DataError
from edgedet.runtime.detections import Detections
from edgedet.runtime.detector import as_rgb, is_single_image
from edgedet.runtime.triton.config import INSTALL_HINT

ImageOrBatch = Union[np.ndarray, Sequence[np.ndarray]]


def parse_server(url: str) -> tuple[str, str]:
    """``(protocol, host:port)`` of ``http://h:p``, ``grpc://h:p`` or ``h:p`` (HTTP)."""
    protocol, _, rest = url.rpartition("://")
    protocol, rest = protocol.lower() or "http", rest.rstrip("/")
    if protocol not in ("http", "grpc") or not rest or ":" not in rest or not rest.rsplit(":", 1)[1].isdigit():
        raise DataError(f"--server must be http://HOST:PORT or grpc://HOST:PORT, not {url!r}")
    return protocol, rest


class ServedDetector:
    """The ``<name>_e2e`` model of an ``edgedet serve export`` repository, as a Detector-like callable."""

    def __init__(self, url: str, model: str, *, timeout_s: float = 30.0, retries: int = 5,
                 retry_window_s: float = 30.0) -> None:
        self.protocol, self.address = parse_server(url)
        self.model, self.timeout_s, self.retries, self.retry_window_s = model, timeout_s, retries, retry_window_s
        try:
            if self.protocol == "grpc":
                import tritonclient.grpc as tc
            else:
                import tritonclient.http as tc
        except (ImportError, RuntimeError) as e:
            raise BackendError(f"tritonclient is not installed ({e}); {INSTALL_HINT}") from None
        self._tc = tc
        self._local = threading.local()
        self._clients: list = []
        self._lock = threading.Lock()
        config = self._call(lambda: self._model_config())
        inputs = [i["name"] for i in config.get("input", [])]
        if inputs != ["image"]:
            raise BackendError(f"model {model!r} on {url} is not an edgedet end-to-end model (its inputs are {inputs}); "
                               "serve it with `edgedet serve export` and use the <name>_e2e model")
        self.metadata: dict = json.loads(config["parameters"]["edgedet_metadata"]["string_value"])
        self.class_names: list[str] = list(self.metadata["classes"])
        self.backend = f"triton {self.protocol}"

    @property
    def _client(self):
        """This thread's client: tritonclient.http runs on gevent, whose clients work only on the thread that made
        them (``run`` calls the detector from its inference thread)."""
        client = getattr(self._local, "client", None)
        if client is None:
            kwargs = {"network_timeout": self.timeout_s, "connection_timeout": self.timeout_s} if self.protocol == "http" else {}
            client = self._local.client = self._tc.InferenceServerClient(self.address, **kwargs)
            with self._lock:
                self._clients.append(client)
        return client

    def _model_config(self) -> dict:
        if self.protocol == "grpc":
            return self._client.get_model_config(self.model, as_json=True, client_timeout=self.timeout_s)["config"]
        return self._client.get_model_config(self.model)

    def _call(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` with bounded retries while the server cannot be reached."""
        from tritonclient.utils import InferenceServerException

        deadline = time.monotonic() + self.retry_window_s
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except (InferenceServerException, OSError) as e:
                if not _unreachable(e):
                    raise BackendError(f"{self.model} on {self.address}: {_message(e)}") from None
                if attempt == self.retries or time.monotonic() > deadline:
                    raise BackendError(f"cannot reach the Triton server at {self.address} ({_message(e)}) after "
                                       f"{attempt + 1} attempts") from None
                time.sleep(min(0.2 * 2**attempt, 2.0))
        raise AssertionError("unreachable")

    def class_name(self, label: int) -> str:
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def __call__(self, images: ImageOrBatch) -> Detections | list[Detections]:
        import cv2

        single = is_single_image(images)
        batch = [images] if single else list(images)
        out: list[Detections] = []
        for image in batch:  # one image per request: the server's dynamic batcher groups concurrent ones
            png = cv2.imencode(".png", cv2.cvtColor(as_rgb(image), cv2.COLOR_RGB2BGR))[1]
            result = self._call(lambda e=png.reshape(1, -1): self._infer(e))
            k = int(result["num_dets"][0, 0])
            out.append(Detections(result["boxes"][0, :k].astype(np.float32), result["scores"][0, :k].astype(np.float32),
                                  result["labels"][0, :k].astype(np.int64)))
        return out[0] if single else out

    def _infer(self, data: np.ndarray) -> dict[str, np.ndarray]:
        """One request: encoded image bytes as UINT8 [1, n]."""
        inp = self._tc.InferInput("image", list(data.shape), "UINT8")
        inp.set_data_from_numpy(data)
        names = ("num_dets", "boxes", "scores", "labels")
        outputs = [self._tc.InferRequestedOutput(n) for n in names]
        kwargs = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        result = self._client.infer(self.model, [inp], outputs=outputs, **kwargs)
        return {n: result.as_numpy(n) for n in names}

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


def _message(e: BaseException) -> str:
    text = e.message() if hasattr(e, "message") and callable(e.message) else str(e)
    return (text or type(e).__name__).strip().splitlines()[0]


def _unreachable(e: BaseException) -> bool:
    """A failure to reach the server (worth a retry), not an answer from it."""
    if isinstance(e, OSError):
        return True
    status = str(getattr(e, "status", lambda: "")() or "")
    text = _message(e).lower()
    # Not timeouts: a server that is slow, not gone, would get the same request again.
    return "unavailable" in status.lower() or any(w in text for w in ("connect", "refused", "reset", "broken pipe",
                                                                          "unavailable"))
