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
