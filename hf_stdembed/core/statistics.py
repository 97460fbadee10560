"""Intervals over repeated splits: a seeded percentile bootstrap of the mean, and ties.

The unit resampled is the split: a benchmark figure (a gap, a tau, a recall, an accuracy) is
measured once per seeded train/test split, and the figure reported is the mean over splits
with a 95 % percentile bootstrap interval (Efron & Tibshirani 1993, Section 13.3):

    m_b = mean(x_{i_1}, ..., x_{i_n}),   i_j ~ U{1..n} i.i.d., b = 1..B
    interval = [q_{(1-c)/2}(m_1..m_B), q_{(1+c)/2}(m_1..m_B)]

Two figures measured on the same splits are compared by the interval of their paired
differences ``a_s - b_s``: when it contains 0 the difference is a tie (:func:`tied_with_best`).
With a handful of splits the percentile interval is narrow (it is no wider than the range of
the values); it says how much the figure moves with the split, not more. NaN values (an
undefined tau on a constant ranking) are left out before resampling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over splits with its bootstrap interval (``n``: values used, NaNs left out)."""

    mean: float
    low: float
    high: float
    n: int

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside ``[low, high]`` (an empty interval holds nothing)."""
        return self.n > 0 and self.low <= value <= self.high

    def as_list(self) -> list[float]:
        """``[low, high]`` (for JSON)."""
        return [self.low, self.high]


def bootstrap_mean(
    values: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The mean of ``values`` with a seeded percentile bootstrap interval.

    Args:
        values: one figure per split; NaNs are left out.
        confidence: coverage of the interval, in ``(0, 1)``.
        resamples: bootstrap resamples ``B``.
        seed: seed of the resampling (the same values and seed give the same interval).

    Returns:
        The mean and interval; NaNs with ``n = 0`` when no value is left, ``low = high = mean``
        for a single value.

    Raises:
        ValueError: ``confidence`` outside ``(0, 1)`` or ``resamples`` below 1.

    Example:
        >>> bootstrap_mean([2.0, 2.0, 2.0])
        Interval(mean=2.0, low=2.0, high=2.0, n=3)
    """
    _check(confidence, resamples)
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if len(x) == 1 or np.all(x == x[0]):
        return Interval(mean, mean, mean, len(x))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    # keep the mean inside its own interval despite float rounding of the quantiles
    return Interval(mean, min(float(low), mean), max(float(high), mean), len(x))


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The bootstrap interval of the mean of ``a_s - b_s`` over the splits ``s`` (pairs with a
    NaN are left out).

    Raises:
        ValueError: the sequences differ in length (they must be measured on the same splits).

    Example:
        >>> paired_difference([3.0, 5.0], [2.0, 4.0])
        Interval(mean=1.0, low=1.0, high=1.0, n=2)
    """
    if len(a) != len(b):
        raise ValueError(f"paired values need the same splits: got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    return bootstrap_mean(diffs, confidence=confidence, resamples=resamples, seed=seed)


def tied_with_best(
    per_split: Mapping[str, Sequence[float]],
    *,
    lower_is_better: bool = True,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, bool]:
    """Which entries are tied with the best one: the interval of their paired difference to
    the best (by mean over splits) contains 0. The best itself is tied with itself.

    Args:
        per_split: name -> one value per split (the same splits for every name).
        lower_is_better: True for gaps, False for taus and recalls.

    Returns:
        name -> tied with the best; every entry False when no entry has a value.

    Example:
        >>> tied_with_best({"a": [1.0, 2.0], "b": [1.0, 2.0], "c": [5.0, 6.0]})
        {'a': True, 'b': True, 'c': False}
    """
    means = {k: bootstrap_mean(v, resamples=1).mean for k, v in per_split.items()}
    valid = {k: m for k, m in means.items() if not math.isnan(m)}
    if not valid:
        return dict.fromkeys(per_split, False)
    pick = min if lower_is_better else max
    best = pick(valid, key=valid.__getitem__)
    out = {}
    for name, values in per_split.items():
        if name not in valid:
            out[name] = False
            continue
        diff = paired_difference(
            values, per_split[best], confidence=confidence, resamples=resamples, seed=seed
        )
        out[name] = diff.contains(0.0)
    return out


def _check(confidence: float, resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"Invalid confidence value: {confidence} (must be in (0, 1))")
    if resamples < 1:
        raise ValueError(f"Invalid resamples value: {resamples} (must be >= 1)")
