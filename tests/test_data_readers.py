"""COCO and VOC readers, the format registry and check_images, on files generated in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgedet.data import (
    DetectionDataset,
    Sample,
    check_images,
    list_datasets,
    load_coco,
    load_dataset,
    load_voc,
    register_dataset,
)
from edgedet.data import registry
from edgedet.errors import DataError, ImageReadError


def _image(path: Path, w: int = 8, h: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (10, 20, 30)).save(path)
    return path


# --------------------------------------------------------------------------- COCO


def _coco(**overrides) -> dict:
    doc = {
        "images": [
            {"id": 10, "file_name": "a.png", "width": 8, "height": 6},
            {"id": 11, "file_name": "b.png", "width": 8, "height": 6},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 1, "bbox": [0.5, 0, 2, 1]},
            {"id": 3, "image_id": 10, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 1},
        ],
        "categories": [{"id": 3, "name": "dog"}, {"id": 1, "name": "cat"}],
    }
    doc.update(overrides)
    return doc


def _write(path: Path, doc) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_coco_classes_boxes_labels(tmp_path):
    ds = load_coco(_write(tmp_path / "ann.json", _coco()), tmp_path)
    assert ds.classes == ["cat", "dog"]
    assert ds.category_ids == [1, 3]
    assert [s.image_id for s in ds.samples] == [10, 11]
    a, b = ds.samples
    assert (a.file_name, a.width, a.height) == ("a.png", 8, 6)
    assert a.boxes.dtype == np.float32 and a.labels.dtype == np.int64
    np.testing.assert_array_equal(a.boxes, [[1, 2, 4, 6], [0.5, 0, 2.5, 1]])  # crowd left out
    np.testing.assert_array_equal(a.labels, [1, 0])
    assert b.boxes.shape == (0, 4) and b.boxes.dtype == np.float32  # image without annotations kept
    assert b.labels.shape == (0,) and b.labels.dtype == np.int64
    assert ds.images_dir == tmp_path and ds.source == str(tmp_path / "ann.json")


@pytest.mark.parametrize("annotations", [[], None])
def test_coco_without_annotations(tmp_path, annotations):
    doc = _coco(annotations=annotations)
    if annotations is None:
        del doc["annotations"]
    ds = load_coco(_write(tmp_path / "ann.json", doc), tmp_path)
    assert len(ds) == 2
    assert all(s.boxes.shape == (0, 4) and s.labels.shape == (0,) for s in ds.samples)


def test_coco_degenerate_boxes_dropped_with_one_warning(tmp_path, capsys):
    anns = [
        {"image_id": 10, "category_id": 1, "bbox": [0, 0, 0, 3]},
        {"image_id": 10, "category_id": 1, "bbox": [0, 0, 3, -1]},
        {"image_id": 11, "category_id": 3, "bbox": [1, 1, 2, 2]},
    ]
    ds = load_coco(_write(tmp_path / "ann.json", _coco(annotations=anns)), tmp_path)
    assert ds.samples[0].boxes.shape == (0, 4)
    np.testing.assert_array_equal(ds.samples[1].boxes, [[1, 1, 3, 3]])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "ann.json" in err[0] and "dropped 2 annotation(s)" in err[0]


def test_coco_malformed_json_names_position(tmp_path):
    path = _write(tmp_path / "ann.json", '{"images": [\n  {"id": 1,,}]}')
    with pytest.raises(DataError, match=r"ann\.json: invalid JSON at line 2 column 12"):
        load_coco(path, tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("images"), "ann.json: missing 'images'"),
        (lambda d: d.pop("categories"), "ann.json: missing 'categories'"),
        (lambda d: d.update(annotations={}), "ann.json: 'annotations' must be a list"),
        (lambda d: d["annotations"][1].update(bbox=[1, 2, 3]), "ann.json: annotations[1].bbox must be 4 numbers"),
        (lambda d: d["annotations"][2].update(bbox=[1, 2, "3", 4]), "ann.json: annotations[2].bbox must be 4 numbers"),
        (lambda d: d["annotations"][0].pop("bbox"), "ann.json: annotations[0].bbox is missing"),
        (lambda d: d["annotations"][0].update(category_id=7),
         "ann.json: annotations[0].category_id 7 is not in categories"),
        (lambda d: d["annotations"][1].update(image_id=99), "ann.json: annotations[1].image_id 99 is not in images"),
        (lambda d: d["annotations"][0].update(iscrowd=2), "ann.json: annotations[0].iscrowd must be 0 or 1"),
        (lambda d: d["images"][1].update(width=0), "ann.json: images[1].width must be a positive integer, got 0"),
        (lambda d: d["images"][0].pop("file_name"), "ann.json: images[0].file_name is missing"),
        (lambda d: d["images"][1].update(id=10), "ann.json: images[1].id 10 is used twice"),
        (lambda d: d["categories"][0].update(id="3"), 'ann.json: categories[0].id must be an integer, got "3"'),
        (lambda d: d["categories"].append(5), "ann.json: categories[2] must be an object"),
    ],
)
def test_coco_bad_field_named(tmp_path, change, message):
    doc = _coco()
    change(doc)
    with pytest.raises(DataError) as info:
        load_coco(_write(tmp_path / "ann.json", doc), tmp_path)
    assert message in str(info.value)


def test_coco_top_level_not_object(tmp_path):
    with pytest.raises(DataError, match=r"ann\.json: top level must be a JSON object"):
        load_coco(_write(tmp_path / "ann.json", "[]"), tmp_path)


def test_coco_missing_file_and_images_dir(tmp_path):
    with pytest.raises(DataError, match=r"cannot read annotation file .*nope\.json: no such file"):
        load_coco(tmp_path / "nope.json", tmp_path)
    path = _write(tmp_path / "ann.json", _coco())
    with pytest.raises(DataError, match=r"images folder .*pics .*does not exist"):
        load_coco(path, tmp_path / "pics")


def test_coco_integral_float_sizes_accepted(tmp_path):
    doc = _coco()
    doc["images"][0]["width"] = 8.0
    ds = load_coco(_write(tmp_path / "ann.json", doc), tmp_path)
    assert ds.samples[0].width == 8 and isinstance(ds.samples[0].width, int)


# --------------------------------------------------------------------------- VOC


def _voc_xml(filename, objects, width=100, height=80) -> str:
    objs = "".join(
        f"<object><name>{name}</name><difficult>{difficult}</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, difficult in objects
    )
    return (f"<annotation><folder>x</folder><filename>{filename}</filename>"
            f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>{objs}</annotation>")


def _voc_tree(root: Path, ann_dir: str, img_dir: str, ext: str) -> Path:
    (root / ann_dir).mkdir(parents=True, exist_ok=True)
    (root / img_dir).mkdir(parents=True, exist_ok=True)
    (root / ann_dir / "img1.xml").write_text(_voc_xml(f"img1.{ext}", [
        ("stop", (11, 21, 50, 60), 0),
        ("speedlimit", (1, 1, 10, 10), 1),  # difficult: skipped
        ("crosswalk", (5, 5, 9, 9), 0),
    ]))
    (root / ann_dir / "img0.xml").write_text(_voc_xml(f"img0.{ext}", []))
    return root


@pytest.mark.parametrize(
    "ann_dir, img_dir, ext", [("Annotations", "JPEGImages", "jpg"), ("annotations", "images", "png")]
)
def test_voc_layouts(tmp_path, ann_dir, img_dir, ext):
    root = _voc_tree(tmp_path / "ds", ann_dir, img_dir, ext)
    ds = load_voc(root)
    assert ds.classes == ["crosswalk", "speedlimit", "stop"]  # names of difficult objects count too
    assert ds.category_ids == [1, 2, 3]
    assert ds.images_dir == root / img_dir
    assert [(s.image_id, s.file_name) for s in ds.samples] == [(1, f"img0.{ext}"), (2, f"img1.{ext}")]
    empty, full = ds.samples
    assert empty.boxes.shape == (0, 4) and empty.labels.shape == (0,)
    assert (full.width, full.height) == (100, 80)
    assert full.boxes.dtype == np.float32 and full.labels.dtype == np.int64
    np.testing.assert_array_equal(full.boxes, [[10, 20, 50, 60], [4, 4, 9, 9]])
    np.testing.assert_array_equal(full.labels, [2, 0])


def test_voc_xml_next_to_images(tmp_path, capsys):
    (tmp_path / "a.xml").write_text(_voc_xml("a.jpg", [("cat", (1, 1, 4, 5.5), 0), ("cat", (3, 3, 2, 9), 0)]))
    ds = load_voc(tmp_path)
    assert ds.images_dir == tmp_path and ds.classes == ["cat"]
    np.testing.assert_array_equal(ds.samples[0].boxes, [[0, 0, 4, 5.5]])
    assert "dropped 1 object(s) with zero or negative width or height" in capsys.readouterr().err


def test_voc_given_classes_order_and_unknown_names(tmp_path, capsys):
    root = _voc_tree(tmp_path, "Annotations", "JPEGImages", "jpg")
    ds = load_voc(root, classes=["stop", "speedlimit"])
    assert ds.classes == ["stop", "speedlimit"] and ds.category_ids == [1, 2]
    np.testing.assert_array_equal(ds.samples[1].boxes, [[10, 20, 50, 60]])
    np.testing.assert_array_equal(ds.samples[1].labels, [0])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "skipped 1 object(s)" in err[0] and "crosswalk" in err[0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("<annotation><filename>a.jpg", "bad.xml: invalid XML"),
        ("<root/>", "bad.xml: root element is <root>"),
        (_voc_xml("a.jpg", [("cat", ("x", 1, 4, 5), 0)]), "bad.xml: object[0].bndbox.xmin must be a number, got 'x'"),
        (_voc_xml("a.jpg", [("cat", (1, 1, "nan", 5), 0)]),
         "bad.xml: object[0].bndbox.xmax must be a number, got 'nan'"),
        (_voc_xml("a.jpg", [], width=0), "bad.xml: size.width must be a positive integer"),
        ("<annotation><filename>a.jpg</filename></annotation>", "bad.xml: annotation.size is missing"),
        (_voc_xml("", []), "bad.xml: annotation.filename is missing or empty"),
    ],
)
def test_voc_bad_file_named(tmp_path, text, message):
    (tmp_path / "bad.xml").write_text(text)
    with pytest.raises(DataError) as info:
        load_voc(tmp_path)
    assert message in str(info.value)


def test_voc_folder_without_xml(tmp_path):
    with pytest.raises(DataError, match="no .xml annotation files"):
        load_voc(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_voc(tmp_path / "missing")


# --------------------------------------------------------------------------- registry


def test_builtin_formats_auto_detected(tmp_path):
    assert list_datasets()[-2:] == ["coco", "voc"]
    ann = _write(tmp_path / "ann.json", _coco())
    ds = load_dataset(ann)
    assert ds.classes == ["cat", "dog"] and ds.images_dir == tmp_path  # images default: the JSON's folder
    ds = load_dataset(ann, tmp_path / "..", format="coco")
    assert ds.images_dir == tmp_path / ".."

    root = _voc_tree(tmp_path / "voc", "annotations", "images", "png")
    ds = load_dataset(root, classes=["stop"])
    assert ds.classes == ["stop"] and ds.images_dir == root / "images"


def test_unknown_or_undetectable_format(tmp_path):
    expected = r"unknown dataset format 'cocoo' \(did you mean 'coco'\?\); known: auto, .*coco, voc"
    with pytest.raises(DataError, match=expected):
        load_dataset(tmp_path, format="cocoo")
    (tmp_path / "list.txt").write_text("x")
    with pytest.raises(DataError, match=r"cannot tell the format of .*list\.txt"):
        load_dataset(tmp_path / "list.txt")
    with pytest.raises(DataError, match=r"dataset .*absent does not exist"):
        load_dataset(tmp_path / "absent")


@pytest.fixture
def csv_format():
    @register_dataset("csvboxes", detect=lambda p: p.suffix == ".csv")
    def load_csv(data: Path, images: Path | None, *, scale: float = 1.0) -> DetectionDataset:
        samples = []
        for i, line in enumerate(data.read_text().splitlines(), start=1):
            name, *box = line.split(",")
            samples.append(Sample(i, name, 8, 6, np.array([box], np.float32) * scale, np.zeros(1, np.int64)))
        return DetectionDataset(["thing"], [1], samples, images or data.parent, source=str(data))

    yield load_csv
    del registry._FORMATS["csvboxes"]


def test_custom_format_registered_and_detected_first(tmp_path, csv_format):
    assert list_datasets() == ["csvboxes", "coco", "voc"]
    path = tmp_path / "boxes.csv"
    path.write_text("a.png,1,2,3,4\n")
    ds = load_dataset(path, scale=2.0)
    assert ds.samples[0].file_name == "a.png"
    np.testing.assert_array_equal(ds.samples[0].boxes, [[2, 4, 6, 8]])
    assert load_dataset(path, tmp_path / "imgs", format="csvboxes").images_dir == tmp_path / "imgs"
    with pytest.raises(ValueError, match="taken"):
        register_dataset("csvboxes", detect=lambda p: False)(csv_format)


# --------------------------------------------------------------------------- check_images


def _dataset(tmp_path) -> DetectionDataset:
    _image(tmp_path / "good.png")
    (tmp_path / "text.jpg").write_text("not an image")
    _image(tmp_path / "tall.png", w=6, h=8)
    samples = [Sample(1, "good.png", 8, 6), Sample(2, "text.jpg", 8, 6), Sample(3, "missing.png", 8, 6),
               Sample(4, "tall.png", 8, 6)]
    return DetectionDataset(["a"], [1], samples, tmp_path)


def test_check_images_skip(tmp_path, capsys):
    ds = _dataset(tmp_path)
    checked = check_images(ds, progress=False)
    assert [s.file_name for s in checked.samples] == ["good.png", "tall.png"]
    assert len(ds) == 4  # the input is left alone
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert "skipping bad image" in err[0] and "text.jpg" in err[0]
    assert "missing.png" in err[1]
    assert "tall.png: decoded size 6x8 differs from the annotated 8x6" in err[2]


def test_check_images_fail(tmp_path):
    with pytest.raises(ImageReadError, match=r"text\.jpg"):
        check_images(_dataset(tmp_path), on_bad_image="fail", progress=False)


def test_check_images_progress_bar_and_bad_policy(tmp_path, capsys, monkeypatch):
    """A bar on a terminal; none when stderr is a file or a pipe (logs, CI)."""
    import sys

    _image(tmp_path / "good.png")
    ds = DetectionDataset(["a"], [1], [Sample(1, "good.png", 8, 6)], tmp_path)
    assert len(check_images(ds, progress=True)) == 1
    assert "checking images" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert len(check_images(ds, progress=True)) == 1
    assert "checking images" in capsys.readouterr().err
    with pytest.raises(ValueError, match="on_bad_image"):
        check_images(ds, on_bad_image="ignore")
