"""Timing that survives a noisy machine: variants interleaved round by round (A B C, A B C, …), each round's
median per variant, and ratios reported as the median of per-round ratios with their spread.

A slow spell on a shared machine then hits every variant of that round alike, and the ratio of the round
stays honest; the spread (min–max of the per-round ratios) shows how much to trust it.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import _markdown


@dataclass
class Timings:
    """Per-round median milliseconds of each variant, in the order they ran."""

    rounds: dict[str, list[float]] = field(default_factory=dict)

    def median_ms(self, name: str) -> float:
        return statistics.median(self.rounds[name])

    def per_round(self, slow: str, fast: str) -> list[float]:
        """``slow / fast`` in each round."""
        return [a / b for a, b in zip(self.rounds[slow], self.rounds[fast])]

    def ratio(self, slow: str, fast: str) -> tuple[float, float, float]:
        """``slow / fast`` per round: (median, min, max)."""
        per_round = self.per_round(slow, fast)
        return statistics.median(per_round), min(per_round), max(per_round)

    def ratio_text(self, slow: str, fast: str, digits: int = 2, *, emphasis: bool = False) -> str:
        """``1.43× (1.41–1.78)``, written by ``_markdown.ratio`` so that plain and markdown tables agree."""
        return _markdown.ratio(self.per_round(slow, fast), digits, emphasis=emphasis)


def interleave(variants: dict[str, Callable[[], object]], *, rounds: int = 7, iters: int = 10,
               warmup: int = 3) -> Timings:
    """Run every variant ``warmup`` times, then ``rounds`` rounds of ``iters`` timed calls each, variant after
    variant within a round."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    out = Timings({name: [] for name in variants})
    for _ in range(rounds):
        for name, fn in variants.items():
            times = []
            for _ in range(iters):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1000.0)
            out.rounds[name].append(statistics.median(times))
    return out
