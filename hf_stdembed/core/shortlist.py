"""Two-stage selection as pure functions: a shortlist merged from several stage-1 orders, and
the final order once stage 2 has scored (some of) the shortlist.

Stage 1 ranks every candidate by one or more O(1) scores (e.g. the plain fuzzy intersection
and the model-normalised ``I / |v|``: complementary, since the first favours wide models and
the second narrow ones). One score alone keeps the same blind spot at any K; the top of each
reaches the shortlist when they are merged:

- ``round-robin``: the best of each order in turn, then the second of each, ... (skipping a
  candidate already taken) until K are taken;
- ``first-score``: the first order alone (the single-score shortlist, a reference).

Stage 2 (e.g. LogME on the task's features) scores the shortlisted candidates it can; see
:func:`two_stage_order` for where the others go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MERGE_RULES = ("round-robin", "first-score")
"""Named rules that merge several stage-1 orders into one shortlist."""


def merge_shortlist(
    orders: Sequence[Sequence[int]], k: int, *, rule: str = "round-robin"
) -> list[int]:
    """A shortlist of at most ``k`` distinct candidates from several stage-1 orders.

    Args:
        orders: per stage-1 score, candidate indices best first (each a permutation of the
            same candidates, or a prefix of one).
        k: the shortlist's size (fewer when the orders hold fewer candidates).
        rule: one of :data:`MERGE_RULES`.

    Returns:
        Candidate indices in shortlist order: the order they were taken in.

    Raises:
        ValueError: on an unknown ``rule``, a negative ``k`` or no order.

    Example:
        >>> merge_shortlist([[0, 1, 2, 3], [3, 2, 1, 0]], 3)
        [0, 3, 1]
    """
    if rule not in MERGE_RULES:
        raise ValueError(f"unknown merge rule {rule!r}; choose one of {', '.join(MERGE_RULES)}")
    if k < 0:
        raise ValueError(f"Invalid k value: {k}")
    if not orders:
        raise ValueError("need at least one stage-1 order")
    if rule == "first-score":
        orders = orders[:1]
    taken: list[int] = []
    seen: set[int] = set()
    cursors = [0] * len(orders)
    while len(taken) < k:
        moved = False
        for s, order in enumerate(orders):
            while cursors[s] < len(order) and order[cursors[s]] in seen:
                cursors[s] += 1
            if cursors[s] < len(order) and len(taken) < k:
                taken.append(order[cursors[s]])
                seen.add(order[cursors[s]])
                cursors[s] += 1
                moved = True
        if not moved:
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


def two_stage_scores(
    stage1: Sequence[Sequence[float]],
    stage2: Sequence[float],
    k: int,
    *,
    rule: str = "round-robin",
) -> list[float]:
    """Scores of a two-stage selector over a pool: higher is picked first.

    The shortlist of ``k`` merged from the stage-1 scores' orders (ties: pool order) comes
    first, ordered by ``stage2`` (a NaN stage-2 score counts as not scored: the candidate
    keeps its shortlist place); the rest follow in the first stage-1 score's order.

    Args:
        stage1: per stage-1 score, one score per candidate.
        stage2: one stage-2 score per candidate (only the shortlisted ones are read).
        k: the shortlist size.
        rule: one of :data:`MERGE_RULES`.

    Returns:
        ``m - position`` for each candidate (its final position counted from 0).

    Example:
        >>> two_stage_scores([[3, 2, 1], [1, 2, 3]], [0.0, 9.0, 5.0], 2)
        [2.0, 1.0, 3.0]
    """
    m = len(stage2)
    orders = [sorted(range(m), key=lambda i, s=s: -s[i]) for s in stage1]
    shortlist = merge_shortlist(orders, k, rule=rule)
    scored = {i: float(stage2[i]) for i in shortlist if stage2[i] == stage2[i]}
    final = two_stage_order(shortlist, scored)
    on_list = set(shortlist)
    final += [i for i in orders[0] if i not in on_list]
    out = [0.0] * m
    for position, i in enumerate(final):
        out[i] = float(m - position)
    return out
