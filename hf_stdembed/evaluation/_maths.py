"""Small sums of the evaluation's figures, NaN-aware."""

from __future__ import annotations

import math
from collections.abc import Callable


def nan_mean(values: list[float]) -> float:
    """The mean of the values that are not NaN; NaN when none is."""
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def nan_safe(
    fn: Callable[[list[float], list[float]], float], scores: list[float], acc: list[float]
) -> float:
    """``fn(scores, acc)``, or NaN when either holds fewer than two distinct values."""
    if len(set(scores)) < 2 or len(set(acc)) < 2:
        return math.nan
    return fn(scores, acc)


def interval_text(mean: float, interval: list[float]) -> str:
    """A table cell: ``mean [low, high]``, the mean alone for a point, ``n/a`` for NaN."""
    low, high = interval
    if math.isnan(mean):
        return "n/a"
    if low == high == mean:
        return f"{mean:.2f}"
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"
