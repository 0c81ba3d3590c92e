"""SSD / SSDlite deploy wrapper: one batched decode and a constant candidate set, ready for one NMS.

torchvision's ``SSD.postprocess_detections`` loops over the classes in Python with boolean
indexing and per-class TopK; traced, that unrolls once per class (90 times for COCO) with
data-dependent shapes, and the export runs slower than eager PyTorch. Here every shape is static:
softmax over all anchors, a score mask instead of filtering, a TopK per class (torchvision's
``topk_candidates``) and one TopK over the surviving (anchor, class) pairs.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD

from edgedet.export.common import NormalizeInput, decode_boxes, topk_candidates
from edgedet.export.conformance import TENSORRT_TOPK_LIMIT
from edgedet.runtime.input_format import UINT8_NHWC


class SSDDeploy(nn.Module):
    """``images uint8 [B, H, W, 3]`` → candidates ``boxes [B, K, 4]``, ``scores [B, K]``, ``labels [B, K]``.

    Boxes are x1y1x2y2 in input pixels, labels 0-based class indices, scores 0 for padding.
    """

    def __init__(self, model: SSD, *, input_size: tuple[int, int], score_thresh: float, max_candidates: int,
                 input_format: str = UINT8_NHWC) -> None:
        super().__init__()
        if not 0 < max_candidates <= TENSORRT_TOPK_LIMIT:
            raise ValueError(f"max_candidates must be in 1..{TENSORRT_TOPK_LIMIT}")
        self.normalize = NormalizeInput(model.transform.image_mean, model.transform.image_std, input_format)
        self.backbone = model.backbone
        self.head = model.head
        self.box_coder = model.box_coder
        self.input_size = tuple(input_size)
        self.score_thresh = float(score_thresh)
        self.max_candidates = int(max_candidates)
        self.per_class = int(model.topk_candidates)
        self.register_buffer("anchors", self._anchors(model))

    @torch.no_grad()
    def _anchors(self, model: SSD) -> torch.Tensor:
        """Default boxes depend only on the input and feature-map sizes, so they are constants."""
        h, w = self.input_size
        was_training = model.training
        model.eval()
        x = torch.zeros(1, 3, h, w)
        feats = list(model.backbone(x).values())
        anchors = model.anchor_generator(ImageList(x, [(h, w)]), feats)[0]
        model.train(was_training)
        return anchors

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.normalize(images)
        feats = list(self.backbone(x).values())
        head = self.head(feats)
        coder = self.box_coder
        boxes = decode_boxes(head["bbox_regression"], self.anchors, coder.weights, coder.bbox_xform_clip, self.input_size)
        scores = torch.softmax(head["cls_logits"], dim=-1)[..., 1:]  # drop background
        scores = torch.where(scores > self.score_thresh, scores, torch.zeros_like(scores))
        return topk_candidates(boxes, scores, self.max_candidates, self.per_class)
