"""SSD-family zoo members: torchvision's ``SSD`` class with SSDlite or VGG16 parts.

All three return a ``torchvision.models.detection.ssd.SSD`` so the export code has one SSD path.
Contract (torchvision's): ``model(images)`` in eval takes a list of float ``[3,H,W]`` images in
[0,1] (any size; the model resizes to its fixed input size) and returns one dict per image with
``boxes [N,4]`` x1y1x2y2 in the original image's pixels, ``scores [N]`` and ``labels [N]`` int64
(0 = background, never returned). In training ``model(images, targets)`` with targets
``{"boxes": [N,4] x1y1x2y2 float, "labels": [N] int64 ≥ 1}`` returns ``{"bbox_regression",
"classification"}`` losses.

Builders import torch/torchvision inside, so registering the zoo costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from edgedet.errors import ModelError
from edgedet.models.registry import register_alias, register_model

if TYPE_CHECKING:
    from torch import Tensor, nn
    from torchvision.models import WeightsEnum
    from torchvision.models.detection.ssd import SSD

_SSDLITE320_WEIGHTS = "torchvision.models.detection:SSDLite320_MobileNet_V3_Large_Weights"
_SSD300_WEIGHTS = "torchvision.models.detection:SSD300_VGG16_Weights"
# Backbone enums carry the member torchvision's builders default to (the recipe's ImageNet weights).
_MOBILENET_V3_WEIGHTS = "torchvision.models:MobileNet_V3_Large_Weights.IMAGENET1K_V1"
_VGG16_WEIGHTS = "torchvision.models:VGG16_Weights.IMAGENET1K_FEATURES"


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    h, w = (int(v) for v in size)
    if h < 64 or w < 64:
        raise ModelError(f"SSDlite input size must be at least 64x64, not {h}x{w}")
    return h, w


def _check_detector_classes(weights: "WeightsEnum | None", num_classes: int) -> None:
    if weights is not None and num_classes != len(weights.meta["categories"]):
        raise ModelError(
            f"{type(weights).__name__}.{weights.name} has {len(weights.meta['categories'])} outputs, "
            f"not {num_classes}: custom classes load backbone weights only"
        )


def _create_ssdlite(
    *,
    num_classes: int,
    weights: "WeightsEnum | None" = None,
    weights_backbone: "WeightsEnum | None" = None,
    size: int | tuple[int, int],
    width_mult: float = 1.0,
    reduced_tail: bool | None = None,
    trainable_backbone_layers: int | None = None,
    norm_layer: "Callable[..., nn.Module] | None" = None,
    defaults: Mapping[str, Any],
    **kwargs: Any,
) -> "SSD":
    """SSDlite from parts, mirroring torchvision's ``ssdlite320_mobilenet_v3_large`` line by line.

    Differences are options, not behaviour: ``size`` (H, W), ``width_mult`` and ``reduced_tail``
    are parameters instead of constants. ``reduced_tail=None`` keeps torchvision's rule (reduced
    unless an ImageNet backbone is loaded, MobileNetV3 paper Table 6); the resolved value is
    recorded in ``model.edgedet_kwargs`` because it changes tensor shapes.
    """
    from functools import partial

    from torch import nn
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.backbone_utils import _validate_trainable_layers
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteHead, _mobilenet_extractor, _normal_init

    h, w = _hw(size)
    _check_detector_classes(weights, num_classes)
    if weights is not None:
        weights_backbone = None
    trainable_backbone_layers = _validate_trainable_layers(
        weights is not None or weights_backbone is not None, trainable_backbone_layers, 6, 6
    )
    if reduced_tail is None:
        reduced_tail = weights_backbone is None
    if norm_layer is None:
        norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)

    backbone = mobilenet_v3_large(
        weights=weights_backbone, progress=True, norm_layer=norm_layer, reduced_tail=reduced_tail, width_mult=width_mult
    )
    if weights_backbone is None:
        _normal_init(backbone)  # torchvision's init for a from-scratch SSDlite backbone
    backbone = _mobilenet_extractor(backbone, trainable_backbone_layers, norm_layer)

    anchor_generator = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    out_channels = det_utils.retrieve_out_channels(backbone, (w, h))  # torchvision passes (W, H)
    num_anchors = anchor_generator.num_anchors_per_location()
    if len(out_channels) != len(anchor_generator.aspect_ratios):
        raise ModelError(f"SSDlite backbone gives {len(out_channels)} feature maps at {h}x{w}, anchors expect 6")

    model = SSD(
        backbone,
        anchor_generator,
        (w, h),  # torchvision's SSD keeps fixed_size as (W, H)
        num_classes,
        head=SSDLiteHead(out_channels, num_anchors, num_classes, norm_layer),
        **{**defaults, **kwargs},
    )
    if weights is not None:
        model.load_state_dict(weights.get_state_dict(progress=True, check_hash=True))
    model.edgedet_kwargs = {"reduced_tail": reduced_tail}
    model.edgedet_input_size = (h, w)
    return model


# torchvision's SSDlite320 defaults: low threshold for mAP, more candidates than the tiny model.
_SSDLITE320_DEFAULTS: dict[str, Any] = {
    "score_thresh": 0.001,
    "nms_thresh": 0.55,
    "detections_per_img": 300,
    "topk_candidates": 300,
    # MobileNet expects [-1, 1]: mean/std rescale from [0, 1].
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}

_SSDLITE_TINY_DEFAULTS: dict[str, Any] = {
    **_SSDLITE320_DEFAULTS,
    "score_thresh": 0.01,
    "detections_per_img": 100,
    "topk_candidates": 100,
}


def _infer_ssdlite320_kwargs(state_dict: Mapping[str, "Tensor"]) -> dict[str, Any]:
    """A checkpoint fine-tuned from the ImageNet backbone has the full tail (960 channels, not 480)."""
    t = state_dict.get("backbone.extra.0.0.0.weight")
    if t is None or len(t.shape) != 4:
        return {}
    return {"reduced_tail": int(t.shape[1]) != 960}


@register_model(
    family="ssd",
    input_size=(320, 320),
    description="SSDlite, MobileNetV3-Large backbone (torchvision ssdlite320_mobilenet_v3_large)",
    weights=_SSDLITE320_WEIGHTS,
    backbone_weights=_MOBILENET_V3_WEIGHTS,
    infer_kwargs=_infer_ssdlite320_kwargs,
)
def ssdlite320(**kwargs: Any) -> "SSD":
    """SSDlite320 with MobileNetV3-Large; 320x320 input; COCO weights 21.3 mAP (torchvision).

    Options: ``reduced_tail``, ``trainable_backbone_layers`` and SSD's (``score_thresh``,
    ``nms_thresh``, ``detections_per_img``, ``topk_candidates`` …).
    """
    return _create_ssdlite(size=320, defaults=_SSDLITE320_DEFAULTS, **kwargs)


@register_model(
    family="ssd",
    input_size=(160, 160),
    description="tiny SSDlite (MobileNetV3-Large x0.5, reduced tail, 160x160) for tests and demos, trains from scratch",
)
def ssdlite_tiny(*, width_mult: float = 0.5, size: int | tuple[int, int] = 160, **kwargs: Any) -> "SSD":
    """A small SSDlite that trains from scratch on a laptop CPU in a minute or two on simple shapes.

    Same class and parts as ssdlite320, so export code treats it identically; no published weights.
    ``size`` is the fixed input (H, W) or a square side; ``width_mult`` scales the backbone.
    """
    model = _create_ssdlite(
        size=size, width_mult=width_mult, reduced_tail=True, defaults=_SSDLITE_TINY_DEFAULTS, **kwargs
    )
    model.edgedet_kwargs = {"width_mult": width_mult, "size": list(_hw(size))}
    return model


def _create_ssd300(
    *,
    num_classes: int,
    weights: "WeightsEnum | None" = None,
    weights_backbone: "WeightsEnum | None" = None,
    **kwargs: Any,
) -> "SSD":
    from torchvision.models.detection import ssd300_vgg16

    _check_detector_classes(weights, num_classes)
    if "size" in kwargs:
        raise ModelError("ssd300's input size is fixed at 300x300")
    model = ssd300_vgg16(weights=weights, weights_backbone=weights_backbone, num_classes=num_classes, **kwargs)
    model.edgedet_input_size = (300, 300)
    return model


@register_model(
    family="ssd",
    input_size=(300, 300),
    description="SSD300, VGG16 backbone (torchvision ssd300_vgg16)",
    weights=_SSD300_WEIGHTS,
    backbone_weights=_VGG16_WEIGHTS,
)
def ssd300(**kwargs: Any) -> "SSD":
    """SSD300 with VGG16; 300x300 input; COCO weights 25.1 mAP (torchvision). Options: SSD's."""
    return _create_ssd300(**kwargs)


# torchvision's long names keep working, pointing at the short zoo names.
register_alias("ssdlite320_mobilenet_v3_large", "ssdlite320")
register_alias("ssd300_vgg16", "ssd300")
