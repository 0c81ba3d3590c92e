"""Arguments and helpers that several verbs share."""

from __future__ import annotations

import argparse


def add_model_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--model", help="zoo name (optional when --weights is an edgedet checkpoint)")
    p.add_argument("--weights", required=required, help="edgedet checkpoint FILE, default/ENUM (torchvision, needs network) or none")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")

