"""Deploy wrapper that turns a torchvision ``FasterRCNN`` into a static, ONNX/TensorRT-friendly graph.

    from edgedet.export.fasterrcnn import FasterRCNNDeploy
    wrapper = FasterRCNNDeploy(model, input_size=(320, 320), score_thresh=0.25, max_candidates=1000)
    boxes, scores, labels = wrapper(images)   # images uint8 [B, H, W, 3] RGB

The wrapper stops before the final multi-class NMS: it returns a fixed number ``K = max_candidates``
of (box, class) candidates per image, best first, and the exporter appends the NMS flavour
(``onnx`` / ``efficient``) to these three outputs:

* ``cand_boxes``  float32 ``[B, K, 4]`` x1y1x2y2 in input pixels (clipped to the image),
* ``cand_scores`` float32 ``[B, K]`` class probability; 0 for padding and masked candidates,
* ``cand_labels`` int64 ``[B, K]`` 0-based class index (torchvision label - 1).

Rows whose score is 0 also carry zero boxes and label 0, so the outputs are fully determined even
where a TopK breaks ties among padding differently in PyTorch, ONNX Runtime or TensorRT.

Pipeline (every shape static; the only data-dependent shape is the output of the RPN NMS, which is
re-padded straight away):

1. uint8 NHWC → float NCHW, ``/255``, ``(x - mean) / std`` of ``model.transform``, zero padding to a
   multiple of ``size_divisible`` (as ``GeneralizedRCNNTransform.batch_images``). No resize: the host
   gives exactly ``input_size``.
2. ``model.backbone``; anchors are precomputed in ``__init__`` (they depend only on sizes).
3. RPN: per level constant TopK → decode → clip → sigmoid → score *masks* for ``rpn_score_thresh`` and
   the 1e-3 minimum box size → one ``nms`` per level → scatter + TopK re-pad to ``P = rpn_post_nms_top_n``
   proposals with a validity mask.
4. ``RoiAlign`` of all proposals on every FPN level the level mapper can select, one-hot selection per box.
5. ``model.roi_heads.box_head`` / ``box_predictor``, per-class decode, clip, softmax, background dropped,
   masks for ``score_thresh``, the 1e-2 minimum box size and proposal validity, TopK over ``P × (C-1)``.

What is not reused from torchvision's own ``FasterRCNN.forward``, and why (each rewrite below names the
quirk in its docstring):

* ``GeneralizedRCNNTransform``: under tracing the resize computes its scale factor from the image
  (``_fake_cast_onnx``) and ``_onnx_batch_images`` pads to a size computed in the graph; here neither is
  needed (fixed input size), the padding is a constant ``Pad`` and normalisation happens on the uint8 input.
* ``RegionProposalNetwork.filter_proposals`` and ``RoIHeads.postprocess_detections`` filter with boolean
  indexing (``NonZero`` in ONNX, data-dependent shapes); here thresholds are masks (``_proposals``, ``forward``).
* ``batched_nms`` (see ``_proposals``), ``MultiScaleRoIAlign`` (see ``_roi_pool``), ``torch.topk`` ties
  (see ``_topk``).
* ``torchvision.ops.roi_align`` exports as ONNX ``RoiAlign`` through torchvision's symbolic; at opset ≥ 16
  ``aligned=False`` becomes ``coordinate_transformation_mode="output_half_pixel"`` (checked bit-exact
  against torchvision in ONNX Runtime). Below opset 16 ONNX has no such attribute, so export at 16+.

``wrapper.double()`` gives a float64 reference of the same graph (useful to measure float32 noise).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from edgedet.errors import ModelError
from edgedet.export.common import NormalizeInput
from edgedet.export.conformance import TENSORRT_TOPK_LIMIT
from edgedet.models.iou_net import iou_from_output
from edgedet.models.iou_nms import KEY_FLOOR, RANKS
from edgedet.runtime.input_format import UINT8_NHWC

__all__ = ["FasterRCNNDeploy", "TENSORRT_TOPK_LIMIT"]

#: torchvision hard-codes this minimum side in ``RoIHeads.postprocess_detections``.
DETECTION_MIN_SIZE = 1e-2


def _permute_and_flatten(layer: Tensor, num_anchors: int, channels: int) -> Tensor:
    """``[B, A*C, H, W]`` → ``[B, H*W*A, C]``, the anchor order of torchvision's ``AnchorGenerator``.

    Same layout as ``torchvision.models.detection.rpn.permute_and_flatten``, written with explicit sizes
    so the traced graph has constant Reshape targets.
    """
    b, _, h, w = layer.shape
    layer = layer.reshape(b, num_anchors, channels, h, w).permute(0, 3, 4, 1, 2)
    return layer.reshape(b, h * w * num_anchors, channels)


def _clip_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """Clip ``[..., 4]`` x1y1x2y2 boxes to ``[0, width] × [0, height]`` (``clip_boxes_to_image``)."""
    x = boxes[..., 0::2].clamp(min=0.0, max=float(width))
    y = boxes[..., 1::2].clamp(min=0.0, max=float(height))
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)


def _big_enough(boxes: Tensor, min_size: float) -> Tensor:
    """Mask of boxes whose both sides are ≥ ``min_size`` (``remove_small_boxes`` without indexing)."""
    ws = boxes[..., 2] - boxes[..., 0]
    hs = boxes[..., 3] - boxes[..., 1]
    return (ws >= min_size) & (hs >= min_size)


def _topk(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``x.topk(k, dim=-1)`` with ONNX's tie rule: equal values come out lowest index first.

    ONNX ``TopK`` specifies that tie-break; ``torch.topk`` on CPU leaves it open, so on a flat image
    (all-black, letterbox bars) PyTorch and ONNX Runtime kept different, equally scored anchors (boxes
    off by up to 220 px in the all-black test). Exported it is a plain ``TopK`` with a constant K (a
    sort would be a TopK over all N, beyond TensorRT's K ≤ 3840); eagerly a stable sort gives ONNX's order.
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return x.topk(k, dim=-1)
    values, indices = x.sort(dim=-1, descending=True, stable=True)
    return values[..., :k], indices[..., :k]


def _check_arguments(model: nn.Module, input_size: tuple[int, int], score_thresh: float, max_candidates: int,
                     rpn_pre_nms_top_n: int | None, rpn_post_nms_top_n: int | None) -> None:
    from torchvision.models.detection import FasterRCNN

    if not isinstance(model, FasterRCNN):
        raise ModelError(f"FasterRCNNDeploy needs a torchvision FasterRCNN, not {type(model).__name__}")
    if len(input_size) != 2 or any(int(s) != s or s <= 0 for s in input_size):
        raise ModelError(f"input_size must be two positive integers (H, W), not {input_size!r}")
    if not 1 <= max_candidates <= TENSORRT_TOPK_LIMIT:
        raise ModelError(f"max_candidates must be in [1, {TENSORRT_TOPK_LIMIT}] (TensorRT's TopK limit), "
                         f"not {max_candidates}")
    if not 0.0 <= score_thresh < 1.0:
        raise ModelError(f"score_thresh must be in [0, 1), not {score_thresh}")
    for name, value in (("rpn_pre_nms_top_n", rpn_pre_nms_top_n), ("rpn_post_nms_top_n", rpn_post_nms_top_n)):
        if value is not None and not 1 <= value <= TENSORRT_TOPK_LIMIT:
            raise ModelError(f"{name} must be in [1, {TENSORRT_TOPK_LIMIT}] (TensorRT's TopK limit), not {value}")


class FasterRCNNDeploy(nn.Module):
    """Faster R-CNN from uint8 images to a fixed number of scored (box, class) candidates.

    Args:
        model: a torchvision ``FasterRCNN`` (any backbone, FPN or a single feature map). Its modules are
            shared, not copied, and put in eval mode.
        input_size: ``(H, W)`` the graph is fixed to; the host resizes images to exactly this size.
        score_thresh: class probabilities ≤ this are masked to 0 (torchvision's ``box_score_thresh``, strict).
        max_candidates: ``K``, candidates per image (≤ 3840, TensorRT's TopK limit); zero padded when the
            model has fewer than ``K`` (proposal, class) pairs.
        rpn_pre_nms_top_n: proposals kept per level before the RPN NMS; default: the model's test value.
        rpn_post_nms_top_n: proposals kept per image after the RPN NMS; default: the model's test value.
        rpn_score_thresh: objectness below this masks a proposal out; default: the model's ``rpn.score_thresh``.
        iou_rank: ``"iou"`` or ``"score_iou"``: also return ``cand_ious [B, K]``, the IoU head's predicted IoU of
            each candidate for its class (0 for padding), for the IoU-guided NMS tail ranking by that key; needs a
            model built with ``iou_head=true`` and ``K`` ≥ the (proposal, class) pair count: a low-scored box with
            a high predicted IoU can own a cluster, so no cut (by score or by key) leaves IoU-guided NMS's result
            as it is. The candidates come ordered by the ranking key, ties by pair index, as the reference ranks.

    ``forward(images uint8 [B, H, W, 3] RGB) -> (boxes float32 [B, K, 4] x1y1x2y2 input pixels,
    scores float32 [B, K], labels int64 [B, K] 0-based)``; ``B`` is fixed when the graph is exported.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        input_size: tuple[int, int],
        score_thresh: float = 0.25,
        max_candidates: int = 1000,
        rpn_pre_nms_top_n: int | None = None,
        rpn_post_nms_top_n: int | None = None,
        rpn_score_thresh: float | None = None,
        iou_rank: str | None = None,
        input_format: str = UINT8_NHWC,
    ) -> None:
        super().__init__()
        _check_arguments(model, input_size, score_thresh, max_candidates, rpn_pre_nms_top_n, rpn_post_nms_top_n)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.score_thresh = float(score_thresh)
        self.max_candidates = int(max_candidates)
        self._adopt_modules(model, input_format)
        features = self._resolve_rpn(model.rpn, rpn_score_thresh, rpn_pre_nms_top_n, rpn_post_nms_top_n)
        self._resolve_roi_pool(model.roi_heads.box_roi_pool, features)
        self._resolve_candidates(model.roi_heads, iou_rank)

    def _adopt_modules(self, model: nn.Module, input_format: str) -> None:
        """GeneralizedRCNNTransform without its resize, and the modules the graph shares with the eager model."""
        transform = model.transform
        self.normalize = NormalizeInput(transform.image_mean, transform.image_std, input_format)
        divisor = int(transform.size_divisible)
        height, width = self.input_size
        self.padded_size = (math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor)
        rpn, roi_heads = model.rpn, model.roi_heads
        self.backbone = model.backbone
        self.rpn_head = rpn.head
        self.box_head = roi_heads.box_head
        self.box_predictor = roi_heads.box_predictor
        self.rpn_box_coder = rpn.box_coder
        self.box_coder = roi_heads.box_coder
        self.eval()  # BatchNorm must not update its statistics in the dry run that follows

    def _resolve_rpn(self, rpn: nn.Module, score_thresh: float | None, pre_nms_top_n: int | None,
                     post_nms_top_n: int | None) -> dict[str, Tensor]:
        """The RPN's thresholds and per-level counts, and its anchors from one dry run at ``input_size``.

        torchvision's AnchorGenerator rebuilds the grid every forward from tensor shapes; the anchors depend only
        on sizes, so they are computed once here and stored as a constant buffer. Returns the dry run's features.
        """
        from torchvision.models.detection.image_list import ImageList

        self.rpn_nms_thresh = float(rpn.nms_thresh)
        self.rpn_min_size = float(rpn.min_size)
        self.rpn_score_thresh = float(rpn.score_thresh if score_thresh is None else score_thresh)
        pre_nms_top_n = int(rpn._pre_nms_top_n["testing"] if pre_nms_top_n is None else pre_nms_top_n)
        post_nms_top_n = int(rpn._post_nms_top_n["testing"] if post_nms_top_n is None else post_nms_top_n)

        param = next(self.backbone.parameters(), None)
        dummy = torch.zeros((1, 3) + self.padded_size, device=None if param is None else param.device)
        with torch.no_grad():
            features = self._features(dummy)
        feature_list = list(features.values())
        anchors = rpn.anchor_generator(ImageList(dummy, [self.input_size]), feature_list)[0]
        self.register_buffer("anchors", anchors.to(torch.float32), persistent=False)
        anchors_per_location = rpn.anchor_generator.num_anchors_per_location()
        if len(anchors_per_location) != len(feature_list):
            raise ModelError(f"the anchor generator has {len(anchors_per_location)} levels but the backbone "
                             f"returns {len(feature_list)} feature maps")
        self.anchors_per_location = [int(a) for a in anchors_per_location]
        self.anchors_per_level = [
            a * int(f.shape[-2]) * int(f.shape[-1]) for a, f in zip(self.anchors_per_location, feature_list)
        ]
        if sum(self.anchors_per_level) != anchors.shape[0]:
            raise ModelError("anchor count does not match the feature maps")
        self.pre_nms_top_n = [min(pre_nms_top_n, n) for n in self.anchors_per_level]
        self.post_nms_top_n = min(post_nms_top_n, sum(self.pre_nms_top_n))
        return features

    def _resolve_roi_pool(self, pool: nn.Module, features: dict[str, Tensor]) -> None:
        """MultiScaleRoIAlign resolved for this input size: which maps it pools, at which scales and levels."""
        height = self.input_size[0]
        output_size = pool.output_size
        self.pool_output_size = (int(output_size[0]), int(output_size[1]))
        self.pool_sampling_ratio = int(pool.sampling_ratio)
        pooled_names = [name for name in features if name in pool.featmap_names]  # torchvision's _filter_input
        if not pooled_names:
            raise ModelError(f"box_roi_pool pools {pool.featmap_names} but the backbone returns {list(features)}")
        # torchvision's _infer_scale: the power of two nearest to feature height / image height.
        scales = [2.0 ** round(math.log2(float(features[n].shape[-2]) / float(height))) for n in pooled_names]
        self.pool_k_min = int(-math.log2(scales[0]))
        self.pool_k_max = int(-math.log2(scales[-1]))
        num_selectable = self.pool_k_max - self.pool_k_min + 1
        if num_selectable > len(pooled_names) or num_selectable < 1:
            raise ModelError(f"feature maps {pooled_names} with scales {scales} do not form a pyramid the "
                             "level mapper can address")
        # Levels the mapper can never pick (e.g. two stride-32 maps of the MobileNetV3 FPN) are not pooled.
        self.pool_names = pooled_names[:num_selectable]
        self.pool_scales = scales[: len(self.pool_names)]
        self.pool_canonical_scale = float(pool.canonical_scale)
        self.pool_canonical_level = float(pool.canonical_level)

    def _resolve_candidates(self, roi_heads: nn.Module, iou_rank: str | None) -> None:
        """The (proposal, class) candidates the box head yields: their count, labels and the IoU head's."""
        num_classes = int(self.box_predictor.cls_score.out_features)
        if num_classes < 2:
            raise ModelError("the box predictor needs at least one class besides background")
        self.num_classes = num_classes - 1  # without background
        self.topk_candidates = min(self.max_candidates, self.post_nms_top_n * self.num_classes)
        self.iou_rank = iou_rank
        if iou_rank is not None:
            if iou_rank not in RANKS:
                raise ModelError(f"iou_rank must be one of {', '.join(RANKS)}, not {iou_rank!r}")
            if not hasattr(roi_heads, "iou_head"):
                raise ModelError("--nms-mode iou/score_iou needs a model with an IoU head (--model-arg iou_head=true)")
            self.iou_head = roi_heads.iou_head
            self.iou_pool_kind = roi_heads.iou_pool_kind
            self.iou_class_agnostic = bool(roi_heads.iou_class_agnostic)
            self.iou_loss_kind = roi_heads.iou_loss_kind
            pairs = self.post_nms_top_n * self.num_classes
            if self.max_candidates < pairs:
                fits = TENSORRT_TOPK_LIMIT // self.num_classes
                raise ModelError(
                    f"--nms-mode {iou_rank} needs --max-candidates ≥ {pairs}, every (proposal, class) pair "
                    f"({self.post_nms_top_n} × {self.num_classes}): a low-scored box with a high predicted IoU can own "
                    "a cluster, so any cut changes what IoU-guided NMS returns; "
                    + (f"raise --max-candidates to {pairs}" if pairs <= TENSORRT_TOPK_LIMIT else
                       f"lower --rpn-post-nms-top-n to ≤ {fits} (TensorRT's TopK limit is {TENSORRT_TOPK_LIMIT})"))
        # label of each flattened (proposal, class) candidate, 0-based
        self.register_buffer(
            "candidate_labels", torch.arange(self.num_classes, dtype=torch.int64).repeat(self.post_nms_top_n),
            persistent=False,
        )

    def train(self, mode: bool = True) -> "FasterRCNNDeploy":
        """Always eval: BatchNorm must use its running statistics in a deploy graph.

        ``torch.onnx.export`` restores the caller's training flag after tracing, and the eager
        ``FasterRCNN`` forward takes another path in training mode; pinning eval avoids both.
        """
        return super().train(False)

    # ------------------------------------------------------------------------------------------------
    def _features(self, x: Tensor) -> dict[str, Tensor]:
        features = self.backbone(x)
        if isinstance(features, Tensor):  # single feature map, named "0" as GeneralizedRCNN does
            features = {"0": features}
        return dict(features)

    def _preprocess(self, images: Tensor) -> Tensor:
        """uint8 NHWC → normalised float NCHW, zero padded to ``padded_size`` like ``batch_images``."""
        x = self.normalize(images)
        pad_h = self.padded_size[0] - self.input_size[0]
        pad_w = self.padded_size[1] - self.input_size[1]
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return x

    def _proposals(self, features: list[Tensor], batch: int) -> tuple[Tensor, Tensor]:
        """RPN → ``(proposals [B, P, 4], valid [B, P] bool)``, best first per image.

        torchvision's ``RegionProposalNetwork.filter_proposals`` drops boxes with boolean indexing
        (``remove_small_boxes``, ``scores >= score_thresh``), which gives data-dependent shapes; here they
        get score -1 instead (PR 3205's thresholding as a mask), still enter the NMS, and can only suppress
        other masked boxes because they score lowest.

        ``batched_nms`` is avoided: it picks its algorithm with a Python branch on ``boxes.numel()``, and
        its coordinate-trick helper is ``@torch.jit._script_if_tracing`` with a ``numel() == 0`` branch
        that exports as an ONNX ``If``. The levels are static slices of the per-level TopK, so NMS by level
        is one ``nms`` per level (torchvision's own path on CPU above 4000 coordinates) rather than the
        coordinate-offset trick: offsets of level × image size push coordinates into the thousands, where
        FP16 (an FP16 twin of the graph computes that Add in half precision) spaces values 2-4 px apart.
        Each level's keep list is scattered into a dense -1 vector, and a constant TopK re-pads to P.
        """
        from torchvision.ops import nms

        height, width = self.input_size
        logits, deltas = self.rpn_head(features)
        level_logits, level_boxes = [], []
        anchor_start = 0
        for level, (obj, reg) in enumerate(zip(logits, deltas)):
            a = self.anchors_per_location[level]
            n = self.anchors_per_level[level]
            obj = _permute_and_flatten(obj, a, 1).reshape(batch, n)
            reg = _permute_and_flatten(reg, a, 4)
            k = self.pre_nms_top_n[level]  # torchvision's _topk_min(ob, pre_nms_top_n, 1), constant here
            top_logits, top_idx = _topk(obj, k)
            top_reg = torch.gather(reg, 1, top_idx[:, :, None].expand(batch, k, 4))
            level_anchors = self.anchors[anchor_start:anchor_start + n].index_select(0, top_idx.reshape(-1))
            boxes = self.rpn_box_coder.decode_single(top_reg.reshape(batch * k, 4), level_anchors)
            level_logits.append(top_logits)
            level_boxes.append(boxes.reshape(batch, k, 4))
            anchor_start += n
        boxes = _clip_boxes(torch.cat(level_boxes, dim=1), height, width)
        probs = torch.sigmoid(torch.cat(level_logits, dim=1))
        keep_mask = _big_enough(boxes, self.rpn_min_size) & (probs >= self.rpn_score_thresh)
        masked = torch.where(keep_mask, probs, torch.full_like(probs, -1.0))

        num = masked.shape[1]
        proposals, valid = [], []
        for b in range(batch):  # the batch and the levels are static: one NMS per image and level
            dense = torch.full((num,), -1.0, dtype=masked.dtype, device=masked.device)
            start = 0
            for k in self.pre_nms_top_n:
                level_scores = masked[b, start:start + k]
                keep = nms(boxes[b, start:start + k], level_scores, self.rpn_nms_thresh)
                dense = dense.scatter(0, keep + start, level_scores.index_select(0, keep))
                start += k
            top_scores, top_idx = _topk(dense, self.post_nms_top_n)
            proposals.append(boxes[b].index_select(0, top_idx))
            valid.append(top_scores >= 0.0)
        return torch.stack(proposals), torch.stack(valid)

    def _pool_levels(self, boxes: Tensor, pooled: list[Tensor]) -> Tensor:
        """Pick each box's FPN level among per-level results ``[N, C, h, w]`` (torchvision's ``LevelMapper``)."""
        if len(pooled) == 1:
            return pooled[0]
        # torchvision's LevelMapper (FPN paper eq. 1), same ops so PyTorch picks the same level.
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        s = torch.sqrt(area)
        levels = torch.floor(self.pool_canonical_level + torch.log2(s / self.pool_canonical_scale)
                             + torch.tensor(1e-6, dtype=s.dtype))
        levels = torch.clamp(levels, min=self.pool_k_min, max=self.pool_k_max) - self.pool_k_min
        result = pooled[0]
        for level in range(1, len(pooled)):
            result = torch.where((levels == level)[:, None, None, None], pooled[level], result)
        return result

    def _prroi_pool(self, features: dict[str, Tensor], boxes: Tensor) -> Tensor:
        """PrRoIPool of ``boxes [B, K, 4]`` on every selectable level, one image at a time (the batch is static)."""
        from edgedet.models.prroi_pool import prroi_pool_image

        batch = boxes.shape[0]
        flat = boxes.reshape(-1, 4)
        pooled = [
            torch.cat([prroi_pool_image(features[name][b], boxes[b], self.pool_output_size, scale)
                       for b in range(batch)])
            for name, scale in zip(self.pool_names, self.pool_scales)
        ]
        return self._pool_levels(flat, pooled)

    def _candidate_ious(self, features: dict[str, Tensor], boxes: Tensor, labels: Tensor, used: Tensor) -> Tensor:
        """The IoU head on the candidates: ``[B, N]`` predicted IoU of each box for its class, 0 where unused."""
        batch, num = boxes.shape[0], boxes.shape[1]
        if self.iou_pool_kind == "prroi":
            pooled = self._prroi_pool(features, boxes)
        else:
            pooled = self._roi_pool(features, boxes)
        logits = self.iou_head(pooled)  # [B*K, classes or 1]
        if self.iou_class_agnostic:
            chosen = logits[:, 0]
        else:
            chosen = torch.gather(logits, 1, labels.reshape(batch * num, 1))[:, 0]
        ious = iou_from_output(chosen, self.iou_loss_kind).reshape(batch, num)
        return torch.where(used, ious, torch.zeros_like(ious))

    def _roi_pool(self, features: dict[str, Tensor], proposals: Tensor) -> Tensor:
        """``MultiScaleRoIAlign`` as ONNX ``RoiAlign``: every selectable level for all boxes, one-hot pick.

        torchvision's tracing path (``_onnx_merge_levels``) gathers per-level box lists with
        ``torch.where(levels == level)`` (data-dependent shapes, and it re-runs ``_setup_scales`` from the
        first images it saw); here scales and ``LevelMapper`` bounds are constants and each box's level
        selects among static per-level results with ``where``.
        """
        from torchvision.ops import roi_align

        batch, num = proposals.shape[0], proposals.shape[1]
        boxes = proposals.reshape(batch * num, 4)
        # integer arange // num folds to a constant (repeat_interleave left a float Tile, which ONNX
        # Runtime's CPU provider lacks in FP16)
        batch_idx = (torch.arange(batch * num, device=boxes.device) // num).to(boxes.dtype)
        rois = torch.cat([batch_idx[:, None], boxes], dim=1)
        pooled = [
            roi_align(features[name], rois, self.pool_output_size, spatial_scale=scale,
                      sampling_ratio=self.pool_sampling_ratio, aligned=False)
            for name, scale in zip(self.pool_names, self.pool_scales)
        ]
        return self._pool_levels(boxes, pooled)

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        """images uint8 ``[B, H, W, 3]`` RGB, ``(H, W) == input_size`` →
        ``boxes`` float32 ``[B, K, 4]`` x1y1x2y2 in input pixels, ``scores`` float32 ``[B, K]`` (0 for padding /
        masked), ``labels`` int64 ``[B, K]`` 0-based class index; ``K = max_candidates``; with ``iou_rank``
        also ``ious`` float32 ``[B, K]``."""
        height, width = self.input_size
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (height, width, 3):
                raise ModelError(f"expected uint8 images [B, {height}, {width}, 3], got {images.dtype} "
                                 f"{list(images.shape)}")
        batch = images.shape[0]
        x = self._preprocess(images)
        features = self._features(x)
        proposals, valid = self._proposals(list(features.values()), batch)
        num_props = self.post_nms_top_n

        pooled = self._roi_pool(features, proposals)
        class_logits, box_regression = self.box_predictor(self.box_head(pooled))

        # per-class decode, clip, softmax; background column dropped (RoIHeads.postprocess_detections)
        n_cls = self.num_classes + 1
        boxes = self.box_coder.decode_single(box_regression, proposals.reshape(batch * num_props, 4))
        boxes = _clip_boxes(boxes.reshape(batch, num_props, n_cls, 4), height, width)[:, :, 1:, :]
        scores = F.softmax(class_logits, -1).reshape(batch, num_props, n_cls)[:, :, 1:]
        keep = (scores > self.score_thresh) & _big_enough(boxes, DETECTION_MIN_SIZE) & valid[:, :, None]
        scores = torch.where(keep, scores, torch.zeros_like(scores))

        num_pairs = num_props * self.num_classes
        scores = scores.reshape(batch, num_pairs)
        boxes = boxes.reshape(batch, num_pairs, 4)
        if self.iou_rank is None:
            top_scores, top_idx = _topk(scores, self.topk_candidates)
            ious = None
        else:  # the IoU head on every pair, ordered by the ranking key (ties: the lower pair index, as the loop)
            labels = self.candidate_labels[None].expand(batch, num_pairs)
            all_ious = self._candidate_ious(features, boxes, labels, scores > 0.0)
            key = all_ious if self.iou_rank == "iou" else scores * all_ious
            key = torch.where(scores > 0.0, key.clamp(min=KEY_FLOOR), torch.zeros_like(key))
            _, top_idx = _topk(key, self.topk_candidates)
            top_scores = torch.gather(scores, 1, top_idx)
            ious = torch.gather(all_ious, 1, top_idx)
        top_boxes = torch.gather(boxes, 1, top_idx[:, :, None].expand(batch, self.topk_candidates, 4))
        top_labels = self.candidate_labels.index_select(0, top_idx.reshape(-1)).reshape(batch, self.topk_candidates)
        # Zero the rows of masked candidates so ties among them cannot make backends disagree. The
        # scores go through the same Where (a no-op on values) so that no output tensor is also read
        # inside the graph: graph surgery that renames or re-casts an output (the FP16 converter's
        # output casts, the NMS tail) then cannot leave an internal consumer with the wrong type.
        used = top_scores > 0.0
        if ious is not None:  # the IoU head read the boxes before the Where below, whose output is a graph output
            ious = torch.where(used, ious, torch.zeros_like(ious))
        top_boxes = torch.where(used[:, :, None], top_boxes, torch.zeros_like(top_boxes))
        top_labels = torch.where(used, top_labels, torch.zeros_like(top_labels))
        top_scores = torch.where(used, top_scores, torch.zeros_like(top_scores))

        outputs = [top_boxes, top_scores, top_labels]
        if ious is not None:
            outputs.append(ious)
        pad = self.max_candidates - self.topk_candidates
        if pad:
            outputs = [torch.cat([o, o.new_zeros((batch, pad, *o.shape[2:]))], dim=1) for o in outputs]
        return tuple(outputs)
