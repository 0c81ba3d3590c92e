
import cv2
import numpy as np
import pytest

from edgedet.data import load_dataset
from edgedet.data.synth import CLASSES, make_synthetic_dataset
from edgedet.errors import DataError


def test_synth_is_deterministic(tmp_path):
    a = make_synthetic_dataset(tmp_path / "a", images=30, seed=3)
    b = make_synthetic_dataset(tmp_path / "b", images=30, seed=3)
    assert a.train_json.read_text() == b.train_json.read_text()
    for f in sorted(a.images_dir.iterdir()):
        assert f.read_bytes() == (b.images_dir / f.name).read_bytes()
    c = make_synthetic_dataset(tmp_path / "c", images=30, seed=4)
    assert c.train_json.read_text() != a.train_json.read_text()


def test_synth_content(synth):
    train = load_dataset(synth.train_json, synth.images_dir)
    val = load_dataset(synth.val_json, synth.images_dir)
    assert (len(train), len(val)) == (320, 80)
    assert train.classes == CLASSES and train.category_ids == [1, 2, 3]
    counts = [len(s.boxes) for s in train.samples]
    assert 0 in counts and max(counts) >= 3
    black = [i for i, s in enumerate(train.samples) if len(s.boxes) == 0 and train.load_image(i).max() == 0]
    assert black, "some images must be all black"
    for s in train.samples:
        assert (s.boxes[:, 2] <= s.width).all() and (s.boxes[:, 3] <= s.height).all()
        assert (s.boxes[:, :2] >= 0).all() and (s.boxes[:, 2:] > s.boxes[:, :2]).all()
    assert len({(s.width, s.height) for s in train.samples}) > 1, "varied image sizes"
    assert set(np.concatenate([s.labels for s in train.samples]).tolist()) == {0, 1, 2}


def test_synth_video(synth):
    cap = cv2.VideoCapture(str(synth.video))
    assert cap.isOpened()
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (240, 320, 3)
        n += 1
    assert n == 120


@pytest.mark.parametrize("kwargs, message", [({"images": 1}, "at least 2"), ({"val_fraction": 1.5}, "between 0 and 1")])
def test_synth_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(DataError, match=message):
        make_synthetic_dataset(tmp_path, **kwargs)
