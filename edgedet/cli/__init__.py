"""The ``edgedet`` command: one module per verb in this package.

A verb module defines ``HELP`` (one line), ``add_args(parser)`` and ``run(args) -> int`` and imports
its heavy dependencies inside ``run``; adding a verb is adding a file here. Errors a user can cause
(:class:`edgedet.errors.EdgedetError`) become one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import pkgutil
import re
import sys
import time
from typing import NoReturn, Sequence

from edgedet import __version__, log
from edgedet.cli import _vocabulary
from edgedet.errors import EdgedetError


class _Parser(argparse.ArgumentParser):
    """argparse with edgedet's error convention: one line on stderr, exit 1, the closest valid spelling
    suggested for a mistyped choice, verb or option (argparse itself prints a usage block and exits 2)."""

    def error(self, message: str) -> NoReturn:
        hint = _suggestion(self, message)
        self.exit(1, f"{self.prog}: error: {message}{hint}\n")


def _suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        options = re.findall(r"'([^']*)'", choice.group(2)) or [c.strip() for c in choice.group(2).split(",")]
        close = difflib.get_close_matches(choice.group(1), options, n=1)
        return f"; did you mean {close[0]!r}?" if close else ""
    unknown = re.search(r"unrecognized arguments: (\S+)", message)
    if unknown and unknown.group(1).startswith("-"):
        flags = [f for f in parser._option_string_actions if f.startswith("--")]  # noqa: SLF001 - argparse has no API
        close = difflib.get_close_matches(unknown.group(1).split("=")[0], flags, n=1)
        return f"; did you mean {close[0]}?" if close else ""
    return ""


def _verb_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgedet", description="PyTorch detectors to the edge, with accuracy proof.")
    parser.add_argument("--version", action="version", version=f"edgedet {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for name in _verb_modules():
        mod = importlib.import_module(f"{__name__}.{name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_args(p)
        _vocabulary.add(p, "verbose")
        p.set_defaults(_run=mod.run, _parser=p)
    return parser


#: what the ``torch`` extra adds to the runtime-only base install
TORCH_SIDE = {"torch", "torchvision", "onnxscript", "onnxconverter_common", "matplotlib"}
TORCH_INSTALL = 'pip install -e ".[torch]" -c constraints.txt (on a Jetson: JetPack\'s torch, then --no-deps)'


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if extra:  # reported by the verb's own parser, which knows the flags to suggest
        args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    log.set_verbose(args.verbose)
    start = time.perf_counter()
    try:
        return int(args._run(args) or 0)
    except EdgedetError as e:
        print(f"edgedet {args.verb}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a read-only folder, a full disk, a directory where a file goes: the OS's reason
        where = f": {e.filename}" if e.filename else ""
        print(f"edgedet {args.verb}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:  # a runtime-only install: the verb needs the PyTorch side
        if (e.name or "").split(".")[0] not in TORCH_SIDE:
            raise
        print(f"edgedet {args.verb}: error: this verb needs PyTorch ({e.name} is not installed); from edgedet's "
              f"clone: {TORCH_INSTALL}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"edgedet {args.verb}: interrupted after {time.perf_counter() - start:.1f}s", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
