"""``Detector``: the object an application embeds on the device. Torch-free.

    from edgedet.runtime import Detector
    det = Detector("model.onnx")            # or model.plan / model.engine (TensorRT)
    det = Detector("model.onnx", backend="openvino")   # OpenVINO on the CPU
    result = det(rgb_image)                 # Detections in original-image pixels
    det.class_names[result.labels[0]]

Host work is resize only (stretch or letterbox, as the metadata says) into a preallocated buffer; the
graph casts and normalises. Boxes map back to the original image exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np

from edgedet import log
from edgedet.errors import BackendError, DataError
from edgedet.runtime.detections import Detections
from edgedet.runtime.metadata import max_batch, read_metadata, require_runtime_keys
from edgedet.runtime.preprocess import RESIZE_MODES, pad_to_batch, preprocess_batch, scale_16_to_8

ONNX_SUFFIXES = {".onnx"}
TRT_SUFFIXES = {".plan", ".engine", ".trt"}
BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt")

ImageOrBatch = Union[np.ndarray, Sequence[np.ndarray]]


def default_providers(cuda_device: int = 0) -> list:
    """TensorRT EP → CUDA EP → CPU EP, by what this ONNX Runtime build offers; GPU providers on ``cuda_device``."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    order = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = [p for p in order if p in available] or ["CPUExecutionProvider"]
    if cuda_device == 0:
        return chosen
    return [(p, {"device_id": cuda_device}) if p != "CPUExecutionProvider" else p for p in chosen]


def _read_metadata(path: Path) -> tuple[dict | None, BackendError | None]:
    """The artifact's metadata, read once, or the error reading it: the Detector reports unusable metadata once
    the engine is loaded (a missing or broken engine is the first thing to say)."""
    try:
        return read_metadata(path), None
    except BackendError as e:
        return None, e


def auto_onnx_backend(kind: str | None = None, providers: list | None = None, precision: str | None = None) -> str:
    """What ``backend="auto"`` runs an ``.onnx`` with: ONNX Runtime, except for an INT8 graph on a machine
    without a GPU provider, which goes to OpenVINO where it is installed.

    Measured on a 2-core Xeon (docs/performance.md, "CPU deployment", interleaved): FP32 is a draw (OpenVINO/ONNX Runtime
    0.97-1.03x on ssdlite320, 0.77-1.02x on the tiny fixture), so FP32/FP16 stay on ONNX Runtime; the Q/DQ
    INT8 graph runs 2.5-3.9x faster in OpenVINO, which executes it as INT8 kernels, while ONNX Runtime runs
    it slower than FP32 (0.28-0.41x). A GPU provider, a CUDA device or explicit providers mean ONNX Runtime."""
    import importlib.util

    if providers is not None or kind == "cuda" or precision != "int8":
        return "onnxruntime"
    try:
        import onnxruntime as ort

        if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()):
            return "onnxruntime"
    except ImportError:
        pass
    return "openvino" if importlib.util.find_spec("openvino") is not None else "onnxruntime"


def parse_device(device: int | str | None) -> tuple[str | None, int]:
    """``(kind, CUDA ordinal)`` of a Detector ``device``: kind ``cpu``, ``cuda`` or None (the backend's default)."""
    if device is None:
        return None, 0
    if isinstance(device, int) and not isinstance(device, bool):
        return "cuda", device
    text = str(device).strip().lower()
    if text in ("cpu", "cuda"):
        return text, 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return "cuda", int(text[5:])
    raise BackendError(f"device must be cpu, cuda, cuda:N or a CUDA ordinal, not {device!r}")


ACCEPTED_IMAGES = ("RGB uint8 arrays [H, W, 3] (also gray [H, W] or [H, W, 1], RGBA [H, W, 4]), uint16, "
                   "float (0..1 or 0..255), other integers within 0..255, or PIL images")


def _is_pil(image: object) -> bool:
    """A PIL image, recognised without importing PIL (the runtime does not need it)."""
    return hasattr(image, "convert") and hasattr(image, "mode") and hasattr(image, "size")


def is_single_image(images: object) -> bool:
    """One image (an array [H, W] / [H, W, C] or a PIL image) rather than a batch of them."""
    return (isinstance(images, np.ndarray) and images.ndim in (2, 3)) or _is_pil(images)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Grayscale ``[H, W]``/``[H, W, 1]`` and RGBA ``[H, W, 4]`` to RGB ``[H, W, 3]`` uint8; 16-bit scaled to
    8 bits, float images in [0, 1] scaled by 255 (with a warning: the engine takes 0..255), PIL images converted
    to RGB. Bool and int8 arrays, and integers outside 0..255, are refused: converting them would silently give
    another image (a mask > 128 becomes all black, int8 wraps)."""
    if image is None:
        raise DataError("got None instead of an image (did cv2.imread fail to read the file?)")
    if _is_pil(image):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise DataError(f"expected an image: {ACCEPTED_IMAGES}; got {getattr(image, 'shape', type(image).__name__)}")
    if image.dtype != np.uint8:
        kind = image.dtype.kind
        if image.dtype == np.bool_ or image.dtype == np.int8 or kind not in "uif":
            raise DataError(f"{image.dtype} arrays are not images edgedet can read unambiguously; expected "
                            f"{ACCEPTED_IMAGES}")
        if image.dtype == np.uint16:
            image = scale_16_to_8(image)
        elif kind == "f" and float(np.nanmax(image)) <= 1.0:
            log.warn("float image with values in [0, 1]: scaled by 255 (pass uint8 0..255 images)", once=True)
            image = np.rint(np.nan_to_num(image) * 255.0)
        elif kind in "ui" and (int(image.min()) < 0 or int(image.max()) > 255):
            raise DataError(f"{image.dtype} image with values in {int(image.min())}..{int(image.max())}, outside "
                            "0..255; scale it to uint8 first")
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    channels = image.shape[2]
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 4:
        return image[:, :, :3]
    if channels != 3:
        raise DataError(f"expected 1, 3 or 4 channels, got {channels}")
    return image


def check_returned_shapes(out: dict[str, np.ndarray], batch: int, source: str) -> None:
    """What an engine returned, against the contract: an engine whose outputs declare the right shapes but
    return others would otherwise fail far away (or pair boxes with another detection's scores)."""
    k = np.shape(out["scores"])[1] if np.ndim(out["scores"]) == 2 else -1
    want = {"num_dets": (batch, 1), "boxes": (batch, k, 4), "scores": (batch, k), "labels": (batch, k)}
    for name, shape in want.items():
        got = tuple(np.shape(out[name]))
        if k < 0 or got != shape:
            expect = {"num_dets": "[B, 1]", "boxes": "[B, K, 4]", "scores": "[B, K]", "labels": "[B, K]"}[name]
            raise BackendError(f"{source} returned {name} of shape {list(got)}, not {expect} with B = {batch} and one "
                               f"K for all outputs (the engine contract): its outputs do not match their declarations")
    n = np.asarray(out["num_dets"]).reshape(-1)
    if n.size and (int(n.min()) < 0 or int(n.max()) > k):
        raise BackendError(f"{source} returned num_dets {int(n.max()) if n.max() > k else int(n.min())} outside "
                           f"0..{k} (the engine contract)")


class Detector:
    """Loads an engine with its metadata and turns RGB images into :class:`Detections`."""

    def __init__(self, path: str | Path, backend: str = "auto", device: int | str | None = None,
                 providers: list[str] | None = None, threads: int | None = None) -> None:
        """``device``: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a CUDA ordinal; None is the backend's default
        (TensorRT and ONNX Runtime's CUDA providers on GPU 0, OpenVINO on the CPU)."""
        path = Path(path)
        kind, index = parse_device(device)
        if backend not in BACKENDS:
            raise BackendError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        suffix = path.suffix.lower()
        if suffix not in ONNX_SUFFIXES | TRT_SUFFIXES:
            raise BackendError(f"unknown engine type {path.name!r}: expected .onnx (ONNX Runtime) or .plan/.engine (TensorRT)")
        if not path.is_file():
            raise BackendError(f"engine not found: {path}")
        use_trt = backend == "tensorrt" or (backend == "auto" and suffix in TRT_SUFFIXES)
        meta, meta_error = _read_metadata(path)
        if backend == "auto" and not use_trt:
            backend = auto_onnx_backend(kind, providers, (meta or {}).get("precision"))
        if use_trt and suffix in ONNX_SUFFIXES:
            raise BackendError(f"{path.name} is an ONNX file; build a TensorRT plan first with `edgedet build --engine {path}`")
        if backend in ("onnxruntime", "openvino") and suffix in TRT_SUFFIXES:
            raise BackendError(f"{path.name} is a TensorRT plan; {backend} runs .onnx files")
        if use_trt:
            from edgedet.runtime.trt_engine import TrtEngine

            if kind == "cpu":
                raise BackendError(f"{path.name} is a TensorRT plan, which runs on a CUDA GPU, not on the CPU")
            self.engine = TrtEngine(path, device=index)
        elif backend == "openvino":
            from edgedet.runtime.openvino_engine import OpenVinoEngine

            if kind == "cuda":
                raise BackendError("the openvino backend runs on the CPU here; use --device cpu or another backend")
            self.engine = OpenVinoEngine(path, threads=threads)
        else:
            from edgedet.runtime.onnx_engine import OnnxEngine

            if providers is None:
                providers = ["CPUExecutionProvider"] if kind == "cpu" else default_providers(index)
                if kind == "cuda" and providers == ["CPUExecutionProvider"]:
                    raise BackendError(f"device {device!r}: this ONNX Runtime has no CUDA provider (pip install "
                                       "onnxruntime-gpu on a machine with an NVIDIA GPU), or use --device cpu")
            self.engine = OnnxEngine(path, providers=providers, threads=threads)
        self.path = path
        self.backend = "tensorrt" if use_trt else ("openvino" if backend == "openvino" else "onnxruntime")
        if meta_error is not None:
            raise meta_error
        self.metadata = self._metadata(meta)
        inp = self.metadata["input"]
        self.input_size: tuple[int, int] = (int(inp["size"][0]), int(inp["size"][1]))
        self.resize: str = inp.get("resize", "stretch")
        if self.resize not in RESIZE_MODES:
            raise BackendError(f"{path.name}: unknown resize mode {self.resize!r} in its metadata")
        self.pad_value = tuple(int(v) for v in inp.get("pad_value", (0, 0, 0)))
        self.class_names: list[str] = list(self.metadata["classes"])
        self.dynamic_batch = bool(self.metadata.get("batch", {}).get("dynamic"))
        self.batch_size = max_batch(self.metadata)
        self._check_metadata_matches_engine()
        self._buffer = np.zeros((self.batch_size, *self.input_size, 3), np.uint8)

    def _metadata(self, meta: dict | None) -> dict:
        if meta is not None:
            return require_runtime_keys(meta, self.path.name)
        b, h, w = self.engine.input_batch, *self.engine.input_hw
        log.warn(f"no metadata for {self.path.name} (no sidecar JSON, no ONNX metadata_props): "
                 f"using the engine's own input size {h}x{w}, stretch resize and numeric class names")
        return {"input": {"size": [h, w], "resize": "stretch"}, "classes": [],
                "batch": {"dynamic": b is None, "size": b or 1, "max": b or 1}}

    def _check_metadata_matches_engine(self) -> None:
        """A sidecar from another export (another size or batch) would feed the engine the wrong tensor."""
        hw = tuple(getattr(self.engine, "input_hw", None) or ())
        if len(hw) == 2 and all(hw) and tuple(hw) != self.input_size:
            raise BackendError(f"{self.path.name}: its metadata says input {self.input_size[0]}x{self.input_size[1]} but "
                               f"the engine takes {hw[0]}x{hw[1]}: the sidecar belongs to another export")
        fixed = getattr(self.engine, "input_batch", None)
        if fixed and not self.dynamic_batch and fixed != self.batch_size:
            raise BackendError(f"{self.path.name}: its metadata says batch {self.batch_size} but the engine takes "
                               f"{fixed}: the sidecar belongs to another export")

    def class_name(self, label: int) -> str:
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def raw(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The contract tensors for an already-resized ``uint8 [B, H, W, 3]`` batch."""
        num, boxes, scores, labels = self.engine(np.ascontiguousarray(batch))
        out = {"num_dets": num, "boxes": boxes, "scores": scores, "labels": labels}
        check_returned_shapes(out, len(batch), self.path.name)
        return out

    def __call__(self, images: ImageOrBatch) -> Detections | list[Detections]:
        if images is None:
            raise DataError("got None instead of an image (did cv2.imread fail to read the file?)")
        single = is_single_image(images)
        try:
            batch = [images] if single else list(images)
        except TypeError:
            raise DataError(f"expected an image or a list of images: {ACCEPTED_IMAGES}; got "
                            f"{type(images).__name__}") from None
        out: list[Detections] = []
        for start in range(0, len(batch), self.batch_size):
            out.extend(self._run_chunk([as_rgb(im) for im in batch[start : start + self.batch_size]]))
        return out[0] if single else out

    def _run_chunk(self, images: list[np.ndarray]) -> list[Detections]:
        n = len(images)
        resized, fits = preprocess_batch(images, self.input_size, self.resize, self.pad_value, out=self._buffer)
        feed = resized if self.dynamic_batch else pad_to_batch(resized, self.batch_size)  # fixed: a full batch
        r = self.raw(feed)
        if self.class_names and n and int(r["labels"][:n].max(initial=0)) >= len(self.class_names):
            raise BackendError(f"{self.path.name} returned class {int(r['labels'][:n].max())} but its metadata lists "
                               f"{len(self.class_names)} classes: the sidecar belongs to another export")
        dets = []
        for b in range(n):
            k = int(r["num_dets"][b, 0])
            dets.append(Detections(fits[b].to_original(r["boxes"][b, :k]), r["scores"][b, :k].astype(np.float32),
                                   r["labels"][b, :k].astype(np.int64)))
        return dets
