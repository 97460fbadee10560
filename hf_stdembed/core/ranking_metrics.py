"""How well a selector's scores rank candidates, judged by their true accuracies.

- :func:`kendall_tau` and :func:`weighted_tau`: rank agreement of scores with accuracies
  (``scipy.stats.kendalltau`` and ``scipy.stats.weightedtau``, hyperbolic weights, so that
  disagreements among the top-ranked candidates weigh most).
- :func:`top_k_gap`: Table 2's measure, the best accuracy of all candidates minus the best
  accuracy among the ``k`` highest-scoring ones (0 when the best is among them).
- :func:`expected_random_gap`: the same gap for ``k`` candidates drawn uniformly at random,
  in expectation (exact, no sampling).
- :func:`recall_curve`: recall@K for K = 1..m, whether a candidate within
  :data:`RECALL_TOLERANCE` points of the best is among the ``K`` highest scores (the measure
  of a shortlist); :func:`expected_random_recall` the same for a random draw, exact.
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


RECALL_TOLERANCE = 1.0
"""recall@K counts a hit when a model within this many accuracy points of the best is picked."""


def first_hit_rank(
    scores: Sequence[float], accuracies: Sequence[float], *, tolerance: float = RECALL_TOLERANCE
) -> int:
    """The 1-based rank, in descending score order, of the first candidate whose accuracy is
    within ``tolerance`` of the best: recall@K is 1 for every ``K`` at or above it.

    Example:
        >>> first_hit_rank([0.9, 0.5, 0.1], [70.0, 79.5, 80.0])
        2
    """
    _check(scores, accuracies)
    if tolerance < 0:
        raise ValueError(f"Invalid tolerance value: {tolerance} (must be >= 0)")
    best = max(accuracies)
    for rank, i in enumerate(top_k_order(scores), start=1):
        if accuracies[i] >= best - tolerance:
            return rank
    raise AssertionError("unreachable: the best candidate is within tolerance of itself")


def recall_curve(
    scores: Sequence[float], accuracies: Sequence[float], *, tolerance: float = RECALL_TOLERANCE
) -> list[float]:
    """recall@K for ``K = 1..m`` on one task: 1.0 when a candidate within ``tolerance`` points
    of the best is among the ``K`` highest scores, else 0.0 (ties in score keep pool order,
    as :func:`top_k_order`).

    Example:
        >>> recall_curve([0.9, 0.5, 0.1], [70.0, 79.5, 80.0])
        [0.0, 1.0, 1.0]
    """
    rank = first_hit_rank(scores, accuracies, tolerance=tolerance)
    return [1.0 if k >= rank else 0.0 for k in range(1, len(scores) + 1)]


def expected_random_recall(
    accuracies: Sequence[float], *, tolerance: float = RECALL_TOLERANCE
) -> list[float]:
    """recall@K for ``K = 1..m`` of ``K`` candidates drawn uniformly without replacement, in
    expectation: ``1 - C(m - g, K) / C(m, K)`` with ``g`` candidates within ``tolerance``.

    Example:
        >>> expected_random_recall([70.0, 80.0, 75.0, 60.0])
        [0.25, 0.5, 0.75, 1.0]
    """
    if not accuracies:
        raise ValueError("need at least one candidate")
    m = len(accuracies)
    best = max(accuracies)
    g = sum(1 for a in accuracies if a >= best - tolerance)
    return [1.0 - math.comb(m - g, k) / math.comb(m, k) for k in range(1, m + 1)]
