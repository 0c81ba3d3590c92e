"""CUDA for the TensorRT engine, the builder and the calibrator: device memory, pinned host memory, copies
and one stream, through cuda-python (preferred) or pycuda (what JetPack images often ship), behind the
small :class:`Cuda` interface. Torch-free.
"""

from __future__ import annotations

import ctypes
from typing import Any, Protocol

import numpy as np

from edgedet.errors import BackendError

CUDA_HINT = "pip install cuda-python (or use the pycuda that JetPack images ship)"




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


class Cuda(Protocol):
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


def load_cuda(device: int = 0) -> Cuda:
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
