"""The model zoo's registry: one short registered function per variant, timm-style.

Each variant is a function decorated with :func:`register_model` that calls a private
``_create_…`` builder in its family module (``ssd.py``, ``fasterrcnn.py``). The registry records
what the rest of edgedet needs without building anything: family (which export path applies),
the fixed network input size an export uses, and which torchvision weights enums exist.

Importing this module (and the family modules) is cheap: torch and torchvision load inside the
builders, so ``list_models()`` answers instantly, e.g. for the CLI's argument parser.

:func:`create_model` is the one entry point that turns a name into an ``nn.Module``::

    model = create_model("ssdlite_tiny", classes=["circle", "square"], weights="none")
    model.eval()
    out = model([img])  # img: float [3,H,W] in [0,1]
    # out[0]["boxes"] [N,4] x1y1x2y2 input pixels, ["scores"] [N], ["labels"] [N] int64 in 1..len(classes)
    model.edgedet_classes[int(out[0]["labels"][0]) - 1]  # label 0 is background
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from edgedet import log
from edgedet.errors import ModelError
from edgedet.models.families import FAMILIES, FamilyDeploy, import_attr

if TYPE_CHECKING:
    from torch import Tensor, nn


F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ModelEntry:
    """What the zoo knows about one variant before building it.

    ``input_size`` is (H, W) of the network input an export fixes (SSD: the size the model
    resizes to; Faster R-CNN: a square that its ``min_size``/``max_size`` transform keeps as is).
    ``weights`` / ``backbone_weights`` name torchvision enums as ``"module:Class"`` (resolved only
    when needed): full detector weights (COCO label space) and ImageNet backbone weights.
    ``backbone_weights`` may end in ``.MEMBER``: the member that fine-tuning starts from when the
    user asks for ``default`` with custom classes — torchvision's detection recipes use e.g.
    ``IMAGENET1K_V1`` where the classifier's own DEFAULT has moved on to V2.
    ``infer_kwargs`` derives architecture options from a checkpoint's tensors when the checkpoint
    does not record them (e.g. ssdlite320's ``reduced_tail``).
    """

    name: str
    family: str
    input_size: tuple[int, int]
    description: str
    builder: Callable[..., "nn.Module"]
    weights: str | None = None
    backbone_weights: str | None = None
    infer_kwargs: Callable[[Mapping[str, "Tensor"]], dict[str, Any]] | None = None

    @property
    def deploy(self) -> FamilyDeploy:
        """The family's row: resize mode, deploy wrapper, which options apply (``edgedet.models.families``)."""
        return FAMILIES[self.family]

    def weights_enum(self) -> Any:
        """The torchvision detector weights enum class, or None."""
        return import_attr(self.weights) if self.weights else None

    def backbone_weights_enum(self) -> Any:
        """The torchvision classification weights enum class of the backbone, or None."""
        if not self.backbone_weights:
            return None
        module, _, attr = self.backbone_weights.partition(":")
        return import_attr(f"{module}:{attr.split('.')[0]}")

    def default_backbone_weights(self) -> Any:
        """The backbone enum member fine-tuning starts from (the recipe's, else the enum's DEFAULT)."""
        enum_cls = self.backbone_weights_enum()
        if enum_cls is None:
            return None
        _, _, member = self.backbone_weights.partition(":")[2].partition(".")
        return enum_cls[member or "DEFAULT"]

    @property
    def pretrained(self) -> str:
        """Which published weights exist, for listings: ``COCO`` (whole detector), ``ImageNet`` (backbone) or ``-``."""
        if self.weights:
            return "COCO"
        if self.backbone_weights:
            return "ImageNet"  # backbone only; detection heads start fresh
        return "-"


_MODELS: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register_model(
    *,
    family: str,
    input_size: tuple[int, int],
    description: str,
    weights: str | None = None,
    backbone_weights: str | None = None,
    infer_kwargs: Callable[[Mapping[str, "Tensor"]], dict[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Decorator: register the decorated builder under its function name.

    The builder is called as ``fn(*, num_classes, weights, weights_backbone, **options)`` where
    ``weights``/``weights_backbone`` are torchvision enum members or None (the registry's
    :func:`create_model` decides which, from the user's ``weights`` spec).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {tuple(FAMILIES)}, not {family!r}")
    if len(input_size) != 2 or not all(isinstance(v, int) and v > 0 for v in input_size):
        raise ValueError(f"input_size must be (H, W) positive ints, not {input_size!r}")

    def decorator(fn: F) -> F:
        name = fn.__name__
        if name in _MODELS or name in _ALIASES:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelEntry(
            name=name,
            family=family,
            input_size=(int(input_size[0]), int(input_size[1])),
            description=description,
            builder=fn,
            weights=weights,
            backbone_weights=backbone_weights,
            infer_kwargs=infer_kwargs,
        )
        return fn

    return decorator


def register_alias(old: str, new: str) -> None:
    """Keep a renamed model loadable: ``old`` resolves to ``new`` with a deprecation warning."""
    if old in _MODELS:
        raise ValueError(f"alias {old!r} shadows a registered model")
    _ALIASES[old] = new


def list_models(pattern: str = "*", *, family: str | None = None) -> list[str]:
    """Registered names matching the fnmatch ``pattern`` (``"fasterrcnn_*"``), sorted.

    Deprecated aliases are not listed. An empty list is a valid answer; the CLI turns it into an error.
    """
    return sorted(
        name
        for name, entry in _MODELS.items()
        if fnmatch.fnmatchcase(name, pattern) and (family is None or entry.family == family)
    )


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry for ``name`` (an alias warns and resolves); unknown → ModelError with suggestions."""
    if name in _ALIASES:
        new = _ALIASES[name]
        log.warn(f"model name {name!r} is deprecated; use {new!r}", once=True)
        name = new
    try:
        return _MODELS[name]
    except KeyError:
        pass
    close = difflib.get_close_matches(name, list(_MODELS) + list(_ALIASES), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "`edgedet models` lists them"
    raise ModelError(f"unknown model {name!r}: {hint}")


def _canonical(name: str) -> str:
    """Resolve an alias without warning (for comparing names recorded in checkpoints)."""
    return _ALIASES.get(name, name)


def _check_classes(classes: Any) -> list[str] | None:
    if classes is None:
        return None
    if isinstance(classes, str) or not all(isinstance(c, str) and c for c in classes):
        raise ModelError("classes must be a list of non-empty class names")
    classes = list(classes)
    if not classes:
        raise ModelError("classes is empty: give at least one class name (background is implicit)")
    if len(set(classes)) != len(classes):
        dup = next(c for c in classes if classes.count(c) > 1)
        raise ModelError(f"class name {dup!r} appears twice")
    if classes[0].lower() in ("__background__", "background"):
        raise ModelError("classes must not include the background class; torchvision's index 0 is added for you")
    return classes


def coco_classes() -> list[str]:
    """torchvision's 91-slot COCO label space without its background slot (90 names, ``N/A`` for gaps).

    Model label ``i`` (1..90) is ``coco_classes()[i - 1]``, and equals the COCO category id.
    """
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    return list(FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"][1:])


# Options every zoo builder takes on top of its detector class's (edgedet's and torchvision's builders).
_BUILDER_OPTIONS = {"trainable_backbone_layers", "reduced_tail", "width_mult", "size"}
# Constructor arguments that are modules or set by the zoo itself, never options a user passes.
_NOT_OPTIONS = {"self", "backbone", "num_classes", "weights", "weights_backbone", "head", "anchor_generator",
                "rpn_anchor_generator", "rpn_head", "box_roi_pool", "box_head", "box_predictor", "norm_layer",
                "progress"}


def model_options(entry: ModelEntry) -> set[str]:
    """The builder options a zoo model accepts: its builder's own, its detector class's (torchvision's SSD or
    FasterRCNN) and the image transform's they forward ``**kwargs`` to."""
    import inspect

    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    def named(fn: Callable[..., Any]) -> set[str]:
        return {p.name for p in inspect.signature(fn).parameters.values()
                if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}

    detector = entry.deploy.detector_class()
    names = named(entry.builder) | named(detector.__init__) | named(GeneralizedRCNNTransform.__init__)
    if entry.deploy.two_stage:
        from edgedet.models.iou_net import IOU_DEFAULTS

        names |= set(IOU_DEFAULTS)
    return (names | _BUILDER_OPTIONS) - _NOT_OPTIONS


def check_model_options(entry: ModelEntry, kwargs: Mapping[str, Any]) -> None:
    """An unknown option is an error naming the closest known one (torchvision's builders swallow unknown
    ``**kwargs``, so a typo would otherwise be stored in the checkpoint and silently do nothing)."""
    import difflib

    unknown = sorted(set(kwargs) - model_options(entry))
    if unknown:
        known = sorted(model_options(entry))
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; it takes {', '.join(known)}"
        raise ModelError(f"{entry.name} has no option {unknown[0]!r}{hint}")


def _pop_iou_options(entry: ModelEntry, kwargs: dict[str, Any]) -> dict[str, Any]:
    """IoU-Net's options (``edgedet.models.iou_net``) out of ``kwargs``, validated; ``{}`` without ``iou_head``."""
    if not entry.deploy.two_stage:
        return {}
    from edgedet.models.iou_net import IOU_DEFAULTS, validate_iou_options

    given = {k: kwargs.pop(k) for k in list(kwargs) if k in IOU_DEFAULTS}
    if not given:
        return {}
    opts = validate_iou_options(given)
    return opts if opts["iou_head"] else {}


def create_model(
    name: str,
    *,
    classes: list[str] | None = None,
    weights: str = "none",
    rpn_score_thresh: float | None = None,
    **kwargs: Any,
) -> "nn.Module":
    """Build a zoo model.

    Args:
        name: a registered name (``list_models()``) or a deprecated alias.
        classes: object class names WITHOUT background; the model gets ``len(classes) + 1``
            outputs (index 0 = background). None: torchvision's 91-slot COCO label space.
        weights: ``"none"`` (random init, never touches the network), ``"default"`` or a torchvision
            enum member name (``"COCO_V1"``, ``"IMAGENET1K_V1"``), or a path to a checkpoint file.
            With custom classes only the backbone's ImageNet weights are loaded and the heads
            start fresh. See :mod:`edgedet.models.weights`.
        rpn_score_thresh: Faster R-CNN only: drop RPN proposals scoring below this (torchvision's
            ``rpn_score_thresh``); None keeps the builder's default.
        **kwargs: builder options (``min_size``, ``width_mult``, ``score_thresh`` …); only what is
            given here is passed, so builders keep their defaults.

    Returns:
        a torchvision detector in training mode with ``edgedet_name`` (canonical name),
        ``edgedet_classes`` (class names without background; label ``i`` is
        ``edgedet_classes[i - 1]``) and ``edgedet_kwargs`` (the builder options a checkpoint must
        record, as ``model_kwargs``, to rebuild this exact architecture).
    Raises:
        ModelError: unknown name or option; WeightsError: weights cannot be downloaded or found;
        CheckpointError: the checkpoint is for another model or its tensors do not fit.
    """
    from edgedet.models import weights as _weights

    entry = get_model_entry(name)
    classes = _check_classes(classes)
    if rpn_score_thresh is not None:
        if not entry.deploy.two_stage:
            raise ModelError(f"rpn_score_thresh applies to Faster R-CNN models only, not {entry.deploy.title} model "
                             f"{entry.name}")
        if not 0.0 <= float(rpn_score_thresh) < 1.0:
            raise ModelError(f"rpn_score_thresh must be in [0, 1), not {rpn_score_thresh}")
        kwargs["rpn_score_thresh"] = float(rpn_score_thresh)

    check_model_options(entry, kwargs)
    plan = _weights.resolve_weights(entry, weights, classes)
    if plan.classes is not None:
        classes = _check_classes(plan.classes)
    build_kwargs = {**plan.model_kwargs, **kwargs}
    label_names = classes if classes is not None else coco_classes()
    iou_opts = _pop_iou_options(entry, build_kwargs)

    _weights.fetch(plan)
    model = _weights.call_builder(
        entry,
        plan,
        num_classes=len(label_names) + 1,
        **build_kwargs,
    )
    if iou_opts:
        from edgedet.models.iou_net import attach_iou_head

        attach_iou_head(model, iou_opts)
    if plan.state_dict is not None:
        _weights.load_state_dict_strict(model, plan.state_dict, source=str(plan.checkpoint), name=entry.name)

    # Builders may record architecture options they resolved themselves (e.g. reduced_tail).
    resolved = getattr(model, "edgedet_kwargs", {})
    model.edgedet_name = entry.name
    model.edgedet_classes = list(label_names)
    model.edgedet_kwargs = {**build_kwargs, **resolved, **iou_opts}
    if not hasattr(model, "edgedet_input_size"):
        model.edgedet_input_size = entry.input_size
    return model
