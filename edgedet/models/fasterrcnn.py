"""Faster R-CNN zoo members: torchvision's FPN detectors and Faster R-CNN on any classification backbone.

All return ``torchvision.models.detection.FasterRCNN``. Contract (torchvision's): eval
``model(images)`` takes a list of float ``[3,H,W]`` images in [0,1]; the transform resizes each so
its short side is ``min_size`` (long side ≤ ``max_size``) and the outputs are one dict per image with
``boxes [N,4]`` x1y1x2y2 in the original image's pixels, ``scores [N]``, ``labels [N]`` int64 ≥ 1.
Training ``model(images, targets)`` with ``{"boxes": [N,4] x1y1x2y2, "labels": [N] int64 ≥ 1}``
returns the four RPN / box-head losses.

``rpn_score_thresh`` (torchvision PR 3205) drops RPN proposals below a score; the export code turns it
into a mask. ``min_size``/``max_size`` and every other ``FasterRCNN`` option pass straight through.

Input sizes chosen for the registry (the square an export fixes, kept as is by the transform):
torchvision FPN models 800x800 (their min_size 800, max_size 1333), the mobilenet 320 FPN model
320x320 (min 320, max 640), the custom-backbone models and resnet18 FPN 640x640 (their builders
default to min_size = max_size = 640).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from edgedet.errors import ModelError
from edgedet.models.registry import register_model

if TYPE_CHECKING:
    from torch import nn
    from torchvision.models import WeightsEnum
    from torchvision.models.detection import FasterRCNN

_DET = "torchvision.models.detection:"
_CLS = "torchvision.models:"


def _record_input_size(model: "FasterRCNN") -> "FasterRCNN":
    """The square export size this model's transform keeps unchanged: (min_size, min_size)."""
    side = int(model.transform.min_size[-1])
    model.edgedet_input_size = (side, side)
    return model


def _create_torchvision_fasterrcnn(
    builder_name: str,
    *,
    num_classes: int,
    weights: "WeightsEnum | None" = None,
    weights_backbone: "WeightsEnum | None" = None,
    **kwargs: Any,
) -> "FasterRCNN":
    """Call torchvision's own builder; weights and num_classes are already decided by the registry."""
    from torchvision.models import detection

    if weights is not None and num_classes != len(weights.meta["categories"]):
        raise ModelError(f"{type(weights).__name__} has {len(weights.meta['categories'])} outputs, not {num_classes}")
    builder = getattr(detection, builder_name)
    model = builder(weights=weights, weights_backbone=weights_backbone, num_classes=num_classes, **kwargs)
    return _record_input_size(model)


@register_model(
    family="fasterrcnn",
    input_size=(800, 800),
    description="Faster R-CNN, ResNet-50 FPN (torchvision fasterrcnn_resnet50_fpn)",
    weights=_DET + "FasterRCNN_ResNet50_FPN_Weights",
    backbone_weights=_CLS + "ResNet50_Weights.IMAGENET1K_V1",
)
def fasterrcnn_resnet50_fpn(**kwargs: Any) -> "FasterRCNN":
    """ResNet-50 FPN, COCO 37.0 mAP (torchvision); min_size 800, max_size 1333."""
    return _create_torchvision_fasterrcnn("fasterrcnn_resnet50_fpn", **kwargs)


@register_model(
    family="fasterrcnn",
    input_size=(800, 800),
    description="Faster R-CNN v2, ResNet-50 FPN, conv box head (torchvision fasterrcnn_resnet50_fpn_v2)",
    weights=_DET + "FasterRCNN_ResNet50_FPN_V2_Weights",
    backbone_weights=_CLS + "ResNet50_Weights.IMAGENET1K_V1",
)
def fasterrcnn_resnet50_fpn_v2(**kwargs: Any) -> "FasterRCNN":
    """ResNet-50 FPN with the improved recipe and heads, COCO 46.7 mAP (torchvision)."""
    return _create_torchvision_fasterrcnn("fasterrcnn_resnet50_fpn_v2", **kwargs)


@register_model(
    family="fasterrcnn",
    input_size=(800, 800),
    description="Faster R-CNN, MobileNetV3-Large FPN (torchvision fasterrcnn_mobilenet_v3_large_fpn)",
    weights=_DET + "FasterRCNN_MobileNet_V3_Large_FPN_Weights",
    backbone_weights=_CLS + "MobileNet_V3_Large_Weights.IMAGENET1K_V1",
)
def fasterrcnn_mobilenet_v3_large_fpn(**kwargs: Any) -> "FasterRCNN":
    """MobileNetV3-Large FPN, COCO 32.8 mAP (torchvision); rpn_score_thresh defaults to 0.05."""
    return _create_torchvision_fasterrcnn("fasterrcnn_mobilenet_v3_large_fpn", **kwargs)


@register_model(
    family="fasterrcnn",
    input_size=(320, 320),
    description="Faster R-CNN, MobileNetV3-Large FPN at 320 px (torchvision fasterrcnn_mobilenet_v3_large_320_fpn)",
    weights=_DET + "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights",
    backbone_weights=_CLS + "MobileNet_V3_Large_Weights.IMAGENET1K_V1",
)
def fasterrcnn_mobilenet_v3_large_320_fpn(**kwargs: Any) -> "FasterRCNN":
    """MobileNetV3-Large FPN for low resolution, COCO 22.8 mAP (torchvision); min 320, max 640, 150 proposals."""
    return _create_torchvision_fasterrcnn("fasterrcnn_mobilenet_v3_large_320_fpn", **kwargs)


# --- Faster R-CNN on any classification backbone -------------------------------------------------


@dataclass(frozen=True)
class _Backbone:
    """A torchvision classifier reduced to its feature extractor (one stride-16/32 feature map)."""

    weights: str  # "module:Enum" of its ImageNet weights
    features: Callable[["nn.Module"], "nn.Module"]
    out_channels: int


def _resnet_features(m: "nn.Module") -> "nn.Module":
    from torch import nn

    return nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4)


def _shufflenet_features(m: "nn.Module") -> "nn.Module":
    from torch import nn

    return nn.Sequential(m.conv1, m.maxpool, m.stage2, m.stage3, m.stage4, m.conv5)


def _features_attr(m: "nn.Module") -> "nn.Module":
    return m.features


_BACKBONES: dict[str, _Backbone] = {
    "squeezenet1_0": _Backbone(_CLS + "SqueezeNet1_0_Weights", _features_attr, 512),
    "squeezenet1_1": _Backbone(_CLS + "SqueezeNet1_1_Weights", _features_attr, 512),
    "resnet18": _Backbone(_CLS + "ResNet18_Weights", _resnet_features, 512),
    "mobilenet_v2": _Backbone(_CLS + "MobileNet_V2_Weights", _features_attr, 1280),
    "efficientnet_b0": _Backbone(_CLS + "EfficientNet_B0_Weights", _features_attr, 1280),
    "shufflenet_v2_x1_0": _Backbone(_CLS + "ShuffleNet_V2_X1_0_Weights", _shufflenet_features, 1024),
}


def _create_fasterrcnn_backbone(
    arch: str,
    *,
    num_classes: int,
    weights: "WeightsEnum | None" = None,
    weights_backbone: "WeightsEnum | None" = None,
    min_size: int = 640,
    max_size: int = 640,
    **kwargs: Any,
) -> "FasterRCNN":
    """Faster R-CNN on one feature map of a classification backbone, as in torchvision's tutorial.

    The classifier's feature extractor becomes ``backbone`` (with ``out_channels`` set), one
    anchor level carries all five sizes × three ratios, and RoIAlign pools that single map ``"0"``.
    The default box head (TwoMLPHead on ``out_channels × 7 × 7``) is kept, so wide backbones
    (1280 channels) get a large first FC layer: that is the tutorial's model, listed honestly.
    """
    import torchvision
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    if weights is not None:
        raise ModelError(f"fasterrcnn_{arch} has no published detector weights; only ImageNet backbone weights")
    spec = _BACKBONES[arch]
    classifier = getattr(torchvision.models, arch)(weights=weights_backbone, progress=True)
    backbone = spec.features(classifier)
    backbone.out_channels = spec.out_channels  # FasterRCNN reads this to size the RPN and box heads

    anchor_generator = AnchorGenerator(sizes=((32, 64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),))
    roi_pooler = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    model = FasterRCNN(
        backbone,
        num_classes=num_classes,
        rpn_anchor_generator=anchor_generator,
        box_roi_pool=roi_pooler,
        min_size=min_size,
        max_size=max_size,
        **kwargs,
    )
    return _record_input_size(model)


_BACKBONE_DOC = "Faster R-CNN on the {} feature map (single level, tutorial style), 640x640"


@register_model(family="fasterrcnn", input_size=(640, 640), description=_BACKBONE_DOC.format("SqueezeNet 1.0"),
                backbone_weights=_BACKBONES["squeezenet1_0"].weights)
def fasterrcnn_squeezenet1_0(**kwargs: Any) -> "FasterRCNN":
    """SqueezeNet 1.0 features (512 ch, stride 16 with ceil pooling)."""
    return _create_fasterrcnn_backbone("squeezenet1_0", **kwargs)


@register_model(family="fasterrcnn", input_size=(640, 640), description=_BACKBONE_DOC.format("SqueezeNet 1.1"),
                backbone_weights=_BACKBONES["squeezenet1_1"].weights)
def fasterrcnn_squeezenet1_1(**kwargs: Any) -> "FasterRCNN":
    """SqueezeNet 1.1 features (512 ch)."""
    return _create_fasterrcnn_backbone("squeezenet1_1", **kwargs)


@register_model(family="fasterrcnn", input_size=(640, 640), description=_BACKBONE_DOC.format("ResNet-18"),
                backbone_weights=_BACKBONES["resnet18"].weights)
def fasterrcnn_resnet18(**kwargs: Any) -> "FasterRCNN":
    """ResNet-18 up to layer4 (512 ch, stride 32)."""
    return _create_fasterrcnn_backbone("resnet18", **kwargs)


@register_model(family="fasterrcnn", input_size=(640, 640), description=_BACKBONE_DOC.format("MobileNetV2"),
                backbone_weights=_BACKBONES["mobilenet_v2"].weights)
def fasterrcnn_mobilenet_v2(**kwargs: Any) -> "FasterRCNN":
    """MobileNetV2 features (1280 ch, stride 32) — the torchvision tutorial's example."""
    return _create_fasterrcnn_backbone("mobilenet_v2", **kwargs)


@register_model(family="fasterrcnn", input_size=(640, 640), description=_BACKBONE_DOC.format("EfficientNet-B0"),
                backbone_weights=_BACKBONES["efficientnet_b0"].weights)
def fasterrcnn_efficientnet_b0(**kwargs: Any) -> "FasterRCNN":
    """EfficientNet-B0 features (1280 ch, stride 32)."""
    return _create_fasterrcnn_backbone("efficientnet_b0", **kwargs)


@register_model(family="fasterrcnn", input_size=(640, 640), description=_BACKBONE_DOC.format("ShuffleNetV2 x1.0"),
                backbone_weights=_BACKBONES["shufflenet_v2_x1_0"].weights)
def fasterrcnn_shufflenet_v2_x1_0(**kwargs: Any) -> "FasterRCNN":
    """ShuffleNetV2 x1.0 up to conv5 (1024 ch, stride 32)."""
    return _create_fasterrcnn_backbone("shufflenet_v2_x1_0", **kwargs)


def _create_fasterrcnn_resnet18_fpn(
    *,
    num_classes: int,
    weights: "WeightsEnum | None" = None,
    weights_backbone: "WeightsEnum | None" = None,
    trainable_backbone_layers: int | None = None,
    min_size: int = 640,
    max_size: int = 640,
    **kwargs: Any,
) -> "FasterRCNN":
    """torchvision's ``fasterrcnn_resnet50_fpn`` recipe with ResNet-18 (FrozenBatchNorm when pretrained)."""
    from torch import nn
    from torchvision.models import resnet18
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor, _validate_trainable_layers
    from torchvision.ops import misc as misc_nn_ops

    if weights is not None:
        raise ModelError("fasterrcnn_resnet18_fpn has no published detector weights; only ImageNet backbone weights")
    is_trained = weights_backbone is not None
    trainable_backbone_layers = _validate_trainable_layers(is_trained, trainable_backbone_layers, 5, 3)
    norm_layer = misc_nn_ops.FrozenBatchNorm2d if is_trained else nn.BatchNorm2d
    backbone = resnet18(weights=weights_backbone, progress=True, norm_layer=norm_layer)
    backbone = _resnet_fpn_extractor(backbone, trainable_backbone_layers)
    model = FasterRCNN(backbone, num_classes=num_classes, min_size=min_size, max_size=max_size, **kwargs)
    return _record_input_size(model)


@register_model(
    family="fasterrcnn",
    input_size=(640, 640),
    description="Faster R-CNN, ResNet-18 FPN (torchvision recipe of resnet50_fpn), 640x640",
    backbone_weights=_CLS + "ResNet18_Weights",
)
def fasterrcnn_resnet18_fpn(**kwargs: Any) -> "FasterRCNN":
    """ResNet-18 with a 256-channel FPN over layers 1-4 plus pool; lighter than resnet50_fpn."""
    return _create_fasterrcnn_resnet18_fpn(**kwargs)


# --- a Faster R-CNN small enough to train from scratch on a CPU ------------------------------------


def _conv_bn_relu(cin: int, cout: int, stride: int) -> "nn.Module":
    from torch import nn

    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _create_fasterrcnn_tiny(
    *,
    num_classes: int,
    weights: "WeightsEnum | None" = None,
    weights_backbone: "WeightsEnum | None" = None,
    width: int = 32,
    min_size: int = 224,
    max_size: int = 224,
    **kwargs: Any,
) -> "FasterRCNN":
    """A five-conv-block stride-16 backbone (``4 × width`` channels), one anchor level, a 256-wide box head.

    Sized for objects of 25-100 px in 224 px images (the synthetic shapes); the RPN keeps fewer
    proposals than torchvision's defaults (600/300 before, 300/100 after its NMS) so a training step
    takes well under a second on two cores.
    """
    from torch import nn
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    if weights is not None or weights_backbone is not None:
        raise ModelError("fasterrcnn_tiny trains from scratch; it has no published or backbone weights")
    if int(width) < 4:
        raise ModelError(f"fasterrcnn_tiny width must be at least 4, not {width}")
    w = int(width)
    backbone = nn.Sequential(
        _conv_bn_relu(3, w // 2, 2), _conv_bn_relu(w // 2, w, 2), _conv_bn_relu(w, w, 1),
        _conv_bn_relu(w, 2 * w, 2), _conv_bn_relu(2 * w, 2 * w, 1),
        _conv_bn_relu(2 * w, 4 * w, 2), _conv_bn_relu(4 * w, 4 * w, 1),
    )
    backbone.out_channels = 4 * w
    defaults = {"rpn_pre_nms_top_n_train": 600, "rpn_pre_nms_top_n_test": 300, "rpn_post_nms_top_n_train": 300,
                "rpn_post_nms_top_n_test": 100, "rpn_batch_size_per_image": 128, "box_batch_size_per_image": 128}
    model = FasterRCNN(
        backbone,
        rpn_anchor_generator=AnchorGenerator(sizes=((32, 64, 128),), aspect_ratios=((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(4 * w * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, num_classes),
        min_size=min_size,
        max_size=max_size,
        **{**defaults, **kwargs},
    )
    model.edgedet_kwargs = {"width": w}
    return _record_input_size(model)


@register_model(
    family="fasterrcnn",
    input_size=(224, 224),
    description="tiny Faster R-CNN (5-block stride-16 CNN, one level, 224x224) for tests and demos, trains from scratch",
)
def fasterrcnn_tiny(**kwargs: Any) -> "FasterRCNN":
    """The Faster R-CNN counterpart of ssdlite_tiny: same class and export path as the zoo's big models."""
    return _create_fasterrcnn_tiny(**kwargs)
