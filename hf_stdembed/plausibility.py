"""Plausibility of a published model embedding: what is refused, and what is flagged.

A model embedding is a stranger's claim. Some claims cannot be true (a fidelity outside the
range of a cosine similarity, a file that disagrees with its card): the crawl refuses them
with a reason. Others can be true but let one row rank high on any task (a saturated mask):
they are kept, and flagged wherever rows are shown, so a user never ranks them silently.

An r2 standard's embedding (``model_embedding: {method: r2}``) claims held-out R^2, not
cosines (see :mod:`hf_stdembed.pipeline`): both in [0, 1], and ``l_to`` is by definition the
mean of the mask, so a file whose ``l_to`` is not its vector's mean is refused
(:func:`r2_problem`). The flags read the same: an r2 fidelity at or below 0 says the
candidate explains none of the standard's features (honest, and worth a flag), and above
0.999 needs a mask of mean above 0.999 (flagged ``saturated`` too).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .card import CardEntry
    from .embeddings import ModelEmbedding
    from .standards import Standard

COSINE_SLACK = 1e-3
"""L_to and L_from are mean cosine similarities, so in [-1, 1]; this much rounding beyond."""
CARD_TOLERANCE = 1e-6
"""Largest difference between a card's L_to / L_from and the file's. Publishing writes both
from the same floats (the file as ``repr``, the card as YAML floats): they agree exactly,
so any difference above float printing noise means the card and the file tell two stories."""

SATURATED_MEAN = 0.98
"""A mask whose mean is at least this is flagged ``saturated``.

Why: a row's score is the fuzzy intersection ``sum_i min(u_i, v_i)``, at most ``|u|`` for a
task embedding ``u``; and ``min(u_i, v_i) >= u_i - (1 - v_i)``, so a mask of mean ``m``
scores at least ``|u| - N (1 - m)`` on *every* task. At ``m >= 0.98`` that is within
``0.02 N`` of the best score any vector can reach, whatever the task: such a row ranks near
the top everywhere (the all-ones vector of the issue ranked first in 19 of 20 random tasks).
A flag, not a refusal: the baseline model's own embedding is legitimately near all-on (every
baseline feature is its own), and so may be a much larger model's.
"""
IMPLAUSIBLE_FIDELITY = 0.999
"""A fidelity ``min(L_to, L_from)`` above this, or at or below 0, is flagged ``fidelity``.

Why: the affine maps are fitted by SGD on a finite probe set, so even the baseline model
against itself reaches a mean cosine a little under 1; a claim of 0.999 or more is what a
forger writes (the issue's forged rows claimed 1.0). At or below 0 the maps explain nothing
of the baseline's features: the mask then says nothing about the model.
"""

R2_MEAN_TOLERANCE = 1e-5
"""Largest difference between an r2 embedding's ``l_to`` and its mask's mean (float32 values
averaged in float64 on both sides: they agree to rounding)."""

FLAG_SATURATED = "saturated"
FLAG_FIDELITY = "fidelity"
FLAG_MARKERS = {FLAG_SATURATED: "S", FLAG_FIDELITY: "F"}
"""The short marker each flag gets in a table (legend: :data:`FLAG_LEGEND`)."""
FLAG_LEGEND = {
    FLAG_SATURATED: f"the mask is nearly all on (mean >= {SATURATED_MEAN}): it scores near the "
    "top on any task; legitimate only for the baseline model or a far larger one",
    FLAG_FIDELITY: f"the claimed fidelity is implausible (above {IMPLAUSIBLE_FIDELITY} or at "
    "most 0): the embedding may be forged; check it with `hf-stdembed verify`",
}


def row_flags(vector: np.ndarray, *, l_to: float, l_from: float) -> tuple[str, ...]:
    """The flags of an embedding that can be true but should not be ranked silently.

    Args:
        vector: the mask ``v``, ``(N,)`` in [0, 1].
        l_to: the claimed L_to.
        l_from: the claimed L_from.

    Returns:
        Flag names, sorted (see :data:`FLAG_LEGEND`); empty for an ordinary row.
    """
    flags = []
    values = np.asarray(vector, dtype=np.float64)
    if values.size and float(values.mean()) >= SATURATED_MEAN:
        flags.append(FLAG_SATURATED)
    fidelity = min(l_to, l_from)
    if not math.isfinite(fidelity) or fidelity > IMPLAUSIBLE_FIDELITY or fidelity <= 0:
        flags.append(FLAG_FIDELITY)
    return tuple(sorted(flags))


def fidelity_problem(l_to: object, l_from: object) -> str | None:
    """Why L_to / L_from cannot be mean cosine similarities, or None."""
    for name, value in (("l_to", l_to), ("l_from", l_from)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name} is not a number: {value!r}"
        if not math.isfinite(value) or abs(value) > 1 + COSINE_SLACK:
            return f"{name} {value!r} is not a cosine similarity in [-1, 1]"
    return None


def r2_problem(vector: np.ndarray | object, l_to: float, l_from: float) -> str | None:
    """Why the fidelities of an r2 embedding (closed-form mask) cannot be its own, or None:
    both are clipped held-out R^2, in [0, 1], and ``l_to`` is the mask's mean.

    Example:
        >>> r2_problem(np.array([1.0, 0.0]), 0.5, 0.8) is None
        True
        >>> r2_problem(np.array([1.0, 0.0]), 1.0, 1.0)
        "l_to 1.0 is not the mask's mean 0.5 (an r2 embedding's L_to is its mask's mean)"
    """
    for name, value in (("l_to", l_to), ("l_from", l_from)):
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            return f"{name} {value!r} is not a held-out R^2 in [0, 1] (an r2 embedding)"
    values = np.asarray(vector, dtype=np.float32).astype(np.float64)
    mean = float(values.mean()) if values.size else 0.0
    if abs(mean - l_to) > R2_MEAN_TOLERANCE:
        return (
            f"l_to {l_to!r} is not the mask's mean {mean:.6g} (an r2 embedding's L_to is its "
            "mask's mean)"
        )
    return None


def entry_problem(entry: CardEntry, embedding: ModelEmbedding, standard: Standard) -> str | None:
    """Why a downloaded file cannot be the embedding its card entry declares, or None.

    The file's standard id and hash, its length, its fidelities and model revision must be
    the card's and the standard's; the fidelities must lie in range (an r2 standard's: see
    :func:`r2_problem`).

    Args:
        entry: the card's entry.
        embedding: the file, as loaded (its hash already checked against ``standard``).
        standard: the standard the entry was filed under.
    """
    if embedding.standard_id != entry.standard_id or entry.standard_id != standard.id:
        return (
            f"the file says standard {embedding.standard_id!r}, the card "
            f"{entry.standard_id!r}, the standard of hash {standard.hash} is {standard.id!r}"
        )
    if embedding.standard_hash != entry.standard_hash:
        return (
            f"the file's standard hash {embedding.standard_hash} differs from the card's "
            f"{entry.standard_hash}"
        )
    dim = int(embedding.vector.shape[0])
    if not dim == entry.dim == standard.dim:
        return f"the file has {dim} values, the card says {entry.dim}, the standard {standard.dim}"
    problem = fidelity_problem(embedding.l_to, embedding.l_from)
    if not problem and standard.method != "p":
        problem = r2_problem(embedding.vector.numpy(), embedding.l_to, embedding.l_from)
    if problem:
        return f"the file's {problem}"
    for name in ("l_to", "l_from"):
        mine, card = getattr(embedding, name), getattr(entry, name)
        if abs(mine - card) > CARD_TOLERANCE:
            return f"the file's {name} {mine!r} differs from the card's {card!r}"
    if (
        entry.model_revision is not None
        and embedding.model_revision is not None
        and entry.model_revision != embedding.model_revision
    ):
        return (
            f"the file's model revision {embedding.model_revision!r} differs from the card's "
            f"{entry.model_revision!r}"
        )
    return None
