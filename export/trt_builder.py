"""ONNX → TensorRT plan (``edgedet build``), for TensorRT 10.x (JetPack 6) and 11.x.

Two steps, as in NVIDIA's Python samples: :func:`create_network` parses the ONNX file (TensorRT's plugin
library registered first, for ``EfficientNMS_TRT`` and ``ROIAlign``; every parser error logged) and
:func:`create_engine` configures the builder and returns the serialized plan. :func:`build_engine` does
the whole job: validation, both steps, the plan and its ``<stem>.json`` sidecar, written atomically.

Precision, by TensorRT version (:func:`tensorrt_features`, :func:`resolve_precision`):

- TensorRT ≥ 11 always builds a *strongly typed* network: the types in the ONNX are the types of the
  engine. ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` is accepted but ignored there and may be
  removed, so no creation flag is passed on 11. The precision flags and implicit INT8 calibration are gone,
  so precision is chosen at export time: ``edgedet export --fp16`` writes ``.fp16.onnx``, a Q/DQ
  ``.int8.onnx`` carries INT8. ``--fp16`` on an FP32 graph is an error that says so.
- TensorRT 10.12–10.x: weak typing is deprecated (10.12 release notes: "TensorRT will be using strong-typing
  exclusively in the future"), so edgedet builds strongly typed there too, opting in with
  ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``; precision comes from the graph as on 11.
- TensorRT 10.3–10.11 (JetPack 6) builds a weakly typed network and uses ``BuilderFlag.FP16`` / ``BuilderFlag.INT8``; INT8 on a
  graph without Q/DQ nodes is calibrated with ``IInt8EntropyCalibrator2`` (or ``IInt8MinMaxCalibrator``,
  ``--calib-method minmax``; :mod:`edgedet.calib.trt_calibrator`) fed by any iterable of ``uint8 [B, H, W, 3]`` batches, uploaded as float32 (the
  calibrator contract for non-index inputs, as Polygraphy and trtexec feed it), and the calibration cache
  (:mod:`edgedet.calib.trt_cache`, TensorRT's own format) is checked against this TensorRT version,
  algorithm and network before it is used, so a rebuild skips calibration but never uses a foreign cache.
  Weak typing lets the builder run any layer in FP16/INT8, the NMS tail included; so whenever a precision
  flag is set, the tail's layers (ONNX nodes named ``nms/…``) are pinned to FP32 with
  ``OBEY_PRECISION_CONSTRAINTS`` (:func:`pin_fp32_layers`): boxes and scores stay FP32 as the export promises.

NMS: ``--nms onnx`` (TensorRT's native ``INMSLayer``) is the path for every TensorRT version. The
``EfficientNMS_TRT`` plugin (``--nms efficient``) is deprecated since TensorRT 10.12 with no replacement
planned; it is kept for TensorRT 10.x below 10.12 (JetPack 6), and the build warns when it builds a plugin
graph on ≥ 10.12.

DLA (``--dla N``): the Deep Learning Accelerator of Jetson AGX Xavier / Xavier NX (2 cores, JetPack 5,
TensorRT 8.5, which edgedet does not build for) and AGX Orin / Orin NX (2 and 1 cores, JetPack 6, TensorRT
10.3). TensorRT 11.0–11.3 has no DLA support at all; 11.4.1 brings it back on AGX Orin only, with JetPack
7.2.2. Orin Nano has none, and desktop GPUs have none. DLA runs FP16 or INT8 only (never FP32), so ``--dla``
needs ``--fp16``/``--int8`` on TensorRT 10 or an FP16/Q-DQ graph on TensorRT 11; layers the DLA cannot run
(NMS, TopK, most of the detection head) fall back to the GPU (``BuilderFlag.GPU_FALLBACK``).
:func:`dla_support` states what a TensorRT version offers; ``edgedet doctor`` prints it.

The TensorRT-free parts (version table, precision rules, batch profile, option checks, the cache format)
are pure functions tested on any CPU; the rest needs TensorRT and a GPU and is tested where they exist.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edgedet import log
from edgedet.errors import BackendError, EdgedetError
from edgedet.export.nms import NMS_PREFIX
from edgedet.runtime.input_format import recognise
from edgedet.runtime.plugins import EFFICIENT_NMS

_log = logging.getLogger("edgedet.export.tensorrt")

WHERE_TO_BUILD = 'run edgedet build on the target device (pip install ".[tensorrt]" in edgedet\'s clone, or JetPack)'
CALIBRATORS = ("entropy", "minmax")
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


# --------------------------------------------------------------------------------------------------
# Pure functions: versions, precision, batch profile.


#: The oldest TensorRT edgedet builds for: JetPack 6.1/6.2's, and the oldest parser table `edgedet check` carries.
OLDEST_TENSORRT = (10, 3)


class TrtFeatures(NamedTuple):
    """What a TensorRT version offers the builder."""

    major: int
    minor: int
    patch: int
    strongly_typed_only: bool  # ≥ 11: the precision flags and weak typing are gone
    has_calibrators: bool  # < 11: IInt8EntropyCalibrator2 / IInt8MinMaxCalibrator
    efficient_nms_deprecated: bool  # ≥ 10.12: EfficientNMS_TRT deprecated, no replacement planned
    weak_typing_deprecated: bool  # ≥ 10.12 (its release notes): precision flags, layer precisions, calibrators

    @property
    def strongly_typed(self) -> bool:
        """Whether edgedet builds strongly typed networks on this version: from 10.12 on, where weak typing is
        deprecated (opted into with the creation flag below 11, unconditional on 11)."""
        return self.strongly_typed_only or self.weak_typing_deprecated


def tensorrt_features(version: str) -> TrtFeatures:
    """``trt.__version__`` (``"10.3.0"``, ``"10.12.0.36"``, ``"11.0.0"``) → :class:`TrtFeatures`."""
    parts = str(version).strip().split(".")
    try:
        major, minor, patch = (int(p) for p in (parts + ["0", "0"])[:3])
    except ValueError:
        raise BackendError(f"cannot read the TensorRT version {version!r}") from None
    if (major, minor) < OLDEST_TENSORRT:
        raise BackendError(f"TensorRT {version} is too old: edgedet builds with TensorRT 10.3 or newer (on a Jetson, "
                           "JetPack 6.1 or 6.2; JetPack 6.0 ships TensorRT 8.6, so move to JetPack 6.1 or later)")
    legacy = major < 11
    return TrtFeatures(major, minor, patch, strongly_typed_only=not legacy,
                       has_calibrators=legacy, efficient_nms_deprecated=(major, minor) >= (10, 12),
                       weak_typing_deprecated=(major, minor) >= (10, 12))


def dla_support(version: str) -> str:
    """What a TensorRT version offers on the DLA, in one line (``edgedet doctor``, ``--dla`` errors)."""
    f = tensorrt_features(version)
    if f.major == 10:
        return (f"TensorRT {version}: DLA on Jetson AGX Orin (2 cores) and Orin NX (1 core) with JetPack 6; "
                "none on Orin Nano or desktop GPUs")
    if (f.major, f.minor, f.patch) >= (11, 4, 1):
        return f"TensorRT {version}: DLA on Jetson AGX Orin only, with JetPack 7.2.2; none elsewhere"
    return f"TensorRT {version}: no DLA support (TensorRT 11.0-11.3; 11.4.1 brings it back on AGX Orin)"


def creation_flags(trt: Any, features: TrtFeatures, strongly_typed: bool) -> int:
    """Network creation flags: ``STRONGLY_TYPED`` on TensorRT 10 when asked, none on 11 (always strongly
    typed there; the flag is accepted but ignored and may be removed)."""
    if strongly_typed and not features.strongly_typed_only:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def graph_precision(model: Any) -> str:
    """``"int8"`` for a graph with Q/DQ nodes, ``"fp16"`` for one with float16 weights or casts to float16,
    else ``"fp32"``.

    The graph decides, not the file name or the sidecar: on TensorRT 11 the graph's types *are* the
    engine's, so a renamed file or a stale sidecar must not change what the build assumes.
    """
    import onnx

    half, tensor_attr, graph_attr = onnx.TensorProto.FLOAT16, onnx.AttributeProto.TENSOR, onnx.AttributeProto.GRAPH
    graphs = [model.graph]
    ops, fp16 = set(), False
    while graphs:
        g = graphs.pop()
        fp16 = fp16 or any(t.data_type == half for t in g.initializer)
        for node in g.node:
            ops.add(node.op_type)
            for a in node.attribute:
                if a.type == tensor_attr and a.t.data_type == half:
                    fp16 = True
                elif a.type == graph_attr:
                    graphs.append(a.g)
                elif node.op_type == "Cast" and a.name == "to" and a.i == half:
                    fp16 = True
    if ops & QDQ_OPS:
        return "int8"
    return "fp16" if fp16 else "fp32"


@dataclass(frozen=True)
class PrecisionPlan:
    """How the builder gets the requested precision on one TensorRT version."""

    precision: str  # what the engine computes in: fp32 | fp16 | int8
    strongly_typed: bool
    fp16_flag: bool = False
    int8_flag: bool = False
    calibrate: bool = False  # TensorRT 10 implicit INT8: calibrator (or its cache) needed


def resolve_precision(features: TrtFeatures, graph: str, *, fp16: bool, int8: bool) -> PrecisionPlan:
    """The builder settings for ``--fp16``/``--int8`` on a graph of precision ``graph`` (fp32/fp16/int8)."""
    if features.strongly_typed:
        typing = "builds" if features.strongly_typed_only else "deprecates weak typing, so edgedet builds"
        if fp16 and graph == "fp32":
            raise EdgedetError(f"TensorRT {features.major}.{features.minor} {typing} strongly typed networks: precision "
                               "comes from the ONNX; export with `edgedet export --fp16` and build the .fp16.onnx")
        if int8 and graph != "int8":
            calibrators = "has no" if features.strongly_typed_only else "deprecates"
            raise EdgedetError(f"TensorRT {features.major}.{features.minor} {calibrators} INT8 calibrators: build a Q/DQ "
                               "ONNX (`edgedet export --int8`, the .int8.onnx)")
        return PrecisionPlan(precision=graph, strongly_typed=True)
    if graph == "int8":  # explicit quantization: the Q/DQ scales are in the graph; TensorRT 10 needs the flag
        return PrecisionPlan("int8", False, fp16_flag=True, int8_flag=True)
    fp16_flag = fp16 or graph == "fp16" or int8  # FP16 for layers INT8 cannot run, as trtexec --int8 --fp16
    if int8:
        return PrecisionPlan("int8", False, fp16_flag=fp16_flag, int8_flag=True, calibrate=True)
    return PrecisionPlan("fp16" if fp16_flag else "fp32", False, fp16_flag=fp16_flag)


def _dim(d: Any) -> int:
    """An ONNX/TensorRT dimension as an int; symbolic or unknown → -1."""
    return int(d) if isinstance(d, (int, np.integer)) and int(d) > 0 else -1


def batch_profile(input_shape: Sequence[Any], min_batch: int | None, opt_batch: int | None, max_batch: int | None,
                  metadata: dict | None = None) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes of the ``images`` input for optimization profile 0.

    ``input_shape`` is the input's shape from the ONNX or the TensorRT network; a batch dimension that is
    symbolic, 0 or -1 is dynamic. Dynamic: ``max`` defaults to the sidecar's ``batch.max`` (else the largest
    of the given values, else 1), ``min`` to 1 and ``opt`` to ``max``; ``1 ≤ min ≤ opt ≤ max``. Fixed: the
    shape is returned three times and any batch option that differs from it is an error (the batch of a
    static export cannot change at build time).
    """
    shape = [_dim(d) for d in input_shape]
    if len(shape) != 4 or 3 not in (shape[1], shape[3]) or min(shape[1:]) <= 0:
        raise EdgedetError(f"ONNX input is {list(input_shape)}, not uint8 [B, H, W, 3] or float32 [B, 3, H, W] with "
                           "a fixed H x W (the engine contract); was it written by edgedet export?")
    given = {"--min-batch": min_batch, "--opt-batch": opt_batch, "--max-batch": max_batch}
    for flag, v in given.items():
        if v is not None and v < 1:
            raise EdgedetError(f"{flag} must be at least 1, not {v}")
    if shape[0] > 0:
        fixed = shape[0]
        wrong = [f"{flag} {v}" for flag, v in given.items() if v is not None and v != fixed]
        if wrong:
            raise EdgedetError(f"this ONNX has a fixed batch of {fixed}, so {', '.join(wrong)} cannot apply; "
                               "re-export with --dynamic-batch MAX (or --batch N) for another batch")
        return (tuple(shape),) * 3
    meta_max = ((metadata or {}).get("batch") or {}).get("max")
    hi = max_batch or (int(meta_max) if meta_max else None) or max([v for v in (min_batch, opt_batch) if v] or [1])
    lo = min_batch or 1
    opt = opt_batch or hi
    if not lo <= opt <= hi:
        raise EdgedetError(f"batch profile needs min <= opt <= max, got min {lo}, opt {opt}, max {hi}")
    tail = tuple(shape[1:])
    return (lo, *tail), (opt, *tail), (hi, *tail)


# --------------------------------------------------------------------------------------------------
# Options and the checks that need no TensorRT.


@dataclass
class BuildOptions:
    """Everything ``edgedet build`` takes. ``calib_batches`` overrides ``calib_images`` (any iterable of
    ``uint8 [B, H, W, 3]`` arrays) for callers with their own image source."""

    onnx: str | Path
    out: str | Path | None = None  # default: the ONNX path with .plan
    fp16: bool = False
    int8: bool = False
    calib_images: str | Path | None = None
    calib_cache: str | Path | None = None  # default: <onnx stem>.calib beside the ONNX
    calib_method: str = "entropy"
    calib_batch: int = 8
    calib_count: int = 256
    workspace_gb: float | None = None
    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None
    dla: int | None = None
    timing_cache: str | Path | None = None
    force: bool = False
    device: int = 0
    check: bool = True  # run edgedet check for this TensorRT version first; refuse a graph that fails
    calib_batches: Iterable[np.ndarray] | None = field(default=None, repr=False)

    @property
    def plan_path(self) -> Path:
        return Path(self.out) if self.out else Path(self.onnx).with_suffix(".plan")

    @property
    def cache_path(self) -> Path:
        return Path(self.calib_cache) if self.calib_cache else Path(self.onnx).with_suffix(".calib")


@dataclass
class Prepared:
    """What :func:`prepare` learned from the ONNX file without TensorRT."""

    model: Any  # onnx.ModelProto without external data
    metadata: dict
    graph: str  # fp32 | fp16 | int8
    input_name: str
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def prepare(opts: BuildOptions) -> Prepared:
    """Check the options against the ONNX file before TensorRT is imported, so every user mistake is one
    line on any machine (and before minutes of building)."""
    import onnx
    from edgedet.runtime.metadata import read_metadata

    src = Path(opts.onnx)
    if not src.is_file():
        raise EdgedetError(f"ONNX file not found: {src}")
    if src.suffix.lower() != ".onnx":
        raise EdgedetError(f"{src.name} is not an .onnx file; edgedet build takes an ONNX export")
    plan = opts.plan_path
    if plan.resolve() == src.resolve():
        raise EdgedetError(f"the plan would overwrite its ONNX file {src}; pass -o DIR")
    if plan.exists() and not opts.force:
        raise EdgedetError(f"{plan} exists; pass --force to overwrite it")
    if opts.calib_method not in CALIBRATORS:
        raise EdgedetError(f"--calib-method: TensorRT's calibrators are {', '.join(CALIBRATORS)}, not "
                           f"{opts.calib_method!r} (percentile is for the Q/DQ export: edgedet export --int8)")
    if opts.workspace_gb is not None and not opts.workspace_gb > 0:
        raise EdgedetError(f"--workspace must be a positive number of GB, not {opts.workspace_gb}")
    if opts.dla is not None and opts.dla < 0:
        raise EdgedetError(f"--dla takes a DLA core number (0 or 1), not {opts.dla}")
    if opts.calib_batch < 1 or opts.calib_count < 1:
        raise EdgedetError("--calib-batch and --calib-count must be at least 1")
    if opts.calib_images is not None and not Path(opts.calib_images).exists():
        raise EdgedetError(f"--calib-images: not found: {opts.calib_images} (an image folder, a COCO JSON or a video)")
    try:
        model = onnx.load(str(src), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise EdgedetError(f"cannot read {src} as ONNX: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    init_names = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init_names]
    if len(inputs) != 1:
        raise EdgedetError(f"{src.name} has {len(inputs)} inputs; the engine contract has one, uint8 [B, H, W, 3]")
    inp = inputs[0]
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim]
    dtype = {onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.FLOAT: "float32"}.get(inp.type.tensor_type.elem_type, "")
    if recognise(dtype, shape) is None:
        raise EdgedetError(f"{src.name} input {inp.name!r} is not uint8 [B, H, W, 3] or float32 [B, 3, H, W] (the engine "
                           "contract); was it written by edgedet export?")
    metadata = read_metadata(src) or {}
    if metadata.get("target") == "cpu":
        raise EdgedetError(f"{src.name} is a CPU artifact (metadata target 'cpu', for ONNX Runtime/OpenVINO); "
                           "build the TensorRT export (<name>.onnx, .fp16.onnx or .int8.onnx) instead")
    profile = batch_profile(shape, opts.min_batch, opts.opt_batch, opts.max_batch, metadata)
    graph = graph_precision(model)
    if opts.int8 and graph != "int8" and opts.calib_images is None and opts.calib_batches is None \
            and not opts.cache_path.is_file():
        raise EdgedetError(f"--int8 on a graph without Q/DQ nodes needs calibration images: pass --calib-images SRC "
                           f"(or a calibration cache {opts.cache_path}), or export a Q/DQ ONNX with `edgedet export --int8`")
    if opts.fp16 and graph == "int8":
        _log.info("%s is a Q/DQ graph; --fp16 lets its unquantized layers run in FP16", src.name)
    return Prepared(model=model, metadata=metadata, graph=graph, input_name=inp.name, profile=profile)


# --------------------------------------------------------------------------------------------------
# TensorRT: import, network, calibrator, engine.


def import_tensorrt() -> Any:
    """``tensorrt``, or :class:`BackendError` with the one line ``edgedet build`` prints."""
    from edgedet.runtime.trt_loader import import_tensorrt as load

    return load(WHERE_TO_BUILD)


def create_network(onnx_path: str | Path, *, strongly_typed: bool, trt: Any = None) -> tuple[Any, Any, Any]:
    """Parse ``onnx_path`` into a new network: ``(builder, network, parser)``.

    The parser must outlive the network (it owns the weights), hence the triple. ``parse_from_file`` resolves
    external data beside the ONNX file. Every parser error is logged; one :class:`EdgedetError` names the first.
    """
    trt = trt or import_tensorrt()
    from edgedet.runtime.trt_loader import trt_logger

    logger = trt_logger(trt)  # the runtime's process-wide logger, shared with every runtime
    builder = trt.Builder(logger)
    if builder is None:
        raise BackendError("TensorRT cannot create a builder (is a CUDA GPU visible?)")
    network = builder.create_network(creation_flags(trt, tensorrt_features(trt.__version__), strongly_typed))
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(onnx_path))
    if not ok or parser.num_errors:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        for e in errors:
            _log.error("TensorRT ONNX parser: %s", e)
        first = (errors[0].strip().splitlines() or ["unknown error"])[0] if errors else "unknown error"
        more = f" (and {len(errors) - 1} more, logged above)" if len(errors) > 1 else ""
        raise BackendError(f"TensorRT cannot parse {Path(onnx_path).name}: {first}{more}")
    return builder, network, parser


def network_tensor_names(network: Any) -> list[str]:
    """Names of the network's inputs and of every layer output: what a calibration cache may name."""
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        names.extend(layer.get_output(j).name for j in range(layer.num_outputs))
    return names


def pin_fp32_layers(trt: Any, network: Any, prefix: str = NMS_PREFIX) -> int:
    """Pin every layer named ``prefix…`` (the NMS tail) that reads or writes a float tensor to FP32; returns how
    many were pinned.

    On a weakly typed TensorRT 10 network with ``BuilderFlag.FP16``/``INT8`` the builder may otherwise run them
    in reduced precision. A layer's precision is the precision it *computes* in, so what counts is its float
    inputs: TopK (float values in, INT32 indices out), the NMS layer (float boxes and scores in, INT32 out) and
    the EfficientNMS plugin (which accepts HALF) all compute on floats. Pinning only layers whose outputs were
    all float let those three run in FP16 (boxes snap to 0.5 px in [512, 1024), IoU decisions flip, the final
    scores come from an FP16 TopK). Output types are set on float outputs only (integer and bool outputs have
    their own type). The caller sets ``OBEY_PRECISION_CONSTRAINTS``.
    """
    floats = {trt.float32, trt.float16}

    def is_float(tensor: Any) -> bool:
        return tensor is not None and tensor.dtype in floats

    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if not layer.name.startswith(prefix):
            continue
        float_outputs = [j for j in range(layer.num_outputs) if is_float(layer.get_output(j))]
        if not float_outputs and not any(is_float(layer.get_input(k)) for k in range(layer.num_inputs)):
            continue
        layer.precision = trt.float32
        for j in float_outputs:
            layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def create_engine(trt: Any, builder: Any, network: Any, plan: PrecisionPlan, profile: tuple, *,
                  workspace_gb: float | None = None, dla: int | None = None, timing_cache: str | Path | None = None,
                  calibrator: Any = None, calib_batch: int | None = None) -> bytes:
    """Configure the builder and build: the serialized plan's bytes (:class:`BackendError` when TensorRT
    returns None; the reason is in the TensorRT log)."""
    from edgedet.fileio import atomic_write_bytes

    config = builder.create_builder_config()
    if workspace_gb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if plan.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.int8_flag:
        config.set_flag(trt.BuilderFlag.INT8)
    if (plan.fp16_flag or plan.int8_flag) and not plan.strongly_typed:
        if pin_fp32_layers(trt, network):
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    inp = network.get_input(0)
    lo, opt, hi = profile
    if _dim(next(iter(inp.shape))) < 0:
        prof = builder.create_optimization_profile()
        prof.set_shape(inp.name, lo, opt, hi)
        config.add_optimization_profile(prof)
        if calibrator is not None:  # calibration runs at one shape: the calibrator's batch
            cal = builder.create_optimization_profile()
            shape = (calib_batch, *lo[1:])
            cal.set_shape(inp.name, shape, shape, shape)
            config.set_calibration_profile(cal)
    if calibrator is not None:
        config.int8_calibrator = calibrator
    if dla is not None:
        cores = int(getattr(builder, "num_DLA_cores", 0))
        if cores == 0:
            raise BackendError(f"--dla: this device has no DLA cores ({dla_support(trt.__version__)})")
        if not 0 <= dla < cores:
            raise EdgedetError(f"--dla {dla}: this device has DLA cores 0..{cores - 1}")
        if plan.precision == "fp32":
            raise EdgedetError("DLA runs FP16 or INT8 only: add --fp16 (TensorRT 10) or build an .fp16.onnx")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    cache = None
    if timing_cache is not None:
        tc = Path(timing_cache)
        cache = config.create_timing_cache(tc.read_bytes() if tc.is_file() else b"")
        if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
            raise EdgedetError(f"TensorRT refused the timing cache {tc} (made by another TensorRT version or GPU?); "
                               "delete it and build again")
    data = builder.build_serialized_network(network, config)
    if data is None:
        err = getattr(calibrator, "error", None)
        why = f"calibration images failed: {err}" if err else "see the TensorRT errors logged above"
        raise BackendError(f"TensorRT could not build the engine ({why})")
    if cache is not None:
        atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(data)


def device_name(device: int = 0) -> str:
    """The GPU's name from cuda-python (or pycuda), for the sidecar; ``"unknown"`` if neither says."""
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        err, prop = cudart.cudaGetDeviceProperties(device)
        if int(getattr(err, "value", err)) == 0:
            name = prop.name
            return (name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)).strip()
    except Exception as e:  # noqa: BLE001 - the name is informational
        _log.debug("no device name from cuda-python: %s", e)
    try:
        import pycuda.driver as drv

        drv.init()
        return str(drv.Device(device).name())
    except Exception:  # noqa: BLE001
        return "unknown"


# --------------------------------------------------------------------------------------------------
# The whole build.


@dataclass
class BuildResult:
    plan: Path
    sidecar: Path
    precision: str
    tensorrt: str
    device: str
    seconds: float
    calibrated: bool
    size_bytes: int


def _write_outputs(opts: BuildOptions, prep: Prepared, data: bytes, meta_update: dict) -> tuple[Path, Path]:
    from edgedet.runtime.metadata import sidecar_path

    from edgedet.fileio import atomic_path, atomic_write_json

    plan = opts.plan_path
    with atomic_path(plan, overwrite=opts.force) as tmp:
        tmp.write_bytes(data)
    meta = {**prep.metadata, **meta_update}
    side = sidecar_path(plan)
    atomic_write_json(side, meta, overwrite=True)
    return plan, side


def build_engine(opts: BuildOptions) -> BuildResult:
    """ONNX → plan + sidecar (see the module docstring). Raises :class:`EdgedetError`/:class:`BackendError`."""
    prep = prepare(opts)  # every check that needs no TensorRT, first
    trt = import_tensorrt()
    t0 = time.perf_counter()
    features = tensorrt_features(trt.__version__)
    if opts.check:  # its warnings include EfficientNMS_TRT's deprecation (10.12 on)
        from edgedet.export.conformance import require_conformant, target_for_tensorrt

        for rep in require_conformant(prep.model, target_for_tensorrt(trt.__version__), what=Path(opts.onnx).name):
            for f in rep.warnings:
                log.warn(f"{rep.target}: {f}")
    elif features.efficient_nms_deprecated and any(n.op_type == EFFICIENT_NMS for n in prep.model.graph.node):
        log.warn(f"{Path(opts.onnx).name} uses the EfficientNMS_TRT plugin, deprecated since TensorRT 10.12 "
                 f"(this is {trt.__version__}); export with --nms onnx (TensorRT's native NMS) instead")
    plan = resolve_precision(features, prep.graph, fp16=opts.fp16, int8=opts.int8)
    builder, network, _parser = create_network(opts.onnx, strongly_typed=plan.strongly_typed, trt=trt)
    profile = batch_profile(tuple(network.get_input(0).shape), opts.min_batch, opts.opt_batch, opts.max_batch,
                            prep.metadata)
    calibrator, calib_batch, cuda = None, None, None
    calibrated = False
    try:
        from edgedet.runtime.cuda import load_cuda

        if opts.device != 0 or plan.calibrate:  # TensorRT builds on the current device; select it
            cuda = load_cuda(opts.device)
            cuda.activate()
        if plan.calibrate:
            from edgedet.calib.trt_cache import check_cache
            from edgedet.calib.trt_calibrator import folder_batches, make_calibrator

            cache = opts.cache_path
            if cache.is_file():
                check_cache(cache, expected_algorithm=opts.calib_method, trt_version=trt.__version__,
                            tensor_names=network_tensor_names(network))
                _log.info("using calibration cache %s (no images needed)", cache)
                batches: Iterable[np.ndarray] = iter(())
            elif opts.calib_batches is not None:
                batches = opts.calib_batches
            elif opts.calib_images is not None:
                batches = None  # set below, once the batch size is known
            else:
                raise EdgedetError("--int8 needs --calib-images SRC (or a calibration cache)")
            lo, _opt, hi = profile
            fixed = lo[0] == hi[0] and _dim(next(iter(network.get_input(0).shape))) > 0
            calib_batch = lo[0] if fixed else max(lo[0], min(opts.calib_batch, hi[0]))
            fmt, _b, size = recognise("uint8" if lo[3] == 3 else "float32", list(lo))
            if batches is None:
                batches = folder_batches(opts.calib_images, prep.metadata, size, calib_batch, opts.calib_count)
            calibrator = make_calibrator(trt, opts.calib_method, batches, calib_batch, size, cache, cuda, fmt)
            calibrated = not cache.is_file()
        data = create_engine(trt, builder, network, plan, profile, workspace_gb=opts.workspace_gb, dla=opts.dla,
                             timing_cache=opts.timing_cache, calibrator=calibrator, calib_batch=calib_batch)
    finally:
        if calibrator is not None:
            calibrator.free()
        if cuda is not None:
            cuda.deactivate()
            cuda.release()
    seconds = time.perf_counter() - t0
    lo, opt, hi = profile
    dynamic = _dim(next(iter(network.get_input(0).shape))) < 0
    name = device_name(opts.device)
    # fields() rather than asdict(): asdict deep-copies, and calib_batches may be a generator
    build_opts = {f.name: (str(v) if isinstance(v, Path) else v) for f in fields(opts)
                  if f.name not in ("calib_batches", "force", "onnx", "out", "check") and (v := getattr(opts, f.name)) is not None}
    meta_update = {
        "precision": plan.precision,
        "tensorrt": trt.__version__,
        "device": name,
        "batch": {"dynamic": True, "min": lo[0], "opt": opt[0], "max": hi[0]} if dynamic
        else {"dynamic": False, "size": lo[0]},
        "build": {**build_opts, "strongly_typed": plan.strongly_typed, "fp16_flag": plan.fp16_flag,
                  "int8_flag": plan.int8_flag, "calibrated": calibrated, "source": Path(opts.onnx).name,
                  "built_in_s": round(seconds, 2)},
    }
    if isinstance(prep.metadata.get("versions"), dict):
        meta_update["versions"] = {**prep.metadata["versions"], "tensorrt": trt.__version__}
    plan_path, side = _write_outputs(opts, prep, data, meta_update)
    return BuildResult(plan=plan_path, sidecar=side, precision=plan.precision, tensorrt=trt.__version__, device=name,
                       seconds=seconds, calibrated=calibrated, size_bytes=len(data))
