"""Two-stage selection as pure functions: a shortlist merged from several stage-1 orders, and
the final order once stage 2 has scored (some of) the shortlist.

Stage 1 ranks every candidate by one or more O(1) scores (e.g. the plain fuzzy intersection
and the model-normalised ``I / |v|``: complementary, since the first favours wide models and
the second narrow ones). One score alone keeps the same blind spot at any K; the top of each
reaches the shortlist when they are merged:

- ``round-robin``: the best of each order in turn, then the second of each, ... (skipping a
  candidate already taken) until K are taken;
- ``quotas``: per-score quotas first (e.g. 2 from A, 2 from B, 1 from C), taken interleaved
  (A, B, C, A, B: a round-robin over the scores with quota left), then round-robin;
- ``first-score``: the first order alone (the single-score shortlist, a reference).

Each rule's shortlist of K is the first K of its shortlist of K + 1, so one merged order gives
the whole curve of quality against K (:func:`shortlist_curve`). Named stage-1 configurations
(:data:`STAGE1_CONFIGS`: which scores, which rule) are what the evaluation compares.

Stage 2 (e.g. LogME on the task's features) scores the shortlisted candidates it can; see
:func:`two_stage_order` for where the others go.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .ranking_metrics import RECALL_TOLERANCE, weighted_tau

MERGE_RULES = ("round-robin", "quotas", "first-score")
"""Named rules that merge several stage-1 orders into one shortlist."""


@dataclass(frozen=True)
class Stage1Config:
    """A named stage-1 configuration: the scores whose orders are merged, and how."""

    scores: tuple[str, ...]
    rule: str = "round-robin"
    quotas: tuple[int, ...] = ()  # per score, for rule "quotas"

    def __post_init__(self) -> None:
        if not self.scores:
            raise ValueError("a stage-1 configuration needs at least one score")
        _check_rule(self.rule, self.quotas, len(self.scores))


def _check_rule(rule: str, quotas: Sequence[int], num_orders: int) -> None:
    if rule not in MERGE_RULES:
        raise ValueError(f"unknown merge rule {rule!r}; choose one of {', '.join(MERGE_RULES)}")
    if rule == "quotas":
        if len(quotas) != num_orders or any(q < 0 for q in quotas):
            raise ValueError(
                f"Invalid quotas value: {tuple(quotas)} (need one count >= 0 per stage-1 "
                f"score, {num_orders})"
            )
    elif quotas:
        raise ValueError(f"quotas only go with the 'quotas' rule, not {rule!r}")


STAGE1_CONFIGS: dict[str, Stage1Config] = {
    "faithful+normalised": Stage1Config(("faithful", "normalised")),
    "centred+centred-normalised": Stage1Config(("centred", "centred+normalised")),
    "faithful+normalised+centred+centred-normalised": Stage1Config(
        ("faithful", "normalised", "centred", "centred+normalised")
    ),
    "r2+r2-normalised": Stage1Config(("r2", "r2+normalised")),
    "r2+r2-normalised+beyond-baseline": Stage1Config(("r2", "r2+normalised", "beyond-baseline")),
    "union-r2+union-r2-normalised": Stage1Config(("union-r2", "union-r2+normalised")),
    "centred+centred-normalised+beyond-baseline:quotas-2-2-1": Stage1Config(
        ("centred", "centred+normalised", "beyond-baseline"), rule="quotas", quotas=(2, 2, 1)
    ),
    "faithful+normalised+r2+r2-normalised": Stage1Config(
        ("faithful", "normalised", "r2", "r2+normalised")
    ),
    "faithful+normalised+beyond-baseline": Stage1Config(
        ("faithful", "normalised", "beyond-baseline")
    ),
    "faithful+normalised+beyond-baseline:quotas-2-2-1": Stage1Config(
        ("faithful", "normalised", "beyond-baseline"), rule="quotas", quotas=(2, 2, 1)
    ),
    "faithful+normalised+fidelity": Stage1Config(("faithful", "normalised", "fidelity")),
    "faithful+normalised+declared": Stage1Config(("faithful", "normalised", "declared")),
    "r2+r2-normalised+declared": Stage1Config(("r2", "r2+normalised", "declared")),
    "union-r2+union-r2-normalised+declared": Stage1Config(
        ("union-r2", "union-r2+normalised", "declared")
    ),
    "faithful:first-score": Stage1Config(("faithful",), rule="first-score"),
    "r2:first-score": Stage1Config(("r2",), rule="first-score"),
}
"""Stage-1 configurations the evaluation reports (each where its scores exist):
``faithful+normalised`` is ``select --rerank``'s default; ``faithful:first-score`` the
single-score reference; the others named options under test. ``declared`` is a partial
order: the candidates whose card declares the task's dataset (see
:mod:`hf_stdembed.core.declared`), in the first score's order."""


def merge_shortlist(
    orders: Sequence[Sequence[int]],
    k: int,
    *,
    rule: str = "round-robin",
    quotas: Sequence[int] = (),
) -> list[int]:
    """A shortlist of at most ``k`` distinct candidates from several stage-1 orders: the
    candidates of :func:`merge_shortlist_sources`, in the order they were taken.

    Example:
        >>> merge_shortlist([[0, 1, 2, 3], [3, 2, 1, 0]], 3)
        [0, 3, 1]
        >>> merge_shortlist([[0, 1, 2, 3], [3, 2, 1, 0]], 3, rule="quotas", quotas=(0, 2))
        [3, 2, 0]
    """
    return [c for c, _ in merge_shortlist_sources(orders, k, rule=rule, quotas=quotas)]


def merge_shortlist_sources(
    orders: Sequence[Sequence[int]],
    k: int,
    *,
    rule: str = "round-robin",
    quotas: Sequence[int] = (),
) -> list[tuple[int, int]]:
    """A shortlist of at most ``k`` distinct candidates from several stage-1 orders, each
    with the index of the order that took it.

    Args:
        orders: per stage-1 score, candidate indices best first (each a permutation of the
            same candidates, or a prefix of one).
        k: the shortlist's size (fewer when the orders hold fewer candidates).
        rule: one of :data:`MERGE_RULES`.
        quotas: for ``quotas``, per order how many to take before the round-robin.

    Returns:
        ``(candidate, order)`` pairs in shortlist order: the order they were taken in.

    Raises:
        ValueError: on an unknown ``rule``, a negative ``k``, no order, or quotas that do
            not fit the rule or the orders.

    Example:
        >>> merge_shortlist_sources([[0, 1, 2, 3], [3, 2, 1, 0]], 3)
        [(0, 0), (3, 1), (1, 0)]
    """
    if k < 0:
        raise ValueError(f"Invalid k value: {k}")
    if not orders:
        raise ValueError("need at least one stage-1 order")
    _check_rule(rule, quotas, len(orders))
    if rule == "first-score":
        orders = orders[:1]
    taken: list[tuple[int, int]] = []
    seen: set[int] = set()
    cursors = [0] * len(orders)

    def take(s: int) -> bool:
        order = orders[s]
        while cursors[s] < len(order) and order[cursors[s]] in seen:
            cursors[s] += 1
        if cursors[s] >= len(order) or len(taken) >= k:
            return False
        taken.append((order[cursors[s]], s))
        seen.add(order[cursors[s]])
        cursors[s] += 1
        return True

    left = list(quotas) if rule == "quotas" else [0] * len(orders)
    while len(taken) < k and any(left):  # the quotas, interleaved
        for s in range(len(orders)):
            if left[s] > 0:
                left[s] = left[s] - 1 if take(s) else 0
    while len(taken) < k:  # then round-robin
        if not any([take(s) for s in range(len(orders))]):
            break
    return taken


def two_stage_order(
    shortlist: Sequence[int],
    stage2: Mapping[int, float],
    *,
    demoted: frozenset[int] | set[int] = frozenset(),
) -> list[int]:
    """The final order of a shortlist once stage 2 has scored some of it.

    Candidates stage 2 scored fill, best score first (ties: shortlist order), every
    shortlist place except those of the candidates it could not score, which keep their
    stage-1 place. A ``demoted`` candidate (e.g. a plausibility-flagged one) that stage 2
    could not score keeps no place: it goes after every scored candidate, so only stage 2
    can put it high.

    Args:
        shortlist: candidate indices in shortlist (stage-1) order.
        stage2: stage-2 score of each candidate it scored (higher is better).
        demoted: candidates whose stage-1 place is not kept when stage 2 did not score them.

    Returns:
        The shortlist's candidates, final order.

    Example:
        >>> two_stage_order([7, 8, 9], {8: 0.1, 9: 0.5})  # 7 not scored: keeps place 1
        [7, 9, 8]
        >>> two_stage_order([7, 8, 9], {8: 0.1, 9: 0.5}, demoted={7})
        [9, 8, 7]
    """
    scored = sorted((c for c in shortlist if c in stage2), key=lambda c: -stage2[c])
    kept = [c for c in shortlist if c not in stage2 and c not in demoted]
    last = [c for c in shortlist if c not in stage2 and c in demoted]
    places = [c if c in kept else None for c in shortlist if c not in last]
    fill = iter(scored)
    return [c if c is not None else next(fill) for c in places] + last


def stage1_orders(stage1: Sequence[Sequence[float]]) -> list[list[int]]:
    """Each stage-1 score's order of the candidates, best first.

    A NaN score leaves the candidate out of that order (a partial order, e.g. ``declared``:
    only the candidates whose card declares the task's dataset). Ties, e.g. between
    candidates of the same declared score, follow the first score's order, then pool order.

    Example:
        >>> stage1_orders([[0.2, 0.9, 0.5], [1.0, float("nan"), 1.0]])
        [[1, 2, 0], [2, 0]]
    """
    first = stage1[0]
    rank = {i: r for r, i in enumerate(sorted(range(len(first)), key=lambda i: -first[i]))}
    return [
        sorted((i for i in range(len(s)) if s[i] == s[i]), key=lambda i, s=s: (-s[i], rank[i]))
        for s in stage1
    ]


def two_stage_scores(
    stage1: Sequence[Sequence[float]],
    stage2: Sequence[float],
    k: int,
    *,
    rule: str = "round-robin",
    quotas: Sequence[int] = (),
) -> list[float]:
    """Scores of a two-stage selector over a pool: higher is picked first.

    The shortlist of ``k`` merged from the stage-1 scores' orders (ties: pool order) comes
    first, ordered by ``stage2`` (a NaN stage-2 score counts as not scored: the candidate
    keeps its shortlist place); the rest follow in the first stage-1 score's order.

    Args:
        stage1: per stage-1 score, one score per candidate (NaN: not in that score's order;
            the first score must rank every candidate).
        stage2: one stage-2 score per candidate (only the shortlisted ones are read).
        k: the shortlist size.
        rule: one of :data:`MERGE_RULES`.
        quotas: for ``quotas``, per stage-1 score.

    Returns:
        ``m - position`` for each candidate (its final position counted from 0).

    Example:
        >>> two_stage_scores([[3, 2, 1], [1, 2, 3]], [0.0, 9.0, 5.0], 2)
        [2.0, 1.0, 3.0]
    """
    m = len(stage2)
    orders = stage1_orders(stage1)
    shortlist = merge_shortlist(orders, k, rule=rule, quotas=quotas)
    scored = {i: float(stage2[i]) for i in shortlist if stage2[i] == stage2[i]}
    final = two_stage_order(shortlist, scored)
    on_list = set(shortlist)
    final += [i for i in orders[0] if i not in on_list]
    out = [0.0] * m
    for position, i in enumerate(final):
        out[i] = float(m - position)
    return out


CURVE_FIGURES = ("top1", "weighted_tau", "recall1", "stage1_recall")
"""Per K of :func:`shortlist_curve`: the top-1 gap of the final order (points), its weighted
tau against the accuracies, recall@1 of the final order, and stage-1 recall@K (the shortlist
holds a candidate within the tolerance of the best)."""


def shortlist_curve(
    stage1: Sequence[Sequence[float]],
    stage2: Sequence[float],
    accuracies: Sequence[float],
    *,
    rule: str = "round-robin",
    quotas: Sequence[int] = (),
    tolerance: float = RECALL_TOLERANCE,
) -> list[dict[str, float]]:
    """Quality of a two-stage selector against the shortlist size, on one task.

    Args:
        stage1: per stage-1 score, one score per candidate.
        stage2: one stage-2 score per candidate (NaN: not scored).
        accuracies: the candidates' true accuracies (points).
        rule: one of :data:`MERGE_RULES`.
        quotas: for ``quotas``, per stage-1 score.
        tolerance: recall's tolerance in points.

    Returns:
        For K = 1..m, the :data:`CURVE_FIGURES` of :func:`two_stage_scores` with shortlist K
        (weighted tau NaN when the accuracies are constant).

    Example:
        >>> curve = shortlist_curve([[3, 2, 1], [1, 2, 3]], [0.0, 9.0, 5.0], [70, 60, 80])
        >>> [(c["top1"], c["stage1_recall"]) for c in curve]
        [(10.0, 0.0), (0.0, 1.0), (20.0, 1.0)]
    """
    m = len(accuracies)
    best = max(accuracies)
    merged = merge_shortlist(stage1_orders(stage1), m, rule=rule, quotas=quotas)
    constant = len(set(accuracies)) < 2
    out = []
    for k in range(1, m + 1):
        scores = two_stage_scores(stage1, stage2, k, rule=rule, quotas=quotas)
        top = max(range(m), key=lambda i: scores[i])
        out.append(
            {
                "top1": float(best - accuracies[top]),
                "weighted_tau": math.nan if constant else weighted_tau(scores, accuracies),
                "recall1": 1.0 if accuracies[top] >= best - tolerance else 0.0,
                "stage1_recall": float(any(accuracies[i] >= best - tolerance for i in merged[:k])),
            }
        )
    return out
