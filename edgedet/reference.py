"""The PyTorch reference predictor: the zoo model as torchvision runs it, behind the predictor interface.

Engines are judged against this, so it does nothing clever: RGB uint8 → float [0, 1] → the model's
own transform and post-processing → boxes in original-image pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgedet.errors import EdgedetError
from edgedet.runtime.detections import Detections


def select_device(device: str | None = None) -> "Any":
    """``None``/``auto`` → CUDA when available, else CPU; a CUDA request without CUDA is a user error."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EdgedetError(f"--device {device}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
    return dev


class TorchPredictor:
    """``predictor(list of RGB uint8 [H, W, 3]) -> list[Detections]`` for a torchvision detector."""

    def __init__(self, model: "Any", *, device: str | None = None, score_thresh: float | None = None) -> None:
        import torch

        self.device = select_device(device)
        self.model = model.to(self.device).eval()
        self.classes: list[str] = list(model.edgedet_classes)
        self.score_thresh = score_thresh
        self._torch = torch

    def __call__(self, images: list[np.ndarray]) -> list[Detections]:
        torch = self._torch
        tensors = [
            torch.from_numpy(np.ascontiguousarray(im)).to(self.device).permute(2, 0, 1).float().div_(255.0)
            for im in images
        ]
        with torch.no_grad():  # not inference_mode: IoU-Net's refinement re-enables autograd inside the model
            outputs = self.model(tensors)
        dets = []
        for out in outputs:
            det = Detections(
                out["boxes"].float().cpu().numpy().astype(np.float32),
                out["scores"].float().cpu().numpy().astype(np.float32),
                out["labels"].cpu().numpy().astype(np.int64) - 1,  # torchvision's 0 is background
            )
            dets.append(det.filter(self.score_thresh) if self.score_thresh else det)
        return dets


def load_reference(
    model: str | None, weights: str, *, device: str | None = None, score_thresh: float | None = None, **kwargs: Any
) -> TorchPredictor:
    """Build the zoo model with its weights; ``model`` may be None when ``weights`` is an edgedet checkpoint."""
    from edgedet.models import create_model

    if model is None:
        model = model_name_from_checkpoint(weights)
    return TorchPredictor(create_model(model, weights=weights, **kwargs), device=device, score_thresh=score_thresh)


def model_name_from_checkpoint(weights: str) -> str:
    """The zoo name an edgedet checkpoint records, for verbs where ``--model`` is optional."""
    from pathlib import Path

    from edgedet.checkpoint import load_checkpoint
    from edgedet.errors import CheckpointError

    path = Path(weights)
    if not path.is_file():
        if path.suffix in (".pt", ".pth", ".ckpt") or path.parent != Path("."):
            raise CheckpointError(f"checkpoint not found: {weights}")
        raise EdgedetError("--model is required unless --weights is an edgedet checkpoint")
    name = load_checkpoint(path).get("model")
    if not name:
        raise EdgedetError(f"{weights} does not record its model; pass --model NAME")
    return name
