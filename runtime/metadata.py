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


def read_metadata(artifact: str | Path) -> dict[str, Any] | None:
    """The sidecar if present, else the ONNX ``metadata_props``; None when neither exists."""
    side = sidecar_path(artifact)
    if side.is_file():
        return json.loads(side.read_text())
    if Path(artifact).suffix == ".onnx":
        import onnx

        model = onnx.load(str(artifact), load_external_data=False)
        for prop in model.metadata_props:
            if prop.key == PROPS_KEY:
                return json.loads(prop.value)
    return None
