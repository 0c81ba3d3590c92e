"""torch → ONNX for every zoo model: deploy wrapper, candidate graph, NMS tail, FP16, metadata, parity.

Steps: build the zoo model → wrap it (static shapes) → ``torch.onnx.export`` the candidate graph →
append the NMS tail (FP32 always) → optionally an FP16 twin → metadata in ``metadata_props`` and a
sidecar → ``onnx.checker`` (full check) → atomic write → optional parity check against eager PyTorch.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import onnx

from edgedet import __version__, log
from edgedet.errors import EdgedetError
from edgedet.export.nms import CANDIDATES, NMSConfig, append_nms
from edgedet.export.conformance import TENSORRT_TOPK_LIMIT
from edgedet.export.exporters import DEFAULT_EXPORTER, export_graph, graph_opset, resolve_opset
from edgedet.export.wrappers import build_wrapper, configure_reference, pad_value, set_rpn_proposals
from edgedet.fileio import atomic_path, atomic_write_json
from edgedet.runtime.input_format import DESCRIPTION, INPUT_FORMATS, UINT8_NHWC, shape_of, to_engine_input
from edgedet.runtime.metadata import PROPS_KEY, SCHEMA_VERSION, sidecar_path
from edgedet.runtime.precisions import PRECISIONS

#: What ``export`` writes for: every TensorRT version edgedet builds with (metadata ``target``).
EXPORT_TARGET = "tensorrt"


@dataclass
class ExportOptions:
    model: str | None
    weights: str = "none"
    imgsz: tuple[int, int] | None = None
    batch: int = 1
    dynamic_batch: int | None = None  # max batch of a dynamic-batch export (SSD family)
    nms: NMSConfig = field(default_factory=NMSConfig)
    fp16: bool = False
    int8: bool = False  # Q/DQ graph calibrated on calib_images (folder, COCO JSON or video)
    calib_images: str | None = None
    calib_count: int = 256
    calib_method: str = "percentile"  # measured best of the three on the fixture model (docs/int8.md)
    int8_weight_bits: int = 7  # 7: no int16 saturation on x86 CPUs without VNNI (edgedet.calib.quantize)
    rpn_score_thresh: float | None = None
    rpn_post_nms_top_n: int | None = None  # proposals per image: the box head's static workload
    max_candidates: int = 1000
    opset: int | None = None  # None: the exporter's oldest (edgedet.export.exporters.EXPORTERS)
    exporter: str = DEFAULT_EXPORTER  # torch-export or torchscript (edgedet.export.exporters)
    input_format: str = UINT8_NHWC  # float-nchw: the input DeepStream's nvinfer writes (edgedet.runtime.input_format)
    out_dir: str = "exports"
    name: str | None = None
    force: bool = False
    verify: int = 0
    verify_source: str | None = None
    check: bool = True  # run edgedet check (every TensorRT target) and refuse a graph that fails it


@dataclass
class ExportResult:
    artifacts: dict[str, Path]  # precision → .onnx
    metadata: dict[str, Any]
    seconds: float
    parity: dict[str, dict] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No precision FAILed (a check on zero boxes is not measured, which is reported, not failed)."""
        return all(r["passed"] is not False for r in self.parity.values())


def _versions() -> dict[str, str | None]:
    import torch
    import torchvision

    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    from edgedet.runtime.trt_loader import tensorrt_version

    trt_version = tensorrt_version()
    return {"edgedet": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "onnx": onnx.__version__, "onnxruntime": ort_version, "tensorrt": trt_version}


def _check_options(opts: ExportOptions) -> None:
    resolve_opset(opts.exporter, opts.opset)
    if opts.name is not None and (opts.name in ("", ".", "..") or Path(opts.name).name != opts.name
                                  or "\\" in opts.name):
        raise EdgedetError(f"--name is a file stem inside the output folder, not a path: {opts.name!r}")
    if opts.input_format not in INPUT_FORMATS:
        raise EdgedetError(f"--input-format must be one of {', '.join(INPUT_FORMATS)}, not {opts.input_format!r}")
    if opts.batch < 1:
        raise EdgedetError("--batch must be at least 1")
    if not 1 <= opts.max_candidates <= TENSORRT_TOPK_LIMIT:
        raise EdgedetError(f"--max-candidates must be in 1..{TENSORRT_TOPK_LIMIT} (TensorRT's TopK limit), "
                           f"not {opts.max_candidates}")
    if opts.dynamic_batch is not None and opts.dynamic_batch < 1:
        raise EdgedetError("--dynamic-batch must be at least 1")
    if opts.imgsz and (len(opts.imgsz) != 2 or min(opts.imgsz) < 32):
        raise EdgedetError("--imgsz must be one size or H W, each at least 32")
    if opts.rpn_post_nms_top_n is not None and not 1 <= opts.rpn_post_nms_top_n <= TENSORRT_TOPK_LIMIT:
        raise EdgedetError(f"--rpn-post-nms-top-n must be in 1..{TENSORRT_TOPK_LIMIT} (TensorRT's TopK limit)")
    if opts.int8 and not opts.calib_images:
        raise EdgedetError("--int8 needs --calib-images (an image folder, a COCO JSON or a video)")


class Built(NamedTuple):
    """The eager model an export starts from, and what the metadata records about it."""
    entry: Any  # the zoo's ModelEntry; its ``deploy`` row says how the family exports
    size: tuple[int, int]  # (H, W) of the engine input
    model: Any  # the eager torchvision detector, in eval mode
    classes: list[str]
    category_ids: list[int] | None
    weights_sha256: str | None


def _build(opts: ExportOptions) -> Built:
    from edgedet.checkpoint import category_ids as checkpoint_category_ids
    from edgedet.checkpoint import file_sha256
    from edgedet.models import create_model, get_model_entry
    from edgedet.reference import model_name_from_checkpoint

    name = opts.model or model_name_from_checkpoint(opts.weights)
    entry = get_model_entry(name)
    size = tuple(opts.imgsz) if opts.imgsz else tuple(entry.input_size)
    model = create_model(name, weights=opts.weights, rpn_score_thresh=opts.rpn_score_thresh,
                         **entry.deploy.builder_sizes(size)).eval()
    if opts.rpn_post_nms_top_n is not None:
        set_rpn_proposals(model, entry.deploy, opts.rpn_post_nms_top_n)
    weights_file = Path(opts.weights)
    sha = file_sha256(weights_file) if weights_file.is_file() else None
    classes = list(model.edgedet_classes)
    return Built(entry, size, model, classes, checkpoint_category_ids(opts.weights, len(classes)), sha)


def _torch_export(wrapper, batch: int, dynamic: bool, size: tuple[int, int], opset: int,
                  outputs: tuple[str, ...] = CANDIDATES, exporter: str = DEFAULT_EXPORTER,
                  what: str = "the model") -> onnx.ModelProto:
    """The wrapper's candidate graph, exported on an input of the format it was built for."""
    import torch

    input_format = wrapper.normalize.input_format
    example = torch.zeros(shape_of(input_format, batch, size),
                          dtype=torch.uint8 if input_format == UINT8_NHWC else torch.float32)
    return export_graph(wrapper, example, exporter=exporter, opset=opset, outputs=outputs, dynamic=dynamic, what=what)


def _to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 weights and compute, FP32 inputs/outputs: what TensorRT 11 builds FP16 engines from.

    The input cast and normalisation stay FP32 (the converter would otherwise retype the uint8→float
    Cast's output without changing its ``to`` attribute, an invalid graph), and tiny weights that
    underflow FP16 are clamped by the converter, which is expected.
    """
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise EdgedetError("--fp16 needs onnxconverter-common: pip install onnxconverter-common") from None

    keep_fp32 = [n.name for n in model.graph.node if _in_normalize(n)]
    to_float = {n.name for n in model.graph.node if n.op_type == "Cast" and n.name not in keep_fp32
                and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in n.attribute)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=keep_fp32)
    # The converter retypes every float tensor of the converted region as FP16 but leaves the ``to``
    # attribute of the graph's own Cast-to-float nodes at FLOAT; fix those so the graph type-checks.
    for node in half.graph.node:
        if node.name in to_float:
            next(a for a in node.attribute if a.name == "to").i = onnx.TensorProto.FLOAT16
    _constant_of_shape_in_fp16(half)
    # keep_io_types misses outputs produced by the converter's own casts around blocked ops (TopK):
    # cast any output still typed FP16 back to FP32, as the NMS tail and the contract expect.
    for out in half.graph.output:
        if out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16:
            half_name = out.name + "_fp16"
            for node in half.graph.node:  # the producer and any internal reader use the FP16 tensor
                node.output[:] = [half_name if o == out.name else o for o in node.output]
                node.input[:] = [half_name if i == out.name else i for i in node.input]
            half.graph.node.append(onnx.helper.make_node("Cast", [out.name + "_fp16"], [out.name], to=onnx.TensorProto.FLOAT))
            out.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    return half


def _in_normalize(node: onnx.NodeProto) -> bool:
    """Whether ``node`` belongs to the deploy wrapper's ``normalize`` module. The TorchScript exporter names its nodes
    ``/normalize/…``; torch-export names them by op (``node_div``) and records the module path in the node's
    ``pkg.torch.onnx.name_scopes`` metadata (``['', 'normalize', 'div']``)."""
    if node.name.startswith("/normalize/") or any(o.startswith("normalize.") for o in node.output):
        return True
    scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
    return scopes.startswith("['', 'normalize'")


def _constant_of_shape_in_fp16(half: onnx.ModelProto) -> None:
    """The converter retypes a ConstantOfShape's output as FP16 but leaves its ``value`` FP32 (torch-export graphs
    fill tensors this way; without a value it is a float32 zero), which shape inference refuses; give such a value
    the output's type."""
    import numpy as np
    from onnx import numpy_helper

    fp16 = {v.name for v in half.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
    for node in half.graph.node:
        if node.op_type != "ConstantOfShape" or node.output[0] not in fp16:
            continue
        value = next((a for a in node.attribute if a.name == "value"), None)
        if value is None:  # no value: a float32 zero
            node.attribute.append(onnx.helper.make_attribute("value", numpy_helper.from_array(np.zeros(1, np.float16))))
        elif value.t.data_type == onnx.TensorProto.FLOAT:
            value.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(value.t).astype(np.float16), value.t.name))


def _to_int8(model: onnx.ModelProto, opts: ExportOptions, size: tuple[int, int], resize: str,
             pad: list[int]) -> onnx.ModelProto:
    """Q/DQ graph calibrated on real images preprocessed as the runtime does (see edgedet.calib)."""
    from edgedet.calib.quantize import quantize_qdq
    from edgedet.calib.sources import calibration_images, preprocessed_batches

    images = calibration_images(opts.calib_images, count=opts.calib_count)
    batch = 1 if opts.dynamic_batch else opts.batch
    batches = (to_engine_input(b, opts.input_format) for b in preprocessed_batches(images, size, resize, tuple(pad), batch))
    return quantize_qdq(model, batches, method=opts.calib_method, weight_bits=opts.int8_weight_bits)


def _finish(model: onnx.ModelProto, meta: dict[str, Any]) -> onnx.ModelProto:
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {PROPS_KEY: json.dumps(meta)})
    model.producer_name, model.producer_version = "edgedet", __version__
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise EdgedetError(f"exported graph fails onnx.checker: {str(e).splitlines()[0]}") from None
    return model


def _save(model: onnx.ModelProto, path: Path, meta: dict[str, Any], force: bool) -> None:
    with atomic_path(path, overwrite=force) as tmp:
        onnx.save(model, str(tmp))
    atomic_write_json(sidecar_path(path), meta, overwrite=True)


def export_model(opts: ExportOptions) -> ExportResult:
    """Write ``<out>/<name>.onnx`` (and ``.fp16.onnx``) with sidecars; see the module docstring."""
    _check_options(opts)
    t0 = time.perf_counter()
    entry, size, model, classes, category_ids, sha = _build(opts)
    family = entry.deploy
    if opts.dynamic_batch and not family.dynamic_batch:
        raise EdgedetError(f"--dynamic-batch is supported for the SSD family; export {family.title} with --batch N")
    stem = opts.name or entry.name
    out = Path(opts.out_dir)
    wanted = ["fp32"] + ["fp16"] * bool(opts.fp16) + ["int8"] * bool(opts.int8)
    paths = {p: PRECISIONS[p].onnx_path(out, stem) for p in wanted}
    for p in paths.values():
        if p.exists() and not opts.force:
            raise EdgedetError(f"{p} exists; pass --force to overwrite it")

    nms = opts.nms.validate(opts.max_candidates)
    iou_net = iou_net_metadata(model, nms)
    family_opts = {"rpn_score_thresh": opts.rpn_score_thresh} if family.two_stage else {}
    if nms.mode != "standard":
        family_opts["iou_rank"] = nms.mode
    wrapper = build_wrapper(model, family, size, score_thresh=nms.score_thresh,
                            max_candidates=opts.max_candidates, input_format=opts.input_format, **family_opts).eval()
    batch = opts.dynamic_batch or opts.batch
    opset = resolve_opset(opts.exporter, opts.opset)
    candidates = _torch_export(wrapper, opts.batch if not opts.dynamic_batch else 1, bool(opts.dynamic_batch), size,
                               opset, nms.candidates, opts.exporter, entry.name)
    dtype, layout = DESCRIPTION[opts.input_format]
    versions = _versions()

    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "model": entry.name, "family": entry.family, "target": EXPORT_TARGET,
        "classes": classes, "category_ids": category_ids,
        "input": {"name": "images", "format": opts.input_format, "dtype": dtype, "layout": layout, "color": "RGB",
                  "range": [0, 255], "size": list(size),
                  "resize": family.resize, "pad_value": pad_value(model)},
        "batch": {"dynamic": True, "max": batch} if opts.dynamic_batch else {"dynamic": False, "size": batch},
        "nms": nms.to_dict(), "max_candidates": opts.max_candidates,
        "rpn_score_thresh": opts.rpn_score_thresh if family.two_stage else None,
        "rpn_post_nms_top_n": opts.rpn_post_nms_top_n if family.two_stage else None,
        "opset": graph_opset(candidates), "exporter": {"name": opts.exporter, "version": versions["torch"]},
        "versions": versions, "weights": opts.weights if opts.weights == "none" else Path(opts.weights).name,
        "weights_sha256": sha, "iou_net": iou_net,
    }
    graphs = {"fp32": candidates}
    if opts.fp16:
        graphs["fp16"] = _to_fp16(_clone(candidates))
    if opts.int8:
        graphs["int8"] = _to_int8(_clone(candidates), opts, size, family.resize, pad_value(model))
        meta["calibration"] = {"source": str(opts.calib_images), "images": opts.calib_count, "method": opts.calib_method,
                               "weight_bits": opts.int8_weight_bits}
    finished = {}
    for precision, graph in graphs.items():
        full = append_nms(graph, nms, input_size=size, num_classes=len(classes))
        finished[precision] = (full, {**meta, "precision": precision, "check": _check(full, precision, opts.check)})

    parity: dict[str, dict] = {}
    if opts.verify:
        from edgedet.export.parity import parity_check, verify_images

        tmp_paths = {}
        for precision, (full, m) in finished.items():
            tmp_paths[precision] = paths[precision].with_name(f".{paths[precision].name}.verify.onnx")
            out.mkdir(parents=True, exist_ok=True)
            onnx.save(full, str(tmp_paths[precision]))
        try:
            images = verify_images(opts.verify, opts.verify_source, size, family.resize, pad_value(model))
            configure_reference(model, family, size, nms)
            parity = parity_check(model, tmp_paths, images, batch, nms.score_thresh)
        finally:
            for p in tmp_paths.values():
                p.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    for precision, (full, m) in finished.items():
        m.update({"exported_in_s": round(seconds, 2), "parity": parity.get(precision)})
        _save(_finish(full, m), paths[precision], m, opts.force)
    return ExportResult(paths, finished["fp32"][1], seconds, parity)


def iou_net_metadata(model, nms: NMSConfig) -> dict[str, Any] | None:
    """What the graph does with an IoU-Net head (None without one); refuses IoU-guided NMS without a head."""
    heads = getattr(model, "roi_heads", None)
    if not hasattr(heads, "iou_head"):
        if nms.mode != "standard":
            raise EdgedetError(f"--nms-mode {nms.mode} needs a Faster R-CNN with an IoU head "
                               "(train it with --model-arg iou_head=true)")
        return None
    return {
        "head": True, "pool": heads.iou_pool_kind, "class_agnostic": bool(heads.iou_class_agnostic),
        "loss": heads.iou_loss_kind, "nms_mode": nms.mode,
        "candidates": ("every (proposal, class) pair, ordered by the ranking key" if nms.mode != "standard"
                       else "the best --max-candidates by score"),
        "refinement": "not exported: it is gradient ascent through the IoU head (autograd); the graph uses the "
                      "IoU head's prediction as is",
        "head_used": nms.mode != "standard",
    }


def _check(model: onnx.ModelProto, precision: str, enabled: bool) -> dict[str, Any] | None:
    """``edgedet check`` on a finished graph for every TensorRT target: an error refuses the export (one line
    naming the node), warnings are printed once; the summary goes into the metadata."""
    from edgedet.export.conformance import require_conformant

    if not enabled:
        log.warn(f"{precision} graph not checked against TensorRT's rules (--no-check)")
        return None
    reports = require_conformant(model, EXPORT_TARGET, what=f"the {precision} graph")
    for rep in reports:
        for f in rep.warnings:
            log.warn(f"{precision} graph, {rep.target}: {f}", once=True)
    return {r.target: {"passed": r.passed, "errors": len(r.errors), "warnings": len(r.warnings)} for r in reports}


def _clone(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def summarize(result: ExportResult) -> None:
    for precision, path in result.artifacts.items():
        size_mb = path.stat().st_size / 1e6
        rep = result.parity.get(precision)
        verdict = ""
        if rep and rep["agreement"] is None:
            verdict = f"; parity NOT MEASURED: no boxes on either side in {rep['images']} images"
            log.warn(f"{path.name}: the parity check compared 0 boxes (nothing above --score-thresh "
                     f"{result.metadata['nms']['score_thresh']}); it proves nothing")
        elif rep:
            verdict = (f"; parity {rep['verdict']}: {rep['agreement'] * 100:.1f}% of {rep['boxes_compared']} boxes "
                       f"agree (tolerance {rep['tolerance'] * 100:.0f}%, {rep['borderline']} borderline), "
                       f"max score diff {rep['max_score_diff']:.4f}")
        log.note(f"export: {path} ({size_mb:.1f} MB, {precision}){verdict}")
