"""Metadata that travels with every artifact: ONNX ``metadata_props`` and a ``<stem>.json`` sidecar.

A ``.plan`` is a plain TensorRT engine (trtexec and DeepStream load it), so its metadata can only
live beside it. Torch-free: the runtime reads it on the device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
PROPS_KEY = "edgedet"  # the whole metadata as JSON under one metadata_props key


def sidecar_path(artifact: str | Path) -> Path:
    """``model.fp16.onnx`` → ``model.fp16.json``; ``model.plan`` → ``model.json``."""
    p = Path(artifact)
    return p.with_name(p.name[: -len(p.suffix)] + ".json") if p.suffix else p.with_name(p.name + ".json")


#: Keys every edgedet artifact's metadata has, with the type each must be.
REQUIRED = {"input": dict, "classes": list}


def read_metadata(artifact: str | Path) -> dict[str, Any] | None:
    """The sidecar if present, else the ONNX ``metadata_props``; None when neither exists.

    Metadata that cannot be read (not JSON, not an object, a newer schema) is a :class:`BackendError` naming
    the file, not a traceback in whatever reads it; :func:`require_runtime_keys` checks what a Detector needs.
    """
    from edgedet.errors import BackendError

    side = sidecar_path(artifact)
    if side.is_file():
        return _validated(side.read_text(errors="replace"), side)
    if Path(artifact).suffix == ".onnx":
        import onnx

        try:
            model = onnx.load(str(artifact), load_external_data=False)
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
            raise BackendError(f"cannot read ONNX model {artifact}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        for prop in model.metadata_props:
            if prop.key == PROPS_KEY:
                return _validated(prop.value, Path(artifact))
    return None


def _validated(text: str, source: Path) -> dict[str, Any]:
    from edgedet.errors import BackendError

    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise BackendError(f"metadata {source} is not valid JSON ({e.msg} at line {e.lineno}); re-export, or delete "
                           "the sidecar to use the engine's own shapes") from None
    if not isinstance(meta, dict):
        raise BackendError(f"metadata {source} is not a JSON object")
    version = meta.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise BackendError(f"metadata {source} has schema version {version!r}; this edgedet reads up to "
                           f"{SCHEMA_VERSION}: upgrade edgedet")
    return meta


def require_runtime_keys(meta: dict[str, Any], source: str | Path) -> dict[str, Any]:
    """What a ``Detector`` reads from the metadata, present and well-typed (``build`` needs less)."""
    from edgedet.errors import BackendError

    for key, kind in REQUIRED.items():
        if not isinstance(meta.get(key), kind):
            raise BackendError(f"metadata of {source} lacks {key!r} (or it is not a {kind.__name__}); re-export the model")
    size = meta["input"].get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise BackendError(f"metadata of {source}: input.size must be [H, W], not {size!r}")
    return meta


def max_batch(meta: dict[str, Any]) -> int:
    """The most images one call of the engine takes: a dynamic-batch export's ``max``, else its fixed ``size``
    (1 where the metadata names none)."""
    batch = meta.get("batch", {})
    return int(batch.get("max") if batch.get("dynamic") else batch.get("size", 1))
