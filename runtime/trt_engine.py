"""A serialized TensorRT plan run with the name-based I/O API, returning the contract's four outputs.

Works on TensorRT 10.x (JetPack 6 ships 10.3) and 11.x: tensors are addressed by name
(``num_io_tensors``, ``get_tensor_name``, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``); the bindings API removed in TensorRT 10 is never used.

Device memory goes through cuda-python (preferred) or pycuda (what JetPack images often have), behind
the small :class:`_Cuda` interface. Pinned host buffers and device buffers are sized once for the
engine's max batch and reused on every call, on one stream.

Nothing here imports a deep-learning framework: this module is what a Jetson application embeds.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from edgedet.errors import BackendError
from edgedet.runtime.onnx_engine import OUTPUT_NAMES, OUTPUT_SPEC

_log = logging.getLogger("edgedet.runtime.tensorrt")

INSTALL_HINT = "pip install edgedet[tensorrt] (on a Jetson, TensorRT comes with JetPack)"
CUDA_HINT = "pip install cuda-python (or use the pycuda that JetPack images ship)"

# numpy dtype name for each TensorRT DataType member name; others keep TensorRT's name, lower-cased.
_TRT_DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
               "UINT8": "uint8", "BOOL": "bool"}



# --------------------------------------------------------------------------------------------------
# Engine description and the contract check: pure functions over names, shapes and dtypes.


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
    """Check the engine contract (input ``uint8 [B, H, W, 3]``; outputs ``num_dets int32 [B, 1]``,
    ``boxes float32 [B, K, 4]``, ``scores float32 [B, K]``, ``labels int32 [B, K]``) and return the layout.

    ``profile`` is the input's (min, max) shapes from optimization profile 0; it is needed only when the
    batch dimension is dynamic. H, W and K must be static. Raises :class:`BackendError` naming the mismatch.
    """
    inputs = [t for t in tensors if t.is_input]
    if len(inputs) != 1:
        raise BackendError(f"{source} has {len(inputs)} inputs ({', '.join(t.name for t in inputs) or 'none'}); "
                           "the engine contract has one, uint8 [B, H, W, 3]")
    inp = inputs[0]
    if inp.dtype != "uint8" or len(inp.shape) != 4 or inp.shape[3] != 3:
        raise BackendError(f"{source} input {inp.name!r} is {inp.dtype} {list(inp.shape)}, not uint8 [B, H, W, 3] "
                           "(the engine contract); was it built from an edgedet export?")
    if inp.shape[1] <= 0 or inp.shape[2] <= 0:
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
    return EngineLayout(input_name=inp.name, height=int(inp.shape[1]), width=int(inp.shape[2]),
                        min_batch=min_batch, max_batch=max_batch, dynamic=dynamic, outputs=layout)


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


# --------------------------------------------------------------------------------------------------
# CUDA: device memory, pinned host memory, copies and one stream, through cuda-python or pycuda.


def cuda_check(result: Any, what: str = "CUDA call") -> Any:
    """Unwrap a cuda-python result ``(err, *values)``: raise :class:`BackendError` unless ``err`` is
    success (0), else return ``None``, the one value, or the tuple of values."""
    if not isinstance(result, tuple):
        result = (result,)
    err, values = result[0], result[1:]
    if int(getattr(err, "value", err)) != 0:
        raise BackendError(f"{what} failed: {getattr(err, 'name', None) or err}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


class _Cuda(Protocol):
    """What the engine needs from a CUDA binding. Device pointers and stream handles are ints."""

    name: str

    def malloc(self, nbytes: int) -> int: ...
    def free(self, ptr: int) -> None: ...
    def malloc_host(self, nbytes: int) -> np.ndarray: ...  # pinned, uint8 [nbytes]
    def free_host(self, buf: np.ndarray) -> None: ...
    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: int) -> None: ...
    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: int) -> None: ...
    def stream_create(self) -> int: ...
    def stream_sync(self, stream: int) -> None: ...
    def stream_destroy(self, stream: int) -> None: ...
    def activate(self) -> None: ...  # make the engine's device current on this thread
    def deactivate(self) -> None: ...
    def release(self) -> None: ...


class _CudaPython:
    """cuda-python's runtime API (``cuda.bindings.runtime``, or ``cuda.cudart`` before cuda-python 12.6)."""

    name = "cuda-python"

    def __init__(self, cudart: Any, device: int) -> None:
        self._rt, self.device = cudart, device
        count = cuda_check(cudart.cudaGetDeviceCount(), "finding a CUDA device")
        if not 0 <= device < count:
            raise BackendError(f"CUDA device {device} does not exist ({count} found)")

    def activate(self) -> None:
        cuda_check(self._rt.cudaSetDevice(self.device), f"selecting CUDA device {self.device}")

    def deactivate(self) -> None:
        pass

    def release(self) -> None:
        pass

    def malloc(self, nbytes: int) -> int:
        return int(cuda_check(self._rt.cudaMalloc(nbytes), f"allocating {nbytes} bytes on the GPU"))

    def free(self, ptr: int) -> None:
        cuda_check(self._rt.cudaFree(ptr), "freeing GPU memory")

    def malloc_host(self, nbytes: int) -> np.ndarray:
        ptr = int(cuda_check(self._rt.cudaMallocHost(nbytes), f"allocating {nbytes} bytes of pinned memory"))
        return np.frombuffer((ctypes.c_uint8 * nbytes).from_address(ptr), np.uint8)

    def free_host(self, buf: np.ndarray) -> None:
        cuda_check(self._rt.cudaFreeHost(buf.ctypes.data), "freeing pinned memory")

    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        cuda_check(self._rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream), "copying to the GPU")

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_check(self._rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream), "copying from the GPU")

    def stream_create(self) -> int:
        return int(cuda_check(self._rt.cudaStreamCreate(), "creating a CUDA stream"))

    def stream_sync(self, stream: int) -> None:
        cuda_check(self._rt.cudaStreamSynchronize(stream), "running the engine")

    def stream_destroy(self, stream: int) -> None:
        cuda_check(self._rt.cudaStreamDestroy(stream), "destroying a CUDA stream")


class _PyCuda:
    """pycuda's driver API on the device's primary context: the one TensorRT and the CUDA runtime use.

    (``pycuda.autoinit`` would create a separate context on device 0 only; retaining the primary context
    works for any device and shares memory with everything else in the process.)
    """

    name = "pycuda"

    def __init__(self, driver: Any, device: int) -> None:
        self._drv, self.device = driver, device
        try:
            driver.init()
            count = driver.Device.count()
            if not 0 <= device < count:
                raise BackendError(f"CUDA device {device} does not exist ({count} found)")
            self._ctx = driver.Device(device).retain_primary_context()
        except driver.Error as e:
            raise BackendError(f"CUDA is not usable through pycuda: {e}") from None
        self._allocs: dict[int, Any] = {}
        self._streams: dict[int, Any] = {}

    def activate(self) -> None:
        self._ctx.push()

    def deactivate(self) -> None:
        self._drv.Context.pop()

    def release(self) -> None:
        self._ctx.detach()

    def malloc(self, nbytes: int) -> int:
        alloc = self._drv.mem_alloc(nbytes)
        self._allocs[int(alloc)] = alloc
        return int(alloc)

    def free(self, ptr: int) -> None:
        self._allocs.pop(ptr).free()

    def malloc_host(self, nbytes: int) -> np.ndarray:
        return self._drv.pagelocked_empty(nbytes, np.uint8)

    def free_host(self, buf: np.ndarray) -> None:
        buf.base.free()

    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: int) -> None:
        self._drv.memcpy_htod_async(self._allocs[dst], src, self._streams[stream])

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: int) -> None:
        self._drv.memcpy_dtoh_async(dst, self._allocs[src], self._streams[stream])

    def stream_create(self) -> int:
        s = self._drv.Stream()
        self._streams[s.handle] = s
        return s.handle

    def stream_sync(self, stream: int) -> None:
        self._streams[stream].synchronize()

    def stream_destroy(self, stream: int) -> None:
        self._streams.pop(stream, None)


def load_cuda(device: int = 0) -> _Cuda:
    """cuda-python if importable, else pycuda; :class:`BackendError` when neither is installed."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError:
            cudart = None
    if cudart is not None:
        return _CudaPython(cudart, device)
    try:
        import pycuda.driver as driver
    except ImportError:
        raise BackendError(f"TensorRT needs cuda-python or pycuda for GPU memory, and neither is installed; "
                           f"{CUDA_HINT}") from None
    return _PyCuda(driver, device)


# --------------------------------------------------------------------------------------------------
# TensorRT


def _import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendError(f"TensorRT is not installed; {INSTALL_HINT}") from None
    return trt


_LOGGER: Any = None


def _trt_logger(trt: Any) -> Any:
    """One process-wide logger (TensorRT requires it to outlive every runtime), forwarding to ``logging``;
    TensorRT's plugin library is registered with it once, for engines that contain EfficientNMS_TRT."""
    global _LOGGER
    if _LOGGER is None:
        levels = {trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL, trt.ILogger.Severity.ERROR: logging.ERROR,
                  trt.ILogger.Severity.WARNING: logging.WARNING, trt.ILogger.Severity.INFO: logging.DEBUG,
                  trt.ILogger.Severity.VERBOSE: logging.DEBUG}

        class _Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity: Any, msg: str) -> None:
                _log.log(levels.get(severity, logging.WARNING), "TensorRT: %s", msg)

        logger = _Logger()
        trt.init_libnvinfer_plugins(logger, "")
        _LOGGER = logger
    return _LOGGER


def _short_version(version: str) -> str:
    return ".".join(version.split(".")[:2])


class TrtEngine:
    """A TensorRT plan (``.plan``/``.engine``) that maps ``images uint8 [B, H, W, 3]`` to the four
    contract outputs, ``[num_dets int32 [B, 1], boxes float32 [B, K, 4], scores float32 [B, K],
    labels int32 [B, K]]`` (the order of ``OUTPUT_NAMES``). Use as a context manager or call :meth:`close`.

    Attributes: ``input_shape`` / ``input_hw`` (H, W); ``input_batch`` (the fixed batch, or ``None`` when
    dynamic); ``max_batch``; ``tensorrt_version``; ``cuda_binding`` ("cuda-python" or "pycuda").
    """

    def __init__(self, path: str | Path, *, device: int = 0) -> None:
        self._closed = True  # until every resource below exists; close() frees what does
        self._cuda: _Cuda | None = None
        self._context = self._engine = self._runtime = None
        self._device_bufs: dict[str, int] = {}
        self._host_bufs: dict[str, np.ndarray] = {}
        self._stream: int | None = None
        path = Path(path)
        self.path = path
        if not path.is_file():
            raise BackendError(f"engine not found: {path}")
        if path.suffix.lower() == ".onnx":
            raise BackendError(f"{path.name} is an ONNX file; build a TensorRT plan first with `edgedet build --engine {path}`")
        trt = _import_tensorrt()
        self.tensorrt_version: str = trt.__version__
        logger = _trt_logger(trt)
        data = path.read_bytes()
        self._cuda = load_cuda(device)
        self._closed = False
        try:
            self._cuda.activate()  # deserialize, allocate and bind on the chosen device
            try:
                self._load(trt, logger, data)
            finally:
                self._cuda.deactivate()
        except BaseException:
            self.close()
            raise

    def _load(self, trt: Any, logger: Any, data: bytes) -> None:
        path, cuda = self.path, self._cuda
        self._runtime = trt.Runtime(logger)
        try:
            self._engine = self._runtime.deserialize_cuda_engine(data)
        except Exception:  # noqa: BLE001 - TensorRT normally returns None; some builds raise instead
            self._engine = None
        if self._engine is None:
            raise BackendError(f"cannot load {path}: built with another TensorRT version or GPU (this is TensorRT "
                               f"{_short_version(self.tensorrt_version)}); rebuild it on this device with `edgedet build`")
        self.layout = check_contract(*describe_engine(self._engine), source=str(path))
        lay = self.layout
        self.input_shape: tuple[int, int] = (lay.height, lay.width)
        self.input_hw = self.input_shape
        self.input_batch: int | None = None if lay.dynamic else lay.max_batch
        self.max_batch: int = lay.max_batch
        self.cuda_binding: str = cuda.name
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BackendError(f"cannot create a TensorRT execution context for {path} (out of GPU memory?)")
        self._stream = cuda.stream_create()
        sizes = {lay.input_name: lay.height * lay.width * 3}
        sizes.update({n: int(np.prod(tail)) * dt.itemsize for n, (tail, dt) in lay.outputs.items()})
        for name, per_image in sizes.items():
            nbytes = per_image * lay.max_batch
            self._device_bufs[name] = cuda.malloc(nbytes)
            self._host_bufs[name] = cuda.malloc_host(nbytes)
            if not self._context.set_tensor_address(name, self._device_bufs[name]):
                raise BackendError(f"TensorRT refused the buffer for {name!r} of {path}")
        self._bound_batch = 0

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        """``images uint8 [B, H, W, 3]`` → num_dets, boxes, scores, labels (new arrays, batch ``B``)."""
        if self._closed:
            raise BackendError(f"TensorRT engine {self.path.name} is closed")
        lay, cuda, stream = self.layout, self._cuda, self._stream
        b = check_images(images, lay)
        # A fixed-batch engine (or a profile whose minimum exceeds B) runs its full batch; rows past B
        # hold stale bytes from earlier calls and their outputs are dropped.
        run = max(b, lay.min_batch)
        cuda.activate()
        try:
            if lay.dynamic and run != self._bound_batch:
                if not self._context.set_input_shape(lay.input_name, (run, lay.height, lay.width, 3)):
                    raise BackendError(f"TensorRT refused batch {run} for {self.path.name}")
                self._bound_batch = run
            host_in = self._host_bufs[lay.input_name]
            per_image = lay.height * lay.width * 3
            np.copyto(host_in[: b * per_image].reshape(images.shape), images)
            cuda.memcpy_htod_async(self._device_bufs[lay.input_name], host_in[: run * per_image], stream)
            if not self._context.execute_async_v3(stream):
                raise BackendError(f"TensorRT failed to run {self.path.name} (see the TensorRT log)")
            views = []
            for name in OUTPUT_NAMES:
                tail, dtype = lay.outputs[name]
                host = self._host_bufs[name][: b * int(np.prod(tail)) * dtype.itemsize]  # rows < B only
                cuda.memcpy_dtoh_async(host, self._device_bufs[name], stream)
                views.append(host.view(dtype).reshape(b, *tail))
            cuda.stream_sync(stream)
        finally:
            cuda.deactivate()
        return [v.copy() for v in views]

    def close(self) -> None:
        """Free the execution context, engine, buffers and stream. Safe to call more than once."""
        self._closed = True
        cuda, self._cuda = self._cuda, None
        if cuda is None:
            self._context = self._engine = self._runtime = None
            return
        cuda.activate()
        errors: list[str] = []
        try:
            if self._stream is not None:
                errors += _attempt(cuda.stream_sync, self._stream)
            self._context = self._engine = self._runtime = None  # TensorRT objects before the memory they use
            for ptr in self._device_bufs.values():
                errors += _attempt(cuda.free, ptr)
            for buf in self._host_bufs.values():
                errors += _attempt(cuda.free_host, buf)
            if self._stream is not None:
                errors += _attempt(cuda.stream_destroy, self._stream)
        finally:
            self._device_bufs, self._host_bufs, self._stream = {}, {}, None
            cuda.deactivate()
            cuda.release()
        if errors:
            _log.warning("freeing TensorRT buffers: %s", "; ".join(errors))

    def __enter__(self) -> TrtEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn CUDA down already
            pass


def _attempt(fn: Any, *args: Any) -> list[str]:
    try:
        fn(*args)
    except BackendError as e:
        return [str(e)]
    return []
