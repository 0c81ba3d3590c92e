"""IoU-Net on any zoo Faster R-CNN: an IoU head beside the box head, trained on jittered ground truth.

``create_model("fasterrcnn_tiny", iou_head=True)`` (``--model-arg iou_head=true``) replaces the model's
``roi_heads`` with :class:`IoURoIHeads`, which keeps every part of torchvision's ``RoIHeads`` and adds:

* ``iou_head``: two FC layers and a linear layer on the pooled RoI features, predicting per class (or
  class-agnostic, ``iou_class_agnostic=true``) the IoU of a box with its ground truth, as a logit.
* Training (Jiang et al., ECCV 2018, section 3.1): the head never sees RPN proposals. Each ground-truth
  box is jittered into candidates, those with IoU ≥ 0.5 are binned by IoU and sampled uniformly over the
  bins (``iou_rois_per_image``, 1000 as in IoU-Net's MMDetection reproduction). Each RoI's target is its IoU
  with the ground-truth box it overlaps most (max-IoU assignment, as the reproduction), under that box's label.
  ``loss_iou`` is BCE on the logit (``bce``, the default) or the reproduction's SmoothL1 on targets normalised to
  mean 0.5, std 0.5 with a linear output (``smoothl1_norm``), times ``iou_loss_weight`` 5.0. The head's init and
  the jitter draw from their own random streams, seeded from the training seed, so a run with the head sees the
  data order and samples of the same run without it. ``iou_detach=true`` stops the IoU loss at the pooled
  features (the shared backbone and RPN learn from the detection losses only).
* Features for the head: the box head's own ``MultiScaleRoIAlign`` (``iou_pool="roialign"``, exportable)
  or PrRoIPool (``iou_pool="prroi"``, :mod:`edgedet.models.prroi_pool`), whose gradient with respect to
  the box makes optimization-based refinement possible.
* Inference: ``nms_mode`` ``standard`` (torchvision's NMS, the head unused), ``iou`` (IoU-guided NMS) or
  ``score_iou`` (ranked by score × IoU); ``refine_steps`` > 0 refines the kept boxes (Algorithm 2; PrRoIPool only,
  PyTorch only) and, with ``refine_rescore`` (the reproduction's ``use_iou_score``, on by default), scores each
  refined box by score × its predicted IoU. Each output dict also carries ``ious``, the predicted IoU of every
  returned (clipped) box.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import box_iou, boxes as box_ops

from edgedet.errors import ModelError
from edgedet.models.iou_nms import iou_guided_nms, refine_boxes

NMS_MODES = ("standard", "iou", "score_iou")
POOLS = ("roialign", "prroi")
LOSSES = ("bce", "smoothl1_norm")
#: the normalisation of ``smoothl1_norm``'s targets (the reproduction's ``target_norm``)
IOU_TARGET_MEAN, IOU_TARGET_STD = 0.5, 0.5
#: builder options this module adds to every Faster R-CNN, with their defaults
IOU_DEFAULTS: dict[str, Any] = {
    "iou_head": False, "iou_pool": "roialign", "iou_class_agnostic": False, "iou_loss": "bce",
    "iou_loss_weight": 5.0, "iou_rois_per_image": 1000, "iou_head_size": None, "iou_detach": False,
    "nms_mode": "standard", "refine_steps": 0, "refine_step_size": 2.0, "refine_rescore": True,
}
#: IoU bins the training RoIs are balanced over (IoU ≥ 0.5, as the paper's Ω_train)
IOU_BINS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_CANDIDATES_PER_ROI = 8  # jittered candidates drawn per sampled RoI before binning


def validate_iou_options(opts: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every value checked: one clear error per bad option."""
    o = {**IOU_DEFAULTS, **opts}
    if o["iou_loss"] == "smoothl1":
        raise ModelError("iou_loss smoothl1 (SmoothL1 on the sigmoid) was replaced by smoothl1_norm (the "
                         "reproduction's SmoothL1 on normalised targets, linear output): retrain with it or bce")
    for key in ("iou_head", "iou_class_agnostic", "iou_detach", "refine_rescore"):
        if not isinstance(o[key], bool):
            raise ModelError(f"{key} must be true or false, not {o[key]!r}")
    for key, allowed in (("iou_pool", POOLS), ("iou_loss", LOSSES), ("nms_mode", NMS_MODES)):
        if o[key] not in allowed:
            raise ModelError(f"{key} must be one of {', '.join(allowed)}, not {o[key]!r}")
    if not isinstance(o["iou_rois_per_image"], int) or o["iou_rois_per_image"] < len(IOU_BINS) - 1:
        raise ModelError(f"iou_rois_per_image must be an integer ≥ {len(IOU_BINS) - 1}, not {o['iou_rois_per_image']!r}")
    if not isinstance(o["refine_steps"], int) or not 0 <= o["refine_steps"] <= 100:
        raise ModelError(f"refine_steps must be an integer in 0..100, not {o['refine_steps']!r}")
    for key in ("iou_loss_weight", "refine_step_size"):
        if not isinstance(o[key], (int, float)) or isinstance(o[key], bool) or o[key] <= 0:
            raise ModelError(f"{key} must be a positive number, not {o[key]!r}")
    if o["iou_head_size"] is not None and (not isinstance(o["iou_head_size"], int) or o["iou_head_size"] < 1):
        raise ModelError(f"iou_head_size must be a positive integer, not {o['iou_head_size']!r}")
    if not o["iou_head"] and (o["nms_mode"] != "standard" or o["refine_steps"]):
        raise ModelError("nms_mode iou/score_iou and refine_steps need the IoU head: add iou_head=true")
    if o["refine_steps"] and o["iou_pool"] != "prroi":
        raise ModelError("refine_steps needs iou_pool=prroi: torchvision's RoIAlign has no gradient with respect "
                         "to the box")
    return o


class IoUHead(nn.Module):
    """Pooled RoI features ``[N, C, h, w]`` → IoU logits ``[N, outputs]`` (TwoMLPHead + a linear layer)."""

    def __init__(self, in_features: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.iou = nn.Linear(hidden, outputs)
        # The reproduction's init (N(0, 0.01), zero bias) for the IoU output. PyTorch's default made the IoU loss send
        # the shared backbone 7x the gradient norm of all detection losses together at the start (2.78 vs 0.40 on
        # fasterrcnn_tiny, 8 synthetic images; 0.35 vs 0.43 with this init), so a model trained from scratch learnt
        # IoU before it learnt to detect.
        nn.init.normal_(self.iou.weight, std=0.01)
        nn.init.zeros_(self.iou.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.fc6(x.flatten(start_dim=1)))
        return self.iou(F.relu(self.fc7(x)))


def iou_from_output(raw: Tensor, loss: str) -> Tensor:
    """The IoU head's raw output → predicted IoU in [0, 1]: the sigmoid of a BCE logit, or ``smoothl1_norm``'s
    linear output de-normalised and clamped (the reproduction leaves it unclamped; IoU-guided NMS ranks by it and
    score × IoU must stay a score). The export wrapper calls this too, so both compute the same IoU."""
    if loss == "bce":
        return torch.sigmoid(raw)
    return (raw * IOU_TARGET_STD + IOU_TARGET_MEAN).clamp(0.0, 1.0)


def jitter_boxes(gt: Tensor, count: int, image_shape: tuple[int, int], generator: torch.Generator | None = None
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """IoU-balanced training RoIs from ground truth → ``(boxes [count, 4], target IoU [count], assigned gt index)``.

    Candidates jitter centre (by up to ``s`` of the box side) and log-size (by up to ``s``) with a per-candidate
    strength ``s`` uniform in [0, 0.5]. Each is assigned to the ground-truth box it overlaps most (max-IoU
    assignment: a box jittered from one object towards another belongs to the one it covers better) and its
    target is that IoU. Those with a target ≥ 0.5 are binned over :data:`IOU_BINS` and each bin gives
    ``count / bins`` RoIs (drawn with replacement where a bin is short, skipped where it is empty).
    """
    device = gt.device
    n_cand = max(count * _CANDIDATES_PER_ROI // max(len(gt), 1), 16)
    idx = torch.arange(len(gt), device=device).repeat_interleave(n_cand)
    src = gt[idx]
    w, h = (src[:, 2] - src[:, 0]).clamp(min=1.0), (src[:, 3] - src[:, 1]).clamp(min=1.0)
    cx, cy = src[:, 0] + 0.5 * w, src[:, 1] + 0.5 * h
    u = torch.rand((len(src), 5), generator=generator, device=device)
    s = 0.5 * u[:, 4]
    cx, cy = cx + (2 * u[:, 0] - 1) * s * w, cy + (2 * u[:, 1] - 1) * s * h
    w, h = w * torch.exp((2 * u[:, 2] - 1) * s), h * torch.exp((2 * u[:, 3] - 1) * s)
    boxes = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=1)
    boxes = box_ops.clip_boxes_to_image(boxes, image_shape)
    iou, idx = box_iou(boxes, gt).max(dim=1)
    bins = len(IOU_BINS) - 1
    per_bin = [count // bins + (1 if b < count % bins else 0) for b in range(bins)]
    picked = []
    for b in range(bins):
        lo, hi = IOU_BINS[b], IOU_BINS[b + 1]
        members = torch.where((iou >= lo) & ((iou < hi) if b < bins - 1 else (iou <= hi)))[0]
        if len(members):
            choice = torch.randint(len(members), (per_bin[b],), generator=generator, device=device)
            picked.append(members[choice])
    if not picked:  # degenerate ground truth (clipped to nothing): its own boxes, IoU 1
        return gt[:count].clone(), torch.ones(min(count, len(gt)), device=device), torch.arange(min(count, len(gt)), device=device)
    sel = torch.cat(picked)
    return boxes[sel], iou[sel], idx[sel]


class IoURoIHeads(RoIHeads):
    """torchvision's ``RoIHeads`` plus an IoU head (see the module docstring); built by :func:`attach_iou_head`."""

    def configure_iou(self, opts: dict[str, Any], box_head_size: int) -> None:
        from edgedet.models.prroi_pool import MultiScalePrRoIPool

        pool = self.box_roi_pool
        out_h, out_w = int(pool.output_size[0]), int(pool.output_size[1])
        self.iou_pool_kind = opts["iou_pool"]
        self.iou_roi_pool = pool if opts["iou_pool"] == "roialign" else MultiScalePrRoIPool(
            pool.featmap_names, (out_h, out_w), pool.canonical_scale, pool.canonical_level)
        in_channels = self.box_head.fc6.in_features // (out_h * out_w) if hasattr(self.box_head, "fc6") else None
        if in_channels is None:
            raise ModelError("the IoU head needs a box head with an fc6 layer (TwoMLPHead) to size its input")
        outputs = 1 if opts["iou_class_agnostic"] else int(self.box_predictor.cls_score.out_features) - 1
        # initialised from a fork of the global random stream: the data order and the RPN/box samplers of a run
        # with the head then draw what the same seed draws without it
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch.initial_seed() + 1)
            self.iou_head = IoUHead(in_channels * out_h * out_w, opts["iou_head_size"] or box_head_size, outputs)
        self.iou_class_agnostic = opts["iou_class_agnostic"]
        self.iou_loss_kind, self.iou_loss_weight = opts["iou_loss"], float(opts["iou_loss_weight"])
        self.iou_rois_per_image = int(opts["iou_rois_per_image"])
        self.iou_detach = bool(opts["iou_detach"])
        self.nms_mode, self.refine_steps = opts["nms_mode"], int(opts["refine_steps"])
        self.refine_step_size, self.refine_rescore = float(opts["refine_step_size"]), bool(opts["refine_rescore"])
        self._jitter_generator: torch.Generator | None = None

    def jitter_generator(self, device: torch.device) -> torch.Generator:
        """The jitter's own random stream, seeded from the seed training set (``torch.initial_seed``) on first use:
        the global stream the RPN and box samplers and the data order draw from is left as a run without the head
        leaves it."""
        if self._jitter_generator is None or self._jitter_generator.device != device:
            self._jitter_generator = torch.Generator(device=device).manual_seed(torch.initial_seed())
        return self._jitter_generator

    # --- the head ------------------------------------------------------------------------------------
    def iou_logits(self, features: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]],
                   labels: list[Tensor]) -> Tensor:
        """IoU logit of each box for its label (1-based torchvision labels), concatenated over images."""
        logits = self.iou_head(self.iou_roi_pool(features, boxes, image_shapes))
        if self.iou_class_agnostic:
            return logits[:, 0]
        column = torch.cat(labels) - 1
        return logits.gather(1, column[:, None])[:, 0]

    def predicted_iou(self, features: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]],
                      labels: list[Tensor]) -> Tensor:
        """Predicted IoU in [0, 1] of each box for its label (see :func:`iou_from_output`)."""
        return iou_from_output(self.iou_logits(features, boxes, image_shapes, labels), self.iou_loss_kind)

    def iou_loss(self, features: dict[str, Tensor], image_shapes: list[tuple[int, int]],
                 targets: list[dict[str, Tensor]]) -> Tensor:
        boxes, labels, goals = [], [], []
        for t, shape in zip(targets, image_shapes):
            gt = t["boxes"]
            if len(gt) == 0:
                boxes.append(gt.new_zeros((0, 4)))
                labels.append(t["labels"][:0])
                continue
            jittered, iou, idx = jitter_boxes(gt, self.iou_rois_per_image, shape, self.jitter_generator(gt.device))
            boxes.append(jittered)
            labels.append(t["labels"][idx])
            goals.append(iou)
        if not goals:  # no ground truth in the batch: a zero that still reaches every head parameter
            return sum(p.sum() for p in self.iou_head.parameters()) * 0.0
        if self.iou_detach:
            features = {k: v.detach() for k, v in features.items()}
        raw = self.iou_logits(features, boxes, image_shapes, labels)
        target = torch.cat(goals).detach()
        if self.iou_loss_kind == "bce":
            loss = F.binary_cross_entropy_with_logits(raw, target)
        else:  # the reproduction's SmoothL1Loss (beta 1) on normalised targets
            loss = F.smooth_l1_loss(raw, (target - IOU_TARGET_MEAN) / IOU_TARGET_STD, beta=1.0)
        return self.iou_loss_weight * loss

    # --- forward ---------------------------------------------------------------------------------------
    def forward(self, features, proposals, image_shapes, targets=None):  # noqa: D102 - RoIHeads' signature
        if self.has_mask() or self.has_keypoint():
            raise ModelError("the IoU head supports box-only Faster R-CNN")
        if self.training:
            result, losses = super().forward(features, proposals, image_shapes, targets)
            losses["loss_iou"] = self.iou_loss(features, image_shapes, targets)
            return result, losses
        if self.nms_mode == "standard" and not self.refine_steps:
            return super().forward(features, proposals, image_shapes, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        cands = self._candidates(class_logits, box_regression, proposals, image_shapes)
        ious = self.predicted_iou(features, [c[0] for c in cands], image_shapes, [c[2] for c in cands])
        result = []
        for (boxes, scores, labels), iou in zip(cands, ious.split([len(c[0]) for c in cands])):
            if self.nms_mode == "standard":
                keep = box_ops.batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
                new_scores = scores[keep]
            else:
                rank = "iou" if self.nms_mode == "iou" else "score_iou"
                keep_np, score_np = iou_guided_nms(*(t.detach().cpu().numpy() for t in (boxes, scores, iou, labels)),
                                                   self.nms_thresh, rank)
                keep = torch.as_tensor(keep_np[: self.detections_per_img], device=boxes.device)
                new_scores = torch.as_tensor(score_np[: self.detections_per_img], dtype=scores.dtype,
                                             device=scores.device)
            result.append({"boxes": boxes[keep], "scores": new_scores, "labels": labels[keep], "ious": iou[keep]})
        if self.refine_steps:
            self._refine(features, result, image_shapes)
        return result, {}

    def _candidates(self, class_logits: Tensor, box_regression: Tensor, proposals: list[Tensor],
                    image_shapes: list[tuple[int, int]]) -> list[tuple[Tensor, Tensor, Tensor]]:
        """``postprocess_detections`` up to, not including, its NMS: per image ``(boxes, scores, labels)``."""
        num_classes = class_logits.shape[-1]
        pred_boxes = self.box_coder.decode(box_regression, proposals)
        pred_scores = F.softmax(class_logits, -1)
        counts = [len(p) for p in proposals]
        out = []
        for boxes, scores, shape in zip(pred_boxes.split(counts), pred_scores.split(counts), image_shapes):
            boxes = box_ops.clip_boxes_to_image(boxes, shape)[:, 1:].reshape(-1, 4)
            labels = torch.arange(num_classes, device=boxes.device).view(1, -1).expand_as(scores)[:, 1:].reshape(-1)
            scores = scores[:, 1:].reshape(-1)
            inds = torch.where(scores > self.score_thresh)[0]
            boxes, scores, labels = boxes[inds], scores[inds], labels[inds]
            keep = box_ops.remove_small_boxes(boxes, min_size=1e-2)
            out.append((boxes[keep], scores[keep], labels[keep]))
        return out

    def _refine(self, features: dict[str, Tensor], result: list[dict[str, Tensor]],
                image_shapes: list[tuple[int, int]]) -> None:
        """Optimization-based refinement of every kept box, image by image (Algorithm 2 of the paper); the boxes
        are then clipped to the image, their IoU predicted where they end and, with ``refine_rescore``, each score
        multiplied by it (the reproduction's ``use_iou_score``) and the detections re-sorted by score."""
        detached = {k: v.detach() for k, v in features.items()}
        for i, (det, shape) in enumerate(zip(result, image_shapes)):
            one = {k: v[i : i + 1] for k, v in detached.items()}

            def predict(boxes: Tensor, labels: Tensor = det["labels"], one=one, shape=shape) -> Tensor:
                return self.predicted_iou(one, [boxes], [shape], [labels])

            boxes, _ = refine_boxes(det["boxes"], predict, steps=self.refine_steps, step_size=self.refine_step_size)
            boxes = box_ops.clip_boxes_to_image(boxes, shape)
            with torch.no_grad():
                iou = predict(boxes)
            det["boxes"], det["ious"] = boxes, iou
            if self.refine_rescore:
                order = torch.argsort(det["scores"] * iou, descending=True, stable=True)
                det.update({k: v[order] for k, v in det.items()})
                det["scores"] = det["scores"] * det["ious"]


def attach_iou_head(model: nn.Module, opts: dict[str, Any]) -> nn.Module:
    """Turn ``model.roi_heads`` into an :class:`IoURoIHeads` in place (same submodules, same state-dict keys
    plus ``roi_heads.iou_head.*``)."""
    heads = model.roi_heads
    if not isinstance(heads, RoIHeads):
        raise ModelError(f"{type(model).__name__} has no torchvision RoIHeads to add an IoU head to")
    heads.__class__ = IoURoIHeads
    box_head_size = int(heads.box_predictor.cls_score.in_features)
    heads.configure_iou(opts, box_head_size)
    return model
