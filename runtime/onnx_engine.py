"""An exported ONNX graph run by ONNX Runtime, returning the contract's four outputs.

Graphs with the ``EfficientNMS_TRT`` plugin run through :class:`PluginGraphRunner` (ONNX Runtime up to
the plugin, numpy for the plugin), so the TensorRT flavour is checkable on any CPU.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

import numpy as np

from edgedet.errors import BackendError
from edgedet.runtime.input_format import recognise, to_engine_input
from edgedet.runtime.plugins import EFFICIENT_NMS, PluginGraphRunner

OUTPUT_NAMES = ("num_dets", "boxes", "scores", "labels")
#: The contract's outputs: dtype and shape after the batch dimension ("K" is the shared detection count);
#: every backend checks its engine against this.
OUTPUT_SPEC = {"num_dets": ("int32", (1,)), "boxes": ("float32", ("K", 4)), "scores": ("float32", ("K",)),
               "labels": ("int32", ("K",))}


def read_contract_model(path: Path):
    """``(model, input name, batch or None, (H, W), input format)`` of an ONNX file that follows the engine
    contract (one uint8 ``[B, H, W, 3]`` or float32 ``[B, 3, H, W]`` input, the four contract outputs);
    :class:`BackendError` otherwise."""
    try:
        import onnx
    except ImportError as e:
        raise BackendError(f"the onnx package is not installed ({e.name}); pip install onnx") from None
    if not path.is_file():
        raise BackendError(f"engine not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf raises several types for corrupt files
        raise BackendError(f"cannot read ONNX model {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not model.graph.input:
        raise BackendError(f"{path} has no inputs; is it an edgedet export?")
    inp = model.graph.input[0]
    dims = [d.dim_value or None for d in inp.type.tensor_type.shape.dim]
    dtype = {onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.FLOAT: "float32"}.get(inp.type.tensor_type.elem_type)
    known = recognise(dtype or "", dims)
    if known is None or not all(known[2]):
        raise BackendError(f"{path} input {inp.name!r} is not uint8 [B, H, W, 3] or float32 [B, 3, H, W] "
                           "(the engine contract)")
    names = [o.name for o in model.graph.output]
    if names != list(OUTPUT_NAMES):
        raise BackendError(f"{path} outputs {names}, not the engine contract's {list(OUTPUT_NAMES)}")
    _check_outputs(model, path)
    fmt, batch, size = known
    return model, inp.name, batch, size, fmt


def _check_outputs(model, path: Path) -> None:
    """Types and shapes of the contract outputs (:data:`OUTPUT_SPEC`); a graph with the right names but other
    shapes would fail later, far from here."""
    import numpy as np
    import onnx

    k_dims = set()
    for out in model.graph.output:
        t = out.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        dtype, tail = OUTPUT_SPEC[out.name]
        fits = (t.elem_type == onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)) and len(dims) == 1 + len(tail)
                and all(d is None or w == "K" or d == w for d, w in zip(dims[1:], tail)))
        if not fits:
            want = f"{dtype} [B, {', '.join(map(str, tail))}]"
            raise BackendError(f"{path} output {out.name!r} is {onnx.TensorProto.DataType.Name(t.elem_type).lower()} "
                               f"{dims}, not {want} (the engine contract)")
        k_dims |= {d for d, w in zip(dims[1:], tail) if w == "K" and d is not None}
    if len(k_dims) > 1:
        raise BackendError(f"{path} outputs disagree on the detection count K ({sorted(k_dims)})")


#: CPU flags (Linux /proc/cpuinfo) of the instructions that sum uint8 x int8 products in 32 bits
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@lru_cache(maxsize=1)
def int8_products_saturate() -> bool:
    """Whether ONNX Runtime's INT8 kernels on this CPU clamp uint8 x int8 pair sums to int16.

    On x86 ONNX Runtime turns the S8 activations of a Q/DQ graph into U8 and multiplies them with S8 weights.
    Without VNNI or AMX, its kernels sum each pair of products with ``PMADDUBSW``, in saturating 16-bit
    arithmetic (255 x 127 x 2 = 64 770 > 32 767): the documented U8S8 overflow of AVX2 and AVX-512 CPUs without
    VNNI (``session.x64quantprecision`` in ``onnxruntime_session_options_config_keys.h``). Measured on an AVX2
    CPU, on one 8-bit-weight INT8 export: 1.4x the mean and 2.6x the p99.9 deviation from the exact Q/DQ
    arithmetic on the SSD heads' outputs, and an INT8 mAP drop of 3.28 points where non-saturating kernels lost 1.55.
    OpenVINO's kernels saturate the same way (edgedet.calib.quantize), which is why exports use 7-bit weights.
    Read from /proc/cpuinfo; elsewhere (not Linux, not x86) False.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return saturating_cpu(text, platform.machine())


def saturating_cpu(cpuinfo: str, machine: str) -> bool:
    """:func:`int8_products_saturate` for a given /proc/cpuinfo text and ``platform.machine()``."""
    if machine.lower() not in ("x86_64", "amd64", "i686", "i386"):
        return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return bool(flags) and not any(f in flags for f in VNNI_FLAGS)


def full_range_int8_weights(model) -> bool:
    """Whether some int8 weight of a Q/DQ graph uses 8 bits (beyond [-64, 64]): only such weights can saturate
    (edgedet's exports use 7 by default; ``export --int8-weight-bits 8`` and foreign Q/DQ graphs may not)."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in model.graph.initializer if t.data_type == TensorProto.INT8}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            if np.abs(numpy_helper.to_array(inits[node.input[0]]).astype(np.int16)).max(initial=0) > 64:
                return True
    return False


class OnnxEngine:
    def __init__(self, path: str | Path, *, providers: list[str] | None = None, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendError(f"ONNX Runtime is not installed ({e.name}); pip install onnxruntime") from None
        path = Path(path)
        model, self.input_name, self.input_batch, self.input_hw, self.input_format = read_contract_model(path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        providers = providers or ["CPUExecutionProvider"]
        #: 8-bit INT8 weights on a CPU whose kernels would saturate: ONNX Runtime multiplies in its exact (slower)
        #: U8U8 mode
        self.exact_int8 = int8_products_saturate() and full_range_int8_weights(model)
        if self.exact_int8:
            opts.add_session_config_entry("session.x64quantprecision", "1")
        try:
            if any(n.op_type == EFFICIENT_NMS for n in model.graph.node):
                self._plugin = PluginGraphRunner(model, providers=providers)
                self._session = None
            else:
                self._plugin = None
                self._session = ort.InferenceSession(model.SerializeToString(), opts, providers=providers)
        except Exception as e:  # noqa: BLE001
            raise BackendError(f"ONNX Runtime cannot load {path}: {str(e).splitlines()[0]}") from None

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        """``images uint8 [B, H, W, 3]`` → num_dets, boxes, scores, labels."""
        feeds = {self.input_name: to_engine_input(images, self.input_format)}
        if self._plugin is not None:
            return self._plugin.run(feeds)
        return self._session.run(list(OUTPUT_NAMES), feeds)
