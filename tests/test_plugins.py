"""The numpy EfficientNMS_TRT reference against torchvision's class-aware NMS."""

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms

from edgedet.runtime.plugins import efficient_nms, iou_matrix


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_efficient_nms_matches_torchvision(seed):
    rng = np.random.default_rng(seed)
    boxes = rng.uniform(0, 100, (2, 300, 4)).astype(np.float32)
    boxes[..., 2:] = boxes[..., :2] + rng.uniform(5, 40, (2, 300, 2))
    scores = rng.uniform(0, 1, (2, 300, 4)).astype(np.float32)
    num, out_boxes, out_scores, out_classes = efficient_nms(boxes, scores, score_threshold=0.3, iou_threshold=0.5,
                                                             max_output_boxes=60)
    assert num.dtype == np.int32 and out_classes.dtype == np.int32 and out_boxes.shape == (2, 60, 4)
    for b in range(2):
        flat_boxes = torch.from_numpy(boxes[b]).repeat_interleave(4, 0)
        flat_scores = torch.from_numpy(scores[b]).reshape(-1)
        flat_labels = torch.arange(4).repeat(300)
        keep = flat_scores > 0.3
        ref = batched_nms(flat_boxes[keep], flat_scores[keep], flat_labels[keep], 0.5)[:60]
        n = int(num[b, 0])
        assert n == len(ref)
        np.testing.assert_allclose(out_scores[b, :n], flat_scores[keep][ref].numpy())
        np.testing.assert_array_equal(out_classes[b, :n], flat_labels[keep][ref].numpy())
        np.testing.assert_allclose(out_boxes[b, :n], flat_boxes[keep][ref].numpy())
        assert not out_scores[b, n:].any() and not out_boxes[b, n:].any()


def test_nothing_above_threshold_gives_zeros():
    num, boxes, scores, classes = efficient_nms(np.zeros((1, 5, 4), np.float32), np.full((1, 5, 2), 0.1, np.float32),
                                                score_threshold=0.5, iou_threshold=0.5, max_output_boxes=10)
    assert num[0, 0] == 0 and not boxes.any() and not scores.any() and not classes.any()


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 1 / 3, 0.0], [0.0, 0.0, 0.0]], atol=1e-6)
    assert iou_matrix(a[:0], b).shape == (0, 3)


def _two_boxes(iou_pair):
    """Two boxes of one class whose IoU is exactly ``iou_pair`` in float32 (0.5 here: 100 / 200)."""
    boxes = np.array([[[0, 0, 10, 10], [0, 0, 10, 20]]], np.float32)
    assert iou_matrix(boxes[0, :1], boxes[0, 1:])[0, 0] == iou_pair
    return boxes


def test_score_equal_to_threshold_is_kept_as_the_plugin_does():
    """efficientNMSInference.cu keeps ``score >= threshold`` (ONNX NonMaxSuppression keeps only ``>``)."""
    boxes = np.array([[[0, 0, 10, 10], [50, 50, 60, 60]]], np.float32)
    scores = np.array([[[0.5], [0.25]]], np.float32)
    num, _, out_scores, _ = efficient_nms(boxes, scores, score_threshold=0.25, iou_threshold=0.5, max_output_boxes=5)
    assert num[0, 0] == 2 and out_scores[0, 1] == np.float32(0.25)


def test_iou_equal_to_threshold_suppresses_as_the_plugin_does():
    """The plugin drops a box whose IoU with a kept one is ``>= iou_threshold`` (ONNX: ``>``)."""
    boxes = _two_boxes(0.5)
    scores = np.array([[[0.9], [0.8]]], np.float32)
    num, *_ = efficient_nms(boxes, scores, score_threshold=0.1, iou_threshold=0.5, max_output_boxes=5)
    assert num[0, 0] == 1
    num, *_ = efficient_nms(boxes, scores, score_threshold=0.1, iou_threshold=0.51, max_output_boxes=5)
    assert num[0, 0] == 2


def test_dense_path_below_0_007_emits_and_counts_below_threshold_rows():
    """Below 0.007 the plugin sorts every (box, class) pair, below-threshold ones at -32768, and writes them
    once real boxes run out: 2 real detections become ``max_output_boxes`` rows."""
    boxes = np.array([[[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 0, 0], [0, 0, 0, 0]]], np.float32)
    scores = np.zeros((1, 4, 2), np.float32)
    scores[0, 0, 0], scores[0, 1, 1] = 0.9, 0.6
    num, out_boxes, out_scores, out_classes = efficient_nms(boxes, scores, score_threshold=0.005, iou_threshold=0.5,
                                                            max_output_boxes=6)
    assert num[0, 0] == 6, "junk rows are counted"
    np.testing.assert_allclose(out_scores[0, :2], [0.9, 0.6], rtol=1e-6)
    assert (out_scores[0, 2:] == -32768).all()
    # the same scores at 0.007 take the normal path: only the two real boxes
    num, _, out_scores, _ = efficient_nms(boxes, scores, score_threshold=0.007, iou_threshold=0.5, max_output_boxes=6)
    assert num[0, 0] == 2 and not out_scores[0, 2:].any()


def test_plugin_looks_at_5000_candidates_at_most():
    n = 6000
    boxes = np.zeros((1, n, 4), np.float32)
    boxes[0, :, 0] = np.arange(n) * 20.0  # disjoint boxes: nothing suppresses anything
    boxes[0, :, 2] = boxes[0, :, 0] + 10
    boxes[0, :, 3] = 10
    scores = np.linspace(1.0, 0.5, n, dtype=np.float32).reshape(1, n, 1)
    num, *_ = efficient_nms(boxes, scores, score_threshold=0.1, iou_threshold=0.5, max_output_boxes=n)
    assert num[0, 0] == 5000
