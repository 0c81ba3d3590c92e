"""edgedet's one logging system: the standard ``logging`` module under the ``edgedet`` logger.

Every module logs to a child of ``edgedet`` (``edgedet.export.tensorrt``, ``edgedet.runtime.tensorrt`` …)
or through :func:`warn`/:func:`note`; one handler prints them to stderr as ``edgedet: …`` lines. Debug records
(TensorRT's INFO/VERBOSE log, calibration progress) show with ``--verbose`` (:func:`set_verbose`). The root
logger is never touched: an application that embeds the runtime keeps its own logging, and can take edgedet's
records by adding a handler to ``logging.getLogger("edgedet")``.
"""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("edgedet")
_seen: set[str] = set()


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (pytest and tqdm swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"edgedet: error: {msg}"
        if record.levelno >= logging.WARNING:
            return f"edgedet: warning: {msg}"
        if record.levelno >= logging.INFO:
            return f"edgedet: {msg}"
        where = record.name.removeprefix("edgedet.") if record.name != "edgedet" else ""
        return f"edgedet: debug: {where + ': ' if where else ''}{msg}"


def _handler() -> logging.Handler:
    for h in LOGGER.handlers:
        if isinstance(h, _StderrHandler):
            return h
    h = _StderrHandler()
    h.setFormatter(_Format())
    LOGGER.addHandler(h)
    LOGGER.propagate = False  # one line per record, whatever the application's root logger does
    if LOGGER.level == logging.NOTSET:
        LOGGER.setLevel(logging.INFO)
    return h


def set_verbose(verbose: bool) -> None:
    """``--verbose``: debug records (TensorRT's log, calibration progress) on stderr too."""
    _handler()
    LOGGER.setLevel(logging.DEBUG if verbose else logging.INFO)


def get(name: str) -> logging.Logger:
    """A child logger (``edgedet.<name>``), printed by edgedet's handler."""
    _handler()
    return LOGGER.getChild(name)


def warn(message: str, *, once: bool = False) -> None:
    if once:
        if message in _seen:
            return
        _seen.add(message)
    _handler()
    LOGGER.warning(message)


def note(message: str) -> None:
    _handler()
    LOGGER.info(message)


def debug(message: str) -> None:
    _handler()
    LOGGER.debug(message)
