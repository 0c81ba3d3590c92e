"""The one place ``tensorrt`` is imported, and its one process-wide logger (TensorRT requires a logger that
outlives every builder and runtime; the plugin library is registered with it once)."""

from __future__ import annotations

import logging
from typing import Any

from edgedet.errors import BackendError

_log = logging.getLogger("edgedet.runtime.tensorrt")

INSTALL_HINT = 'pip install ".[tensorrt]" in edgedet\'s clone (on a Jetson, TensorRT comes with JetPack)'


def import_tensorrt(where: str = "") -> Any:
    """``tensorrt``, or one :class:`BackendError` line: why the import failed and ``where`` to go instead
    (default: how to install it)."""
    try:
        import tensorrt as trt
    except ImportError as e:
        reason = str(e) or "no module named 'tensorrt'"
        raise BackendError(f"TensorRT is not installed here: {reason}; {where or INSTALL_HINT}") from None
    return trt


def tensorrt_version() -> str | None:
    """The installed TensorRT's version, or None."""
    try:
        return import_tensorrt().__version__
    except BackendError:
        return None


_LOGGER: Any = None


def trt_logger(trt: Any) -> Any:
    """One process-wide logger (TensorRT requires it to outlive every runtime), forwarding to ``logging``;
    TensorRT's plugin library is registered with it once, for engines that contain EfficientNMS_TRT."""
    global _LOGGER
    if _LOGGER is None:
        levels = {trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL, trt.ILogger.Severity.ERROR: logging.ERROR,
                  trt.ILogger.Severity.WARNING: logging.WARNING, trt.ILogger.Severity.INFO: logging.DEBUG,
                  trt.ILogger.Severity.VERBOSE: logging.DEBUG}

        class _Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity: Any, msg: str) -> None:
                _log.log(levels.get(severity, logging.WARNING), "TensorRT: %s", msg)

        logger = _Logger()
        trt.init_libnvinfer_plugins(logger, "")
        _LOGGER = logger
    return _LOGGER
