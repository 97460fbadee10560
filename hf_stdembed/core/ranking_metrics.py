"""How well a selector's scores rank candidates, judged by their true accuracies.

- :func:`kendall_tau` and :func:`weighted_tau`: rank agreement of scores with accuracies
  (``scipy.stats.kendalltau`` and ``scipy.stats.weightedtau``, hyperbolic weights, so that
  disagreements among the top-ranked candidates weigh most).
- :func:`top_k_gap`: Table 2's measure, the best accuracy of all candidates minus the best
  accuracy among the ``k`` highest-scoring ones (0 when the best is among them).
- :func:`expected_random_gap`: the same gap for ``k`` candidates drawn uniformly at random,
  in expectation (exact, no sampling).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def _stats() -> Any:
    try:
        from scipy import stats
    except ImportError as e:  # scipy comes with scikit-learn; the eval extra names it
        raise ImportError("rank agreement needs scipy: pip install 'hf-stdembed[eval]'") from e
    return stats


def _check(scores: Sequence[float], accuracies: Sequence[float]) -> None:
    if len(scores) != len(accuracies):
        raise ValueError(f"got {len(scores)} scores but {len(accuracies)} accuracies")
    if len(scores) == 0:
        raise ValueError("need at least one candidate")


def kendall_tau(scores: Sequence[float], accuracies: Sequence[float]) -> float:
    """Kendall's tau-b between scores and accuracies (NaN when either is constant).

    Example:
        >>> kendall_tau([1, 2, 3], [10, 20, 30])
        1.0
    """
    _check(scores, accuracies)
    return float(_stats().kendalltau(list(scores), list(accuracies)).statistic)


def weighted_tau(scores: Sequence[float], accuracies: Sequence[float]) -> float:
    """Weighted Kendall tau (Vigna 2015; ``scipy.stats.weightedtau`` defaults).

    Example:
        >>> weighted_tau([3, 2, 1], [30, 20, 10])
        1.0
    """
    _check(scores, accuracies)
    return float(_stats().weightedtau(list(scores), list(accuracies)).statistic)


def top_k_order(scores: Sequence[float]) -> list[int]:
    """Candidate indices by descending score (ties keep input order)."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def top_k_gap(scores: Sequence[float], accuracies: Sequence[float], k: int) -> float:
    """Best accuracy of all minus best accuracy among the top-``k`` scores (in accuracy units).

    Raises:
        ValueError: if ``k < 1`` or the lengths differ.

    Example:
        >>> top_k_gap([0.9, 0.5, 0.1], [70.0, 80.0, 75.0], 1)
        10.0
    """
    _check(scores, accuracies)
    if k < 1:
        raise ValueError(f"Invalid k value: {k} (must be >= 1)")
    chosen = top_k_order(scores)[:k]
    return float(max(accuracies) - max(accuracies[i] for i in chosen))


def expected_random_gap(accuracies: Sequence[float], k: int) -> float:
    """Expected top-``k`` gap of ``k`` candidates drawn uniformly without replacement.

    With accuracies sorted ascending ``a_1 <= ... <= a_m``, the best of the draw is ``a_j``
    with probability ``C(j-1, k-1) / C(m, k)``.

    Example:
        >>> expected_random_gap([70.0, 80.0, 75.0], 1)
        5.0
    """
    if k < 1:
        raise ValueError(f"Invalid k value: {k} (must be >= 1)")
    if not accuracies:
        raise ValueError("need at least one candidate")
    acc = sorted(accuracies)
    m = len(acc)
    k = min(k, m)
    total = math.comb(m, k)
    expected_best = sum(math.comb(j - 1, k - 1) * acc[j - 1] for j in range(k, m + 1)) / total
    return float(acc[-1] - expected_best)
