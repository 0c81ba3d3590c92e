"""One-line warnings and notes on stderr, the way the CLI reports everything that is not a result."""

from __future__ import annotations

import sys

_seen: set[str] = set()


def warn(message: str, *, once: bool = False) -> None:
    if once:
        if message in _seen:
            return
        _seen.add(message)
    print(f"edgedet: warning: {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    print(f"edgedet: {message}", file=sys.stderr, flush=True)
