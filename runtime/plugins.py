"""A numpy reference of TensorRT's EfficientNMS_TRT plugin, and a way to run a graph that contains it.

ONNX Runtime cannot run the plugin, so the TensorRT-flavoured graph is checked on a CPU by running
everything up to the plugin node in ONNX Runtime and the plugin's documented semantics here
(TensorRT plugin README, EfficientNMS: per-class NMS on boxes above ``score_threshold``, the top
``max_output_boxes`` over all classes by score, outputs zero-padded).
"""

from __future__ import annotations

from typing import Any

import numpy as np

EFFICIENT_NMS = "EfficientNMS_TRT"


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a [N, 4]`` with every box in ``b [M, 4]`` (x1y1x2y2) → ``[N, M]``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        order = rest[iou_matrix(boxes[i : i + 1], boxes[rest])[0] <= iou_threshold]
    return keep


def efficient_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    score_threshold: float,
    iou_threshold: float,
    max_output_boxes: int,
    background_class: int = -1,
    score_activation: bool = False,
    box_coding: int = 0,
    class_agnostic: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``boxes [B, N, 4]`` (or ``[B, N, C, 4]``), ``scores [B, N, C]`` → num ``[B,1]`` int32, boxes
    ``[B, K, 4]``, scores ``[B, K]``, classes ``[B, K]`` int32, as the plugin outputs them."""
    if box_coding != 0:
        raise NotImplementedError("only box_coding=0 (corner coordinates) is used by edgedet")
    if score_activation:
        scores = 1.0 / (1.0 + np.exp(-scores))
    B, N, C = scores.shape
    K = max_output_boxes
    num = np.zeros((B, 1), np.int32)
    out_boxes = np.zeros((B, K, 4), np.float32)
    out_scores = np.zeros((B, K), np.float32)
    out_classes = np.zeros((B, K), np.int32)
    for b in range(B):
        picked: list[tuple[float, int, int]] = []  # (score, box index, class)
        for c in range(C):
            if c == background_class:
                continue
            s = scores[b, :, c]
            idx = np.nonzero(s > score_threshold)[0]
            if idx.size == 0:
                continue
            cls_boxes = boxes[b, idx, c] if boxes.ndim == 4 else boxes[b, idx]
            if class_agnostic:
                picked += [(float(s[i]), int(i), c) for i in idx]
                continue
            picked += [(float(s[idx[k]]), int(idx[k]), c) for k in _greedy_nms(cls_boxes, s[idx], iou_threshold)]
        if class_agnostic and picked:
            cb = np.stack([boxes[b, i, c] if boxes.ndim == 4 else boxes[b, i] for _, i, c in picked])
            keep = _greedy_nms(cb, np.array([p[0] for p in picked]), iou_threshold)
            picked = [picked[k] for k in keep]
        picked.sort(key=lambda p: -p[0])
        picked = picked[:K]
        num[b, 0] = len(picked)
        for k, (score, i, c) in enumerate(picked):
            out_boxes[b, k] = boxes[b, i, c] if boxes.ndim == 4 else boxes[b, i]
            out_scores[b, k] = score
            out_classes[b, k] = c
    return num, out_boxes, out_scores, out_classes


def plugin_attributes(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class PluginGraphRunner:
    """Runs an ONNX model containing one EfficientNMS_TRT node: ONNX Runtime up to it, numpy for it."""

    def __init__(self, model: Any, providers: list[str] | None = None) -> None:
        import onnx
        import onnxruntime as ort

        if not isinstance(model, onnx.ModelProto):
            model = onnx.load(str(model))
        nodes = [n for n in model.graph.node if n.op_type == EFFICIENT_NMS]
        if len(nodes) != 1:
            raise ValueError(f"expected one {EFFICIENT_NMS} node, found {len(nodes)}")
        node = nodes[0]
        self.attrs = plugin_attributes(node)
        self.plugin_outputs = list(node.output)
        self.graph_outputs = [o.name for o in model.graph.output]
        if set(self.graph_outputs) != set(self.plugin_outputs):
            raise ValueError("the plugin's outputs must be the graph's outputs")
        head = onnx.ModelProto()
        head.CopyFrom(model)
        head.graph.node.remove(next(n for n in head.graph.node if n.op_type == EFFICIENT_NMS))
        del head.graph.output[:]
        head.graph.output.extend([onnx.helper.make_empty_tensor_value_info(name) for name in node.input])
        keep = [o for o in head.opset_import if o.domain in ("", "ai.onnx")]
        del head.opset_import[:]
        head.opset_import.extend(keep)
        self.session = ort.InferenceSession(head.SerializeToString(), providers=providers or ["CPUExecutionProvider"])

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        boxes, scores = self.session.run(None, feeds)[:2]
        a = self.attrs
        outs = efficient_nms(
            boxes, scores, score_threshold=float(a.get("score_threshold", 0.0)),
            iou_threshold=float(a.get("iou_threshold", 0.5)), max_output_boxes=int(a.get("max_output_boxes", 100)),
            background_class=int(a.get("background_class", -1)), score_activation=bool(a.get("score_activation", 0)),
            box_coding=int(a.get("box_coding", 0)), class_agnostic=bool(a.get("class_agnostic", 0)),
        )
        by_name = dict(zip(self.plugin_outputs, outs))
        return [by_name[n] for n in self.graph_outputs]
