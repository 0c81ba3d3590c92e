"""A numpy reference of TensorRT's EfficientNMS_TRT plugin, and a way to run a graph that contains it.

ONNX Runtime cannot run the plugin, so the TensorRT-flavoured graph is checked on a CPU by running
everything up to the plugin node in ONNX Runtime and the plugin's documented semantics here
(per-class NMS on boxes at or above ``score_threshold``, the top ``max_output_boxes`` over all classes by
score, outputs zero-padded), modelled on the plugin's CUDA source rather than its README, which says
"above" where the code compares ``>=``.
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


#: efficientNMSInference.cu: thresholds below this take the dense-index path.
DENSE_PATH_THRESHOLD = 0.007
#: The score the dense path gives below-threshold and background entries (``-(1 << 15)``).
DENSE_FILL = -32768.0
#: Candidates the plugin's NMS kernel looks at per image (``numSelectedBoxes``; 2000 on GPUs with fewer
#: than 64 K registers per block, which edgedet's TensorRT 10 targets do not have).
CANDIDATE_LIMIT = 5000


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
    candidate_limit: int = CANDIDATE_LIMIT,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``boxes [B, N, 4]`` (or ``[B, N, C, 4]``), ``scores [B, N, C]`` → num ``[B,1]`` int32, boxes
    ``[B, K, 4]``, scores ``[B, K]``, classes ``[B, K]`` int32, as the plugin computes them.

    Modelled on ``efficientNMSInference.cu`` (identical from TensorRT 10.3 to 11.1), including its quirks:

    - a candidate is kept when ``score >= score_threshold`` and suppressed when its IoU with a kept box
      of its class is ``>= iou_threshold`` (both inclusive; ONNX NonMaxSuppression is strict on both);
    - all (anchor, class) pairs of an image are sorted together by score (ties by element index), the
      best ``candidate_limit`` enter one greedy NMS, which stops after ``max_output_boxes`` kept boxes;
    - below :data:`DENSE_PATH_THRESHOLD` (on the logit when ``score_activation``) the *dense* path runs:
      every pair enters the sort, below-threshold and background pairs with score :data:`DENSE_FILL`, and
      the NMS kernel has no score test, so once real boxes run out those pairs are written out and
      counted in ``num_detections``. Export refuses such thresholds for ``--nms efficient``.
    """
    if box_coding != 0:
        raise NotImplementedError("only box_coding=0 (corner coordinates) is used by edgedet")
    B, N, C = scores.shape
    K = max_output_boxes
    threshold = float(score_threshold)
    select = threshold
    if score_activation:
        scores = 1.0 / (1.0 + np.exp(-scores.astype(np.float64)))
        select = float(np.log(threshold / (1 - threshold))) if 0 < threshold < 1 else (DENSE_FILL if threshold <= 0 else np.inf)
    dense = select < DENSE_PATH_THRESHOLD
    num = np.zeros((B, 1), np.int32)
    out_boxes = np.zeros((B, K, 4), np.float32)
    out_scores = np.zeros((B, K), np.float32)
    out_classes = np.zeros((B, K), np.int32)
    classes = np.tile(np.arange(C), N)
    for b in range(B):
        flat = scores[b].reshape(-1).astype(np.float64)
        valid = (flat >= threshold) & (classes != background_class)
        if dense:
            keyed = np.where(valid, flat, DENSE_FILL)
            elements = np.arange(flat.size)
        else:
            elements = np.nonzero(valid)[0]
            keyed = flat
        order = elements[np.lexsort((elements, -keyed[elements]))][:candidate_limit]
        per_box = boxes[b].reshape(-1, 4) if boxes.ndim == 4 else None
        kept_boxes = np.zeros((K, 4), np.float32)
        kept_classes = np.zeros(K, np.int64)
        k = 0
        for e in order:
            if k == K:
                break
            c = int(classes[e])
            box = per_box[e] if per_box is not None else boxes[b, e // C]
            same = slice(None) if class_agnostic else kept_classes[:k] == c
            if k and (iou_matrix(box[None], kept_boxes[:k][same])[0] >= iou_threshold).any():
                continue
            kept_boxes[k], kept_classes[k] = box, c
            out_scores[b, k] = keyed[e] if not score_activation or keyed[e] != DENSE_FILL else 0.0
            k += 1
        num[b, 0] = k
        out_boxes[b, :k], out_classes[b, :k] = kept_boxes[:k], kept_classes[:k]
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
