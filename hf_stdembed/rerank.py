"""Two-stage selection: a shortlist from the O(1) sweep, re-ranked on the user's data.

Stage 1 scores every model of the task's standard in the index with several named
similarities of :data:`hf_stdembed.core.metric.SIMILARITIES` (default: the plain
intersection ``I`` and the model-normalised ``I / |v|``, which favour wide and narrow models:
complementary) and merges their orders into a shortlist of K models by a named rule of
:data:`hf_stdembed.core.shortlist.MERGE_RULES` (default: round-robin). Given the task's
dataset id, a third order joins them: the rows whose card declares that dataset
(:func:`~hf_stdembed.core.declared.declares`), in the first score's order; a claim earns
only a shortlist place, since stage 2 decides the rank. The offline benchmark measured these
three orders, merged so (``faithful+normalised+declared``, and under a union standard
``union-r2+union-r2-normalised+declared``: benchmarks/results/README.md); ``hf-stdembed
evaluate --shortlist`` reports the same selector on a user's pool.

Stage 2 loads each shortlisted model at the revision its embedding pins, runs the task's
images through it once (the feature cache: a second ranking forwards nothing) and orders the
shortlist by LogME. A shortlisted model that cannot be re-ranked (no model spec, a spec
that is not a Hub repo, no pinned revision, a gated or failing download, any error of its
own) keeps its stage-1 place, marked with the reason; one failing model never stops a
ranking. A plausibility-flagged row may take a shortlist place but never keeps one on its
stage-1 score alone: re-ranked, stage 2 places it; not re-ranked, it goes after the
re-ranked rows.

A model spec in an index is a stranger's text (a card, an imported file): only Hub repo
specs (``timm:org/name``, ``transformers:org/name``, ``org/name``) are loaded, always at the
row's pinned revision, never a local directory nor an entry point (which would run code).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ._text import shorten
from .core.declared import DECLARED, declares
from .core.logme import logme
from .core.metric import SIMILARITIES, fuzzy_similarity
from .core.shortlist import MERGE_RULES, merge_shortlist_sources, two_stage_order
from .data import ImageDataset, stratified_subset
from .embeddings import TaskEmbedding
from .errors import ModelLoadError
from .extractors import FeatureExtractor, load_extractor
from .features import cache_path, extract_features
from .index import EmbeddingIndex, IndexRow
from .progress import Progress, report
from .selection import RankedModel, Ranking, Stage2Cost, other_standards

logger = logging.getLogger(__name__)

DEFAULT_RERANK_K = 13
"""``select --rerank``'s default shortlist size (see benchmarks/results/README.md)."""
DEFAULT_RERANK_SAMPLES = 5000
"""Images stage 2 runs through each shortlisted model by default: a class-stratified draw of
the task's data when it holds more. It bounds stage 2's cost on a large split; the offline
benchmark measured LogME on at most 1,400 training images per task, well under it."""
DEFAULT_STAGE1 = ("intersection", "model-normalised")
"""The stage-1 scores merged into the shortlist by default (the first also orders the rows
outside it)."""
DEFAULT_MERGE = "round-robin"
STAGE2_SCORERS: dict[str, Callable[..., float]] = {"logme": logme}
"""Named stage-2 scorers: ``(features, labels, num_classes=) -> score``, higher is better."""
STAGED, UNSTAGED = "stage 2", "stage 1"
"""``RankedModel.placed_by`` of a row placed by stage 2 (re-ranked), or by stage 1."""
_CHUNK_ROWS = 4096


Loader = Callable[[str, str], FeatureExtractor]
"""Loads a (checked) Hub model spec at a pinned revision; default :func:`load_extractor`."""


def _load_pinned(spec: str, revision: str, *, token: str | None = None) -> FeatureExtractor:
    """:func:`load_extractor` at a pinned revision (the default :data:`Loader`)."""
    return load_extractor(spec, revision=revision, token=token)


class _NotReranked(Exception):
    """A shortlisted model stage 2 cannot score; the message says why."""


def rerank_index(
    task: TaskEmbedding,
    index: EmbeddingIndex,
    data: ImageDataset,
    *,
    k: int,
    top: int | None = None,
    stage1: Sequence[str] = DEFAULT_STAGE1,
    merge: str = DEFAULT_MERGE,
    quotas: Sequence[int] = (),
    samples: int | None = DEFAULT_RERANK_SAMPLES,
    scorer: str = "logme",
    device: str | torch.device | None = None,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    load: Loader | None = None,
    on_progress: Progress | None = None,
    token: str | None = None,
    dataset_id: str | None = None,
) -> Ranking:
    """Ranks the index's models of the task's standard in two stages (see the module doc).

    Args:
        task: the task embedding (of ``data``).
        index: the local index.
        data: the labelled task data the task embedding was computed on (its train split).
        k: the shortlist size; 0 gives the pure stage-1 order (no model loaded).
        top: keep only the best ``top`` rows (the shortlist is always kept whole).
        stage1: named stage-1 scores (:data:`~hf_stdembed.core.metric.SIMILARITIES`); the
            first orders the rows outside the shortlist and is each row's ``score``.
        merge: the shortlist merge rule (:data:`~hf_stdembed.core.shortlist.MERGE_RULES`).
        quotas: for ``merge="quotas"``, how many to take from each ``stage1`` order first,
            and optionally one more count for the ``declared`` order (default 0: it then only
            joins the round-robin).
        samples: how many of ``data``'s images stage 2 forwards through each model: a seeded,
            class-stratified draw when ``data`` holds more; None: every image.
        scorer: the stage-2 scorer (:data:`STAGE2_SCORERS`).
        device, batch_size, cache_dir: of the feature extraction
            (:func:`~hf_stdembed.features.extract_features`).
        load: loads a Hub model spec at a revision (default :func:`load_extractor`).
        on_progress: hears stage 2 as ``re-rank``, in shortlisted models: each model's step
            in hand (``load <id>``, ``features <id>``, ``score <id>``), then its end.
        token: Hub token of the default ``load`` for private or gated models (default: the
            saved login).
        dataset_id: the Hub id of the task's dataset (:func:`task_dataset_id`): the rows
            whose card declares it (:func:`~hf_stdembed.core.declared.declares`), in the
            first score's order, are a third stage-1 order, merged with the others; None: no
            such order.

    Returns:
        The ranking; ``stage2`` says what stage 2 spent.

    Raises:
        ValueError: on a negative ``k``, no or unknown stage-1 scores, an unknown merge rule
            or scorer, or data without labels.

    Example:
        ```py
        >>> with EmbeddingIndex.open() as index:
        ...     ranking = rerank_index(task, index, data, k=5)
        >>> [(r.model_id, r.placed_by, r.stage2_score) for r in ranking.rows[:2]]
        ```
    """
    _check_options(k, stage1, merge, scorer, quotas)
    if data.label_column is None:
        raise ValueError("stage 2 needs labelled task data")
    if samples is not None and samples < 1:
        raise ValueError(f"Invalid samples value: {samples} (None: every image)")
    standards = index.stats().standards
    skipped = other_standards(task, standards)
    rows, scores = _stage1_scores(task, index, stage1)
    if not rows:
        return Ranking(rows=[], skipped=skipped)
    orders = [torch.argsort(s, descending=True, stable=True).tolist() for s in scores]
    names = list(stage1)
    declared = [declares(r.datasets, dataset_id) for r in rows]
    if any(declared):
        orders.append([i for i in orders[0] if declared[i]])
        names.append(DECLARED)
    counts = (list(quotas) + [0] * len(orders))[: len(orders)] if merge == "quotas" else ()
    taken = merge_shortlist_sources(orders, k, rule=merge, quotas=counts) if k else []
    shortlist = [c for c, _ in taken]
    by = {c: names[s] for c, s in taken}
    scored = stratified_subset(data, samples, seed=0) if shortlist else data
    outcome = _stage2(
        [rows[i] for i in shortlist],
        scored,
        scorer=scorer,
        device=device,
        batch_size=batch_size,
        cache_dir=cache_dir,
        load=load or partial(_load_pinned, token=token),
        on_progress=on_progress,
    )
    stage2 = {shortlist[j]: s for j, s in outcome.scores.items()}
    demoted = {i for i in shortlist if rows[i].flag_names}
    final = two_stage_order(shortlist, stage2, demoted=demoted)
    on_list = set(shortlist)
    final += [i for i in orders[0] if i not in on_list]
    if top is not None:
        final = final[: max(top, len(shortlist))]
    place = {c: p for p, c in enumerate(shortlist, 1)}
    reasons = {shortlist[j]: r for j, r in outcome.reasons.items()}
    forwarded = {shortlist[j] for j in outcome.forwarded}
    ranked = [
        RankedModel(
            rank=rank,
            model_id=rows[i].repo_id,
            model_revision=rows[i].revision,
            score=float(scores[0][i]),
            fidelity=rows[i].fidelity,
            source=rows[i].source,
            flags=rows[i].flag_names,
            stage1_scores=tuple((n, float(s[i])) for n, s in zip(stage1, scores, strict=True)),
            shortlist_place=place.get(i),
            stage2_score=stage2.get(i),
            placed_by=STAGED if i in stage2 else UNSTAGED,
            not_reranked=reasons.get(i),
            forward_samples=len(scored) if i in forwarded else 0,
            declared=declared[i],
            shortlisted_by=by.get(i),
        )
        for rank, i in enumerate(final, 1)
    ]
    cost = Stage2Cost(
        k=k,
        shortlisted=len(shortlist),
        reranked=len(stage2),
        forward_models=len(forwarded),
        forward_samples=len(forwarded) * len(scored),
        cached_models=len(stage2) - len(stage2.keys() & forwarded),
        scorer=scorer,
        stage1=tuple(names),
        merge=merge,
        dataset_id=dataset_id,
        declared=sum(declared),
    )
    return Ranking(rows=ranked, skipped=skipped, stage2=cost)


def task_dataset_id(dataset: str, given: str | None = None) -> str | None:
    """The Hub id of the task's dataset, to match against the datasets cards declare: ``given``
    (``select --dataset-id``, checked), else ``dataset`` when it is a Hub id (``org/name`` or
    a canonical ``name``) and no local file or folder; None for local data with no id given.

    Raises:
        ValueError: ``given`` is not a Hub dataset id (the message says what is).
    """
    from .errors import RepoNotFoundError
    from .registry.protocol import check_repo_id

    if given is not None:
        try:
            check_repo_id(given, namespaced=False)
        except RepoNotFoundError as e:
            raise ValueError(f"--dataset-id: {e}") from None
        return given
    if Path(dataset).expanduser().exists():
        return None
    try:
        check_repo_id(dataset, namespaced=False)
    except RepoNotFoundError:
        return None
    return dataset


def check_model_spec(row: IndexRow) -> str:
    """The Hub model spec of an index row that stage 2 may load, checked.

    Raises:
        _NotReranked: (the reason) when the row names no spec, a spec that is not a Hub repo
            (a local directory or an entry point: never loaded from an index), or no pinned
            model revision.
    """
    from .pipeline import loadable_spec

    spec = row.model_spec
    if not spec:
        raise _NotReranked("no loadable model spec (neither the card nor the embedding names one)")
    try:
        hub = loadable_spec(spec)
    except ModelLoadError as e:
        raise _NotReranked(str(e)) from e
    if hub is None:
        raise _NotReranked(
            f"model spec {shorten(spec, 80)!r} is not a Hub repo (a spec from an index never "
            "loads a local directory or runs an entry point)"
        )
    if not row.model_revision:
        raise _NotReranked("the embedding pins no model revision to load")
    return hub


@dataclass
class _Stage2Outcome:
    scores: dict[int, float]  # shortlist position -> stage-2 score
    reasons: dict[int, str]  # shortlist position -> why not re-ranked
    forwarded: set[int]  # shortlist positions whose model ran over the task's data


def _stage2(
    rows: list[IndexRow],
    data: ImageDataset,
    *,
    scorer: str,
    device: str | torch.device | None,
    batch_size: int,
    cache_dir: str | Path | None,
    load: Loader,
    on_progress: Progress | None,
) -> _Stage2Outcome:
    """Scores each shortlisted row on the task's data; a failure is the row's own."""
    labels = data.labels()
    outcome = _Stage2Outcome({}, {}, set())
    total = len(rows)

    def tell(j: int, step: str | None) -> None:
        """Model ``j`` is at ``step`` (None: it is over, re-ranked or not)."""
        done, item = (j + 1, None) if step is None else (j, f"{step} {rows[j].repo_id}")
        report(on_progress, "re-rank", done, total, unit="model", item=item)

    for j, row in enumerate(rows):
        try:
            tell(j, "load")
            spec = check_model_spec(row)
            extractor = load(spec, row.model_revision or "")
            tell(j, "features")
            cached = cache_path(extractor, data, cache_dir=cache_dir).is_file()
            features = extract_features(
                extractor,
                data,
                batch_size=batch_size,
                device=device,
                cache_dir=cache_dir,
            )
            if not cached:
                outcome.forwarded.add(j)
            tell(j, "score")
            score = STAGE2_SCORERS[scorer](features, labels, num_classes=data.num_classes)
            if not np.isfinite(score):
                raise _NotReranked(f"{scorer} is not finite on its features")
            outcome.scores[j] = float(score)
        except _NotReranked as e:
            outcome.reasons[j] = str(e)
        except Exception as e:  # any model's failure is its own: never the ranking's end
            logger.debug("stage 2 of %s failed", row.repo_id, exc_info=True)
            outcome.reasons[j] = shorten(f"{type(e).__name__}: {e}".replace("\n", " "), 300)
        tell(j, None)
    return outcome


def _stage1_scores(
    task: TaskEmbedding, index: EmbeddingIndex, names: Sequence[str]
) -> tuple[list[IndexRow], list[torch.Tensor]]:
    """The rows of the task's standard and each named score of every row: one sweep, in row
    chunks so that a memory-mapped matrix is never copied whole."""
    rows, matrix = index.snapshot(task.standard_hash)
    if not rows:
        return [], []
    vector = task.vector.detach().cpu().float()
    parts: list[list[torch.Tensor]] = [[] for _ in names]
    for start in range(0, matrix.shape[0], _CHUNK_ROWS):
        block = torch.from_numpy(np.array(matrix[start : start + _CHUNK_ROWS], np.float32))
        for part, name in zip(parts, names, strict=True):
            part.append(fuzzy_similarity(vector, block, name))
    return rows, [torch.cat(part) for part in parts]


def _check_options(
    k: int, stage1: Sequence[str], merge: str, scorer: str, quotas: Sequence[int] = ()
) -> None:
    if k < 0:
        raise ValueError(f"Invalid k value: {k} (0: no re-ranking)")
    if not stage1:
        raise ValueError("need at least one stage-1 score")
    unknown = [s for s in stage1 if s not in SIMILARITIES]
    if unknown:
        raise ValueError(
            f"unknown stage-1 score(s) {unknown}; choose from {', '.join(SIMILARITIES)}"
        )
    if merge not in MERGE_RULES:
        raise ValueError(f"unknown merge rule {merge!r}; choose one of {', '.join(MERGE_RULES)}")
    fits = len(stage1) <= len(quotas) <= len(stage1) + 1 if merge == "quotas" else not quotas
    if not fits:
        raise ValueError(
            f"Invalid quotas value: {tuple(quotas)} (merge 'quotas' needs one count >= 0 per "
            f"stage-1 score, {len(stage1)}, and may add one for 'declared')"
        )
    if any(q < 0 for q in quotas):
        raise ValueError(f"Invalid quotas value: {tuple(quotas)} (counts must be >= 0)")
    if scorer not in STAGE2_SCORERS:
        raise ValueError(
            f"unknown stage-2 scorer {scorer!r}; choose one of {', '.join(STAGE2_SCORERS)}"
        )
