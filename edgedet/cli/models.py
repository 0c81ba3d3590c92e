"""``edgedet models [PATTERN]``: list the model zoo with input size, parameters and GFLOPs.

Numbers are measured (see :mod:`edgedet.models.info`) and cached per torch version, so the first
run builds every listed model once (about a minute for the whole zoo on two CPU cores) and later
runs are instant. ``--no-flops`` skips the forward passes.
"""

from __future__ import annotations

import argparse

HELP = "list the model zoo: name, family, input size, parameters, GFLOPs"


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", metavar="PATTERN",
                        help="fnmatch wildcard on model names, e.g. 'fasterrcnn_*' (default: all)")
    parser.add_argument("--family", choices=("ssd", "fasterrcnn"), help="only this family")
    parser.add_argument("--no-flops", action="store_true",
                        help="skip measuring GFLOPs (one forward per model); parameters are still counted")
    parser.add_argument("--no-cache", action="store_true", help="measure again instead of reading the cache")
    parser.add_argument("-l", "--long", action="store_true", help="add each model's description")


def run(args: argparse.Namespace) -> int:
    import time

    from rich import box
    from rich.console import Console
    from rich.table import Table

    from edgedet import log
    from edgedet.errors import ModelError
    from edgedet.models import get_model_entry, list_models

    names = list_models(args.pattern, family=args.family)
    if not names:
        every = list_models()
        import difflib

        close = difflib.get_close_matches(args.pattern, every, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"{len(every)} models exist; run `edgedet models` to list them"
        where = f" in family {args.family}" if args.family else ""
        raise ModelError(f"no model matches {args.pattern!r}{where}: {hint}")

    from edgedet.models.info import cache_dir, is_cached, model_stats

    todo = [n for n in names if args.no_cache or not is_cached(n, flops=not args.no_flops)]
    if todo:  # building and tracing models takes seconds each: say so before the wait
        what = "parameters" if args.no_flops else "parameters and GFLOPs (--no-flops skips GFLOPs)"
        log.note(f"models: measuring {what} of {len(todo)} model(s); cached in {cache_dir()} afterwards")
    start = time.perf_counter()
    stats = []
    with _progress(len(names)) as advance:
        for name in names:
            stats.append(model_stats(name, flops=not args.no_flops, use_cache=not args.no_cache))
            advance(name)
    elapsed = time.perf_counter() - start

    table = Table(header_style="bold", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("input", justify="right", no_wrap=True)
    table.add_column("params (M)", justify="right", no_wrap=True)
    table.add_column("GFLOPs", justify="right", no_wrap=True)
    table.add_column("pretrained", no_wrap=True)
    if args.long:
        table.add_column("description")
    for s in stats:
        entry = get_model_entry(s.name)
        row = [
            s.name,
            s.family,
            f"{s.input_size[0]}x{s.input_size[1]}",
            f"{s.params_m:.2f}",
            "-" if s.gflops is None else f"{s.gflops:.2f}",
            entry.pretrained,
        ]
        if args.long:
            row.append(entry.description)
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped or captured: never truncate names to rich's default 80 columns
    console.print(table)
    log.note(f"{len(stats)} model(s) in {elapsed:.1f}s (measurements cached in {cache_dir()})")
    return 0


class _progress:
    """A transient progress bar on stderr while models are built (tqdm, as everywhere in edgedet); no bar when
    stderr is not a terminal."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __enter__(self):
        from tqdm import tqdm

        self._bar = tqdm(total=self.total, desc="measuring", unit="model", disable=None, leave=False)

        def advance(name: str) -> None:
            self._bar.set_postfix_str(name, refresh=False)
            self._bar.update(1)

        return advance

    def __exit__(self, *exc) -> None:
        self._bar.close()
