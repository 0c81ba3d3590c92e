"""edgedet checkpoints: a plain dict of tensors and builtins, so ``torch.load(weights_only=True)`` reads it.

A checkpoint carries what is needed to rebuild the model without the training command line:
the zoo name, builder options, class names and their dataset category ids.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import Any

from edgedet.errors import CheckpointError
from edgedet.fileio import atomic_path

FORMAT = "edgedet-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically; adds the format tag and version."""
    import torch

    payload = {"format": FORMAT, "version": VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Any]:
    """Load an edgedet checkpoint, or wrap a bare state_dict as one (``model`` unknown)."""
    import torch

    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"{p} is a directory, not a checkpoint file")
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p} is empty (0 bytes), not a checkpoint")
    try:
        with warnings.catch_warnings():  # torch's warnings about a foreign pickle's protocol: the error says it
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for corrupt/foreign files
        raise CheckpointError(f"cannot load checkpoint {p}: {_load_failure(e)}") from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if obj.get("version", 0) > VERSION:
            raise CheckpointError(f"{p} was written by a newer edgedet (checkpoint version {obj['version']})")
        return obj
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj) and all(
        hasattr(v, "shape") for v in obj.values()
    ):
        return {"format": FORMAT, "version": VERSION, "model": None, "state_dict": obj}
    raise CheckpointError(f"{p} is neither an edgedet checkpoint nor a state_dict")


def _load_failure(e: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in edgedet's words. torch's own message for a
    pickle that would run code advises ``weights_only=False``, which is exactly what must not be done."""
    text = str(e).strip()
    if "Weights only load failed" in text:
        what = re.search(r"GLOBAL (\S+)", text)
        if what:
            return (f"not a safe checkpoint: it asks to load {what.group(1)}, not only tensors; edgedet loads "
                    "weights only and never runs code from a file")
        return "not a PyTorch checkpoint of tensors (a corrupt file, or a pickle of something else)"
    if "invalid load key" in text or isinstance(e, (EOFError,)) or "pop from empty list" in text \
            or re.fullmatch(r"\d+", text or "x"):
        return "not a PyTorch file (truncated, corrupt or another format)"
    return text.splitlines()[0] if text else type(e).__name__


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def category_ids(weights: str | os.PathLike, num_classes: int) -> list[int]:
    """Dataset category ids the model's classes were trained with (recorded in an edgedet checkpoint);
    otherwise torchvision's COCO layout, where class index ``i`` is category id ``i + 1``."""
    if Path(weights).is_file():
        ids = load_checkpoint(weights).get("category_ids")
        if ids and len(ids) == num_classes:
            return [int(i) for i in ids]
    return list(range(1, num_classes + 1))
