"""Turn a user's ``--weights`` value into what a builder loads, and load it.

A weights spec is one of:

``none``
    random initialisation; nothing is downloaded (offline-safe, the test default).
``default`` or a torchvision enum member name (``COCO_V1``, ``IMAGENET1K_V1``)
    torchvision's published weights. With the COCO label space (``classes=None``) the full
    detector is loaded; with custom classes only the backbone's ImageNet weights are, and the
    heads start fresh — standard fine-tuning, since COCO heads have the wrong number of outputs.
a path to an existing file
    an edgedet checkpoint (or a bare ``state_dict``), loaded with ``weights_only=True`` and
    ``strict=True`` after checking it was written for this model and these classes.

Downloads happen in :func:`fetch`, before the builder runs, so that an offline machine gets
one line that names the way out instead of a urllib traceback from inside torchvision.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from edgedet import log
from edgedet.errors import CheckpointError, ModelError, WeightsError

if TYPE_CHECKING:
    from torch import Tensor, nn

    from edgedet.models.registry import ModelEntry


@dataclass
class WeightsPlan:
    """What to load; at most one of ``detector``, ``backbone`` and ``state_dict`` is set.

    ``classes``/``model_kwargs`` come from a checkpoint (None / empty otherwise).
    """

    detector: Any = None  # torchvision WeightsEnum member: full detector, COCO label space
    backbone: Any = None  # torchvision WeightsEnum member: ImageNet backbone, fresh heads
    checkpoint: Path | None = None
    state_dict: Mapping[str, "Tensor"] | None = None
    classes: list[str] | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def enum_member(self) -> Any:
        return self.detector if self.detector is not None else self.backbone


def _member_names(enum_cls: Any) -> list[str]:
    return list(enum_cls.__members__) if enum_cls is not None else []


def _enum_label(member: Any) -> str:
    return f"{type(member).__name__}.{member.name}"


def resolve_weights(entry: "ModelEntry", spec: str, classes: list[str] | None) -> WeightsPlan:
    """Decide what ``spec`` means for ``entry`` and these ``classes`` (see the module docstring).

    Reads a checkpoint file (that is how its classes and options are learnt) but downloads nothing.
    """
    if not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise WeightsError("weights must be 'none', 'default', a torchvision weights name or a checkpoint file")
    spec = str(spec).strip()
    if spec.lower() == "none":
        return WeightsPlan()

    det_enum = entry.weights_enum()
    bb_enum = entry.backbone_weights_enum()
    key = spec.upper()
    if key in _member_names(det_enum):
        if classes is None:
            return WeightsPlan(detector=det_enum[key])
        if bb_enum is None:  # pragma: no cover - every zoo detector with COCO weights has a backbone enum
            raise WeightsError(f"{entry.name} has no backbone weights to fine-tune from: pass --weights none")
        member = entry.default_backbone_weights()
        log.note(
            f"{entry.name}: {len(classes)} custom classes, so loading only the backbone's "
            f"{_enum_label(member)}; detection heads start from random init"
        )
        return WeightsPlan(backbone=member)
    if key in _member_names(bb_enum):
        member = entry.default_backbone_weights() if key == "DEFAULT" else bb_enum[key]
        if classes is None:
            log.note(f"{entry.name} has no COCO weights: loading the backbone's {_enum_label(member)}, heads start from random init")
        return WeightsPlan(backbone=member)

    path = Path(spec).expanduser()
    if path.is_file():
        return _checkpoint_plan(entry, path, classes)
    if path.is_dir():
        raise WeightsError(f"--weights {spec!r} is a directory; give the checkpoint file in it (best.pt, last.pt)")

    names = sorted({n for n in _member_names(det_enum) + _member_names(bb_enum) if n != "DEFAULT"})
    if not names:
        if key == "DEFAULT":
            raise WeightsError(
                f"{entry.name} has no published weights: pass --weights FILE (a local checkpoint) or --weights none"
            )
        raise WeightsError(f"--weights {spec!r} is neither 'none' nor an existing checkpoint file ({entry.name} has no published weights)")
    raise WeightsError(
        f"--weights {spec!r} is neither 'none', 'default', a weights name of {entry.name} "
        f"({', '.join(names)}) nor an existing file"
    )


def _checkpoint_plan(entry: "ModelEntry", path: Path, classes: list[str] | None) -> WeightsPlan:
    from edgedet.checkpoint import load_checkpoint
    from edgedet.models.registry import _canonical

    ckpt = load_checkpoint(path)
    ck_model = ckpt.get("model")
    if ck_model is not None and _canonical(str(ck_model)) != entry.name:
        raise CheckpointError(f"{path} is a {ck_model} checkpoint, not {entry.name}: build {ck_model} to load it")
    state_dict = ckpt.get("state_dict")
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise CheckpointError(f"{path} has no state_dict")
    ck_classes = ckpt.get("classes")
    if ck_classes is not None:
        ck_classes = [str(c) for c in ck_classes]
        if classes is not None and list(classes) != ck_classes:
            raise CheckpointError(
                f"{path} was trained for classes {_short(ck_classes)}, not {_short(classes)} (the training data's): "
                "train on data with the checkpoint's classes, or start from other --weights"
            )
    model_kwargs = dict(ckpt.get("model_kwargs") or {})
    if entry.infer_kwargs is not None:
        model_kwargs = {**entry.infer_kwargs(state_dict), **model_kwargs}
    return WeightsPlan(
        checkpoint=path,
        state_dict=state_dict,
        classes=ck_classes if classes is None else None,
        model_kwargs=model_kwargs,
    )


def _short(items: list[str], n: int = 4) -> str:
    head = ", ".join(items[:n])
    return f"[{head}{', …' if len(items) > n else ''}] ({len(items)})"


def _cached_file(member: Any) -> Path:
    import torch.hub
    from urllib.parse import urlparse

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(member.url).path)


def fetch(plan: WeightsPlan, *, progress: bool = True) -> None:
    """Download the plan's torchvision weights into torch's hub cache unless already there.

    This is the only function that touches the network. The builder then loads the cached file
    through torchvision as usual. Failure → :class:`WeightsError` naming ``--weights FILE``.
    """
    member = plan.enum_member
    if member is None:
        return
    import torch.hub

    target = _cached_file(member)
    if target.is_file():
        return
    match = torch.hub.HASH_REGEX.search(target.name)
    hash_prefix = match.group(1) if match else None
    log.note(f"downloading {_enum_label(member)} to {target}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(member.url, str(target), hash_prefix, progress=progress)
    except (OSError, RuntimeError, ValueError) as e:  # URLError is an OSError; a bad hash is a RuntimeError
        raise WeightsError(
            f"could not download {_enum_label(member)} (offline?): pass --weights FILE (a local checkpoint) or --weights none"
        ) from e


def call_builder(entry: "ModelEntry", plan: WeightsPlan, *, num_classes: int, **kwargs: Any) -> "nn.Module":
    """Run the registered builder; unknown options become a ModelError, unreadable cached weights a WeightsError."""
    try:
        return entry.builder(num_classes=num_classes, weights=plan.detector, weights_backbone=plan.backbone, **kwargs)
    except TypeError as e:
        msg = str(e)
        if "unexpected keyword argument" in msg or "got multiple values for" in msg:
            bad = msg.split("argument", 1)[-1].strip()
            raise ModelError(f"{entry.name} does not accept option {bad}") from None
        raise
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:  # what torch.load raises for a bad file
        member = plan.enum_member
        if member is None:
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise WeightsError(
            f"cannot load {_enum_label(member)} from {_cached_file(member)}: {first}; delete the file to download it again"
        ) from None


def load_state_dict_strict(model: "nn.Module", state_dict: Mapping[str, "Tensor"], *, source: str, name: str) -> None:
    """``model.load_state_dict(strict=True)``; a mismatch → one-line CheckpointError naming the first bad keys."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError:
        pass
    else:
        return
    own = model.state_dict()
    ignore = ("num_batches_tracked",)  # BatchNorm fills it in; FrozenBatchNorm has none
    missing = [k for k in own if k not in state_dict and not k.endswith(ignore)]
    unexpected = [k for k in state_dict if k not in own and not k.endswith(ignore)]
    shapes = [
        f"{k} {list(state_dict[k].shape)} vs {list(own[k].shape)}"
        for k in own
        if k in state_dict and hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es), first {shapes[0]} (checkpoint vs model)")
    if missing:
        parts.append(f"{len(missing)} missing key(s), first {missing[0]}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s), first {unexpected[0]}")
    detail = "; ".join(parts) or "load_state_dict refused it"
    hint = ""
    if not missing and not unexpected and any("classification_head" in s or "cls_score" in s or "bbox_pred" in s
                                              for s in shapes):  # same architecture, other heads
        hint = " (different number of classes?)"
    raise CheckpointError(f"{source} does not fit {name}: {detail}{hint}")
