"""Training configuration: a preset (JSON data) with command-line overrides on top.

Presets are data, not code branches: a recipe such as torchvision's SSDlite one is a file in
``presets/``; only options the user actually sets override it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from typing import Any

from edgedet.errors import EdgedetError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("cosine", "step")


@dataclass
class TrainConfig:
    model: str
    data: str
    images: str | None = None
    val_data: str | None = None
    val_images: str | None = None
    weights: str = "none"
    out: str = "runs/train"
    preset: str = "default"
    optimizer: str = "sgd"
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    warmup_iters: int = 100
    milestones: list[int] = field(default_factory=lambda: [16, 22])  # epochs, for scheduler "step"
    gamma: float = 0.1
    batch: int = 8
    epochs: int = 26
    augment: str = "hflip"
    clip_grad: float | None = 10.0
    amp: bool = True  # CUDA only; ignored on the CPU
    device: str | None = None
    workers: int | None = None
    seed: int = 0
    eval_every: int = 1
    # Stop after the first evaluated epoch whose val AP50 reaches this; ``epochs`` is then the cap. Training to a
    # quality target, not for a fixed count, is what keeps a recipe's result the same across CPUs and GPUs, whose
    # kernels change the training path.
    target_ap50: float | None = None
    sync_bn: bool = False
    on_bad_image: str = "skip"
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "TrainConfig":
        from edgedet.models import get_model_entry

        get_model_entry(self.model)  # unknown names fail before any data is read
        if self.optimizer not in OPTIMIZERS:
            raise EdgedetError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise EdgedetError(f"scheduler must be one of {', '.join(SCHEDULERS)}, not {self.scheduler!r}")
        for name in ("epochs", "batch"):
            if getattr(self, name) < 1:
                raise EdgedetError(f"--{name} must be at least 1")
        if self.lr <= 0:
            raise EdgedetError("--lr must be positive")
        if self.target_ap50 is not None:
            if not 0 < self.target_ap50 <= 1:
                raise EdgedetError(f"--target-ap50 must be in (0, 1], not {self.target_ap50}")
            if not self.val_data:
                raise EdgedetError("--target-ap50 needs --val-data (it is measured on the validation split)")
        from edgedet.train.augment import AUGMENTATIONS

        if self.augment not in AUGMENTATIONS:
            raise EdgedetError(f"augment must be one of {', '.join(AUGMENTATIONS)}, not {self.augment!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resume_config(saved: dict[str, Any] | None, *, source: str, **overrides: Any) -> TrainConfig:
    """The recipe a checkpoint was trained with (its ``config``), with only the options given now on top.

    Resuming must continue the same run: rebuilding from the ``default`` preset instead changed the
    optimizer under a restored optimizer state (``KeyError: 'momentum'`` for AdamW runs) and dropped the
    validation data, so resumed epochs were never evaluated.
    """
    if not isinstance(saved, dict) or "model" not in saved:
        raise EdgedetError(f"{source} records no training recipe (not written by edgedet train); start a new run "
                           f"with --weights {source}")
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in saved.items() if k in known}
    values.update({k: v for k, v in overrides.items() if v is not None and k in known})
    return TrainConfig(**values).validate()


def list_presets() -> list[str]:
    files = resources.files("edgedet.train").joinpath("presets").iterdir()
    return sorted(p.name[:-5] for p in files if p.name.endswith(".json"))


def load_preset(name: str) -> dict[str, Any]:
    path = resources.files("edgedet.train").joinpath("presets", f"{name}.json")
    if not path.is_file():
        raise EdgedetError(f"unknown preset {name!r}; presets: {', '.join(list_presets())}")
    values = json.loads(path.read_text())
    values.pop("description", None)
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        raise EdgedetError(f"preset {name} sets unknown options: {', '.join(sorted(unknown))}")
    return values


def make_config(*, model: str, data: str, preset: str = "default", **overrides: Any) -> TrainConfig:
    """Preset values, then every override that is not None."""
    values = load_preset(preset)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(model=model, data=data, preset=preset, **values).validate()
