"""``edgedet check``: judge an ONNX graph by the rules of TensorRT's ONNX parser (or a CPU runtime), without
TensorRT. ``export`` and ``build`` run the same check before they write anything."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "check an ONNX graph against what TensorRT 10.3/10.x/11.x (or a CPU runtime) accepts, naming each node"


def _target(text: str) -> str:
    from edgedet.export.conformance import is_trt_target, table_for_target

    if text in ("cpu", "tensorrt"):
        return text
    if not is_trt_target(text):
        raise argparse.ArgumentTypeError(f"expected trt10.3, trt10, trt11, trtMAJOR.MINOR, cpu or tensorrt, not {text!r}")
    try:
        table_for_target(text)
    except Exception as e:  # noqa: BLE001 - EdgedetError: a version older than every table
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_args(p: argparse.ArgumentParser) -> None:
    v.add_engine_positional(p)
    p.add_argument("--target", type=_target,
                   help="trt10.3 (JetPack 6), trt10 (latest 10.x), trt11, any trtMAJOR.MINOR (judged by the nearest "
                        "parser table at or below it), cpu, or tensorrt (the three tables); default: the artifact's "
                        "metadata, else trt10.3")
    v.add(p, "json", detail="the findings")
    v.add(p, "force")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from edgedet import log
    from edgedet.export.conformance import check_file
    from edgedet.cli._output import write_json

    onnx_path = v.resolve_engine_positional(args)
    reports, target = check_file(onnx_path, args.target)
    console = Console(stderr=args.json == "-")  # JSON on stdout: the tables go to stderr
    for rep in reports:
        if rep.findings:
            t = Table(title=f"{Path(onnx_path).name}: {rep.target}")
            for col in ("severity", "rule", "node", "op", "finding"):
                t.add_column(col, overflow="fold")
            for f in rep.findings:
                t.add_row(f.severity, f.rule, f.node, f.op, f.message)
            console.print(t)
    if args.json:
        write_json(args.json, {"onnx": str(onnx_path), "reports": [r.to_dict() for r in reports]}, force=args.force)
    failed = [r for r in reports if not r.passed]
    nodes = reports[0].nodes
    errors, warnings = sum(len(r.errors) for r in reports), sum(len(r.warnings) for r in reports)
    verdict = "FAIL" if failed else "PASS"
    targets = ", ".join(f"{r.target} (table of TensorRT {r.table.split(':')[0].removeprefix('TensorRT ')})"
                        if r.table else r.target for r in reports)
    log.note(f"check: {verdict} {onnx_path} against {targets} ({nodes} nodes, {errors} errors, {warnings} warnings)")
    return 1 if failed else 0
