"""IoU-Net's IoU-guided NMS as a static ONNX tail: standard ops only, constant shapes, the four contract outputs.

The PyTorch reference (``edgedet.models.iou_nms.iou_guided_nms``) is a sequential loop: per class, take the
candidate with the best ranking key (predicted IoU, or score × IoU), keep it, and give it the highest
classification score among the remaining candidates it suppresses (IoU above the threshold). A loop with a
data-dependent trip count does not export, so the graph splits it into two steps that give the same result:

1. **Which boxes are kept** is plain greedy NMS with the ranking key as the score: ``NonMaxSuppression``
   (TensorRT's native NMS layer, ONNX Runtime's and OpenVINO's kernels) per class, with
   ``max_output_boxes_per_class = K`` so that it never stops early (the loop never does).
2. **Which cluster a suppressed box belongs to** follows from the loop's order: a box is removed by the
   first kept box, in ranking order, that overlaps it above the threshold — the kept box with the highest
   key among those overlapping it (ties: the lower candidate index, the loop's tie rule and ``ArgMax``'s).
   So one ``[B, K, K]`` step decides it: ``member[i, j] = kept_i ∧ same class ∧ (IoU_ij > t ∨ i = j)``,
   ``owner_j = argmax_i key_i over member[:, j]``, and the kept box's score is the ``ReduceMax`` of the
   scores it owns. A box that overlaps two kept boxes goes to the higher-ranked one only.

Cost: the K × K pairwise IoU (K = ``--max-candidates``); ``benchmarks/iou_net_latency.py`` measures it
against the standard tail in the same graph. Every node is named ``nms/…`` and stays FP32 in FP16/INT8
engines, like the standard tail.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgedet.export.nms import (
    IOU_CANDIDATE, MIN_SCORE_THRESH, NMS_PREFIX, NMSConfig, _const, class_scores_nodes, dense_to_outputs,
)
from edgedet.models.iou_nms import KEY_FLOOR


def _reduce_max(data: str, output: str, axis: int, opset: int) -> list[onnx.NodeProto]:
    """``ReduceMax`` over one axis, keepdims 0: its axes are an input from opset 18 on, an attribute before."""
    if opset >= 18:
        axes = output + "_axes"
        return [_const(axes, np.array([axis], np.int64)), helper.make_node("ReduceMax", [data, axes], [output], keepdims=0)]
    return [helper.make_node("ReduceMax", [data], [output], keepdims=0, axes=[axis])]


def _pairwise_iou_nodes(p: str) -> list[onnx.NodeProto]:
    """``cand_boxes [B, K, 4]`` → ``p + "pair_iou" [B, K, K]`` (rows i, columns j); 0 where the union is empty."""
    n = helper.make_node
    nodes = [
        _const(p + "split4", np.array([1, 1, 1, 1], np.int64)),
        n("Split", ["cand_boxes", p + "split4"], [p + "x1", p + "y1", p + "x2", p + "y2"], axis=2),  # [B, K, 1] each
    ]
    for c in ("x1", "y1", "x2", "y2"):  # column copies [B, 1, K]
        nodes.append(n("Transpose", [p + c], [p + c + "_t"], perm=[0, 2, 1]))
    nodes += [
        n("Max", [p + "x1", p + "x1_t"], [p + "ix1"]),
        n("Max", [p + "y1", p + "y1_t"], [p + "iy1"]),
        n("Min", [p + "x2", p + "x2_t"], [p + "ix2"]),
        n("Min", [p + "y2", p + "y2_t"], [p + "iy2"]),
        _const(p + "zero_f", np.array(0.0, np.float32)),
        n("Sub", [p + "ix2", p + "ix1"], [p + "iw_raw"]),
        n("Max", [p + "iw_raw", p + "zero_f"], [p + "iw"]),
        n("Sub", [p + "iy2", p + "iy1"], [p + "ih_raw"]),
        n("Max", [p + "ih_raw", p + "zero_f"], [p + "ih"]),
        n("Mul", [p + "iw", p + "ih"], [p + "inter"]),
        n("Sub", [p + "x2", p + "x1"], [p + "w"]),
        n("Sub", [p + "y2", p + "y1"], [p + "h"]),
        n("Mul", [p + "w", p + "h"], [p + "area"]),  # [B, K, 1]
        n("Transpose", [p + "area"], [p + "area_t"], perm=[0, 2, 1]),
        n("Add", [p + "area", p + "area_t"], [p + "area_sum"]),
        n("Sub", [p + "area_sum", p + "inter"], [p + "union"]),
        _const(p + "tiny", np.array(1e-12, np.float32)),
        n("Max", [p + "union", p + "tiny"], [p + "union_safe"]),
        n("Div", [p + "inter", p + "union_safe"], [p + "pair_iou"]),
    ]
    return nodes


def iou_nms_nodes(cfg: NMSConfig, num_classes: int, num_candidates: int, opset: int) -> list[onnx.NodeProto]:
    """The tail for ``cfg.mode`` ``iou`` or ``score_iou``, from ``cand_boxes/scores/labels/ious`` to the outputs."""
    if cfg.mode not in ("iou", "score_iou"):
        raise ValueError(f"iou_nms_nodes builds the iou and score_iou modes, not {cfg.mode!r}")
    p = NMS_PREFIX + "iou_"
    n = helper.make_node
    thr = max(cfg.score_thresh, MIN_SCORE_THRESH)
    key_raw = IOU_CANDIDATE if cfg.mode == "iou" else p + "score_x_iou"
    nodes = [
        # valid candidates and their ranking key (0 for padding and masked rows)
        _const(p + "score_thr", np.array(thr, np.float32)),
        n("Greater", ["cand_scores", p + "score_thr"], [p + "valid"]),  # [B, K]
    ]
    if cfg.mode == "score_iou":
        nodes.append(n("Mul", ["cand_scores", IOU_CANDIDATE], [key_raw]))
    nodes += [
        _const(p + "floor", np.array(KEY_FLOOR, np.float32)),
        n("Max", [key_raw, p + "floor"], [p + "key_floored"]),
        _const(p + "zero_key", np.array(0.0, np.float32)),
        n("Where", [p + "valid", p + "key_floored", p + "zero_key"], [p + "key"]),
        # 1. the kept set: NonMaxSuppression per class on the key, never stopping early
        *class_scores_nodes(p, num_classes, p + "key"),
        n("Transpose", [p + "class_scores"], [p + "scores_bck"], perm=[0, 2, 1]),
        n("Shape", ["cand_scores"], [p + "bk_shape"]),
        _const(p + "max_out", np.array([num_candidates], np.int64)),  # K: every candidate of a class
        _const(p + "iou_t", np.array([cfg.iou_thresh], np.float32)),
        _const(p + "nms_thr", np.array([MIN_SCORE_THRESH], np.float32)),
        n("NonMaxSuppression", ["cand_boxes", p + "scores_bck", p + "max_out", p + "iou_t", p + "nms_thr"],
          [p + "selected"], center_point_box=0),
        _const(p + "cols", np.array([0, 2], np.int64)),
        n("Gather", [p + "selected", p + "cols"], [p + "bk"], axis=1),
        n("Shape", [p + "bk"], [p + "bk_rows"]),
        _const(p + "idx_0", np.array([0], np.int64)),
        n("Gather", [p + "bk_rows", p + "idx_0"], [p + "num_sel"]),
        n("ConstantOfShape", [p + "num_sel"], [p + "ones_sel"], value=helper.make_tensor("o", TensorProto.FLOAT, [1], [1.0])),
        n("ConstantOfShape", [p + "bk_shape"], [p + "zeros_bk"], value=helper.make_tensor("z", TensorProto.FLOAT, [1], [0.0])),
        n("ScatterND", [p + "zeros_bk", p + "bk", p + "ones_sel"], [p + "kept_f"]),  # [B, K] 1 = kept
        _const(p + "half", np.array(0.5, np.float32)),
        n("Greater", [p + "kept_f", p + "half"], [p + "kept"]),
        # 2. clusters: member[i, j] = kept_i ∧ valid_j ∧ same class ∧ (IoU_ij > t ∨ i = j)
        *_pairwise_iou_nodes(p),
        _const(p + "iou_t_s", np.array(cfg.iou_thresh, np.float32)),
        n("Greater", [p + "pair_iou", p + "iou_t_s"], [p + "overlap"]),  # [B, K, K]
        _const(p + "ax_2", np.array([2], np.int64)),
        _const(p + "ax_1", np.array([1], np.int64)),
        n("Unsqueeze", ["cand_labels", p + "ax_2"], [p + "lab_i"]),  # [B, K, 1]
        n("Unsqueeze", ["cand_labels", p + "ax_1"], [p + "lab_j"]),  # [B, 1, K]
        n("Equal", [p + "lab_i", p + "lab_j"], [p + "same_class"]),
        n("And", [p + "overlap", p + "same_class"], [p + "overlap_cls"]),
        n("Unsqueeze", [p + "kept", p + "ax_2"], [p + "kept_i"]),
        n("Unsqueeze", [p + "valid", p + "ax_1"], [p + "valid_j"]),
        n("And", [p + "kept_i", p + "valid_j"], [p + "kept_valid"]),
        # the diagonal i = j: a kept box owns itself even at --iou-thresh 1, where IoU_ii is not above t
        _const(p + "row_index", np.arange(num_candidates, dtype=np.int64).reshape(1, -1, 1)),  # [1, K, 1]
        _const(p + "col_index", np.arange(num_candidates, dtype=np.int64).reshape(1, 1, -1)),  # [1, 1, K]
        n("Equal", [p + "row_index", p + "col_index"], [p + "eye"]),  # [1, K, K]
        n("Or", [p + "overlap_cls", p + "eye"], [p + "overlap_or_self"]),
        n("And", [p + "overlap_or_self", p + "kept_valid"], [p + "member"]),
        # owner_j = argmax over kept rows i of key_i (first index on ties)
        n("Unsqueeze", [p + "key", p + "ax_2"], [p + "key_i"]),  # [B, K, 1]
        _const(p + "minus_one", np.array(-1.0, np.float32)),
        n("Where", [p + "member", p + "key_i", p + "minus_one"], [p + "claim"]),
        n("ArgMax", [p + "claim"], [p + "owner"], axis=1, keepdims=1, select_last_index=0),  # [B, 1, K]
        n("Equal", [p + "owner", p + "row_index"], [p + "owned_by"]),  # [B, K, K]
        n("And", [p + "member", p + "owned_by"], [p + "owns"]),
        # the kept box's score: the best classification score it owns
        n("Unsqueeze", ["cand_scores", p + "ax_1"], [p + "score_j"]),  # [B, 1, K]
        n("Where", [p + "owns", p + "score_j", p + "zero_key"], [p + "owned_scores"]),
        *_reduce_max(p + "owned_scores", p + "cluster_score", 2, opset),  # [B, K]
        n("Where", [p + "kept", p + "cluster_score", p + "zero_key"], [p + "dense"]),
        *dense_to_outputs(p + "dense", cfg),
    ]
    return nodes
