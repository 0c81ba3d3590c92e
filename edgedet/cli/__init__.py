"""The ``edgedet`` command: one module per verb in this package.

A verb module defines ``HELP`` (one line), ``add_args(parser)`` and ``run(args) -> int`` and imports
its heavy dependencies inside ``run``; adding a verb is adding a file here. Errors a user can cause
(:class:`edgedet.errors.EdgedetError`) become one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from typing import Sequence

from edgedet import __version__
from edgedet.errors import EdgedetError


def _verb_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgedet", description="PyTorch detectors to the edge, with accuracy proof.")
    parser.add_argument("--version", action="version", version=f"edgedet {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for name in _verb_modules():
        mod = importlib.import_module(f"{__name__}.{name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_args(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        return int(args._run(args) or 0)
    except EdgedetError as e:
        print(f"edgedet {args.verb}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"edgedet {args.verb}: interrupted after {time.perf_counter() - start:.1f}s", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
