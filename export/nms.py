"""The NMS tails appended to a candidate graph, ending in the four outputs of the engine contract.

Both flavours take the wrapper's ``cand_boxes [B, K, 4]``, ``cand_scores [B, K]``,
``cand_labels [B, K]`` and produce ``num_dets [B, 1] int32``, ``boxes [B, D, 4]``, ``scores [B, D]``,
``labels [B, D] int32``, static, padded with zeros. They are appended as ONNX nodes after the torch
export, so the NMS stays in FP32 when the rest of the graph becomes FP16 or INT8.

- ``onnx``: the standard NonMaxSuppression op (ONNX Runtime; TensorRT ≥ 8.5 maps it to its native NMS
  layer), multi-class: each candidate scores only in its own class, so NMS is per class and exact
  (the coordinate-offset trick would put class-offset coordinates in the thousands, where float32
  and especially FP16 spacing is coarse). Its variable-length selection is scattered back into a
  dense ``[B, K]`` score map and TopK'd to ``D``, so only static shapes leave the graph.
- ``efficient``: the ``EfficientNMS_TRT`` plugin node (TensorRT only; ``runtime.plugins`` holds a
  numpy reference so the graph is still checked on a CPU). NVIDIA deprecated the plugin in TensorRT 10.12
  with no replacement planned, so it is kept for TensorRT 10.x below 10.12 (JetPack 6 ships 10.3); the
  ``onnx`` flavour is the path for every TensorRT version. Its score threshold must be at least
  :data:`EFFICIENT_MIN_SCORE_THRESH`: below that the plugin switches to a dense path that writes
  below-threshold boxes into its outputs and counts them in ``num_detections``.

Every node of the tail is named ``nms/…``: the TensorRT 10 builder pins those layers to FP32 when it
builds a weakly typed FP16/INT8 engine (``trt_builder.pin_fp32_layers``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgedet.errors import EdgedetError
from edgedet.runtime.plugins import DENSE_PATH_THRESHOLD, EFFICIENT_NMS

FLAVOURS = ("onnx", "efficient")
#: how candidates are ranked and scored: plain NMS on the class score, or IoU-Net's IoU-guided NMS
#: ranked by predicted IoU or by score × IoU (``edgedet.export.iou_nms``)
MODES = ("standard", "iou", "score_iou")
CANDIDATES = ("cand_boxes", "cand_scores", "cand_labels")
#: the fourth candidate output of an IoU-Net graph: the IoU head's prediction per candidate
IOU_CANDIDATE = "cand_ious"
OUTPUTS = ("num_dets", "boxes", "scores", "labels")
# NonMaxSuppression keeps boxes with score > threshold; a zero threshold would let padding through.
MIN_SCORE_THRESH = 1e-6
#: EfficientNMS_TRT below this score threshold takes its dense-index path (efficientNMSInference.cu), which
#: leaves below-threshold entries in the sort and writes them out once real boxes run out.
EFFICIENT_MIN_SCORE_THRESH = DENSE_PATH_THRESHOLD
#: Node-name prefix of the tail (the builder's FP32 pinning and the conformance check key on it).
NMS_PREFIX = "nms/"


@dataclass(frozen=True)
class NMSConfig:
    flavour: str = "onnx"
    score_thresh: float = 0.25
    iou_thresh: float = 0.45
    max_dets: int = 100
    mode: str = "standard"

    @property
    def candidates(self) -> tuple[str, ...]:
        """The candidate outputs this tail consumes."""
        return CANDIDATES if self.mode == "standard" else (*CANDIDATES, IOU_CANDIDATE)

    def validate(self, num_candidates: int) -> "NMSConfig":
        if self.flavour not in FLAVOURS:
            raise EdgedetError(f"--nms must be one of {', '.join(FLAVOURS)}, not {self.flavour!r}")
        if not 0.0 <= self.score_thresh < 1.0:
            raise EdgedetError("--score-thresh must be in [0, 1)")
        if not 0.0 < self.iou_thresh <= 1.0:
            raise EdgedetError("--iou-thresh must be in (0, 1]")
        if not 1 <= self.max_dets <= num_candidates:
            raise EdgedetError(f"--max-dets must be in 1..{num_candidates} (the candidate count)")
        if self.mode not in MODES:
            raise EdgedetError(f"--nms-mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode != "standard" and self.flavour != "onnx":
            raise EdgedetError(f"--nms-mode {self.mode} is built from standard ONNX ops (NonMaxSuppression and a "
                               "cluster step): use --nms onnx, which is TensorRT's native path too")
        if self.flavour == "efficient" and self.score_thresh < EFFICIENT_MIN_SCORE_THRESH:
            raise EdgedetError(f"--nms efficient needs --score-thresh >= {EFFICIENT_MIN_SCORE_THRESH}: below it "
                               "EfficientNMS_TRT writes below-threshold boxes into its outputs; use --nms onnx")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name))


def class_scores_nodes(p: str, num_classes: int, scores: str = "cand_scores") -> list[onnx.NodeProto]:
    """``scores [B, K]`` spread to ``[B, K, C]`` (``p + "class_scores"``): each candidate scores only in its own class."""
    n = helper.make_node
    return [
        _const(p + "depth", np.array([num_classes], np.int64)),
        _const(p + "onehot_values", np.array([0.0, 1.0], np.float32)),
        n("OneHot", ["cand_labels", p + "depth", p + "onehot_values"], [p + "onehot"], axis=-1),
        _const(p + "ax_last", np.array([-1], np.int64)),
        n("Unsqueeze", [scores, p + "ax_last"], [p + "scores_k1"]),
        n("Mul", [p + "onehot", p + "scores_k1"], [p + "class_scores"]),
    ]


def _onnx_nms_nodes(cfg: NMSConfig, num_classes: int) -> list[onnx.NodeProto]:
    p = NMS_PREFIX
    n = helper.make_node
    return [
        *class_scores_nodes(p, num_classes),
        n("Transpose", [p + "class_scores"], [p + "scores_bck"], perm=[0, 2, 1]),
        _const(p + "max_out", np.array([cfg.max_dets], np.int64)),
        _const(p + "iou", np.array([cfg.iou_thresh], np.float32)),
        _const(p + "thr", np.array([max(cfg.score_thresh, MIN_SCORE_THRESH)], np.float32)),
        n("NonMaxSuppression", ["cand_boxes", p + "scores_bck", p + "max_out", p + "iou", p + "thr"],
          [p + "selected"], center_point_box=0),
        # selected [M, 3] = (batch, class, candidate); each candidate has one class → (batch, candidate)
        _const(p + "cols", np.array([0, 2], np.int64)),
        n("Gather", [p + "selected", p + "cols"], [p + "bk"], axis=1),
        n("GatherND", ["cand_scores", p + "bk"], [p + "sel_scores"]),
        n("Shape", ["cand_scores"], [p + "bk_shape"]),
        n("ConstantOfShape", [p + "bk_shape"], [p + "zeros"], value=helper.make_tensor("z", TensorProto.FLOAT, [1], [0.0])),
        n("ScatterND", [p + "zeros", p + "bk", p + "sel_scores"], [p + "dense"]),
        *dense_to_outputs(p + "dense", cfg),
    ]


def dense_to_outputs(dense: str, cfg: NMSConfig) -> list[onnx.NodeProto]:
    """A dense ``[B, K]`` map of final scores (0 = not kept) → the four contract outputs via TopK ``D``."""
    p = NMS_PREFIX
    n = helper.make_node
    return [
        _const(p + "k", np.array([cfg.max_dets], np.int64)),
        n("TopK", [dense, p + "k"], ["scores", p + "top_idx"], axis=1, largest=1, sorted=1),
        _const(p + "zero", np.array(0.0, np.float32)),
        n("Greater", ["scores", p + "zero"], [p + "valid"]),
        n("Cast", [p + "valid"], [p + "valid_i"], to=TensorProto.INT32),
        _const(p + "ax1", np.array([1], np.int64)),
        n("ReduceSum", [p + "valid_i", p + "ax1"], ["num_dets"], keepdims=1),
        n("GatherElements", ["cand_labels", p + "top_idx"], [p + "top_labels"], axis=1),
        n("Cast", [p + "top_labels"], [p + "top_labels_i"], to=TensorProto.INT32),
        _const(p + "zero_i", np.array(0, np.int32)),
        n("Where", [p + "valid", p + "top_labels_i", p + "zero_i"], ["labels"]),
        _const(p + "ax_last_out", np.array([-1], np.int64)),
        n("Unsqueeze", [p + "top_idx", p + "ax_last_out"], [p + "idx3"]),
        _const(p + "four", np.array([1, 1, 4], np.int64)),
        n("Expand", [p + "idx3", p + "four"], [p + "idx4"]),
        n("GatherElements", ["cand_boxes", p + "idx4"], [p + "top_boxes"], axis=1),
        n("Unsqueeze", [p + "valid", p + "ax_last_out"], [p + "valid3"]),
        _const(p + "zero_box", np.zeros((1, 1, 4), np.float32)),
        n("Where", [p + "valid3", p + "top_boxes", p + "zero_box"], ["boxes"]),
    ]


def _efficient_nms_nodes(cfg: NMSConfig, num_classes: int) -> list[onnx.NodeProto]:
    p = NMS_PREFIX
    # float()/int(): TensorRT's plugin creator requires kFLOAT32 thresholds and kINT32 counts, and ONNX
    # attribute types follow the Python type (iou_thresh=1 would become an INT attribute).
    return [
        *class_scores_nodes(p, num_classes),
        helper.make_node(
            EFFICIENT_NMS, ["cand_boxes", p + "class_scores"], list(OUTPUTS), domain="TRT",
            plugin_version="1", background_class=-1, box_coding=0, score_activation=0, class_agnostic=0,
            max_output_boxes=int(cfg.max_dets), score_threshold=float(cfg.score_thresh),
            iou_threshold=float(cfg.iou_thresh)),
    ]


def append_nms(model: onnx.ModelProto, cfg: NMSConfig, *, input_size: tuple[int, int], num_classes: int) -> onnx.ModelProto:
    """Replace the candidate outputs of ``model`` with the NMS tail and the contract's four outputs."""
    names = [o.name for o in model.graph.output]
    if names != list(cfg.candidates):
        raise ValueError(f"candidate graph must output {cfg.candidates}, not {names}")
    batch = model.graph.output[0].type.tensor_type.shape.dim[0]
    batch_dim = batch.dim_param or batch.dim_value
    if cfg.mode != "standard":
        from edgedet.export.iou_nms import iou_nms_nodes

        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        num_candidates = model.graph.output[0].type.tensor_type.shape.dim[1].dim_value
        nodes = iou_nms_nodes(cfg, num_classes, num_candidates, opset)
    else:
        build = _onnx_nms_nodes if cfg.flavour == "onnx" else _efficient_nms_nodes
        nodes = build(cfg, num_classes)
    for node in nodes:  # named by their first output, under the tail's prefix
        out = node.output[0]
        node.name = out if out.startswith(NMS_PREFIX) else NMS_PREFIX + out
    model.graph.node.extend(nodes)
    del model.graph.output[:]
    d = cfg.max_dets
    model.graph.output.extend([
        helper.make_tensor_value_info("num_dets", TensorProto.INT32, [batch_dim, 1]),
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [batch_dim, d, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch_dim, d]),
        helper.make_tensor_value_info("labels", TensorProto.INT32, [batch_dim, d]),
    ])
    if cfg.flavour == "efficient" and not any(o.domain == "TRT" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("TRT", 1))
    return model
