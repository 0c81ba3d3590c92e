"""``edgedet check``: judge an ONNX graph by the rules of TensorRT's ONNX parser (or a CPU runtime), without
TensorRT. ``export`` and ``build`` run the same check before they write anything."""

from __future__ import annotations

import argparse

HELP = "check an ONNX graph against what TensorRT 10.3/10.x/11.x (or a CPU runtime) accepts, naming each node"


def add_args(p: argparse.ArgumentParser) -> None:
    from edgedet.export.conformance import TARGETS

    p.add_argument("onnx", metavar="MODEL.onnx", help="an ONNX file (an edgedet export or any other)")
    p.add_argument("--target", choices=[*TARGETS, "tensorrt"],
                   help="trt10.3 (JetPack 6), trt10 (latest 10.x), trt11, cpu, or tensorrt (all three TensorRT "
                        "targets); default: the artifact's metadata, else trt10.3")
    p.add_argument("--json", metavar="FILE", help="also write the findings as JSON to FILE")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from edgedet import log
    from edgedet.export.conformance import check_file, expand_target
    from edgedet.fileio import atomic_write_json

    reports, target = check_file(args.onnx, args.target)
    console = Console(stderr=False)
    for rep in reports:
        if rep.findings:
            t = Table(title=f"{Path(args.onnx).name}: {rep.target}")
            for col in ("severity", "rule", "node", "op", "finding"):
                t.add_column(col, overflow="fold")
            for f in rep.findings:
                t.add_row(f.severity, f.rule, f.node, f.op, f.message)
            console.print(t)
    if args.json:
        atomic_write_json(args.json, {"onnx": str(args.onnx), "reports": [r.to_dict() for r in reports]})
    failed = [r for r in reports if not r.passed]
    nodes = reports[0].nodes
    errors, warnings = sum(len(r.errors) for r in reports), sum(len(r.warnings) for r in reports)
    verdict = "FAIL" if failed else "PASS"
    targets = ", ".join(expand_target(target))
    log.note(f"check: {verdict} {args.onnx} against {targets} ({nodes} nodes, {errors} errors, {warnings} warnings)")
    return 1 if failed else 0
