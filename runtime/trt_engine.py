"""A serialized TensorRT plan run with the name-based I/O API, returning the contract's four outputs.

Works on TensorRT 10.x (JetPack 6 ships 10.3) and 11.x: tensors are addressed by name
(``num_io_tensors``, ``get_tensor_name``, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``); the bindings API removed in TensorRT 10 is never used.

Device memory goes through cuda-python (preferred) or pycuda (what JetPack images often have), behind
the small :class:`~edgedet.runtime.cuda.Cuda` interface (runtime/cuda.py); the contract check is
runtime/trt_contract.py and the one ``import tensorrt`` is runtime/trt_loader.py. Pinned host buffers and device buffers are sized once for the
engine's max batch and reused on every call, on one stream.

Nothing here imports a deep-learning framework: this module is what a Jetson application embeds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgedet.errors import BackendError
from edgedet.runtime.cuda import Cuda, load_cuda
from edgedet.runtime.input_format import to_engine_input
from edgedet.runtime.onnx_engine import OUTPUT_NAMES
from edgedet.runtime.trt_contract import check_contract, check_images, describe_engine
from edgedet.runtime.trt_loader import import_tensorrt, trt_logger

_log = logging.getLogger("edgedet.runtime.tensorrt")

def _short_version(version: str) -> str:
    return ".".join(version.split(".")[:2])


class TrtEngine:
    """A TensorRT plan (``.plan``/``.engine``) that maps ``images uint8 [B, H, W, 3]`` to the four
    contract outputs, ``[num_dets int32 [B, 1], boxes float32 [B, K, 4], scores float32 [B, K],
    labels int32 [B, K]]`` (the order of ``OUTPUT_NAMES``). Use as a context manager or call :meth:`close`.

    Attributes: ``input_hw`` (H, W); ``input_batch`` (the fixed batch, or ``None`` when
    dynamic); ``max_batch``; ``tensorrt_version``; ``cuda_binding`` ("cuda-python" or "pycuda").
    """

    def __init__(self, path: str | Path, *, device: int = 0) -> None:
        self._closed = True  # until every resource below exists; close() frees what does
        self._cuda: Cuda | None = None
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
        trt = import_tensorrt()
        self.tensorrt_version: str = trt.__version__
        logger = trt_logger(trt)
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
        self.input_hw: tuple[int, int] = (lay.height, lay.width)
        self.input_batch: int | None = None if lay.dynamic else lay.max_batch
        self.max_batch: int = lay.max_batch
        self.cuda_binding: str = cuda.name
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BackendError(f"cannot create a TensorRT execution context for {path} (out of GPU memory?)")
        self._stream = cuda.stream_create()
        sizes = {lay.input_name: lay.height * lay.width * 3 * lay.input_dtype.itemsize}
        sizes.update({n: int(np.prod(tail)) * dt.itemsize for n, (tail, dt) in lay.outputs.items()})
        for name, per_image in sizes.items():
            nbytes = per_image * lay.max_batch
            self._device_bufs[name] = cuda.malloc(nbytes)
            self._host_bufs[name] = cuda.malloc_host(nbytes)
            if not self._context.set_tensor_address(name, self._device_bufs[name]):
                raise BackendError(f"TensorRT refused the buffer for {name!r} of {path}")
        self._bound_batch = 0

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        """``images uint8 [B, H, W, 3]`` → num_dets, boxes, scores, labels (new arrays, batch ``B``); a float-nchw
        engine gets them as float32 NCHW."""
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
                if not self._context.set_input_shape(lay.input_name, lay.input_shape(run)):
                    raise BackendError(f"TensorRT refused batch {run} for {self.path.name}")
                self._bound_batch = run
            host_in = self._host_bufs[lay.input_name]
            per_image = lay.height * lay.width * 3 * lay.input_dtype.itemsize
            feed = to_engine_input(images, lay.input_format)
            np.copyto(host_in[: b * per_image].view(lay.input_dtype).reshape(feed.shape), feed)
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
