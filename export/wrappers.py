"""Which deploy wrapper serves which zoo family, and the eager-model settings that make the PyTorch
reference comparable with it (same thresholds, no resizing of an already-resized input)."""

from __future__ import annotations

from typing import Any

from torch import nn

from edgedet.errors import EdgedetError
from edgedet.export.nms import NMSConfig
from edgedet.runtime.input_format import UINT8_NHWC

RESIZE_MODE = {"ssd": "stretch", "fasterrcnn": "letterbox"}


def set_thresholds(model: nn.Module, family: str, nms: NMSConfig) -> nn.Module:
    """The engine's score/IoU thresholds, detection limit and NMS mode on eager ``model``.

    An IoU-Net model runs the engine's ``--nms-mode`` without refinement, which is never exported.
    """
    heads = getattr(model, "roi_heads", None)
    if hasattr(heads, "iou_head"):
        heads.nms_mode, heads.refine_steps = nms.mode, 0
    elif nms.mode != "standard":
        raise EdgedetError(f"--nms-mode {nms.mode} needs a Faster R-CNN with an IoU head (--model-arg iou_head=true)")
    if family == "ssd":
        model.score_thresh, model.nms_thresh, model.detections_per_img = nms.score_thresh, nms.iou_thresh, nms.max_dets
    else:
        heads.score_thresh, heads.nms_thresh, heads.detections_per_img = nms.score_thresh, nms.iou_thresh, nms.max_dets
    return model


def set_rpn_proposals(model: nn.Module, family: str, count: int) -> nn.Module:
    """Keep ``count`` RPN proposals per image at inference (torchvision's ``rpn_post_nms_top_n_test``).

    In a static graph the box head always runs on this many proposals, so it, not ``rpn_score_thresh``
    (which only masks them), sets the engine's Faster R-CNN workload.
    """
    if family != "fasterrcnn":
        raise EdgedetError(f"--rpn-post-nms-top-n applies to Faster R-CNN models, not the {family} family")
    model.rpn._post_nms_top_n["testing"] = int(count)
    return model


def configure_reference(model: nn.Module, family: str, input_size: tuple[int, int], nms: NMSConfig) -> nn.Module:
    """Make eager ``model`` see exactly what the engine sees, with the engine's thresholds."""
    h, w = input_size
    if family == "ssd":
        model.transform.fixed_size = (w, h)  # torchvision stores (W, H) here
    else:
        model.transform.min_size, model.transform.max_size = (min(h, w),), max(h, w)
    return set_thresholds(model, family, nms)


def pad_value(model: nn.Module) -> list[int]:
    """Letterbox padding in uint8 that normalises to 0, as torchvision's batching pads after normalising."""
    return [int(round(m * 255)) for m in model.transform.image_mean]


def build_wrapper(model: nn.Module, family: str, input_size: tuple[int, int], *, score_thresh: float,
                  max_candidates: int, input_format: str = UINT8_NHWC, **family_options: Any) -> nn.Module:
    if family == "ssd":
        from edgedet.export.ssd import SSDDeploy

        return SSDDeploy(model, input_size=input_size, score_thresh=score_thresh, max_candidates=max_candidates,
                         input_format=input_format)
    if family == "fasterrcnn":
        h, w = input_size
        if h % 32 or w % 32:
            raise EdgedetError(f"Faster R-CNN input size must be a multiple of 32 (the FPN stride), not {h}x{w}")
        from edgedet.export.fasterrcnn import FasterRCNNDeploy

        return FasterRCNNDeploy(model, input_size=input_size, score_thresh=score_thresh,
                                max_candidates=max_candidates, input_format=input_format, **family_options)
    raise EdgedetError(f"no deploy wrapper for family {family!r}")
