"""``edgedet check``: what TensorRT's ONNX parser of a given version would reject, found without TensorRT.

ONNX Runtime accepts graphs that TensorRT refuses (a uint8 Transpose, an INT attribute where a plugin
wants FLOAT, a TopK of 4000), and TensorRT cannot be installed on most machines that export. So the
parser's rules are carried here as data and code, and every export and build runs them:

- ``operator``: every node against onnx-tensorrt's documented operator table of that TensorRT version
  (``tensorrt_ops/<target>.json``, parsed from onnx-tensorrt's ``docs/operators.md``; each file names
  its release and commit), including the input types it lists;
- ``opset``: the model's ONNX opset against the parser's supported range;
- ``uint8``: UINT8 only as a network input consumed by a Cast to float, or as a network output
  (onnx-tensorrt's ``parseNode``: "TensorRT does not support UINT8 types for intermediate tensors");
- ``topk``: a constant ``K`` ≤ 3840 (``ITopKLayer``'s limit) on TopK;
- ``nms``: ``NonMaxSuppression`` as TensorRT's ``INMSLayer`` takes it (corner or centre boxes, at most
  5000 boxes per image);
- ``roialign``: the ``RoiAlign`` modes the parser imports, and an explicit ``sampling_ratio`` (its
  default differs between ONNX and TensorRT's importer);
- ``plugin``: ``EfficientNMS_TRT`` attributes present with the PluginField types its creator checks,
  a score threshold the plugin handles correctly, and its deprecation from TensorRT 10.12 on;
- ``qdq``: Q/DQ as TensorRT's explicit quantization takes it: constant positive scales, zero
  zero-points of a signed type, per-channel scales on weights only, no Q/DQ of int32/int64 tensors.

Target ``cpu`` (artifacts for ONNX Runtime / OpenVINO only) checks that no TensorRT plugin is present;
its Q/DQ may be asymmetric. Torch-free: ``edgedet build`` runs it on the device.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from edgedet.errors import EdgedetError
from edgedet.runtime.plugins import DENSE_PATH_THRESHOLD, EFFICIENT_NMS

#: TensorRT's ITopKLayer accepts K ≤ 3840; every TopK of an export stays within it.
TENSORRT_TOPK_LIMIT = 3840
#: Boxes per image TensorRT's INMSLayer looks at (NvInfer.h, INMSLayer: "K is 2000 for SM 5.3 and 6.2
#: devices, and 5000 otherwise").
INMS_BOX_LIMIT = 5000

TRT_TARGETS = ("trt10.3", "trt10", "trt11")
TARGETS = (*TRT_TARGETS, "cpu")
#: JetPack 6's TensorRT: the oldest edgedet builds for, so the strictest default.
DEFAULT_TARGET = "trt10.3"
TABLES = Path(__file__).with_name("tensorrt_ops")

_DTYPE_NAMES = {TensorProto.FLOAT: "FP32", TensorProto.FLOAT16: "FP16", TensorProto.BFLOAT16: "BF16",
                TensorProto.DOUBLE: "FP64", TensorProto.INT8: "INT8", TensorProto.UINT8: "UINT8",
                TensorProto.INT32: "INT32", TensorProto.INT64: "INT64", TensorProto.BOOL: "BOOL",
                TensorProto.INT4: "INT4", TensorProto.FLOAT8E4M3FN: "FP8"}
_EFFICIENT_ATTRS = {  # name → (ONNX attribute type the plugin creator's PluginField needs, required)
    "score_threshold": (onnx.AttributeProto.FLOAT, True),
    "iou_threshold": (onnx.AttributeProto.FLOAT, True),
    "max_output_boxes": (onnx.AttributeProto.INT, True),
    "background_class": (onnx.AttributeProto.INT, True),
    "score_activation": (onnx.AttributeProto.INT, True),
    "box_coding": (onnx.AttributeProto.INT, True),
    "class_agnostic": (onnx.AttributeProto.INT, False),
}
_QDQ = ("QuantizeLinear", "DequantizeLinear")
#: Types the importer accepts beyond operators.md's column, read in onnx-tensorrt's source (10.3-GA
#: onnxOpImporters.cpp: Clip runs INT32/INT64 as elementwise min/max; NonZero takes these too).
_IMPORTER_TYPES = {"Clip": {"INT32", "INT64"}, "NonZero": {"BF16", "INT32", "INT64", "INT8", "BOOL"}}
#: Ops whose first input is a shape or size: the table's types are those of their output.
_SIZE_INPUT_OPS = frozenset({"ConstantOfShape", "EyeLike", "RandomNormalLike", "RandomUniformLike", "HannWindow",
                             "HammingWindow", "BlackmanWindow"})


@dataclass(frozen=True)
class Finding:
    """One construct the target rejects (``error``) or discourages (``warning``), naming its node."""

    rule: str
    node: str
    op: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.node} ({self.op}): {self.message}"


@dataclass
class Report:
    target: str
    nodes: int
    findings: list[Finding] = field(default_factory=list)
    table: str = ""  # the operator table's source

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "passed": self.passed, "nodes": self.nodes, "errors": len(self.errors),
                "warnings": len(self.warnings), "operator_table": self.table,
                "findings": [asdict(f) for f in self.findings]}


@lru_cache(maxsize=None)
@lru_cache(maxsize=None)
def _load_table(name: str) -> dict[str, Any]:
    return json.loads((TABLES / f"{name}.json").read_text())


def _table_version(name: str) -> tuple[int, int]:
    major, minor = _load_table(name)["tensorrt"].split(".")[:2]
    return int(major), int(minor)


def _parse_trt_target(target: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"trt(\d+)\.(\d+)", target)
    return (int(m.group(1)), int(m.group(2))) if m else None


def is_trt_target(target: str) -> bool:
    """A named table (``trt10.3``, ``trt10``, ``trt11``) or any ``trtMAJOR.MINOR``."""
    return target in TRT_TARGETS or _parse_trt_target(target) is not None


def table_for_target(target: str) -> str:
    """The operator table that judges ``target``: a named table as it is; ``trtMAJOR.MINOR`` the nearest table at
    or *below* that version, never above (a newer parser accepts operators and opsets an older one rejects:
    the 10.16 table takes opset 24, STFT and Attention, which 10.4-10.15 refuse)."""
    if target in TRT_TARGETS:
        return target
    version = _parse_trt_target(target)
    if version is None:
        raise EdgedetError(f"--target must be one of {', '.join(TARGETS)}, tensorrt or trtMAJOR.MINOR (e.g. trt10.8), "
                           f"not {target!r}")
    below = [(_table_version(t), t) for t in TRT_TARGETS if _table_version(t) <= version]
    if not below:
        oldest = min(_load_table(t)["tensorrt"] for t in TRT_TARGETS)
        raise EdgedetError(f"TensorRT {version[0]}.{version[1]} is older than every parser table edgedet carries "
                           f"(oldest {oldest}, JetPack 6.1); edgedet builds for TensorRT 10.3 or newer")
    return max(below)[1]


def operator_table(target: str) -> dict[str, Any]:
    """onnx-tensorrt's operator table that judges ``target`` (:func:`table_for_target`): ``{"ops": {op: row}, ...}``."""
    return _load_table(table_for_target(target))


def target_for_tensorrt(version: str) -> str:
    """The check target for an installed TensorRT: ``trtMAJOR.MINOR`` (``"10.13.1"`` → ``trt10.13``), judged by the
    nearest table at or below it."""
    parts = (str(version).split(".") + ["0"])[:2]
    return f"trt{int(parts[0])}.{int(parts[1])}"


def default_target(metadata: dict | None) -> str:
    """The target an artifact was made for: its metadata's ``target`` (``cpu``, ``tensorrt`` or one
    TensorRT target), TensorRT 10.3 (JetPack 6) when it names none."""
    target = (metadata or {}).get("target")
    return target if target in (*TARGETS, "tensorrt") or (isinstance(target, str) and is_trt_target(target)) \
        else DEFAULT_TARGET


# --------------------------------------------------------------------------------------------------
# Graph facts: every node (subgraphs too), tensor types, constant values.


class _Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception:  # noqa: BLE001 - inference is a help for the type rules, not a requirement
            inferred = model
        self.types: dict[str, int] = {}
        self.shapes: dict[str, list[int]] = {}
        self.consts: dict[str, np.ndarray] = {}
        self.nodes: list[onnx.NodeProto] = []
        g = inferred.graph
        self.inputs = {i.name for i in g.input} - {t.name for t in g.initializer}
        self.outputs = {o.name for o in g.output}
        self._walk(g)

    def _walk(self, g: onnx.GraphProto) -> None:
        for vi in (*g.input, *g.output, *g.value_info):
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                self.types.setdefault(vi.name, vi.type.tensor_type.elem_type)
                if vi.type.tensor_type.HasField("shape"):
                    self.shapes.setdefault(vi.name, [d.dim_value if d.HasField("dim_value") else -1
                                                     for d in vi.type.tensor_type.shape.dim])
        for t in g.initializer:
            self.types[t.name] = t.data_type
            self.consts[t.name] = numpy_helper.to_array(t)
        for node in g.node:
            self.nodes.append(node)
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                t = node.attribute[0].t
                self.types[node.output[0]] = t.data_type
                self.consts[node.output[0]] = numpy_helper.to_array(t)
            for a in node.attribute:
                for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                    self._walk(sub)

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None


def _name(node: onnx.NodeProto) -> str:
    return node.name or f"<unnamed {node.op_type} → {node.output[0] if node.output else '?'}>"


def _attrs(node: onnx.NodeProto) -> dict[str, onnx.AttributeProto]:
    return {a.name: a for a in node.attribute}


# --------------------------------------------------------------------------------------------------
# The rules. Each yields Findings for one node (or the model).


def _rule_opset(model: onnx.ModelProto, table: dict) -> Iterable[Finding]:
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    newest = table.get("opset")
    if opset is not None and newest and opset > newest:  # ModelImporter.cpp refuses opsets below 7 only
        yield Finding("opset", "<model>", "opset", f"ONNX opset {opset} is newer than the {newest} this parser "
                      "documents; the importer does not refuse it, but operators changed since import by their "
                      f"opset-{newest} rules", severity="warning")


def _rule_operator(node: onnx.NodeProto, g: _Graph, table: dict, trt: str) -> Iterable[Finding]:
    if node.domain not in ("", "ai.onnx"):
        if node.op_type == EFFICIENT_NMS:
            return
        yield Finding("operator", _name(node), node.op_type,
                      f"custom op in domain {node.domain!r}: TensorRT would look for a plugin of that name, "
                      "and edgedet knows of none")
        return
    row = table["ops"].get(node.op_type)
    if row is None:
        yield Finding("operator", _name(node), node.op_type, f"not in the ONNX parser's operator table of TensorRT {trt}")
        return
    if not row["supported"]:
        why = f" ({row['restrictions']})" if row.get("restrictions") else ""
        yield Finding("operator", _name(node), node.op_type, f"not supported by TensorRT {trt}'s ONNX parser{why}")
        return
    if node.op_type in _SIZE_INPUT_OPS:
        return
    allowed = {"INT64" if t == "INF64" else t for t in row.get("types") or ()}  # the 10.3 table's typo
    allowed |= _IMPORTER_TYPES.get(node.op_type, set())
    dtype = g.types.get(node.input[0]) if node.input and node.input[0] else None
    name = _DTYPE_NAMES.get(dtype) if dtype else None
    if allowed and name and name not in allowed and not (name == "UINT8" and node.op_type == "Cast"):
        yield Finding("operator", _name(node), node.op_type,
                      f"input type {name} is not among the types TensorRT {trt} supports for it ({', '.join(sorted(allowed))})")


def _rule_uint8(node: onnx.NodeProto, g: _Graph) -> Iterable[Finding]:
    u8 = TensorProto.UINT8
    for name in node.input:
        if not name or g.types.get(name) != u8:
            continue
        to = _attrs(node).get("to")
        if not (name in g.inputs and node.op_type == "Cast" and to is not None
                and to.i in (TensorProto.FLOAT, TensorProto.FLOAT16)):
            where = "the network input" if name in g.inputs else "tensor"
            yield Finding("uint8", _name(node), node.op_type,
                          f"reads UINT8 {where} {name!r}: TensorRT allows UINT8 only as a network input cast to "
                          "float first, or as a network output (cast first)")
    for name in node.output:
        if name and g.types.get(name) == u8 and name not in g.outputs:
            yield Finding("uint8", _name(node), node.op_type,
                          f"writes UINT8 intermediate tensor {name!r}: TensorRT does not support UINT8 types "
                          "for intermediate tensors")


def _rule_topk(node: onnx.NodeProto, g: _Graph) -> Iterable[Finding]:
    if node.op_type != "TopK":
        return
    k = g.const(node.input[1]) if len(node.input) > 1 else None
    if k is None:
        yield Finding("topk", _name(node), node.op_type,
                      "K is computed in the graph; edgedet exports keep K a constant so every shape is static",
                      severity="warning")
    elif int(np.max(k)) > TENSORRT_TOPK_LIMIT:
        yield Finding("topk", _name(node), node.op_type,
                      f"K = {int(np.max(k))} exceeds TensorRT's TopK limit of {TENSORRT_TOPK_LIMIT}")
    srt = _attrs(node).get("sorted")
    if srt is not None and srt.i != 1:  # operators.md: "sorted must be 1"
        yield Finding("topk", _name(node), node.op_type, "sorted=0: TensorRT's parser takes sorted=1 only")


def _one_hot_class_scores(name: str, producers: dict[str, onnx.NodeProto]) -> bool:
    """Scores ``[B, C, N]`` in which each box scores in one class only: a Transpose of ``OneHot(label) x score``
    (edgedet's multi-class tail), so at most N (box, class) pairs pass a positive score threshold."""
    node = producers.get(name)
    if node is not None and node.op_type == "Transpose":
        node = producers.get(node.input[0])
    return (node is not None and node.op_type == "Mul"
            and any(producers.get(i) is not None and producers[i].op_type == "OneHot" for i in node.input))


def _rule_nms(node: onnx.NodeProto, g: _Graph, producers: dict[str, onnx.NodeProto]) -> Iterable[Finding]:
    """onnx-tensorrt's NonMaxSuppression importer builds an ``INMSLayer``: ``center_point_box`` 0 or 1, and the
    layer's TopK box limit is "the maximum number of filtered boxes considered for selection per batch item"
    (NvInfer.h, ``INMSLayer::setTopKBoxLimit``: 5000; 2000 on SM 5.3 and 6.2, GPUs no TensorRT 10 supports).
    Filtered boxes are (box, class) pairs above the score threshold, so the bound is boxes x classes, or boxes
    where each box scores in one class only and the threshold is positive; above it TensorRT silently drops
    pairs ONNX would keep."""
    if node.op_type != "NonMaxSuppression":
        return
    center = _attrs(node).get("center_point_box")
    if center is not None and center.i not in (0, 1):
        yield Finding("nms", _name(node), node.op_type, f"center_point_box must be 0 or 1, not {center.i}")
    boxes, scores = g.shapes.get(node.input[0]) or [], g.shapes.get(node.input[1]) or []
    if len(boxes) != 3 or len(scores) != 3 or not boxes[1] or not scores[1]:
        return
    threshold = g.const(node.input[4]) if len(node.input) > 4 and node.input[4] else None
    one_class = _one_hot_class_scores(node.input[1], producers) and threshold is not None and float(np.min(threshold)) > 0
    pairs = boxes[1] if one_class else boxes[1] * scores[1]
    if pairs > INMS_BOX_LIMIT:
        what = f"{boxes[1]} boxes" if one_class else f"{boxes[1]} boxes x {scores[1]} classes = {pairs} (box, class) pairs"
        yield Finding("nms", _name(node), node.op_type,
                      f"{what} per image: TensorRT's INMSLayer considers at most {INMS_BOX_LIMIT} filtered pairs, so "
                      "detections ONNX would keep are dropped; bound the candidates (TopK) first")


def _resize_allowed(restrictions: str, label: str) -> set[str] | None:
    """The values operators.md lists after ``label`` in Resize's restrictions (``Supported resize modes: nearest,
    linear.``), None where this table's text names none."""
    m = re.search(re.escape(label) + r":\s*([^.<]+)", restrictions)
    if not m:
        return None
    return {w.strip(" `") for w in re.split(r",|\band\b", m.group(1)) if w.strip(" `")}


def _rule_resize(node: onnx.NodeProto, table: dict) -> Iterable[Finding]:
    """Resize as the importer of this version takes it, read from the table's own restrictions (modes,
    coordinate transformation, nearest rounding, aspect-ratio policy, no antialiasing)."""
    if node.op_type != "Resize":
        return
    text = (table["ops"].get("Resize") or {}).get("restrictions", "")
    a = _attrs(node)

    def attr(name: str, default: str) -> str:
        return a[name].s.decode() if name in a else default

    mode = attr("mode", "nearest")
    checks = [("Supported resize modes", "mode", mode),
              ("Supported resize transformation modes", "coordinate_transformation_mode",
               attr("coordinate_transformation_mode", "half_pixel")),
              ("Supported aspect ratio policy", "keep_aspect_ratio_policy", attr("keep_aspect_ratio_policy", "stretch"))]
    if mode == "nearest":
        checks.append(("Supported nearest modes", "nearest_mode", attr("nearest_mode", "round_prefer_floor")))
    for label, name, value in checks:
        allowed = _resize_allowed(text, label)
        if allowed is not None and value not in allowed:
            yield Finding("resize", _name(node), node.op_type,
                          f"{name} {value!r}: this parser takes {', '.join(sorted(allowed))}")
    if "Antialiasing is not supported" in text and "antialias" in a and a["antialias"].i != 0:
        yield Finding("resize", _name(node), node.op_type, "antialias=1: this parser does not support antialiasing")


def _rule_roialign(node: onnx.NodeProto, g: _Graph, opset: int) -> Iterable[Finding]:
    """onnx-tensorrt imports RoiAlign as the ``ROIAlign_TRT`` plugin (onnxOpImporters.cpp and
    onnxOpCheckers.cpp at 10.3-GA): mode avg or max; from opset 16 on, half_pixel or output_half_pixel; and
    an absent ``sampling_ratio`` becomes 1 there where ONNX means 0 (adaptive), so it must be explicit."""
    if node.op_type != "RoiAlign":
        return
    a = _attrs(node)
    mode = a["mode"].s.decode() if "mode" in a else "avg"
    if mode not in ("avg", "max"):
        yield Finding("roialign", _name(node), node.op_type, f"mode {mode!r}: TensorRT takes 'avg' or 'max'")
    if opset >= 16:
        ctm = a["coordinate_transformation_mode"].s.decode() if "coordinate_transformation_mode" in a else "half_pixel"
        if ctm not in ("half_pixel", "output_half_pixel"):
            yield Finding("roialign", _name(node), node.op_type, f"coordinate_transformation_mode {ctm!r} is not supported")
    if "sampling_ratio" not in a:
        yield Finding("roialign", _name(node), node.op_type,
                      "no sampling_ratio: TensorRT's importer then uses 1 where ONNX uses 0 (adaptive); set it explicitly")
    elif a["sampling_ratio"].i < 0:
        yield Finding("roialign", _name(node), node.op_type, "sampling_ratio must be >= 0")


def _rule_plugin(node: onnx.NodeProto, g: _Graph, target: str) -> Iterable[Finding]:
    if node.op_type != EFFICIENT_NMS:
        return
    if target == "cpu":
        yield Finding("plugin", _name(node), node.op_type,
                      "a TensorRT plugin: ONNX Runtime and OpenVINO cannot run it (export with --nms onnx)")
        return
    a = _attrs(node)
    type_names = {onnx.AttributeProto.FLOAT: "FLOAT", onnx.AttributeProto.INT: "INT"}
    for name, (kind, required) in _EFFICIENT_ATTRS.items():
        if name not in a:
            if required:
                yield Finding("plugin", _name(node), node.op_type, f"attribute {name!r} is missing")
        elif a[name].type != kind:
            yield Finding("plugin", _name(node), node.op_type,
                          f"attribute {name!r} is {onnx.AttributeProto.AttributeType.Name(a[name].type)}; the plugin "
                          f"creator requires {type_names[kind]} (kFLOAT32/kINT32)")
    score = a.get("score_threshold")
    if score is not None and score.type == onnx.AttributeProto.FLOAT and score.f < DENSE_PATH_THRESHOLD:
        yield Finding("plugin", _name(node), node.op_type,
                      f"score_threshold {score.f:g} < {DENSE_PATH_THRESHOLD}: the plugin's dense path then writes "
                      "below-threshold boxes into its outputs and counts them in num_detections")
    if len(node.input) not in (2, 3) or len(node.output) != 4:
        yield Finding("plugin", _name(node), node.op_type,
                      f"takes boxes, scores[, anchors] and gives 4 outputs, not {len(node.input)} → {len(node.output)}")
    if _deprecates_plugin(target):
        yield Finding("plugin", _name(node), node.op_type,
                      "EfficientNMS_TRT is deprecated since TensorRT 10.12 (no replacement planned); "
                      "--nms onnx uses TensorRT's native NMS on every version", severity="warning")


def _deprecates_plugin(target: str) -> bool:
    """Whether the TensorRT version ``target`` names is 10.12 or newer (a named table: that table's version)."""
    version = _parse_trt_target(target)
    return (version or _table_version(target)) >= (10, 12)


def _is_weight(name: str, g: _Graph, producers: dict[str, onnx.NodeProto]) -> bool:
    """A constant, or a Q/DQ of a constant: what per-channel quantization may apply to."""
    if g.const(name) is not None:
        return True
    node = producers.get(name)
    return node is not None and node.op_type in _QDQ and bool(node.input) and g.const(node.input[0]) is not None


def _rule_qdq(node: onnx.NodeProto, g: _Graph, producers: dict[str, onnx.NodeProto]) -> Iterable[Finding]:
    if node.op_type not in _QDQ:
        return
    x = node.input[0]
    xtype = g.types.get(x)
    if xtype in (TensorProto.INT32, TensorProto.INT64):
        yield Finding("qdq", _name(node), node.op_type,
                      f"quantizes an {_DTYPE_NAMES[xtype]} tensor {x!r}: TensorRT's Q/DQ take float (Q) or INT8 (DQ)")
    scale = g.const(node.input[1]) if len(node.input) > 1 else None
    if scale is None:
        yield Finding("qdq", _name(node), node.op_type, "the scale must be a constant")
    elif not np.all(np.asarray(scale, np.float64) > 0):
        yield Finding("qdq", _name(node), node.op_type, "scales must be positive")
    if len(node.input) > 2 and node.input[2]:
        zp = g.const(node.input[2])
        if zp is None:
            yield Finding("qdq", _name(node), node.op_type, "the zero point must be a constant")
        else:
            if zp.dtype == np.uint8:
                yield Finding("qdq", _name(node), node.op_type,
                              "UINT8 zero point (asymmetric quantization): TensorRT quantizes to signed INT8")
            if np.any(zp != 0):
                yield Finding("qdq", _name(node), node.op_type,
                              "non-zero zero point: TensorRT supports symmetric quantization only")
    if scale is not None and scale.size > 1 and not _is_weight(x, g, producers):
        yield Finding("qdq", _name(node), node.op_type,
                      f"per-channel scales ({scale.size}) on activation {x!r}: TensorRT takes per-channel "
                      "quantization on weights only")


# --------------------------------------------------------------------------------------------------
# Entry points.


def check_model(model: onnx.ModelProto, target: str = DEFAULT_TARGET) -> Report:
    """Every finding of ``target``'s rules on ``model``."""
    if target != "cpu":
        table_for_target(target)  # an unknown target fails before any work
    g = _Graph(model)
    producers = {o: n for n in g.nodes for o in n.output}
    findings: list[Finding] = []
    if target == "cpu":
        for node in g.nodes:
            findings += _rule_plugin(node, g, target)
            if node.domain not in ("", "ai.onnx", "com.microsoft") and node.op_type != EFFICIENT_NMS:
                findings.append(Finding("operator", _name(node), node.op_type,
                                        f"custom op in domain {node.domain!r} that CPU runtimes do not have"))
        return Report(target, len(g.nodes), findings, table="")
    table = operator_table(target)
    trt = table.get("tensorrt", target)
    findings += _rule_opset(model, table)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    for node in g.nodes:
        findings += _rule_operator(node, g, table, trt)
        findings += _rule_uint8(node, g)
        findings += _rule_topk(node, g)
        findings += _rule_nms(node, g, producers)
        findings += _rule_resize(node, table)
        findings += _rule_roialign(node, g, opset)
        findings += _rule_plugin(node, g, target)
        findings += _rule_qdq(node, g, producers)
    return Report(target, len(g.nodes), findings,
                  table=f"TensorRT {table['tensorrt']}: {table.get('source', '')}")


def expand_target(target: str) -> tuple[str, ...]:
    """``tensorrt`` (an export for every TensorRT version) → all TensorRT targets; else the one target."""
    return TRT_TARGETS if target == "tensorrt" else (target,)


def require_conformant(model: onnx.ModelProto, target: str, *, what: str) -> list[Report]:
    """Check ``model`` for ``target`` (``tensorrt`` = every TensorRT target); :class:`EdgedetError` with one
    line naming the first rejected node, else the reports (their warnings are the caller's to print)."""
    reports = [check_model(model, t) for t in expand_target(target)]
    for rep in reports:
        if rep.errors:
            first = rep.errors[0]
            more = f" (and {len(rep.errors) - 1} more; see `edgedet check`)" if len(rep.errors) > 1 else ""
            raise EdgedetError(f"{what} fails the {rep.target} check: {first}{more}; pass --no-check to write it anyway")
    return reports


def check_file(path: str | Path, target: str | None = None) -> tuple[list[Report], str]:
    """Reports for an ONNX file, against ``target`` or the one its metadata names; ``(reports, target)``."""
    from edgedet.runtime.metadata import read_metadata

    path = Path(path)
    if not path.is_file():
        raise EdgedetError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise EdgedetError(f"cannot read {path} as ONNX: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not model.graph.node:
        raise EdgedetError(f"{path} holds no graph (is it an ONNX model?)")
    if target is None:
        try:
            target = default_target(read_metadata(path))
        except (ValueError, OSError):  # a corrupt sidecar does not stop the check
            target = DEFAULT_TARGET
    return [check_model(model, t) for t in expand_target(target)], target
