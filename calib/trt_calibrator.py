"""TensorRT 10's INT8 calibrators (``IInt8EntropyCalibrator2``, ``IInt8MinMaxCalibrator``) fed with the same
calibration images the Q/DQ export uses, resized as the runtime resizes. Torch-free; TensorRT and CUDA are
passed in, so the calibrator is tested with stand-ins. TensorRT 11 has no calibrators (Q/DQ only).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from edgedet.errors import DataError
from edgedet.runtime.input_format import UINT8_NHWC, to_engine_input

_log = logging.getLogger("edgedet.export.tensorrt")


def _full_batches(batches: Iterable[np.ndarray], batch_size: int, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    """Regroup any stream of ``uint8 [b, H, W, 3]`` arrays into contiguous batches of exactly ``batch_size``
    (TensorRT's calibrator has one fixed batch); a short remainder is dropped."""
    pending: list[np.ndarray] = []
    have = 0
    for arr in batches:
        arr = np.asarray(arr)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.dtype != np.uint8 or tuple(arr.shape[1:]) != tuple(shape[1:]):
            raise DataError(f"calibration batch is {arr.dtype} {list(arr.shape)}, not uint8 [B, {', '.join(map(str, shape[1:]))}]")
        pending.append(arr)
        have += len(arr)
        while have >= batch_size:
            joined = np.concatenate(pending)
            yield np.ascontiguousarray(joined[:batch_size])
            rest = joined[batch_size:]
            pending, have = ([rest] if len(rest) else []), len(rest)


def folder_batches(source: str | Path, metadata: dict, size: tuple[int, int], batch: int,
                   max_images: int) -> Iterator[np.ndarray]:
    """Calibration batches from an image folder, COCO JSON or video (:mod:`edgedet.calib.sources`), resized
    as the runtime resizes (the metadata's stretch or letterbox and pad value), so the calibrator sees what
    the engine will see."""
    from edgedet.calib.sources import calibration_images, preprocessed_batches

    inp = metadata.get("input", {})
    mode, pad = inp.get("resize", "stretch"), tuple(int(v) for v in inp.get("pad_value", (0, 0, 0)))
    return preprocessed_batches(calibration_images(source, count=max_images), size, mode, pad, batch)


def calibration_nbytes(shape: Sequence[int]) -> int:
    """Bytes of one calibration batch on the device: float32 elements, not the uint8 input's bytes."""
    return int(np.prod(shape)) * np.dtype(np.float32).itemsize


def make_calibrator(trt: Any, algorithm: str, batches: Iterable[np.ndarray], batch_size: int,
                    size: tuple[int, int], cache_path: str | Path, cuda: Any, input_format: str = UINT8_NHWC) -> Any:
    """A TensorRT 10 ``IInt8EntropyCalibrator2`` (``"entropy"``) or ``IInt8MinMaxCalibrator`` (``"minmax"``).

    It copies each ``uint8 [batch_size, H, W, 3]`` batch, converted to float32 (TensorRT's calibrator reads
    float32 for every non-index input, whatever the network input's type: Polygraphy's calibrator forces
    float32 and trtexec's allocates ``count * sizeof(float)``), into one device buffer and hands TensorRT its
    address (as float32 NCHW for a float-nchw export); ``None`` ends calibration. ``read_calibration_cache`` returns the cache file's bytes (already
    checked by :func:`create_engine`, because an exception raised inside a TensorRT callback cannot reach the
    user as one line), ``write_calibration_cache`` writes TensorRT's bytes atomically. ``cuda`` is the runtime's
    CUDA helper (:func:`edgedet.runtime.cuda.load_cuda`).
    """
    base = trt.IInt8EntropyCalibrator2 if algorithm == "entropy" else trt.IInt8MinMaxCalibrator
    shape = (batch_size, *size, 3)
    nbytes = calibration_nbytes(shape)

    class _Calibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.cache_path = Path(cache_path)
            self.batches = _full_batches(batches, batch_size, shape)
            self.device_ptr = cuda.malloc(nbytes)
            self.stream = cuda.stream_create()
            self.pinned = cuda.malloc_host(nbytes)  # uint8 [nbytes], freed as allocated
            self.host = self.pinned.view(np.float32)
            self.count = 0
            self.error: Exception | None = None

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                batch = next(self.batches)
            except StopIteration:
                return None
            except Exception as e:  # noqa: BLE001 - end calibration here; the builder then fails, we report why
                self.error = e
                return None
            # uint8 → float32 values 0..255, what TensorRT reads, in the engine's layout
            np.copyto(self.host, to_engine_input(batch, input_format).reshape(-1), casting="unsafe")
            cuda.memcpy_htod_async(self.device_ptr, self.host, self.stream)
            cuda.stream_sync(self.stream)
            self.count += batch_size
            _log.debug("calibration: %d images", self.count)
            return [self.device_ptr]

        def read_calibration_cache(self) -> bytes | None:
            return self.cache_path.read_bytes() if self.cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            from edgedet.fileio import atomic_write_bytes

            atomic_write_bytes(self.cache_path, bytes(cache))
            _log.info("calibration cache written: %s", self.cache_path)

        def free(self) -> None:
            if self.device_ptr is not None:
                cuda.free(self.device_ptr)
                cuda.free_host(self.pinned)
                cuda.stream_destroy(self.stream)
                self.device_ptr = None

    return _Calibrator()
