"""Arguments and helpers that several verbs share."""

from __future__ import annotations

import argparse


def add_model_args(p: argparse.ArgumentParser, *, required: bool = True, device: bool = True) -> None:
    """``--model``/``--weights`` (and the torch ``--device``): ``--weights none`` is the explicit way to random
    weights, so a forgotten ``--weights`` is an error, never a silently untrained model."""
    p.add_argument("--model", help="zoo name (optional when --weights is an edgedet checkpoint)")
    p.add_argument("--weights", required=required,
                   help="edgedet checkpoint FILE, default/ENUM (torchvision, needs network) or none (random weights)")
    if device:
        p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")



def add_backend_arg(p: argparse.ArgumentParser) -> None:
    """``--backend``, the same choices wherever an engine runs (the runtime's ``Detector`` backends)."""
    from edgedet.runtime.detector import BACKENDS

    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="auto: TensorRT for .plan/.engine, ONNX Runtime for .onnx; or onnxruntime, openvino (CPU), "
                        "tensorrt")


def unit_interval(text: str) -> float:
    """argparse type: a score threshold in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a count of at least 1 (batch sizes, iterations)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: 0 or more (worker processes, warm-up calls)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value
