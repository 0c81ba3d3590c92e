"""``edgedet doctor``: what this machine can do, so a missing backend is found before an export fails."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "report what is installed: torch/CUDA, ONNX Runtime providers, TensorRT, OpenCV GUI/GStreamer, cameras"


def add_args(p: argparse.ArgumentParser) -> None:
    v.add(p, "json")
    v.add(p, "force")


def run(args: argparse.Namespace) -> int:
    from edgedet.cli._output import write_json
    from edgedet.doctor import collect

    report = collect()
    if args.json:
        write_json(args.json, report, force=args.force)
        if args.json == "-":
            return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="edgedet doctor")
    table.add_column("component")
    table.add_column("status")
    for key, value in report.items():
        table.add_row(key, value if isinstance(value, str) else ", ".join(map(str, value)) or "none")
    Console().print(table)
    return 0
