"""One row per zoo family: what export, verify and sweep need to know about a family, in one place.

A family decides how its engine resizes images on the host, which deploy wrapper builds its static graph, which
options apply to it (the RPN's, dynamic batch), where its eager model keeps the postprocess thresholds, and how
torchvision's transform is told the engine's input size. Code asks the row (``entry.deploy``) instead of testing
the family's name, so a new family is one new row. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FamilyDeploy:
    family: str
    title: str  # the family as messages name it
    resize: str  # the engine's host resize (runtime/preprocess.py): "stretch" or "letterbox"
    wrapper: str  # "module:Class" of the deploy wrapper (imported when an export needs it)
    detector: str  # "module:Class" of the torchvision detector whose __init__ options the family's models take
    two_stage: bool  # an RPN and RoI heads: rpn_score_thresh, --rpn-post-nms-top-n and the IoU head apply
    dynamic_batch: bool  # --dynamic-batch exports exist
    size_multiple: int  # each input side must be a multiple of this (the FPN's stride); 1 = any size
    postprocess: str  # attribute of the eager model holding score_thresh/nms_thresh/detections_per_img; "" = itself
    sized_by_builder: bool  # the builder's min_size/max_size set the input size (else transform.fixed_size does)

    def wrapper_class(self) -> type:
        return import_attr(self.wrapper)

    def detector_class(self) -> type:
        return import_attr(self.detector)

    def postprocess_owner(self, model: Any) -> Any:
        """The module whose ``score_thresh``, ``nms_thresh`` and ``detections_per_img`` the eager model uses."""
        return getattr(model, self.postprocess) if self.postprocess else model

    def builder_sizes(self, size: tuple[int, int]) -> dict[str, int]:
        """``create_model`` options that make the eager model's transform keep an (H, W) input as it is."""
        return {"min_size": min(size), "max_size": max(size)} if self.sized_by_builder else {}

    def fix_input_size(self, model: Any, size: tuple[int, int]) -> None:
        """Make the eager model's transform resize to exactly the engine's (H, W) input."""
        h, w = size
        if self.sized_by_builder:
            model.transform.min_size, model.transform.max_size = (min(h, w),), max(h, w)
        else:
            model.transform.fixed_size = (w, h)  # torchvision stores (W, H) here

    def check_input_size(self, size: tuple[int, int]) -> str | None:
        """Why (H, W) cannot be this family's input, or None."""
        h, w = size
        if h % self.size_multiple or w % self.size_multiple:
            return f"{self.title} input size must be a multiple of {self.size_multiple} (the FPN stride), not {h}x{w}"
        return None


def import_attr(spec: str) -> Any:
    """The object a ``"module:attr"`` string names, imported only now (torch and torchvision load on demand)."""
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


FAMILIES: dict[str, FamilyDeploy] = {
    "ssd": FamilyDeploy(
        family="ssd", title="SSD", resize="stretch", wrapper="edgedet.export.ssd:SSDDeploy",
        detector="torchvision.models.detection.ssd:SSD", two_stage=False, dynamic_batch=True, size_multiple=1,
        postprocess="", sized_by_builder=False),
    "fasterrcnn": FamilyDeploy(
        family="fasterrcnn", title="Faster R-CNN", resize="letterbox", wrapper="edgedet.export.fasterrcnn:FasterRCNNDeploy",
        detector="torchvision.models.detection.faster_rcnn:FasterRCNN", two_stage=True, dynamic_batch=False,
        size_multiple=32, postprocess="roi_heads", sized_by_builder=True),
}
