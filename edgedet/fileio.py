"""Atomic writes: an interrupted run never leaves a half-written file under the final name."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from edgedet.errors import EdgedetError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    With ``overwrite=False`` an existing file is kept and an error names the way out.
    """
    final = Path(path)
    if final.is_dir():
        raise EdgedetError(f"{final} is a directory; give a file path")
    if not overwrite and final.exists():
        raise EdgedetError(f"{final} exists; pass --force to overwrite it")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as e:  # named by the target, not by the temporary file the user never asked for
        raise EdgedetError(f"cannot write {final}: {(e.strerror or str(e)).lower()}") from None
    os.fchmod(fd, _plain_open_mode())  # mkstemp makes 0600; the file gets what open() would give it
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except Exception as e:  # noqa: BLE001 - writers fail in their own words on a full disk (torch: "unexpected pos")
        full = _disk_full(final.parent)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC or full is not None:
            raise EdgedetError(f"cannot write {final}: no space left on its disk ({full or 0} bytes free); "
                               "nothing was written under that name") from None
        if isinstance(e, OSError):
            raise EdgedetError(f"cannot write {final}: {(e.strerror or str(e)).lower()}") from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _disk_full(folder: Path, margin: int = 1 << 20) -> int | None:
    """The free bytes of ``folder``'s filesystem when under ``margin`` (a write there just failed for space)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    return free if free < margin else None


def _plain_open_mode() -> int:
    """``0o666`` less the process umask: the mode a plain ``open(path, "w")`` creates files with."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, overwrite: bool = True) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n", overwrite=overwrite)


def require_writable(path: str | os.PathLike, *, folder: bool = False, need_bytes: int = 16 * 2**20) -> Path:
    """Fail in one line *before* long work when ``path`` (a file, or with ``folder=True`` a folder) cannot be
    written: a directory where a file goes, a read-only or missing-permission ancestor, or less than
    ``need_bytes`` free on its filesystem. Nothing is created."""
    target = Path(path)
    if not folder and target.is_dir():
        raise EdgedetError(f"{target} is a directory; give a file path")
    if folder and target.exists() and not target.is_dir():
        raise EdgedetError(f"{target} is a file; give a folder")
    existing = target if folder and target.is_dir() else target.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise EdgedetError(f"cannot create {target}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise EdgedetError(f"cannot write {target}: {existing} is not writable")
    free = shutil.disk_usage(existing).free
    if free < need_bytes:
        raise EdgedetError(f"cannot write {target}: {free / 2**20:.1f} MiB free on its disk, "
                           f"{need_bytes / 2**20:.0f} MiB needed")
    return target


def next_run_dir(base: str | os.PathLike) -> Path:
    """``base`` if free, else ``base2``, ``base3`` …: a new run never writes into an earlier run's folder."""
    base = Path(base)
    if not base.exists():
        return base
    k = 2
    while (base.parent / f"{base.name}{k}").exists():
        k += 1
    return base.parent / f"{base.name}{k}"
