"""The selectors an evaluation reports: our selector's named variants and the references'
names, and the checks of what :func:`~hf_stdembed.evaluation.evaluate` is asked for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..core.declared import DECLARED
from ..core.metric import SIMILARITIES
from ..core.shortlist import STAGE1_CONFIGS

TOP_KS = (1, 3, 5)
TWO_STAGE_KS = (2, 3, 5)
"""Shortlist sizes of the two-stage selectors (``two-stage@K``) reported beside LogME."""
TWO_STAGE_STAGE1 = ("faithful", "normalised")
"""The variants whose scores are merged (round-robin) into a two-stage selector's shortlist,
as ``select --rerank`` does (its defaults: intersection and I/|v|)."""
TWO_STAGE_PREFIX = "two-stage@"
CONFIG_PREFIX = "two-stage["
"""``two-stage[<config>]@K``: a named stage-1 configuration's shortlist of K, ordered by LogME."""
SHORTLIST_KS = (5, 10)
"""Shortlist sizes of the ``two-stage[<config>]@K`` selectors in the summary (every K:
:func:`~hf_stdembed.evaluation.two_stage_curve`)."""
BEYOND_BASELINE = "beyond-baseline"
RESEARCH_SCORES = ("r2", "r2+normalised", BEYOND_BASELINE, "union-r2", "union-r2+normalised")
"""Optional research scores of :func:`~hf_stdembed.evaluation.evaluate` (``research=``),
named as in the report."""
UNION_SCORES = ("union-r2", "union-r2+normalised")
STAGE1_ONLY = (DECLARED,)
"""Scores that only feed stage-1 configurations; the summary does not rank by them:
``declared`` (score 1 where the card declares the task's dataset, NaN for the others: not in
the order), added by :func:`~hf_stdembed.evaluation.add_declared`."""

FEATURE_TRANSFORMS = ("raw", "centred", "standardised")
"""What is done to candidate and baseline probe features before P (over the probe set)."""
FIDELITY_SELECTORS = {f: "fidelity" if f == "raw" else f"{f} fidelity" for f in FEATURE_TRANSFORMS}
"""Task-blind reference selectors: P's min(L_to, L_from) of each candidate, per transform."""
LOTO = "loto"
"""Leave-one-task-out general quality: mean accuracy on the other tasks, same split index."""
TASK_BLIND_SELECTORS = ("random", "largest", *FIDELITY_SELECTORS.values(), LOTO, BEYOND_BASELINE)
"""Selectors that forward no model over the task's data (``loto`` reuses the other tasks')."""


@dataclass(frozen=True)
class Variant:
    """A named variant of our selector. ``Variant("faithful")`` is the paper's method."""

    name: str
    features: str = "raw"  # one of FEATURE_TRANSFORMS: applied to candidate and baseline before P
    metric: str = "intersection"  # one of hf_stdembed.core.metric.SIMILARITIES

    def __post_init__(self) -> None:
        if self.features not in FEATURE_TRANSFORMS:
            raise ValueError(
                f"unknown features {self.features!r}; choose one of {', '.join(FEATURE_TRANSFORMS)}"
            )
        if self.metric not in SIMILARITIES:
            raise ValueError(
                f"unknown metric {self.metric!r}; choose one of {', '.join(SIMILARITIES)}"
            )


FAITHFUL = Variant("faithful")
DEFAULT_VARIANTS = (
    FAITHFUL,
    Variant("normalised", metric="model-normalised"),
    Variant("cosine", metric="cosine"),
    Variant("jaccard", metric="jaccard"),
    Variant("centred", features="centred"),
    Variant("centred+normalised", features="centred", metric="model-normalised"),
    Variant("centred+cosine", features="centred", metric="cosine"),
    Variant("centred+jaccard", features="centred", metric="jaccard"),
    Variant("standardised", features="standardised"),
)


def check_research(
    research: tuple[str, ...], union_baselines: Iterable[str], shortlists: tuple[str, ...]
) -> None:
    """Refuses unknown research scores or shortlists, and ``union-*`` scores without
    ``union_baselines``.

    Raises:
        ValueError: as above.
    """
    unknown = [r for r in research if r not in RESEARCH_SCORES]
    if unknown:
        raise ValueError(
            f"unknown research score(s) {unknown}; choose from {', '.join(RESEARCH_SCORES)}"
        )
    if any(r in UNION_SCORES for r in research) and not union_baselines:
        raise ValueError("the union-* research scores need union_baselines (model specs)")
    unknown = [c for c in shortlists if c not in STAGE1_CONFIGS]
    if unknown:
        raise ValueError(f"unknown shortlist(s) {unknown}; choose from {', '.join(STAGE1_CONFIGS)}")


def check_variant_names(variants: Iterable[Variant], research: tuple[str, ...]) -> None:
    """Refuses repeated variant names and names a reference selector or research score uses.

    Raises:
        ValueError: as above.
    """
    names = [v.name for v in variants]
    reserved = {"logme", *TASK_BLIND_SELECTORS, *research}
    if (
        len(set(names)) < len(names)
        or reserved & set(names)
        or any(n.startswith((TWO_STAGE_PREFIX, CONFIG_PREFIX)) for n in names)
    ):
        raise ValueError(
            f"variant names must be unique, not one of {', '.join(sorted(reserved))} and not "
            f"start with {TWO_STAGE_PREFIX!r} or {CONFIG_PREFIX!r}: {names}"
        )
