"""Size and cost of zoo models: parameters and GFLOPs, measured, and cached because measuring is slow.

GFLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one eval forward of one
image at the registry's input size, weights none, 91 classes (COCO), seed 0. They cover what
that counter knows (convolutions, matmuls; RoIAlign and NMS are not counted). A multiply-add
counts 2, so the numbers are twice torchvision's ``meta["_ops"]`` (which are GMACs).

Faster R-CNN's cost depends on how many proposals reach the box head. With random weights that
number is arbitrary, so the RPN's NMS is switched off while counting: the box head then sees its
full ``post_nms_top_n`` budget, which is also what an export with fixed proposal counts runs.

Measuring the whole zoo takes about a minute on two CPU cores, so results are cached in
``$EDGEDET_CACHE_DIR/model_stats.json`` (default ``~/.cache/edgedet``), keyed by model name and
torch/torchvision versions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgedet.fileio import atomic_write_bytes
from edgedet.models.registry import get_model_entry

if TYPE_CHECKING:
    from torch import nn

CACHE_FILE = "model_stats.json"


@dataclass(frozen=True)
class ModelStats:
    name: str
    family: str
    input_size: tuple[int, int]
    params: int
    flops: int | None  # None: not measured (--no-flops)

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def gflops(self) -> float | None:
        return None if self.flops is None else self.flops / 1e9


def cache_dir() -> Path:
    """``$EDGEDET_CACHE_DIR`` or ``~/.cache/edgedet``."""
    env = os.environ.get("EDGEDET_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgedet"


def _version(dist: str) -> str:
    # Package metadata, not ``torch.__version__``: a cache hit must not pay for importing torch.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _cache_key(name: str) -> str:
    return f"{name}|torch {_version('torch')}|torchvision {_version('torchvision')}"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # a missing or corrupt cache is only a slower run


def count_params(model: "nn.Module") -> int:
    return sum(p.numel() for p in model.parameters())


def measure_flops(model: "nn.Module", input_size: tuple[int, int]) -> int:
    """FLOPs of one eval forward on one ``[3,H,W]`` image of mid-grey at ``input_size`` (H, W)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    rpn = getattr(model, "rpn", None)
    nms_thresh = getattr(rpn, "nms_thresh", None)
    model.eval()
    if nms_thresh is not None:
        rpn.nms_thresh = 1.0  # keep every proposal: the box head runs on its full budget
    image = torch.full((3, *input_size), 0.5)
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model([image])
    finally:
        model.train(was_training)
        if nms_thresh is not None:
            rpn.nms_thresh = nms_thresh
    return int(counter.get_total_flops())


def _build_for_stats(name: str) -> "nn.Module":
    import torch

    from edgedet.models.registry import create_model

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return create_model(name, classes=None, weights="none")


def is_cached(name: str, *, flops: bool = True) -> bool:
    """Whether :func:`model_stats` will answer from the cache (no model is built)."""
    row = _read_cache(cache_dir() / CACHE_FILE).get(_cache_key(get_model_entry(name).name))
    return isinstance(row, dict) and row.get("params") is not None and (not flops or row.get("flops") is not None)


def model_stats(name: str, *, flops: bool = True, use_cache: bool = True) -> ModelStats:
    """Parameters (and GFLOPs unless ``flops=False``) of zoo model ``name``, from the cache when possible."""
    entry = get_model_entry(name)
    path = cache_dir() / CACHE_FILE
    key = _cache_key(entry.name)
    cache = _read_cache(path) if use_cache else {}
    row = cache.get(key) if isinstance(cache.get(key), dict) else {}
    params, n_flops = row.get("params"), row.get("flops")

    if params is None or (flops and n_flops is None):
        model = _build_for_stats(entry.name)
        params = count_params(model)
        if flops:
            n_flops = measure_flops(model, entry.input_size)
        if use_cache:
            cache = _read_cache(path)  # re-read: another process may have added rows meanwhile
            cache[key] = {"params": int(params), "flops": None if n_flops is None else int(n_flops)}
            try:
                atomic_write_bytes(path, (json.dumps(cache, indent=1, sort_keys=True) + "\n").encode())
            except OSError:
                pass  # a read-only home only costs time
    return ModelStats(
        name=entry.name,
        family=entry.family,
        input_size=entry.input_size,
        params=int(params),
        flops=None if not flops or n_flops is None else int(n_flops),
    )
