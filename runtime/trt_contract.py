"""The engine contract as TensorRT reports an engine's I/O: pure functions over names, shapes and dtypes.

Split from the engine so the check runs (and is tested) without TensorRT or a GPU: :func:`describe_engine`
reads a deserialized engine, :func:`check_contract` says in one line what is wrong with it, and
:func:`check_images` guards every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgedet.errors import BackendError, EdgedetError
from edgedet.runtime.input_format import UINT8_NHWC, recognise, shape_of
from edgedet.runtime.onnx_engine import OUTPUT_NAMES, OUTPUT_SPEC

# numpy dtype name for each TensorRT DataType member name; others keep TensorRT's name, lower-cased.
_TRT_DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
               "UINT8": "uint8", "BOOL": "bool"}


#: The tag a serialized TensorRT engine starts with (what torch-tensorrt checks before deserializing one).
PLAN_MAGIC = b"ftrt"


def is_plan_file(path) -> bool:
    """Whether ``path`` starts as a TensorRT plan does: a file to refuse before shipping it to a server or DeepStream,
    where TensorRT is the first to read it (here there may be no TensorRT to ask)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(PLAN_MAGIC)) == PLAN_MAGIC
    except OSError:
        return False


def require_plan_file(path) -> None:
    """Refuse a file named as a TensorRT plan that does not start as one (:func:`is_plan_file`), in one line."""
    if not is_plan_file(path):
        raise EdgedetError(f"{Path(path).name} is not a TensorRT plan (it lacks the engine header {PLAN_MAGIC!r}); "
                           "build one with `edgedet build`")


@dataclass(frozen=True)
class TensorInfo:
    """One I/O tensor of an engine as TensorRT reports it (``-1`` marks a dynamic dimension)."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: str  # numpy name ("uint8", "float32", ...) or TensorRT's name for types numpy lacks


@dataclass(frozen=True)
class EngineLayout:
    """What the runtime needs to know about an engine that passed :func:`check_contract`."""

    input_name: str
    height: int
    width: int
    min_batch: int
    max_batch: int
    dynamic: bool
    outputs: dict[str, tuple[tuple[int, ...], np.dtype]]  # name -> (shape without batch, dtype)
    input_format: str = UINT8_NHWC  # edgedet.runtime.input_format

    def input_shape(self, batch: int) -> tuple[int, ...]:
        return shape_of(self.input_format, batch, (self.height, self.width))

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.input_format == UINT8_NHWC else np.float32)


def describe_engine(engine: Any) -> tuple[list[TensorInfo], tuple[tuple[int, ...], tuple[int, ...]] | None]:
    """The I/O tensors of a deserialized ``ICudaEngine`` and, when the input's batch is dynamic,
    the input's (min, max) shapes from optimization profile 0."""
    tensors = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = engine.get_tensor_mode(name)
        dtype = engine.get_tensor_dtype(name)
        type_name = getattr(dtype, "name", str(dtype).rsplit(".", 1)[-1])
        tensors.append(TensorInfo(name=name, is_input=getattr(mode, "name", str(mode)).endswith("INPUT"),
                                  shape=tuple(int(d) for d in engine.get_tensor_shape(name)),
                                  dtype=_TRT_DTYPES.get(type_name, type_name.lower())))
    profile = None
    inputs = [t for t in tensors if t.is_input]
    if len(inputs) == 1 and inputs[0].shape[:1] == (-1,):
        lo, _opt, hi = engine.get_tensor_profile_shape(inputs[0].name, 0)
        profile = (tuple(int(d) for d in lo), tuple(int(d) for d in hi))
    return tensors, profile


def check_contract(tensors: Sequence[TensorInfo], profile: tuple[Sequence[int], Sequence[int]] | None = None,
                   *, source: str = "engine") -> EngineLayout:
    """Check the engine contract (input ``uint8 [B, H, W, 3]`` or ``float32 [B, 3, H, W]``; outputs ``num_dets int32 [B, 1]``,
    ``boxes float32 [B, K, 4]``, ``scores float32 [B, K]``, ``labels int32 [B, K]``) and return the layout.

    ``profile`` is the input's (min, max) shapes from optimization profile 0; it is needed only when the
    batch dimension is dynamic. H, W and K must be static. Raises :class:`BackendError` naming the mismatch.
    """
    inputs = [t for t in tensors if t.is_input]
    if len(inputs) != 1:
        raise BackendError(f"{source} has {len(inputs)} inputs ({', '.join(t.name for t in inputs) or 'none'}); "
                           "the engine contract has one, uint8 [B, H, W, 3]")
    inp = inputs[0]
    known = recognise(inp.dtype, list(inp.shape))
    if known is None:
        raise BackendError(f"{source} input {inp.name!r} is {inp.dtype} {list(inp.shape)}, not uint8 [B, H, W, 3] "
                           "or float32 [B, 3, H, W] (the engine contract); was it built from an edgedet export?")
    fmt, _batch, (height, width) = known
    if height <= 0 or width <= 0:
        raise BackendError(f"{source} input {inp.name!r} has a dynamic height or width {list(inp.shape)}; "
                           "the engine contract fixes H x W per export")
    dynamic = inp.shape[0] < 0
    if dynamic:
        if profile is None:
            raise BackendError(f"{source} input {inp.name!r} has a dynamic batch but no optimization profile")
        min_batch, max_batch = int(profile[0][0]), int(profile[1][0])
    else:
        min_batch = max_batch = int(inp.shape[0])
    if not 1 <= min_batch <= max_batch:
        raise BackendError(f"{source} input {inp.name!r} has an unusable batch range {min_batch}..{max_batch}")

    outputs = {t.name: t for t in tensors if not t.is_input}
    if set(outputs) != set(OUTPUT_NAMES):
        raise BackendError(f"{source} outputs {sorted(outputs)}, not the engine contract's {list(OUTPUT_NAMES)}")
    scores = outputs["scores"]
    if len(scores.shape) != 2 or scores.shape[1] <= 0:
        raise BackendError(f"{source} output 'scores' is {scores.dtype} {list(scores.shape)}, not float32 [B, K] "
                           "with a static K (the engine contract)")
    k = scores.shape[1]
    layout: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    for name in OUTPUT_NAMES:
        t, (want_dtype, want_tail) = outputs[name], OUTPUT_SPEC[name]
        tail = tuple(k if d == "K" else d for d in want_tail)
        batch_ok = t.shape[:1] in ((-1,), (max_batch,)) if dynamic else t.shape[:1] == (max_batch,)
        if t.dtype != want_dtype or not batch_ok or tuple(t.shape[1:]) != tail:
            want = ", ".join(["B", *map(str, want_tail)])
            raise BackendError(f"{source} output {name!r} is {t.dtype} {list(t.shape)}, not {want_dtype} [{want}] "
                               "(the engine contract, with one static K for all outputs)")
        layout[name] = (tail, np.dtype(want_dtype))
    return EngineLayout(input_name=inp.name, height=int(height), width=int(width), min_batch=min_batch,
                        max_batch=max_batch, dynamic=dynamic, outputs=layout, input_format=fmt)


def check_images(images: Any, layout: EngineLayout) -> int:
    """Check a batch against the engine and return its size ``B`` (raises :class:`BackendError`)."""
    h, w = layout.height, layout.width
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (h, w, 3):
        got = f"{images.dtype} {list(images.shape)}" if isinstance(images, np.ndarray) else type(images).__name__
        raise BackendError(f"engine expects images uint8 [B, {h}, {w}, 3], got {got}")
    b = images.shape[0]
    if not 1 <= b <= layout.max_batch:
        raise BackendError(f"batch of {b} images; this engine takes 1 to {layout.max_batch} per call "
                           "(split the batch, or rebuild the engine with a larger max batch)")
    return b
