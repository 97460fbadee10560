"""Selection: rank model embeddings against a task embedding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .core import fuzzy_intersection
from .embeddings import ModelEmbedding, TaskEmbedding
from .index import EmbeddingIndex, StandardStats
from .plausibility import row_flags


@dataclass(frozen=True)
class RankedModel:
    """One row of a ranking."""

    rank: int
    model_id: str
    model_revision: str | None
    score: float  # fuzzy intersection with the task embedding
    fidelity: float  # min(L_to, L_from) of the model embedding
    source: str  # where the embedding came from (a file path; in an index: "crawl", "import:...")
    flags: tuple[str, ...] = ()  # plausibility flags (hf_stdembed.plausibility.FLAG_LEGEND)
    # --- a two-stage ranking only (hf_stdembed.rerank); unset in a pure O(1) ranking ---
    stage1_scores: tuple[tuple[str, float], ...] = ()  # each named stage-1 score
    shortlist_place: int | None = None  # 1-based place on the stage-1 shortlist, if on it
    stage2_score: float | None = None  # the stage-2 score (LogME) of a re-ranked row
    placed_by: str | None = None  # "stage 2" (re-ranked) or "stage 1"
    not_reranked: str | None = None  # why a shortlisted row was not re-ranked
    forward_samples: int = 0  # images its model forwarded in this ranking (0: cached, or none)
    declared: bool = False  # its card declares the task's dataset (rerank's dataset_id)
    shortlisted_by: str | None = None  # the stage-1 order that took it onto the shortlist


@dataclass(frozen=True)
class SkippedModel:
    """A candidate left out of a ranking, and why."""

    model_id: str
    source: str
    reason: str


@dataclass(frozen=True)
class Stage2Cost:
    """What stage 2 of a two-stage ranking spent (see :mod:`hf_stdembed.rerank`)."""

    k: int  # the shortlist size asked for
    shortlisted: int  # the candidates on the shortlist (fewer than k in a small index)
    reranked: int  # shortlisted candidates stage 2 scored
    forward_models: int  # models run over the task's data (the others' features were cached)
    forward_samples: int  # images those models forwarded
    cached_models: int  # re-ranked models whose task features came from the feature cache
    scorer: str = "logme"
    stage1: tuple[str, ...] = ()  # the stage-1 scores merged into the shortlist
    merge: str = ""  # the merge rule (hf_stdembed.core.shortlist.MERGE_RULES)
    dataset_id: str | None = None  # the task's dataset id matched against declared datasets
    declared: int = 0  # rows whose card declares it (the "declared" order, when not 0)


@dataclass(frozen=True)
class Ranking:
    """Candidates best first, and the ones that could not be compared."""

    rows: list[RankedModel]
    skipped: list[SkippedModel]
    stage2: Stage2Cost | None = None  # set by a two-stage ranking (hf_stdembed.rerank)


def rank_embeddings(
    task: TaskEmbedding,
    models: Sequence[ModelEmbedding],
    *,
    sources: Sequence[str] | None = None,
    top: int | None = None,
) -> Ranking:
    """Ranks model embeddings by fuzzy intersection with the task embedding.

    Embeddings of another standard (hash) than the task's are skipped, never compared.
    Ties keep the input order.

    Args:
        task: the task embedding.
        models: candidate model embeddings.
        sources: where each embedding came from, for display (default: the model ids).
        top: keep only the best ``top`` rows.

    Returns:
        The ranking and the skipped candidates with their reasons.
    """
    sources = list(sources) if sources is not None else [m.model_id for m in models]
    if len(sources) != len(models):
        raise ValueError("need one source per model embedding")
    kept, skipped = [], []
    for model, source in zip(models, sources, strict=True):
        if model.standard_hash != task.standard_hash:
            skipped.append(
                SkippedModel(
                    model.model_id,
                    source,
                    f"standard {model.standard_id} ({model.standard_hash}) differs from the "
                    f"task's {task.standard_id} ({task.standard_hash})",
                )
            )
        else:
            kept.append((model, source))
    if not kept:
        return Ranking(rows=[], skipped=skipped)
    scores = fuzzy_intersection(task.vector, torch.stack([m.vector for m, _ in kept]))
    order = torch.argsort(scores, descending=True, stable=True).tolist()
    if top is not None:
        order = order[:top]
    rows = [
        RankedModel(
            rank=rank,
            model_id=kept[i][0].model_id,
            model_revision=kept[i][0].model_revision,
            score=float(scores[i]),
            fidelity=kept[i][0].fidelity,
            source=kept[i][1],
            flags=row_flags(
                kept[i][0].vector.detach().cpu().numpy(),
                l_to=kept[i][0].l_to,
                l_from=kept[i][0].l_from,
            ),
        )
        for rank, i in enumerate(order, 1)
    ]
    return Ranking(rows=rows, skipped=skipped)


def rank_index(task: TaskEmbedding, index: EmbeddingIndex, *, top: int | None = None) -> Ranking:
    """Ranks every model of the task's standard in the local index: one sweep.

    Models indexed under other standards are not compared; each other standard appears once
    in ``skipped`` with the number of its models. Each row says where it came from
    (``source``: ``crawl``, ``import:<file>``, ``pull:<repo>@<commit>``) and carries its
    plausibility flags: flagged rows are ranked, never silently.
    """
    standards = index.stats().standards
    mine = standards.get(task.standard_hash)
    count = mine.rows if mine is not None else 0
    found = (
        index.search(task.vector, task.standard_hash, top=min(top or count, count)) if count else []
    )
    rows = [
        RankedModel(
            rank=rank,
            model_id=row.repo_id,
            model_revision=row.revision,
            score=score,
            fidelity=row.fidelity,
            source=row.source,
            flags=row.flag_names,
        )
        for rank, (row, score) in enumerate(found, 1)
    ]
    return Ranking(rows=rows, skipped=other_standards(task, standards))


def other_standards(
    task: TaskEmbedding, standards: Mapping[str, StandardStats]
) -> list[SkippedModel]:
    """One :class:`SkippedModel` per standard of an index (``index.stats().standards``)
    other than the task's, with its number of models."""
    return [
        SkippedModel(
            model_id=f"{other.rows} model(s)",
            source=f"{other.rows} model(s) of standard {other_hash}",
            reason=f"embedded under another standard than the task's {task.standard_id} "
            f"({task.standard_hash})",
        )
        for other_hash, other in standards.items()
        if other_hash != task.standard_hash
    ]
