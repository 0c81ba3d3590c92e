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
from edgedet.models.iou_net import IOU_BINS, jitter_boxes, validate_iou_options
from edgedet.models.iou_nms import iou_guided_nms, refine_boxes
from edgedet.models.prroi_pool import prroi_pool_image

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


def _random_candidates(seed: int, k: int = 80, classes: int = 3):
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
    boxes[scores == 0], ious[scores == 0], labels[scores == 0] = 0.0, 0.0, 0
    return boxes, scores, labels, ious


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("mode", ["iou", "score_iou"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exported_tail_matches_the_sequential_reference(runtime, mode, seed, tmp_path):
    boxes, scores, labels, ious = _random_candidates(seed)
    score_thresh, iou_thresh, max_dets = 0.1, 0.5, 60
    valid = scores > score_thresh
    keep, ref_scores = iou_guided_nms(boxes[valid], scores[valid], ious[valid], labels[valid], iou_thresh, mode)
    ref_boxes, ref_labels = boxes[valid][keep], labels[valid][keep]
    assert len(keep) >= 10, "the example must keep boxes"
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
    same, same_iou = refine_boxes(target.clone(), predict, steps=5)  # already perfect: stays put
    torch.testing.assert_close(same, target) and torch.testing.assert_close(same_iou, torch.ones(1))


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
])
def test_bad_iou_options_are_one_line_errors(opts, fragment):
    with pytest.raises(ModelError) as e:
        validate_iou_options(opts)
    assert fragment in one_line(e)
    with pytest.raises(ModelError, match=fragment):
        create_model("fasterrcnn_tiny", weights="none", classes=["a"], **opts)


@pytest.mark.slow
@pytest.mark.parametrize("pool, agnostic, loss", [("roialign", False, "bce"), ("prroi", True, "smoothl1")])
def test_the_iou_head_trains_and_predicts(pool, agnostic, loss):
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
    model.roi_heads.score_thresh = 0.0
    for mode in ("standard", "iou", "score_iou"):
        model.roi_heads.nms_mode = mode
        with torch.no_grad():
            out = model(images)
        assert len(out) == 2 and all(len(o["boxes"]) for o in out)
        if mode != "standard":
            assert all(((o["ious"] > 0) & (o["ious"] < 1)).all() for o in out)
    if pool == "prroi":
        model.roi_heads.nms_mode = "iou"
        with torch.no_grad():
            out = model(images)
        model.roi_heads.refine_steps = 3
        with torch.no_grad():  # refinement turns autograd back on by itself
            refined = model(images)
        moved = sum(float((r["boxes"] - o["boxes"]).abs().sum()) for r, o in zip(refined, out))
        assert moved > 0 and all((r["ious"] >= o["ious"] - 1e-6).all() for r, o in zip(refined, out))


@pytest.mark.parametrize("pool", ["roialign", "prroi"])
def test_deploy_wrapper_ious_match_the_eager_head(pool):
    """``cand_ious`` of the deploy wrapper is the eager IoU head on the same candidate boxes."""
    from edgedet.export.fasterrcnn import FasterRCNNDeploy

    torch.manual_seed(0)
    model = create_model("fasterrcnn_tiny", weights="none", classes=["a", "b"], iou_head=True, iou_pool=pool,
                         **FAST).eval()
    model.roi_heads.score_thresh = 0.0
    wrapper = FasterRCNNDeploy(model, input_size=(128, 128), score_thresh=0.0, max_candidates=40, iou=True)
    images = torch.randint(0, 256, (2, 128, 128, 3), dtype=torch.uint8)
    with torch.no_grad():
        boxes, scores, labels, ious = wrapper(images)
        features = model.backbone(wrapper._preprocess(images))
        features = {"0": features} if isinstance(features, torch.Tensor) else features
        used = scores > 0
        assert used.sum() > 20
        eager = torch.sigmoid(model.roi_heads.iou_logits(features, [b[u] for b, u in zip(boxes, used)],
                                                         [(128, 128)] * 2, [l[u] + 1 for l, u in zip(labels, used)]))
    torch.testing.assert_close(ious[used], eager, atol=1e-5, rtol=1e-4)
    assert not ious[~used].any()


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
#: (IoUHead) it measured AP50 0.609 at epoch 8 of this schedule here (AVX2), stopping there.
IOU_FIXTURE_TARGET_AP50, IOU_FIXTURE_MAX_EPOCHS = 0.6, 12


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
    return results


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
