"""The deploy wrapper of a zoo family (its row in ``edgedet.models.families``), and the eager-model settings that
make the PyTorch reference comparable with it (same thresholds, no resizing of an already-resized input)."""

from __future__ import annotations

from typing import Any

from torch import nn

from edgedet.errors import EdgedetError
from edgedet.export.nms import NMSConfig
from edgedet.models.families import FamilyDeploy
from edgedet.runtime.input_format import UINT8_NHWC

def set_thresholds(model: nn.Module, family: FamilyDeploy, nms: NMSConfig) -> nn.Module:
    """The engine's score/IoU thresholds, detection limit and NMS mode on eager ``model``.

    An IoU-Net model runs the engine's ``--nms-mode`` without refinement, which is never exported.
    """
    heads = getattr(model, "roi_heads", None)
    if hasattr(heads, "iou_head"):
        heads.nms_mode, heads.refine_steps = nms.mode, 0
    elif nms.mode != "standard":
        raise EdgedetError(f"--nms-mode {nms.mode} needs a Faster R-CNN with an IoU head (--model-arg iou_head=true)")
    owner = family.postprocess_owner(model)
    owner.score_thresh, owner.nms_thresh, owner.detections_per_img = nms.score_thresh, nms.iou_thresh, nms.max_dets
    return model


def set_rpn_proposals(model: nn.Module, family: FamilyDeploy, count: int) -> nn.Module:
    """Keep ``count`` RPN proposals per image at inference (torchvision's ``rpn_post_nms_top_n_test``).

    In a static graph the box head always runs on this many proposals, so it, not ``rpn_score_thresh``
    (which only masks them), sets the engine's Faster R-CNN workload.
    """
    if not family.two_stage:
        raise EdgedetError(f"--rpn-post-nms-top-n applies to Faster R-CNN models, not the {family.title} family")
    model.rpn._post_nms_top_n["testing"] = int(count)
    return model


def configure_reference(model: nn.Module, family: FamilyDeploy, input_size: tuple[int, int],
                        nms: NMSConfig) -> nn.Module:
    """Make eager ``model`` see exactly what the engine sees, with the engine's thresholds."""
    family.fix_input_size(model, input_size)
    return set_thresholds(model, family, nms)


def pad_value(model: nn.Module) -> list[int]:
    """Letterbox padding in uint8 that normalises to 0, as torchvision's batching pads after normalising."""
    return [int(round(m * 255)) for m in model.transform.image_mean]


def build_wrapper(model: nn.Module, family: FamilyDeploy, input_size: tuple[int, int], *, score_thresh: float,
                  max_candidates: int, input_format: str = UINT8_NHWC, **family_options: Any) -> nn.Module:
    """The family's deploy wrapper around eager ``model``: the static graph's candidates stage."""
    reason = family.check_input_size(input_size)
    if reason:
        raise EdgedetError(reason)
    return family.wrapper_class()(model, input_size=input_size, score_thresh=score_thresh,
                                  max_candidates=max_candidates, input_format=input_format, **family_options)
