"""Dataset formats by name, so a user's own format plugs into :func:`load_dataset` (and the CLI) like COCO and VOC.

Auto-detection tries user formats before the built-ins: the built-ins accept anything shaped like them
(any ``.json``, any folder with XML), so a more specific user format would otherwise never be reached.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgedet.data.coco import is_coco_file, load_coco
from edgedet.data.types import DetectionDataset
from edgedet.data.voc import is_voc_dir, load_voc
from edgedet.errors import DataError

Loader = Callable[..., DetectionDataset]  # fn(data: Path, images: Path | None, **options)
Detector = Callable[[Path], bool]


@dataclass(frozen=True)
class _Format:
    loader: Loader
    detect: Detector
    builtin: bool


_FORMATS: dict[str, _Format] = {}


def register_dataset(name: str, *, detect: Detector) -> Callable[[Loader], Loader]:
    """Decorator: ``@register_dataset("mine", detect=lambda p: p.suffix == ".mine")`` on ``fn(data, images, **kw)``."""

    def decorator(fn: Loader) -> Loader:
        _add(name, fn, detect, builtin=False)
        return fn

    return decorator


def list_datasets() -> list[str]:
    """Format names in the order auto-detection tries them."""
    return [name for name, fmt in sorted(_FORMATS.items(), key=lambda item: item[1].builtin)]


def load_dataset(
    data: str | os.PathLike,
    images: str | os.PathLike | None = None,
    *,
    format: str = "auto",
    **options,
) -> DetectionDataset:
    """Load ``data`` (a file or folder) in ``format``, or the first format that recognises it.

    ``options`` go to the format's loader (``classes=[...]`` for VOC).
    """
    data = Path(data)
    if not data.exists():
        raise DataError(f"dataset {data} does not exist")
    loader = _detect(data) if format == "auto" else _lookup(format).loader
    return loader(data, Path(images) if images is not None else None, **options)


def _add(name: str, loader: Loader, detect: Detector, *, builtin: bool) -> None:
    if name in _FORMATS or name == "auto":
        raise ValueError(f"dataset format name {name!r} is taken")
    _FORMATS[name] = _Format(loader, detect, builtin)


def _lookup(name: str) -> _Format:
    if name in _FORMATS:
        return _FORMATS[name]
    close = difflib.get_close_matches(name, _FORMATS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise DataError(f"unknown dataset format {name!r}{hint}; known: auto, {', '.join(list_datasets())}")


def _detect(data: Path) -> Loader:
    for name in list_datasets():
        if _FORMATS[name].detect(data):
            return _FORMATS[name].loader
    raise DataError(
        f"cannot tell the format of {data}: expected a COCO .json file or a folder of VOC .xml files "
        f"(known formats: {', '.join(list_datasets())}; pass the format by name)"
    )


def _load_coco(data: Path, images: Path | None) -> DetectionDataset:
    # COCO files usually sit beside (or above) their images; the JSON's folder is the natural default.
    return load_coco(data, images if images is not None else data.parent)


def _load_voc(data: Path, images: Path | None, **options) -> DetectionDataset:
    return load_voc(data, images_dir=images, **options)


_add("coco", _load_coco, is_coco_file, builtin=True)
_add("voc", _load_voc, is_voc_dir, builtin=True)
