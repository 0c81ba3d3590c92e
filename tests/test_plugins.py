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
