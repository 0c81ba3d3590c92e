"""The model zoo: every member builds, infers and trains one step on CPU; weights specs; checkpoints."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error

import pytest
import torch

from edgedet.checkpoint import save_checkpoint
from edgedet.errors import CheckpointError, ModelError, WeightsError
from edgedet.models import create_model, get_model_entry, list_models, register_alias
from edgedet.models import registry as registry_mod

CLASSES = ["circle", "square", "triangle"]
ZOO = list_models()

# Small proposal budgets keep Faster R-CNN fast on two cores; passing them also checks that
# options reach torchvision's FasterRCNN.
FRCNN_FAST = dict(
    min_size=128,
    max_size=160,
    rpn_pre_nms_top_n_train=100,
    rpn_post_nms_top_n_train=50,
    rpn_pre_nms_top_n_test=100,
    rpn_post_nms_top_n_test=50,
    rpn_batch_size_per_image=64,
    box_batch_size_per_image=32,
)


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _fast_kwargs(name: str) -> dict:
    return dict(FRCNN_FAST) if get_model_entry(name).family == "fasterrcnn" else {}


def _images(n: int = 2, h: int = 128, w: int = 160) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8).float() / 255 for _ in range(n)]


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {"boxes": torch.tensor([[10.0, 20.0, 60.0, 90.0], [70.0, 30.0, 150.0, 120.0]]), "labels": torch.tensor([1, 3])},
        {"boxes": torch.tensor([[5.0, 5.0, 100.0, 60.0]]), "labels": torch.tensor([2])},
    ]


@pytest.fixture
def no_network(monkeypatch):
    """Any download or socket connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch hub cache and a download that fails like an unplugged cable."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def unreachable(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)


# --- every zoo member --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_infers_and_trains_one_step(name, no_network):
    torch.manual_seed(0)
    model = create_model(name, classes=CLASSES, weights="none", **_fast_kwargs(name))
    assert model.edgedet_name == name
    assert model.edgedet_classes == CLASSES
    # Faster R-CNN here runs at the test's min_size; SSDs keep their fixed size.
    expected_size = (128, 128) if get_model_entry(name).family == "fasterrcnn" else get_model_entry(name).input_size
    assert model.edgedet_input_size == expected_size

    model.eval()
    with torch.no_grad():
        out = model(_images())
    assert isinstance(out, list) and len(out) == 2
    for det in out:
        n = det["boxes"].shape[0]
        assert det["boxes"].shape == (n, 4) and det["boxes"].dtype == torch.float32
        assert det["scores"].shape == (n,)
        assert det["labels"].dtype == torch.int64
        if n:
            assert int(det["labels"].min()) >= 1 and int(det["labels"].max()) <= len(CLASSES)
            assert bool((det["boxes"][:, 2:] >= det["boxes"][:, :2]).all())  # x1y1x2y2

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    losses = model(_images(), _targets())
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    before = [p.detach().clone() for p in params]
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, params))


# --- registry ----------------------------------------------------------------------------------


def test_list_models_wildcards_sorted():
    frcnn = list_models("fasterrcnn_*")
    assert frcnn == sorted(frcnn) and all(n.startswith("fasterrcnn_") for n in frcnn)
    for expected in (
        "fasterrcnn_resnet50_fpn",
        "fasterrcnn_resnet50_fpn_v2",
        "fasterrcnn_mobilenet_v3_large_fpn",
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        "fasterrcnn_squeezenet1_0",
        "fasterrcnn_squeezenet1_1",
        "fasterrcnn_resnet18",
        "fasterrcnn_mobilenet_v2",
        "fasterrcnn_efficientnet_b0",
        "fasterrcnn_shufflenet_v2_x1_0",
        "fasterrcnn_resnet18_fpn",
    ):
        assert expected in frcnn
    assert list_models("ssd*") == ["ssd300", "ssdlite320", "ssdlite_tiny"]
    assert list_models("*_fpn_v?") == ["fasterrcnn_resnet50_fpn_v2"]
    assert list_models("yolo*") == []
    assert list_models(family="ssd") == list_models("ssd*")
    assert list_models() == sorted(list_models("*"))
    assert "ssdlite320_mobilenet_v3_large" not in list_models()  # aliases are not listed


def test_entries_describe_the_zoo():
    for name in ZOO:
        e = get_model_entry(name)
        assert e.name == name and e.family in ("ssd", "fasterrcnn") and e.description
        assert len(e.input_size) == 2
    assert get_model_entry("ssdlite320").input_size == (320, 320)
    assert get_model_entry("ssd300").input_size == (300, 300)
    assert get_model_entry("ssdlite_tiny").input_size == (160, 160)
    assert get_model_entry("fasterrcnn_resnet50_fpn").input_size == (800, 800)
    assert get_model_entry("fasterrcnn_mobilenet_v3_large_320_fpn").input_size == (320, 320)
    assert get_model_entry("fasterrcnn_squeezenet1_0").input_size == (640, 640)


def test_weights_enums_resolve_without_download():
    from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights

    for name in ZOO:
        e = get_model_entry(name)
        if e.weights:
            assert "DEFAULT" in e.weights_enum().__members__
        if e.backbone_weights:
            assert e.default_backbone_weights() in list(e.backbone_weights_enum())
    # Fine-tuning starts from the weights torchvision's detection recipes use, not the newest classifier.
    assert get_model_entry("ssdlite320").default_backbone_weights() == MobileNet_V3_Large_Weights.IMAGENET1K_V1
    assert get_model_entry("fasterrcnn_resnet50_fpn_v2").default_backbone_weights() == ResNet50_Weights.IMAGENET1K_V1


def test_registry_import_does_not_import_torch():
    code = "import sys, edgedet.models as m; assert m.list_models(); assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ModelError, match="did you mean ssdlite320"):
        create_model("ssdlite32")
    with pytest.raises(ModelError, match="fasterrcnn_resnet50_fpn"):
        get_model_entry("fasterrcnn_resnet50")
    with pytest.raises(ModelError, match="edgedet models"):
        get_model_entry("zzzz")


def test_deprecated_alias_warns_and_resolves(monkeypatch, capsys):
    monkeypatch.setitem(registry_mod._ALIASES, "tiny_ssdlite_old_name", "ssdlite_tiny")
    model = create_model("tiny_ssdlite_old_name", classes=CLASSES)
    assert model.edgedet_name == "ssdlite_tiny"
    err = capsys.readouterr().err
    assert "deprecated" in err and "ssdlite_tiny" in err and err.count("\n") == 1
    with pytest.raises(ValueError):
        register_alias("ssdlite_tiny", "ssdlite320")  # an alias may not shadow a model
    assert get_model_entry("ssd300_vgg16").name == "ssd300"  # torchvision's long names keep working


def test_rpn_score_thresh_rejected_for_ssd():
    with pytest.raises(ModelError, match="Faster R-CNN"):
        create_model("ssdlite_tiny", classes=CLASSES, rpn_score_thresh=0.1)
    with pytest.raises(ModelError, match=r"\[0, 1\)"):
        create_model("fasterrcnn_squeezenet1_1", classes=CLASSES, rpn_score_thresh=1.5)


def test_rpn_score_thresh_reaches_fasterrcnn_and_unset_keeps_defaults():
    m = create_model("fasterrcnn_mobilenet_v3_large_320_fpn", classes=CLASSES, rpn_score_thresh=0.3)
    assert m.rpn.score_thresh == pytest.approx(0.3)
    assert m.edgedet_kwargs["rpn_score_thresh"] == pytest.approx(0.3)
    # Unset: torchvision's own defaults survive (0.05 for the mobilenet models, 0.0 otherwise).
    assert create_model("fasterrcnn_mobilenet_v3_large_320_fpn", classes=CLASSES).rpn.score_thresh == pytest.approx(0.05)
    assert create_model("fasterrcnn_squeezenet1_1", classes=CLASSES).rpn.score_thresh == 0.0


@pytest.mark.slow
def test_unset_options_keep_builder_defaults():
    tiny = create_model("ssdlite_tiny", classes=CLASSES)
    assert (tiny.score_thresh, tiny.detections_per_img, tiny.topk_candidates) == (0.01, 100, 100)
    assert tiny.transform.image_mean == [0.5, 0.5, 0.5] and tiny.transform.image_std == [0.5, 0.5, 0.5]
    assert tiny.transform.fixed_size == (160, 160)
    lite = create_model("ssdlite320", classes=CLASSES)
    assert (lite.score_thresh, lite.detections_per_img, lite.topk_candidates) == (0.001, 300, 300)
    lite = create_model("ssdlite320", classes=CLASSES, score_thresh=0.2)
    assert lite.score_thresh == 0.2 and lite.detections_per_img == 300
    frcnn = create_model("fasterrcnn_resnet18", classes=CLASSES)
    assert frcnn.transform.min_size == (640,) and frcnn.transform.max_size == 640
    assert frcnn.edgedet_input_size == (640, 640)


def test_ssdlite_tiny_options():
    m = create_model("ssdlite_tiny", classes=CLASSES, size=(128, 192), width_mult=0.25)
    assert m.transform.fixed_size == (192, 128)  # torchvision keeps (W, H)
    assert m.edgedet_input_size == (128, 192)
    assert m.edgedet_kwargs == {"width_mult": 0.25, "size": [128, 192]}
    with torch.no_grad():
        out = m.eval()([torch.rand(3, 100, 100)])
    assert out[0]["boxes"].shape[1] == 4


def test_bad_options_are_model_errors():
    with pytest.raises(ModelError, match="min_size"):
        create_model("ssdlite_tiny", classes=CLASSES, min_size=100)
    with pytest.raises(ModelError):
        create_model("ssdlite320", size=512)
    with pytest.raises(ModelError, match="background"):
        create_model("ssdlite_tiny", classes=["__background__", "cat"])
    with pytest.raises(ModelError, match="empty"):
        create_model("ssdlite_tiny", classes=[])
    with pytest.raises(ModelError, match="twice"):
        create_model("ssdlite_tiny", classes=["cat", "cat"])


def test_no_classes_means_coco_label_space():
    m = create_model("ssdlite_tiny")
    assert len(m.edgedet_classes) == 90 and m.edgedet_classes[0] == "person"
    assert m.head.classification_head.num_columns == 91


def test_ssdlite320_mirrors_torchvision_builder():
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    ours = create_model("ssdlite320")
    torch.manual_seed(0)
    theirs = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert type(ours) is type(theirs)


# --- weights specs -----------------------------------------------------------------------------


def test_weights_none_makes_no_network_access(no_network):
    for name in ("ssdlite320", "fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_squeezenet1_1"):
        create_model(name, weights="none")
        create_model(name, classes=CLASSES, weights="NONE")


@pytest.mark.parametrize(
    "name, spec, classes, enum_name",
    [
        ("ssdlite320", "DEFAULT", None, "SSDLite320_MobileNet_V3_Large_Weights.COCO_V1"),
        ("ssdlite320", "COCO_V1", None, "SSDLite320_MobileNet_V3_Large_Weights.COCO_V1"),
        ("ssdlite320", "default", CLASSES, "MobileNet_V3_Large_Weights.IMAGENET1K_V1"),
        ("fasterrcnn_resnet50_fpn", "COCO_V1", CLASSES, "ResNet50_Weights.IMAGENET1K_V1"),
        ("fasterrcnn_squeezenet1_0", "DEFAULT", CLASSES, "SqueezeNet1_0_Weights.IMAGENET1K_V1"),
    ],
)
def test_offline_download_is_one_line_naming_the_way_out(offline, name, spec, classes, enum_name):
    with pytest.raises(WeightsError) as info:
        create_model(name, classes=classes, weights=spec)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg == f"could not download {enum_name} (offline?): pass --weights FILE (a local checkpoint) or --weights none"


def test_weights_spec_resolution():
    from torchvision.models import MobileNet_V3_Large_Weights, VGG16_Weights
    from torchvision.models.detection import SSDLite320_MobileNet_V3_Large_Weights

    from edgedet.models.weights import resolve_weights

    lite = get_model_entry("ssdlite320")
    assert resolve_weights(lite, "none", None).enum_member is None
    assert resolve_weights(lite, "COCO_V1", None).detector == SSDLite320_MobileNet_V3_Large_Weights.COCO_V1
    plan = resolve_weights(lite, "COCO_V1", CLASSES)  # custom classes: backbone only, fresh heads
    assert plan.detector is None and plan.backbone == MobileNet_V3_Large_Weights.IMAGENET1K_V1
    assert resolve_weights(lite, "IMAGENET1K_V2", CLASSES).backbone == MobileNet_V3_Large_Weights.IMAGENET1K_V2
    assert resolve_weights(get_model_entry("ssd300"), "default", CLASSES).backbone == VGG16_Weights.IMAGENET1K_FEATURES
    with pytest.raises(WeightsError, match="COCO_V1"):
        resolve_weights(lite, "COCO_V2", None)
    with pytest.raises(WeightsError, match="no published weights"):
        resolve_weights(get_model_entry("ssdlite_tiny"), "default", None)
    with pytest.raises(WeightsError, match="existing"):
        resolve_weights(get_model_entry("ssdlite_tiny"), "/no/such/file.pt", None)


def test_unreadable_cached_weights_name_the_file(offline, tmp_path):
    from torchvision.models.detection import SSDLite320_MobileNet_V3_Large_Weights

    from edgedet.models.weights import _cached_file

    cached = _cached_file(SSDLite320_MobileNet_V3_Large_Weights.COCO_V1)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"truncated download")
    with pytest.raises(WeightsError, match="delete the file"):
        create_model("ssdlite320", weights="COCO_V1")


# --- checkpoints -------------------------------------------------------------------------------


@pytest.mark.slow
def test_checkpoint_round_trip(tmp_path, no_network):
    torch.manual_seed(3)
    src = create_model("ssdlite_tiny", classes=CLASSES, width_mult=0.25)
    path = save_checkpoint(
        tmp_path / "tiny.pt",
        {"model": "ssdlite_tiny", "state_dict": src.state_dict(), "classes": CLASSES, "model_kwargs": src.edgedet_kwargs},
    )
    loaded = create_model("ssdlite_tiny", weights=str(path))  # classes and width come from the checkpoint
    assert loaded.edgedet_classes == CLASSES
    a, b = src.state_dict(), loaded.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    src.eval(), loaded.eval()
    x = _images(1)
    with torch.no_grad():
        assert torch.equal(src(x)[0]["scores"], loaded(x)[0]["scores"])
    # The caller may restate the same classes.
    create_model("ssdlite_tiny", classes=CLASSES, weights=str(path))


def test_bare_state_dict_loads(tmp_path):
    src = create_model("fasterrcnn_squeezenet1_1", classes=CLASSES)
    path = tmp_path / "bare.pth"
    torch.save(src.state_dict(), path)
    loaded = create_model("fasterrcnn_squeezenet1_1", classes=CLASSES, weights=str(path))
    assert torch.equal(src.roi_heads.box_predictor.cls_score.weight, loaded.roi_heads.box_predictor.cls_score.weight)


def test_ssdlite320_checkpoint_from_imagenet_backbone_rebuilds_full_tail(tmp_path):
    # Fine-tuning from ImageNet weights builds the full MobileNetV3 tail; a checkpoint of it must
    # load even when it does not record reduced_tail.
    src = create_model("ssdlite320", classes=CLASSES, reduced_tail=False)
    path = save_checkpoint(tmp_path / "ft.pt", {"model": "ssdlite320", "state_dict": src.state_dict(), "classes": CLASSES})
    loaded = create_model("ssdlite320", weights=str(path))
    assert loaded.edgedet_kwargs["reduced_tail"] is False


def test_checkpoint_mismatches_are_checkpoint_errors(tmp_path):
    src = create_model("ssdlite_tiny", classes=CLASSES)
    sd = src.state_dict()

    bare = tmp_path / "bare.pt"
    torch.save(sd, bare)
    with pytest.raises(CheckpointError, match=r"shape mismatch.*classification_head.*classes\?") as info:
        create_model("ssdlite_tiny", classes=["a", "b"], weights=str(bare))
    assert "\n" not in str(info.value)

    other = save_checkpoint(tmp_path / "other.pt", {"model": "ssdlite320", "state_dict": sd, "classes": CLASSES})
    with pytest.raises(CheckpointError, match="ssdlite320 checkpoint, not ssdlite_tiny"):
        create_model("ssdlite_tiny", weights=str(other))

    named = save_checkpoint(tmp_path / "named.pt", {"model": "ssdlite_tiny", "state_dict": sd, "classes": CLASSES})
    with pytest.raises(CheckpointError, match="trained for classes"):
        create_model("ssdlite_tiny", classes=["cat", "dog", "bird"], weights=str(named))

    missing = dict(sd)
    missing.pop("head.regression_head.module_list.0.1.weight")
    missing["extra.weight"] = torch.zeros(1)
    cut = save_checkpoint(tmp_path / "cut.pt", {"model": "ssdlite_tiny", "state_dict": missing, "classes": CLASSES})
    with pytest.raises(CheckpointError, match=r"1 missing key.*regression_head.*1 unexpected key.*extra\.weight"):
        create_model("ssdlite_tiny", weights=str(cut))

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        create_model("ssdlite_tiny", weights=str(garbage))


# --- info ----------------------------------------------------------------------------------------


def test_model_stats_measures_then_reads_cache(tmp_path, monkeypatch):
    from edgedet.models import info

    monkeypatch.setenv("EDGEDET_CACHE_DIR", str(tmp_path))
    s = info.model_stats("ssdlite_tiny")
    assert s.flops and 0.05 < s.gflops < 0.5 and 1.0 < s.params_m < 3.0
    data = json.loads((tmp_path / info.CACHE_FILE).read_text())
    assert any(k.startswith("ssdlite_tiny|torch ") for k in data)

    def no_build(name):
        raise AssertionError("cached stats should not build the model")

    monkeypatch.setattr(info, "_build_for_stats", no_build)
    assert info.model_stats("ssdlite_tiny") == s


def test_checkpoint_of_other_classes_says_what_train_can_do(tmp_path):
    """Issue 24: the message suggested dropping a classes option that `train` does not have."""
    from edgedet.checkpoint import save_checkpoint
    from edgedet.errors import CheckpointError
    from edgedet.models import create_model

    model = create_model("ssdlite_tiny", classes=["a", "b"], weights="none")
    path = save_checkpoint(tmp_path / "ab.pt", {"model": "ssdlite_tiny", "classes": ["a", "b"],
                                                "model_kwargs": dict(model.edgedet_kwargs),
                                                "state_dict": model.state_dict()})
    with pytest.raises(CheckpointError) as e:
        create_model("ssdlite_tiny", classes=["x"], weights=str(path))
    assert "the training data's" in str(e.value) and "classes option" not in str(e.value)
