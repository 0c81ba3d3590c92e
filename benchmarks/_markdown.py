"""Markdown for docs/performance.md, written by the benchmarks themselves.

The page's rule: a measured table is printed by the benchmark that measured it (``--markdown``) and pasted as
it is, never copied or reshaped by hand, so a figure in the docs is always one a script computed. This module
holds what several benchmarks would otherwise each write their own way: the table itself and the
"median × (min–max)" ratio text of the interleaved benchmarks (``_interleave.py``), so two tables cannot drift
apart in how they write the same kind of figure. Formats that only one table uses stay in its benchmark.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

#: A column's alignment → its separator cell. None is the renderer's default (left in GitHub's).
SEPARATORS = {None: "---", "left": ":---", "right": "---:", "center": ":---:"}


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: Sequence[str | None] | None = None) -> str:
    """A GitHub-flavoured markdown table: the header, the separator and one line per row, without a final newline.

    Cells are ``str()``-ed; a ``|`` inside a cell is escaped, since it would otherwise end the cell and shift
    every later column. ``align`` gives one of None, "left", "right", "center" per column (default: all None).
    A row with another number of cells than the header is refused: markdown would render it, misaligned.
    """
    align = list(align) if align is not None else [None] * len(headers)
    if len(align) != len(headers):
        raise ValueError(f"{len(align)} alignments for {len(headers)} columns")
    lines = [_line(headers), "|" + "|".join(SEPARATORS[a] for a in align) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"a row of {len(row)} cells in a table of {len(headers)} columns: {row!r}")
        lines.append(_line(row))
    return "\n".join(lines)


def _line(cells: Sequence[object]) -> str:
    """``| a | b |``; an empty cell is ``| |``, as the hand-written tables of the docs have it."""
    texts = (str(c).replace("|", r"\|") for c in cells)
    return "|" + "|".join(f" {t} " if t else " " for t in texts) + "|"


def bold(text: str, on: bool = True) -> str:
    """``**text**`` when ``on`` (and the text is not empty: ``****`` is not emphasis), else the text as it is. The
    tables bold a figure that meets (or misses) a target their docs discuss; the rule is each benchmark's own."""
    return f"**{text}**" if on and text else text


def ratio(per_round: Sequence[float], digits: int = 2, *, emphasis: bool = False) -> str:
    """``1.43× (1.41–1.78)``: the median of per-round ratios, then their min–max spread, which is how every
    interleaved benchmark reports a ratio (a slow spell hits all variants of a round alike, the spread shows
    how far to trust the median). ``emphasis`` bolds the median only, the spread stays plain."""
    med = statistics.median(per_round)
    return f"{bold(f'{med:.{digits}f}×', emphasis)} ({min(per_round):.{digits}f}–{max(per_round):.{digits}f})"
