"""COCO evaluation: ground truth fed back as predictions scores 1.0; ids map by class name."""

import numpy as np
import pytest

from edgedet.data import load_dataset
from edgedet.data.types import DetectionDataset, Sample
from edgedet.errors import DataError
from edgedet.evaluate import category_mapping, coco_evaluate, evaluate_predictor
from edgedet.results import coco_results
from edgedet.runtime.detections import Detections


def _gt_predictor(dataset: DetectionDataset, *, shuffle_scores: bool = False):
    """A predictor that returns each image's ground truth (looked up by image content order)."""
    queue = list(dataset.samples)

    def predict(images):
        out = []
        for _ in images:
            s = queue.pop(0)
            scores = np.linspace(1.0, 0.5, len(s.boxes), dtype=np.float32)
            out.append(Detections(s.boxes.copy(), scores, s.labels.copy()))
        return out

    return predict


def test_ground_truth_as_predictions_scores_one(synth):
    val = load_dataset(synth.val_json, synth.images_dir)
    result, results = evaluate_predictor(_gt_predictor(val), val, val.classes, progress=False)
    assert result.stats["AP"] == pytest.approx(1.0)
    assert result.stats["AP50"] == pytest.approx(1.0)
    assert all(ap == pytest.approx(1.0) for ap in result.per_class_ap.values())
    assert len(results) == sum(len(s.boxes) for s in val.samples)


def test_shifted_boxes_lose_strict_ap(synth):
    val = load_dataset(synth.val_json, synth.images_dir)
    ids = [s.image_id for s in val.samples]
    dets = [Detections(s.boxes + 6.0, np.ones(len(s.boxes), np.float32), s.labels) for s in val.samples]
    r = coco_evaluate(val, coco_results(ids, dets, val.category_ids))
    assert r.stats["AP50"] > 0.5 and r.stats["AP"] < 0.9


def test_no_detections_scores_zero(synth):
    val = load_dataset(synth.val_json, synth.images_dir)
    r = coco_evaluate(val, [])
    assert r.stats["AP"] == 0.0


def _dataset(classes, ids):
    s = Sample(1, "a.jpg", 10, 10, np.array([[0, 0, 5, 5]], np.float32), np.array([0]))
    return DetectionDataset(classes, ids, [s], images_dir=None)


def test_category_mapping_by_name():
    ds = _dataset(["cat", "dog"], [17, 18])
    assert category_mapping(["dog", "cat"], ds) == [18, 17]
    assert category_mapping(["dog", "zebra"], ds) == [18, 19]  # unknown class: an id no GT uses
    assert category_mapping(None, ds)[:3] == [1, 2, 3]  # torchvision COCO layout: label i+1 is the id
    with pytest.raises(DataError, match="none of the model's classes"):
        category_mapping(["car"], ds)
