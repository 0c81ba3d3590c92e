"""Where a verb's ``--json`` goes: a file, written atomically and never over an existing one without ``--force``,
or stdout for ``--json`` alone (``-``)."""

from __future__ import annotations

import json
import sys
from typing import Any


def write_json(target: str, obj: Any, *, force: bool = False) -> None:
    if target == "-":
        json.dump(obj, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    from edgedet.fileio import atomic_write_json

    atomic_write_json(target, obj, overwrite=force)


def check_output_target(target: str | None, *, force: bool = False) -> None:
    """Refuse an unusable ``--json FILE`` before the work that produces it starts."""
    if not target or target == "-":
        return
    from pathlib import Path

    from edgedet.errors import EdgedetError
    from edgedet.fileio import require_writable

    if Path(target).exists() and not Path(target).is_dir() and not force:
        raise EdgedetError(f"{target} exists; pass --force to overwrite it")
    require_writable(target)
