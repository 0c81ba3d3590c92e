"""IoU-Net: the IoU head, PrRoIPool, IoU-guided NMS (PyTorch reference and the exported tail), refinement.

The NMS tests start from a hand-worked example in which one box overlaps two boxes that are both kept, so
the cluster it joins decides a kept box's score; the exported tail is then compared with the sequential
reference on random candidates in ONNX Runtime and OpenVINO.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from edgedet.errors import EdgedetError, ModelError
from edgedet.export.nms import IOU_CANDIDATE, NMSConfig, append_nms
from edgedet.models import create_model
from edgedet.models.iou_net import IOU_BINS, iou_from_output, jitter_boxes, validate_iou_options
from edgedet.models.iou_nms import KEY_FLOOR, OMEGA_2, iou_guided_nms, refine_boxes
from edgedet.models.prroi_pool import MultiScalePrRoIPool, prroi_pool_image

from conftest import one_line

# A = [0,0,10,10] and B = [12,0,22,10] do not overlap; C = [5,0,17,10] overlaps each by 50/170 = 0.294.
# At IoU threshold 0.2, ranked by predicted IoU (A .9, B .8, C .7): A is kept and its cluster {A, C} gives
# it C's score .95; B is kept next, C is already gone, so B keeps its own .6 (not C's .95). Plain NMS on
# the class score keeps C alone (it suppresses both A and B).
HAND_BOXES = np.array([[0, 0, 10, 10], [12, 0, 22, 10], [5, 0, 17, 10]], np.float32)
HAND_SCORES = np.array([0.5, 0.6, 0.95], np.float32)
HAND_IOUS = np.array([0.9, 0.8, 0.7], np.float32)
HAND_LABELS = np.array([0, 0, 0], np.int64)
HAND_THRESH = 0.2


def test_hand_worked_iou_guided_nms():
    keep, scores = iou_guided_nms(HAND_BOXES, HAND_SCORES, HAND_IOUS, HAND_LABELS, HAND_THRESH, "iou")
    assert keep.tolist() == [0, 1]
    np.testing.assert_allclose(scores, [0.95, 0.6], rtol=1e-6)


def test_hand_worked_standard_nms_keeps_only_the_best_scored_box():
    from torchvision.ops import batched_nms

    keep = batched_nms(torch.from_numpy(HAND_BOXES), torch.from_numpy(HAND_SCORES), torch.from_numpy(HAND_LABELS),
                       HAND_THRESH)
    assert keep.tolist() == [2]


def test_hand_worked_score_times_iou_ranking():
    # keys A .45, B .48, C .665: C ranks first and suppresses A and B
    keep, scores = iou_guided_nms(HAND_BOXES, HAND_SCORES, HAND_IOUS, HAND_LABELS, HAND_THRESH, "score_iou")
    assert keep.tolist() == [2] and scores.tolist() == pytest.approx([0.95])
    # with C's IoU at .4 (key .38) the ranking is B, A, C: B takes C (.95), A keeps .5
    ious = np.array([0.9, 0.8, 0.4], np.float32)
    keep, scores = iou_guided_nms(HAND_BOXES, HAND_SCORES, ious, HAND_LABELS, HAND_THRESH, "score_iou")
    assert keep.tolist() == [1, 0] and scores.tolist() == pytest.approx([0.95, 0.5])


def test_other_class_is_neither_suppressed_nor_joined():
    labels = np.array([0, 0, 1], np.int64)
    keep, scores = iou_guided_nms(HAND_BOXES, HAND_SCORES, HAND_IOUS, labels, HAND_THRESH, "iou")
    order = np.argsort(keep)
    assert keep[order].tolist() == [0, 1, 2]
    np.testing.assert_allclose(scores[order], [0.5, 0.6, 0.95], rtol=1e-6)


def test_reference_rejects_an_unknown_rank():
    with pytest.raises(ValueError, match="rank"):
        iou_guided_nms(HAND_BOXES, HAND_SCORES, HAND_IOUS, HAND_LABELS, 0.5, "score")


# --- the exported tail ------------------------------------------------------------------------------------------
def _tail_model(k: int, num_classes: int, cfg: NMSConfig, opset: int) -> onnx.ModelProto:
    """A graph whose candidate outputs are its inputs, with the NMS tail appended as export does."""
    types = {"cand_boxes": (TensorProto.FLOAT, [1, k, 4]), "cand_scores": (TensorProto.FLOAT, [1, k]),
             "cand_labels": (TensorProto.INT64, [1, k]), IOU_CANDIDATE: (TensorProto.FLOAT, [1, k])}
    names = list(cfg.candidates)
    inputs = [helper.make_tensor_value_info("in_" + n, *types[n]) for n in names]
    outputs = [helper.make_tensor_value_info(n, *types[n]) for n in names]
    nodes = [helper.make_node("Identity", ["in_" + n], [n]) for n in names]
    model = helper.make_model(helper.make_graph(nodes, "candidates", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    model = append_nms(model, cfg, input_size=(64, 64), num_classes=num_classes)
    onnx.checker.check_model(model, full_check=True)
    return model


def _run_tail(model: onnx.ModelProto, runtime: str, feeds: dict[str, np.ndarray], tmp_path) -> list[np.ndarray]:
    if runtime == "onnxruntime":
        import onnxruntime as ort

        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(["num_dets", "boxes", "scores", "labels"], feeds)
    import openvino as ov

    path = tmp_path / "tail.onnx"
    onnx.save(model, str(path))
    compiled = ov.Core().compile_model(str(path), "CPU")
    result = compiled(feeds)
    return [np.asarray(result[compiled.output(name)]) for name in ("num_dets", "boxes", "scores", "labels")]


def _feeds(boxes, scores, labels, ious) -> dict[str, np.ndarray]:
    return {"in_cand_boxes": boxes[None].astype(np.float32), "in_cand_scores": scores[None].astype(np.float32),
            "in_cand_labels": labels[None].astype(np.int64), "in_" + IOU_CANDIDATE: ious[None].astype(np.float32)}


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("opset", [17, 18])
def test_exported_tail_on_the_hand_worked_example(runtime, opset, tmp_path):
    # one padding row (score 0) with a high IoU that must be neither kept nor counted in a cluster
    boxes = np.concatenate([HAND_BOXES, np.array([[0, 0, 10, 10]], np.float32)])
    scores, ious = np.append(HAND_SCORES, 0.0), np.append(HAND_IOUS, 0.99)
    labels = np.append(HAND_LABELS, 0)
    model = _tail_model(4, 2, NMSConfig(score_thresh=0.1, iou_thresh=HAND_THRESH, max_dets=3, mode="iou"), opset)
    num, out_boxes, out_scores, out_labels = _run_tail(model, runtime, _feeds(boxes, scores, labels, ious), tmp_path)
    assert num.tolist() == [[2]] and num.dtype == np.int32 and out_labels.dtype == np.int32
    np.testing.assert_allclose(out_scores[0], [0.95, 0.6, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(out_boxes[0], [HAND_BOXES[0], HAND_BOXES[1], [0, 0, 0, 0]])


def test_exported_tail_keeps_a_box_alone_at_iou_threshold_one(tmp_path):
    """IoU > 1 never holds: every candidate is kept with its own score (the diagonal owns itself)."""
    model = _tail_model(3, 1, NMSConfig(score_thresh=0.1, iou_thresh=1.0, max_dets=3, mode="iou"), 17)
    num, _, out_scores, _ = _run_tail(model, "onnxruntime", _feeds(HAND_BOXES, HAND_SCORES, HAND_LABELS, HAND_IOUS),
                                      tmp_path)
    assert num.tolist() == [[3]]
    np.testing.assert_allclose(out_scores[0], [0.95, 0.6, 0.5], rtol=1e-6)


def _random_candidates(seed: int, k: int = 80, classes: int = 3, floor_ties: bool = False):
    rng = np.random.default_rng(seed)
    centres, sizes = rng.uniform(20, 80, (6, 2)), rng.uniform(10, 30, (6, 2))  # clusters of overlapping boxes
    which = rng.integers(0, len(centres), k)
    wh = sizes[which] * rng.uniform(0.8, 1.25, (k, 2))
    xy = centres[which] + rng.normal(0, 3, (k, 2))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).astype(np.float32)
    scores = rng.uniform(0.05, 1.0, k).astype(np.float32)
    scores[rng.uniform(size=k) < 0.2] = 0.0  # masked rows, as the wrapper zeroes them
    ious = rng.uniform(0.0, 1.0, k).astype(np.float32)
    labels = rng.integers(0, classes, k)
    if floor_ties:  # a third of the IoUs below KEY_FLOOR: their keys tie at the floor, resolved by index
        ious[rng.uniform(size=k) < 0.33] = KEY_FLOOR / 10
    boxes[scores == 0], ious[scores == 0], labels[scores == 0] = 0.0, 0.0, 0
    return boxes, scores, labels, ious


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("mode", ["iou", "score_iou"])
@pytest.mark.parametrize("seed, floor_ties", [(0, False), (1, False), (2, False), (3, True)])
def test_exported_tail_matches_the_sequential_reference(runtime, mode, seed, floor_ties, tmp_path):
    boxes, scores, labels, ious = _random_candidates(seed, floor_ties=floor_ties)
    score_thresh, iou_thresh, max_dets = 0.1, 0.5, 60
    valid = scores > score_thresh
    keep, ref_scores = iou_guided_nms(boxes[valid], scores[valid], ious[valid], labels[valid], iou_thresh, mode)
    ref_boxes, ref_labels = boxes[valid][keep], labels[valid][keep]
    assert len(keep) >= 10, "the example must keep boxes"
    if floor_ties:  # kept boxes whose keys tie at the floor: the graph must resolve them as the loop does
        assert (ious[valid][keep] < KEY_FLOOR).sum() >= 3
    assert (ref_scores > scores[valid][keep] + 1e-6).any(), "some kept box must take a better score from its cluster"
    model = _tail_model(len(boxes), 3, NMSConfig(score_thresh=score_thresh, iou_thresh=iou_thresh,
                                                 max_dets=max_dets, mode=mode), 17)
    num, out_boxes, out_scores, out_labels = _run_tail(model, runtime, _feeds(boxes, scores, labels, ious), tmp_path)
    n = int(num[0, 0])
    assert n == min(len(keep), max_dets)
    got = sorted(zip(out_scores[0, :n].round(6), out_labels[0, :n], map(tuple, out_boxes[0, :n])))
    want = sorted(zip(ref_scores[:n].astype(np.float32).round(6), ref_labels[:n], map(tuple, ref_boxes[:n])))
    assert got == want
    assert not out_scores[0, n:].any() and not out_boxes[0, n:].any()


def test_iou_modes_need_the_onnx_flavour_and_a_known_mode():
    with pytest.raises(EdgedetError, match="--nms onnx"):
        NMSConfig("efficient", score_thresh=0.3, mode="iou").validate(100)
    with pytest.raises(EdgedetError, match="--nms-mode must be one of"):
        NMSConfig(mode="iou_guided").validate(100)


# --- PrRoIPool and refinement -------------------------------------------------------------------------------------
def test_prroi_pool_is_exact_on_a_linear_map_and_differentiable_in_the_box():
    # on f(x, y) = x the bin mean is the bin's centre x, exactly (bilinear interpolation of a linear map)
    feature = torch.arange(16, dtype=torch.float64).repeat(16, 1)[None]  # [1, 16, 16], value = column index
    box = torch.tensor([[2.3, 3.1, 9.7, 12.9]], dtype=torch.float64)
    out = prroi_pool_image(feature, box, (2, 2), 1.0)[0, 0]
    x_centres = 2.3 + (9.7 - 2.3) * torch.tensor([0.25, 0.75], dtype=torch.float64) - 0.5
    torch.testing.assert_close(out, x_centres.repeat(2, 1))
    rng = torch.Generator().manual_seed(0)
    feat = torch.rand((2, 12, 12), generator=rng, dtype=torch.float64)
    boxes = torch.tensor([[1.2, 2.3, 7.9, 9.1], [3.3, 0.7, 10.2, 6.4]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda b: prroi_pool_image(feat, b, (3, 3), 1.0), (boxes,))


def test_refinement_climbs_the_predicted_iou():
    """With a predictor that is the true IoU with a target box, refinement moves boxes towards it."""
    from torchvision.ops import box_iou

    target = torch.tensor([[20.0, 20.0, 60.0, 70.0]])
    boxes = torch.tensor([[25.0, 15.0, 62.0, 60.0], [10.0, 22.0, 55.0, 75.0]])

    def predict(b):
        return box_iou(b, target)[:, 0]

    refined, iou = refine_boxes(boxes, predict, steps=5, step_size=0.5)
    before = predict(boxes)
    assert (iou > before + 0.02).all(), (before, iou)
    torch.testing.assert_close(iou, predict(refined))
    same, same_iou = refine_boxes(target.clone(), predict, steps=5)  # already perfect: no gradient, stays put
    torch.testing.assert_close(same, target)
    torch.testing.assert_close(same_iou, torch.ones(1))


def _scripted_predictor(values: list[list[float]]):
    """A predictor whose n-th call returns ``values[n]`` per box, with gradient +1 in x2 (every step moves x2)."""
    calls = []

    def predict(b):
        row = torch.tensor(values[min(len(calls), len(values) - 1)], dtype=b.dtype)
        calls.append(b.detach().clone())
        return row + (b[:, 2] - b[:, 2].detach())

    return predict, calls


def test_refinement_applies_every_step_and_freezes_as_algorithm_2():
    """A step that lowers the IoU is applied, then the box freezes (Δ < Ω2); a gain below Ω1 freezes it too; the
    others run every step. The acceptance rule it replaced kept the old box and stopped at the first loss."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    #            start           step 1: box 0 loses 0.05, box 1 gains 5e-4, box 2 gains 0.1; then box 2 gains
    predict, calls = _scripted_predictor([[0.5, 0.5, 0.5], [0.45, 0.5005, 0.6], [0.45, 0.5005, 0.7],
                                          [0.45, 0.5005, 0.8]])
    out, iou = refine_boxes(boxes, predict, steps=3, step_size=1.0)
    # a step moves x2 by step_size * w * grad, the width w of the box it starts from: 10 → 20 → 40 → 80
    assert out[:, 2].tolist() == [20.0, 20.0, 80.0], out
    assert iou.tolist() == pytest.approx([0.45, 0.5005, 0.8])
    assert 0.45 - 0.5 < OMEGA_2 and len(calls) == 4


def test_refinement_keeps_going_on_a_small_loss():
    """A loss smaller than -Ω2 neither stops the box nor is undone (the paper's rule, not a greedy one)."""
    predict, _ = _scripted_predictor([[0.5], [0.495], [0.6], [0.7]])
    out, iou = refine_boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), predict, steps=3, step_size=1.0)
    assert out[0, 2].item() == 80.0 and iou.item() == pytest.approx(0.7)


def test_prroi_pool_of_a_flipped_box_is_zero():
    """x2 < x1 (a large refinement step can flip a box): the width clamps to 0 and the pooled value is 0, as
    PreciseRoIPooling's kernel gives; the signed integral over a negative area gave about -25 000 per bin."""
    feature = torch.rand((4, 16, 16), generator=torch.Generator().manual_seed(0)) + 1.0
    out = prroi_pool_image(feature, torch.tensor([[9.0, 2.0, 3.0, 12.0], [2.0, 9.0, 12.0, 3.0]]), (2, 2), 1.0)
    assert out.abs().max().item() == 0.0
    normal = prroi_pool_image(feature, torch.tensor([[3.0, 2.0, 9.0, 12.0]]), (2, 2), 1.0)
    assert (normal > 1.0).all()


def test_prroi_pool_equals_dense_roi_align():
    """The exact bin integral against an independent estimate: torchvision's RoIAlign (aligned, the same half-pixel
    convention) averaging 64 × 64 bilinear samples per bin, on a random map, at two scales."""
    from torchvision.ops import roi_align

    feature = torch.rand((3, 20, 24), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    boxes = torch.tensor([[3.3, 2.1, 30.7, 25.9], [10.0, 14.5, 44.2, 37.8], [2.0, 2.0, 46.0, 38.0]],
                         dtype=torch.float64)
    for scale in (0.5, 0.25):
        exact = prroi_pool_image(feature, boxes, (3, 4), scale)
        rois = torch.cat([torch.zeros(len(boxes), 1, dtype=torch.float64), boxes], dim=1)
        dense = roi_align(feature[None], rois, (3, 4), spatial_scale=scale, sampling_ratio=64, aligned=True)
        # RoIAlign clamps samples to the border cells where PrRoIPool's map fades to 0: boxes inside the cell centres
        mapped = boxes * scale - 0.5
        assert (mapped >= 0).all() and (mapped[:, 2] <= 23).all() and (mapped[:, 3] <= 19).all()
        torch.testing.assert_close(exact, dense, atol=2e-3, rtol=0)


def test_multi_level_prroi_pool_picks_the_fpn_level_of_each_box():
    """FPN: each box is pooled on the level torchvision's LevelMapper gives it (k = 4 + log2(sqrt(area) / 224),
    clamped to the levels present): sides 32, 112 and 224 go to levels 2 (clamped from 1), 3 and 4."""
    strides = {"p2": 4, "p3": 8, "p4": 16}
    gen = torch.Generator().manual_seed(2)
    features = {name: torch.rand((1, 2, 448 // s, 448 // s), generator=gen) for name, s in strides.items()}
    pool = MultiScalePrRoIPool(list(strides), 3)
    boxes = torch.tensor([[10.0, 10.0, 42.0, 42.0], [100.0, 50.0, 212.0, 162.0], [200.0, 200.0, 424.0, 424.0]])
    out = pool(features, [boxes], [(448, 448)])
    for box, level, got in zip(boxes, ("p2", "p3", "p4"), out):
        want = prroi_pool_image(features[level][0], box[None], (3, 3), 1.0 / strides[level])[0]
        torch.testing.assert_close(got, want)
        others = [prroi_pool_image(features[n][0], box[None], (3, 3), 1.0 / s)[0] for n, s in strides.items()
                  if n != level]
        assert all((got - o).abs().max() > 1e-3 for o in others)


def test_jittered_rois_are_balanced_over_iou_bins():
    gt = torch.tensor([[10.0, 10.0, 60.0, 50.0], [80.0, 20.0, 150.0, 110.0]])
    boxes, ious, idx = jitter_boxes(gt, 1000, (160, 160), torch.Generator().manual_seed(0))
    assert len(boxes) == 1000 and idx.max() <= 1
    from torchvision.ops import box_iou

    torch.testing.assert_close(ious, box_iou(boxes, gt)[torch.arange(1000), idx])
    assert ious.min() >= IOU_BINS[0]
    counts = torch.histc(ious, bins=len(IOU_BINS) - 1, min=IOU_BINS[0], max=1.0)
    assert counts.min() >= 150, counts  # 200 per bin, the top bin [0.9, 1] included


# --- the model ----------------------------------------------------------------------------------------------------
FAST = dict(min_size=128, max_size=128, rpn_pre_nms_top_n_test=60, rpn_post_nms_top_n_test=30,
            rpn_pre_nms_top_n_train=60, rpn_post_nms_top_n_train=30, iou_rois_per_image=64)


@pytest.mark.parametrize("opts, fragment", [
    ({"nms_mode": "iou"}, "need the IoU head"),
    ({"iou_head": True, "refine_steps": 3}, "iou_pool=prroi"),
    ({"iou_head": True, "iou_pool": "roipool"}, "iou_pool must be one of"),
    ({"iou_head": True, "iou_loss": "l2"}, "iou_loss must be one of"),
    ({"iou_head": "yes"}, "iou_head must be true or false"),
    ({"iou_head": True, "iou_loss_weight": 0}, "iou_loss_weight must be a positive number"),
    ({"iou_head": True, "iou_loss": "smoothl1"}, "replaced by smoothl1_norm"),
    ({"iou_head": True, "iou_detach": 1}, "iou_detach must be true or false"),
])
def test_bad_iou_options_are_one_line_errors(opts, fragment):
    with pytest.raises(ModelError) as e:
        validate_iou_options(opts)
    assert fragment in one_line(e)
    with pytest.raises(ModelError, match=fragment):
        create_model("fasterrcnn_tiny", weights="none", classes=["a"], **opts)


@pytest.mark.slow
@pytest.mark.parametrize("pool, agnostic, loss", [("roialign", False, "bce"), ("prroi", True, "smoothl1_norm")])
def test_the_iou_head_trains_and_predicts(pool, agnostic, loss):
    from torchvision.ops import box_iou

    torch.manual_seed(0)
    model = create_model("fasterrcnn_tiny", weights="none", classes=["a", "b"], iou_head=True, iou_pool=pool,
                         iou_class_agnostic=agnostic, iou_loss=loss, **FAST)
    assert model.edgedet_kwargs["iou_head"] is True and any(k.startswith("roi_heads.iou_head.") for k in model.state_dict())
    images = [torch.rand(3, 128, 128) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 70.0, 60.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[30.0, 40.0, 110.0, 120.0]]), "labels": torch.tensor([2])}]
    optim = torch.optim.Adam(model.roi_heads.iou_head.parameters(), lr=1e-3)
    model.train()
    first = None
    for _ in range(15):
        losses = model(images, targets)
        optim.zero_grad()
        losses["loss_iou"].backward()
        optim.step()
        first = first if first is not None else float(losses["loss_iou"].detach())
    last = float(losses["loss_iou"].detach())
    assert last < first, (first, last)
    model.eval()
    heads = model.roi_heads
    heads.score_thresh = 0.0
    for mode in ("iou", "score_iou"):
        heads.nms_mode = mode
        with torch.no_grad():
            out = model(images)
        for o, image in zip(out, images):
            assert len(o["boxes"]) > 0
            # ious are the head's prediction on the returned boxes, read independently through the raw output
            features = model.backbone(model.transform([image])[0].tensors)
            features = {"0": features} if isinstance(features, torch.Tensor) else features
            with torch.no_grad():
                raw = heads.iou_logits(features, [o["boxes"]], [(128, 128)], [o["labels"]])
            torch.testing.assert_close(o["ious"], iou_from_output(raw, loss), atol=1e-5, rtol=1e-4)
            # IoU-guided NMS: scores sorted, no two kept boxes of a class overlapping above the threshold
            assert (o["scores"][:-1] >= o["scores"][1:]).all()
            for label in o["labels"].unique():
                b = o["boxes"][o["labels"] == label]
                overlap = box_iou(b, b) - torch.eye(len(b))
                assert overlap.max() <= heads.nms_thresh + 1e-6
    if pool == "prroi":
        heads.nms_mode = "score_iou"
        with torch.no_grad():
            out = model(images)
        heads.refine_steps = 3
        with torch.no_grad():  # refinement turns autograd back on by itself
            refined = model(images)
        moved = sum(float((r["boxes"] - o["boxes"]).abs().sum()) for r, o in zip(refined, out))
        assert moved > 0
        for r, o in zip(refined, out):
            # rescored: each refined box's score is its NMS score times its predicted IoU, re-sorted
            assert (r["boxes"][:, 2:] <= 128).all() and (r["boxes"] >= 0).all()
            assert (r["scores"][:-1] >= r["scores"][1:]).all()
            assert sorted((r["scores"] / r["ious"]).tolist()) == pytest.approx(sorted(o["scores"].tolist()), rel=1e-5)


#: an FPN model with four pooled levels (strides 4-32: torchvision's LevelMapper spreads boxes over them) beside
#: the single-map tiny one (the 320 MobileNet FPN pools every box of a 320 image on its first level)
FPN = dict(min_size=256, max_size=256, rpn_pre_nms_top_n_test=60, rpn_post_nms_top_n_test=30)


@pytest.mark.parametrize("name, size, opts", [("fasterrcnn_tiny", 128, FAST),
                                              ("fasterrcnn_resnet50_fpn", 256, FPN)])
@pytest.mark.parametrize("pool", ["roialign", "prroi"])
def test_deploy_wrapper_ious_match_the_eager_head(name, size, opts, pool):
    """``cand_ious`` of the deploy wrapper (static per-level pooling, one-hot level pick) is the eager IoU head
    (torchvision's per-level gather, or MultiScalePrRoIPool's) on the same candidate boxes."""
    from edgedet.export.fasterrcnn import FasterRCNNDeploy

    torch.manual_seed(0)
    model = create_model(name, weights="none", classes=["a", "b"], iou_head=True, iou_pool=pool, **opts).eval()
    model.roi_heads.score_thresh = 0.0
    wrapper = FasterRCNNDeploy(model, input_size=(size, size), score_thresh=0.0, max_candidates=60, iou_rank="iou")
    images = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
    with torch.no_grad():
        boxes, scores, labels, ious = wrapper(images)
        features = model.backbone(wrapper._preprocess(images))
        features = {"0": features} if isinstance(features, torch.Tensor) else features
        used = scores > 0
        assert used.sum() > 20
        eager = model.roi_heads.predicted_iou(features, [b[u] for b, u in zip(boxes, used)], [(size, size)] * 2,
                                              [l[u] + 1 for l, u in zip(labels, used)])
    torch.testing.assert_close(ious[used], eager, atol=1e-5, rtol=1e-4)
    assert not ious[~used].any()
    if name != "fasterrcnn_tiny":  # hand-placed boxes on both FPN levels (the random model's are all small)
        from torchvision.ops.poolers import _filter_input, _setup_scales

        hand = torch.tensor([[10.0, 10.0, 60.0, 60.0], [0.0, 0.0, 250.0, 250.0], [20.0, 40.0, 140.0, 160.0],
                             [100.0, 120.0, 140.0, 150.0]])
        pooler = model.roi_heads.iou_roi_pool
        _, mapper = _setup_scales(_filter_input(features, pooler.featmap_names), [(size, size)],
                                  pooler.canonical_scale, pooler.canonical_level)
        assert mapper([hand]).tolist() == [0, 2, 1, 0]
        hand_labels = torch.tensor([0, 1, 0, 1])
        with torch.no_grad():
            graph = wrapper._candidate_ious(features, hand.expand(2, 4, 4), hand_labels.expand(2, 4),
                                            torch.ones(2, 4, dtype=torch.bool))
            eager = model.roi_heads.predicted_iou(features, [hand, hand], [(size, size)] * 2, [hand_labels + 1] * 2)
        torch.testing.assert_close(graph.reshape(-1), eager, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("rank", ["iou", "score_iou"])
def test_every_pair_reaches_the_tail_ordered_by_the_ranking_key(rank):
    """The IoU modes take every (proposal, class) pair, ordered by the mode's key (ties: lower pair index, as the
    loop ranks), not the best by score; a K below the pair count is refused in one line naming the count."""
    from edgedet.export.fasterrcnn import FasterRCNNDeploy

    torch.manual_seed(0)
    model = create_model("fasterrcnn_tiny", weights="none", classes=["a", "b"], iou_head=True, **FAST).eval()
    torch.nn.init.normal_(model.roi_heads.iou_head.iou.weight, std=0.5)  # spread the untrained head's IoUs
    pairs = FAST["rpn_post_nms_top_n_test"] * 2
    wrapper = FasterRCNNDeploy(model, input_size=(128, 128), score_thresh=0.0, max_candidates=pairs, iou_rank=rank)
    images = torch.randint(0, 256, (2, 128, 128, 3), dtype=torch.uint8)
    with torch.no_grad():
        boxes, scores, labels, ious = wrapper(images)
    assert (scores > 0).sum(dim=1).min() > pairs // 2
    key = torch.where(scores > 0, (ious if rank == "iou" else scores * ious).clamp(min=KEY_FLOOR), 0.0)
    assert (key[:, :-1] >= key[:, 1:]).all()
    assert not (scores[:, :-1] >= scores[:, 1:]).all(), "ordered by score too: the test would not see a score cut"
    with pytest.raises(ModelError) as e:
        FasterRCNNDeploy(model, input_size=(128, 128), score_thresh=0.0, max_candidates=pairs - 1, iou_rank=rank)
    assert f"--max-candidates ≥ {pairs}" in one_line(e) and f"raise --max-candidates to {pairs}" in one_line(e)
    many = create_model("fasterrcnn_tiny", weights="none", classes=[str(i) for i in range(40)], iou_head=True,
                        **{**FAST, "rpn_pre_nms_top_n_test": 200, "rpn_post_nms_top_n_test": 100}).eval()
    with pytest.raises(ModelError, match="lower --rpn-post-nms-top-n to ≤ 96 "):
        FasterRCNNDeploy(many, input_size=(128, 128), score_thresh=0.0, max_candidates=3840, iou_rank=rank)


def test_a_low_scored_box_with_a_high_iou_owns_a_cluster():
    """The issue's counterexample (IoU threshold 0.5, one class): all three boxes give {D .9, H2 .8}; the two best
    by score give {H1 .9}, a box the reference never returns; the two best by IoU give D with its cluster's .9."""
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [-2, 0, 8, 10]], np.float32)  # H1, H2, D
    scores, ious, labels = np.array([0.9, 0.8, 0.1]), np.array([0.6, 0.55, 0.95]), np.zeros(3, np.int64)
    keep, new = iou_guided_nms(boxes, scores, ious, labels, 0.5, "iou")
    assert keep.tolist() == [2, 1] and new.tolist() == pytest.approx([0.9, 0.8])
    keep, new = iou_guided_nms(boxes[:2], scores[:2], ious[:2], labels[:2], 0.5, "iou")
    assert keep.tolist() == [0] and new.tolist() == pytest.approx([0.9])
    by_key = np.argsort(-ious, kind="stable")[:2]
    keep, new = iou_guided_nms(boxes[by_key], scores[by_key], ious[by_key], labels[by_key], 0.5, "iou")
    assert by_key[keep].tolist() == [2] and new.tolist() == pytest.approx([0.9])


def test_jitter_leaves_the_global_random_stream_alone():
    """With the same seed, a model with the IoU head shares the baseline's init of every other layer, leaves the
    global stream where the baseline's construction leaves it (the data order draws next) and, in a training step,
    draws the same numbers from it (RPN/box samplers): the head's init and the jitter have their own streams, so
    the two runs differ only by the head."""
    plain = {k: v for k, v in FAST.items() if not k.startswith("iou_")}
    torch.manual_seed(0)
    base = create_model("fasterrcnn_tiny", weights="none", classes=["a", "b"], **plain).train()
    after_base = torch.rand(4)
    torch.manual_seed(0)
    with_head = create_model("fasterrcnn_tiny", weights="none", classes=["a", "b"], iou_head=True, **FAST).train()
    assert torch.equal(torch.rand(4), after_base)  # the head's init drew from a fork of the stream
    shared = base.state_dict()
    assert all(torch.equal(v, with_head.state_dict()[k]) for k, v in shared.items())
    images = [torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 70.0, 60.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[30.0, 40.0, 110.0, 120.0]]), "labels": torch.tensor([2])}]
    torch.manual_seed(1)
    base_losses, base_next = base(images, targets), torch.rand(4)
    torch.manual_seed(1)
    head_losses, head_next = with_head(images, targets), torch.rand(4)
    assert torch.equal(base_next, head_next)
    assert "loss_iou" in head_losses and all(torch.equal(v, head_losses[k]) for k, v in base_losses.items())


def test_jittered_rois_are_assigned_to_the_ground_truth_they_overlap_most():
    """Max-IoU assignment: with two overlapping objects, a box jittered from one towards the other is the other's,
    with that IoU as its target and that label."""
    from torchvision.ops import box_iou

    gt = torch.tensor([[10.0, 10.0, 60.0, 60.0], [35.0, 10.0, 85.0, 60.0]])  # IoU 1/3 with each other
    boxes, ious, idx = jitter_boxes(gt, 2000, (100, 100), torch.Generator().manual_seed(0))
    best, owner = box_iou(boxes, gt).max(dim=1)
    torch.testing.assert_close(ious, best)
    assert torch.equal(idx, owner) and set(idx.tolist()) == {0, 1}


def test_iou_modes_refuse_a_model_without_the_head(tmp_path):
    from edgedet.export.onnx_export import ExportOptions, export_model

    with pytest.raises(EdgedetError) as e:
        export_model(ExportOptions(model="fasterrcnn_tiny", nms=NMSConfig(mode="iou"), out_dir=str(tmp_path)))
    assert "iou_head=true" in one_line(e)


# --- a trained IoU-Net, end to end: train, evaluate, export, verify -------------------------------------------------
#: the CPU configuration measured in the README: 128 jittered RoIs per image (the reproduction's 1000 cost 5.5 min
#: an epoch on 2 cores, roi_align's CPU backward is single-threaded) and a 64-wide head (the latency table)
IOU_FIXTURE_ARGS = {"iou_head": True, "iou_rois_per_image": 128, "iou_head_size": 64}
#: trained to a quality target, not for a fixed count: CPU kernels change the training path, and the 8 fixed epochs
#: it once trained for reached AP50 0.467 on an AVX-512 EPYC, under the tests' 0.5. With the IoU output's init
#: (IoUHead) it measured AP50 0.609 at epoch 8 of this schedule here (AVX2), stopping there; with max-IoU
#: targets and the head's own random streams 0.608 at epoch 10; attached runs on the 16-epoch schedule passed 0.6
#: at epoch 8 (two losses, seed 0), so the cap is the preset's full schedule.
IOU_FIXTURE_TARGET_AP50, IOU_FIXTURE_MAX_EPOCHS = 0.6, 16


@pytest.fixture(scope="module")
def iou_checkpoint(synth, tmp_path_factory):
    """fasterrcnn_tiny with the IoU head trained from scratch on the synthetic split until its val AP50 reaches
    IOU_FIXTURE_TARGET_AP50 (about 10 min on 2 cores)."""
    from edgedet.train.config import make_config
    from edgedet.train.engine import train

    cfg = make_config(model="fasterrcnn_tiny", data=str(synth.train_json), images=str(synth.images_dir),
                      val_data=str(synth.val_json), preset="tiny", device="cpu", epochs=IOU_FIXTURE_MAX_EPOCHS,
                      target_ap50=IOU_FIXTURE_TARGET_AP50, out=str(tmp_path_factory.mktemp("train-iou") / "run"),
                      eval_every=1,
                      model_kwargs=dict(IOU_FIXTURE_ARGS))
    result = train(cfg, progress=False)
    print(f"\nIoU-Net fixture: val AP50 {result.history[-1]['val']['AP50']:.3f} after {len(result.history)} epochs")
    assert result.history[-1]["val"]["AP50"] >= 0.5, result.history[-1]
    return result.best


def test_trained_head_predicts_localization_quality(iou_checkpoint, synth):
    """The predicted IoU of each detection correlates with its real IoU with the ground truth."""
    from torchvision.ops import box_iou

    from edgedet.data import load_dataset
    from edgedet.reference import model_name_from_checkpoint

    model = create_model(model_name_from_checkpoint(str(iou_checkpoint)), weights=str(iou_checkpoint)).eval()
    model.roi_heads.nms_mode, model.roi_heads.score_thresh = "iou", 0.3
    dataset = load_dataset(str(synth.val_json), str(synth.images_dir))
    predicted, real = [], []
    for index, sample in enumerate(dataset.samples[:40]):
        image = torch.from_numpy(dataset.load_image(index)).permute(2, 0, 1).float() / 255
        with torch.no_grad():
            out = model([image])[0]
        gt = torch.as_tensor(np.asarray(sample.boxes, np.float32)).reshape(-1, 4)
        if len(gt) and len(out["boxes"]):
            predicted.append(out["ious"])
            real.append(box_iou(out["boxes"], gt).max(dim=1).values)
    predicted, real = torch.cat(predicted), torch.cat(real)
    assert len(predicted) >= 50
    corr = float(torch.corrcoef(torch.stack([predicted, real]))[0, 1])
    assert corr >= 0.3, corr


@pytest.fixture(scope="module")
def iou_exports(iou_checkpoint, synth, tmp_path_factory):
    from edgedet.export.onnx_export import ExportOptions, export_model

    out = tmp_path_factory.mktemp("iou-exports")
    results = {}
    for mode in ("iou", "score_iou"):
        results[mode] = export_model(ExportOptions(
            model=None, weights=str(iou_checkpoint), nms=NMSConfig(score_thresh=0.05, mode=mode),
            max_candidates=300, fp16=mode == "iou", verify=24, verify_source=str(synth.images_dir),
            out_dir=str(out), name=f"frcnn_{mode}"))
    results["score_iou/torch-export"] = export_model(ExportOptions(
        model=None, weights=str(iou_checkpoint), nms=NMSConfig(score_thresh=0.05, mode="score_iou"),
        max_candidates=300, exporter="torch-export", out_dir=str(out), name="frcnn_score_iou_te"))
    return results


def test_torch_export_gives_the_torchscript_graphs_detections(iou_exports, synth):
    """The IoU head and the IoU-guided tail through torch.export: the TorchScript graph's detections."""
    from test_torch_export import _assert_same_detections

    from edgedet.data.imageio import read_image
    from edgedet.runtime import Detector

    new = iou_exports["score_iou/torch-export"]
    assert new.metadata["exporter"]["name"] == "torch-export" and new.metadata["iou_net"]["nms_mode"] == "score_iou"
    assert all(r["passed"] for r in new.metadata["check"].values())
    images = [read_image(p) for p in sorted(synth.images_dir.glob("val_*.jpg"))[:16]]
    compared = _assert_same_detections(Detector(iou_exports["score_iou"].artifacts["fp32"]),
                                       Detector(new.artifacts["fp32"]), images)
    assert compared >= 16, compared


def test_int8_twins_of_both_exporters_score_the_same(iou_checkpoint, synth, tmp_path):
    """INT8 from either exporter, calibrated on the same images: the same mAP within 0.5 point on the val split.
    Not the same boxes: the two graphs differ in structure, so the quantizer's Q/DQ placement differs (measured on
    two trained tiny Faster R-CNNs: one gave identical detections, the other moved boxes on some images, at 60.40
    and 60.49 mAP)."""
    from edgedet.data import load_dataset
    from edgedet.evaluate import evaluate_predictor
    from edgedet.export.onnx_export import ExportOptions, export_model
    from edgedet.runtime import Detector

    dataset = load_dataset(str(synth.val_json), str(synth.images_dir))
    ap = {}
    for exporter in ("torchscript", "torch-export"):
        result = export_model(ExportOptions(
            model=None, weights=str(iou_checkpoint), nms=NMSConfig(score_thresh=0.05), exporter=exporter, int8=True,
            calib_images=str(synth.train_json), calib_count=64, out_dir=str(tmp_path), name=exporter))
        for precision in ("fp32", "int8"):
            engine = Detector(result.artifacts[precision], backend="onnxruntime")
            stats, _ = evaluate_predictor(engine, dataset, engine.class_names, progress=False)
            ap[exporter, precision] = stats.stats["AP"]
    assert ap["torchscript", "fp32"] > 0.3, ap
    assert ap["torchscript", "fp32"] == pytest.approx(ap["torch-export", "fp32"], abs=1e-3)
    assert abs(ap["torchscript", "int8"] - ap["torch-export", "int8"]) <= 0.005, ap


@pytest.mark.parametrize("mode", ["iou", "score_iou"])
def test_iou_guided_export_matches_pytorch(iou_exports, mode):
    result = iou_exports[mode]
    fp32 = result.parity["fp32"]
    assert fp32["boxes_compared"] > 50 and fp32["agreement"] >= 0.99, fp32
    meta = result.metadata
    assert meta["nms"]["mode"] == mode and meta["iou_net"]["nms_mode"] == mode
    assert meta["iou_net"]["refinement"].startswith("not exported")
    assert all(r["passed"] for r in meta["check"].values()), meta["check"]  # edgedet check, every TensorRT target
    graph = onnx.load(str(result.artifacts["fp32"]))
    ops = {n.op_type for n in graph.graph.node if n.name.startswith("nms/")}
    assert {"NonMaxSuppression", "ArgMax", "ReduceMax"} <= ops
    assert [o.name for o in graph.graph.output] == ["num_dets", "boxes", "scores", "labels"]


def test_iou_guided_export_runs_the_same_in_openvino(iou_exports, synth):
    from conftest import assert_runs_in_openvino
    from edgedet.data.imageio import read_image
    from edgedet.runtime import Detector
    from edgedet.runtime.preprocess import preprocess_batch

    path = iou_exports["iou"].artifacts["fp32"]
    ort_det = Detector(path, backend="onnxruntime")
    images = [read_image(p) for p in sorted(synth.images_dir.iterdir())[:6]]
    compared = 0
    for image in images:
        batch, _ = preprocess_batch([image], ort_det.input_size, ort_det.resize, tuple(ort_det.pad_value))
        ov_out = assert_runs_in_openvino(path, batch)
        ort_out = ort_det.raw(batch)
        n = int(ort_out["num_dets"][0, 0])
        assert int(ov_out["num_dets"][0, 0]) == n
        np.testing.assert_array_equal(ov_out["labels"][0, :n], ort_out["labels"][0, :n])
        np.testing.assert_allclose(ov_out["boxes"][0, :n], ort_out["boxes"][0, :n], atol=0.05)
        np.testing.assert_allclose(ov_out["scores"][0, :n], ort_out["scores"][0, :n], atol=1e-3)
        compared += n
    assert compared > 0


def test_verify_gate_passes_for_fp32_and_fp16(iou_exports, iou_checkpoint, synth, tmp_path):
    import json

    from conftest import run_edgedet

    res = iou_exports["iou"]
    out = tmp_path / "report.json"
    proc = run_edgedet("verify", "--engine", str(res.artifacts["fp32"]), str(res.artifacts["fp16"]), "--weights",
                       str(iou_checkpoint), "--data", str(synth.val_json), "--images", str(synth.images_dir),
                       "--device", "cpu", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    rows = [r for r in report["rows"] if r["precision"] in ("fp32", "fp16") and r.get("boxes_compared")]
    assert len(rows) == 2 and all(r["passed"] and r["boxes_compared"] > 0 for r in rows)


def test_sweep_compares_nms_modes(iou_checkpoint, synth, tmp_path):
    import json

    from conftest import run_edgedet

    proc = run_edgedet("sweep", "--weights", str(iou_checkpoint), "--data", str(synth.val_json), "--images",
                       str(synth.images_dir), "--device", "cpu", "-o", str(tmp_path / "run"), "--nms-mode",
                       "standard,iou", "--max-images", "10", "--max-candidates", "300", "--score-thresh", "0.05")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "run" / "sweep.json").read_text())
    assert report["param"] == "nms_mode" and [p["value"] for p in report["points"]] == ["standard", "iou"]
    for p in report["points"]:
        assert p["boxes_compared"] > 0 and p["agreement"] >= 0.99, p
    assert (tmp_path / "run" / "sweep.png").stat().st_size > 0


def test_export_cli_refuses_iou_modes_without_the_head(tmp_path):
    from conftest import assert_one_line_error, run_edgedet

    proc = run_edgedet("export", "--model", "fasterrcnn_tiny", "--weights", "none", "--nms-mode", "iou", "-o",
                       str(tmp_path / "out"))
    assert_one_line_error(proc, "--nms-mode iou", "iou_head=true")
    assert not (tmp_path / "out").exists()


def test_a_detached_iou_head_leaves_the_detector_as_trained_without_it():
    """iou_detach with the IoU head clipped apart (``clip_groups``): two training steps from the same seed leave
    every detector weight exactly as the same steps without the head, even with a clip norm that binds every step;
    one global clip norm let the head's gradient scale the detector's steps."""
    from edgedet.train.config import make_config
    from edgedet.train.engine import _train_one_epoch

    plain = {k: v for k, v in FAST.items() if not k.startswith("iou_")}
    images = [torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    targets = [{"boxes": torch.tensor([[10.0 + 5 * i, 10.0, 70.0, 60.0 + 5 * i]]), "labels": torch.tensor([1 + i % 2])}
               for i in range(4)]
    loader = [(images[:2], targets[:2]), (images[2:], targets[2:])]
    cfg = make_config(model="fasterrcnn_tiny", data="unused.json", preset="tiny", clip_grad=1e-3, epochs=1)
    trained = {}
    for name, opts in (("base", plain), ("detached", {**FAST, "iou_head": True, "iou_detach": True})):
        torch.manual_seed(0)
        model = create_model("fasterrcnn_tiny", weights="none", classes=["a", "b"], **opts).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        torch.manual_seed(1)
        losses, seen = _train_one_epoch(cfg, model, loader, optimizer, scheduler, scaler, torch.device("cpu"), 1,
                                        progress=False)
        assert seen == 4 and (name == "base" or losses["loss_iou"] > 0)
        trained[name] = model.state_dict()
    detector = [k for k in trained["base"] if k.endswith("weight") or k.endswith("bias")]
    assert len(detector) > 20
    assert all(torch.equal(trained["base"][k], trained["detached"][k]) for k in detector)
