"""Triton ``config.pbtxt`` for edgedet artifacts, built as Triton's own ``ModelConfig`` protobuf.

Built with ``tritonclient.grpc.model_config_pb2`` and printed with protobuf's text format, so every file this
writes is one Triton parses; :func:`parse` reads one back (the tests' validation).

Inputs and outputs are exactly the engine contract (uint8 ``images`` NHWC; ``num_dets``, ``boxes``, ``scores``,
``labels``). ``max_batch_size`` comes from the export's batch metadata: dynamic-batch exports get their maximum
and dynamic batching; fixed-batch exports get 0 (the batch is then part of every shape) and no batching. The
end-to-end model batches requests (one image each) whatever the engine's batch: its Detector feeds the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edgedet.errors import EdgedetError

INSTALL_HINT = "pip install 'tritonclient[http,grpc]'"


def pb2() -> Any:
    try:
        from tritonclient.grpc import model_config_pb2
    except (ImportError, RuntimeError) as e:
        raise EdgedetError(f"tritonclient is not installed ({e}); {INSTALL_HINT}") from None
    return model_config_pb2


@dataclass(frozen=True)
class Serving:
    """How a model is served: where its instances run, how many, and how requests are batched."""

    kind: str = "cpu"  # "gpu" (KIND_GPU) or "cpu" (KIND_CPU)
    instances: int = 1
    queue_delay_us: int = 200  # dynamic batching: how long a request may wait for others
    batching: bool = True  # dynamic batching where the export's batch is dynamic


def batch_of(meta: dict) -> tuple[int, int]:
    """``(max_batch_size, fixed batch)``: (max, 0) for a dynamic-batch export, (0, size) for a fixed one."""
    batch = meta.get("batch", {})
    if batch.get("dynamic"):
        return int(batch.get("max", 1)), 0
    return 0, int(batch.get("size", 1))


def _tensor(name: str, dtype: str, dims: list[int], fixed_batch: int, label_file: str = "") -> dict:
    entry: dict[str, Any] = {"name": name, "data_type": dtype, "dims": ([fixed_batch] if fixed_batch else []) + dims}
    if label_file:
        entry["label_filename"] = label_file
    return entry


def contract_io(meta: dict, k: int) -> tuple[list[dict], list[dict]]:
    """The engine contract's inputs and outputs as ModelConfig entries."""
    h, w = meta["input"]["size"]
    _, fixed = batch_of(meta)
    inputs = [_tensor("images", "TYPE_UINT8", [h, w, 3], fixed)]
    outputs = [_tensor("num_dets", "TYPE_INT32", [1], fixed), _tensor("boxes", "TYPE_FP32", [k, 4], fixed),
               _tensor("scores", "TYPE_FP32", [k], fixed), _tensor("labels", "TYPE_INT32", [k], fixed, "labels.txt")]
    return inputs, outputs


#: The end-to-end model's batch: requests (one encoded image each) Triton's batcher hands over together.
END_TO_END_MAX_BATCH = 8


def end_to_end_io(k: int) -> tuple[list[dict], list[dict]]:
    """Encoded image bytes in (UINT8 [n], one image per request, ragged across a batch); detections in
    original-image pixels out, class names in ``labels.txt``. UINT8 and no string outputs: the Python backend
    moves tensors through DLPack, which has no strings (see python_models)."""
    inputs = [{"name": "image", "data_type": "TYPE_UINT8", "dims": [-1], "allow_ragged_batch": True}]
    outputs = [_tensor("num_dets", "TYPE_INT32", [1], 0), _tensor("boxes", "TYPE_FP32", [k, 4], 0),
               _tensor("scores", "TYPE_FP32", [k], 0), _tensor("labels", "TYPE_INT32", [k], 0, "labels.txt")]
    return inputs, outputs


def model_config(name: str, meta: dict, k: int, serving: Serving, *, platform: str = "", backend: str = "",
                 end_to_end: bool = False, parameters: dict[str, str] | None = None,
                 accelerators: list[dict] | None = None) -> Any:
    """One model's ``ModelConfig``."""
    from google.protobuf import json_format

    m = pb2()
    max_batch = max(END_TO_END_MAX_BATCH, batch_of(meta)[0]) if end_to_end else batch_of(meta)[0]
    inputs, outputs = end_to_end_io(k) if end_to_end else contract_io(meta, k)
    cfg: dict[str, Any] = {"name": name, "max_batch_size": max_batch, "input": inputs, "output": outputs,
                           "instance_group": [{"kind": "KIND_GPU" if serving.kind == "gpu" else "KIND_CPU",
                                               "count": serving.instances}]}
    if platform:
        cfg["platform"] = platform
    if backend:
        cfg["backend"] = backend
    if max_batch and serving.batching:
        preferred = sorted({b for b in (max_batch // 2, max_batch) if b > 1})
        cfg["dynamic_batching"] = {"max_queue_delay_microseconds": serving.queue_delay_us,
                                   **({"preferred_batch_size": preferred} if preferred else {})}
    if accelerators:
        cfg["optimization"] = {"execution_accelerators": {"gpu_execution_accelerator": accelerators}}
    params = {"edgedet_metadata": json.dumps(meta, sort_keys=True), **(parameters or {})}
    cfg["parameters"] = {key: {"string_value": str(value)} for key, value in params.items()}
    message = m.ModelConfig()
    json_format.ParseDict(cfg, message)
    return message


def to_text(config: Any) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def parse(text: str) -> Any:
    """A ``config.pbtxt`` parsed into Triton's ``ModelConfig`` (what Triton itself does when it loads it)."""
    from google.protobuf import text_format

    return text_format.Parse(text, pb2().ModelConfig())
