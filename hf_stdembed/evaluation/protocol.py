"""The evaluation protocol: every candidate's ground truth and every selector's scores on
every task split, gathered into an :class:`~hf_stdembed.evaluation.EvaluationReport`."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from ..core import LinearProbeConfig, fuzzy_similarity
from ..core.declared import declares
from ..errors import InvalidStandardError
from ..extractors import FeatureExtractor
from ..progress import Progress, report
from ..standards import Standard
from ._maths import nan_mean
from .embeddings import model_embedding, task_embedding
from .ground_truth import candidate_on_task, ground_truth
from .pool import PoolSetup
from .report import EvaluationReport
from .research import ClosedForm
from .results import CandidateInfo, TaskResult
from .selectors import (
    DECLARED,
    DEFAULT_VARIANTS,
    FEATURE_TRANSFORMS,
    FIDELITY_SELECTORS,
    LOTO,
    Variant,
    check_research,
    check_variant_names,
)
from .tasks import SplitTask, TaskSpec

logger = logging.getLogger(__name__)


def evaluate(
    candidates: list[str | FeatureExtractor],
    standard: Standard,
    tasks: list[TaskSpec | SplitTask],
    *,
    variants: tuple[Variant, ...] = DEFAULT_VARIANTS,
    probe_config: LinearProbeConfig = LinearProbeConfig(),
    with_logme: bool = True,
    device: str | torch.device | None = None,
    cache_dir: str | Path | None = None,
    research: tuple[str, ...] = (),
    union_baselines: tuple[str, ...] | list[str] = (),
    shortlists: tuple[str, ...] = (),
    declared: Sequence[Sequence[str]] | None = None,
    dataset_ids: Mapping[str, str] | None = None,
    on_progress: Progress | None = None,
    token: str | None = None,
) -> EvaluationReport:
    """Evaluates selection on a pool of candidates, one standard and labelled tasks.

    Args:
        candidates: model specs (see :func:`~hf_stdembed.extractors.load_extractor`) or loaded
            extractors; loaded one at a time when given as specs.
        standard: the standard (baseline, probe set, P and Q hyper-parameters).
        tasks: the downstream tasks: a :class:`TaskSpec` (one train and test split) or a
            :class:`SplitTask` (several splits of one dataset, features extracted once).
        variants: variants of our selector; ``FAITHFUL`` (the paper) should be among them.
        probe_config: the linear probe of the ground truth (the paper's by default).
        with_logme: also score the pool with LogME (reuses the cached train features).
        device: torch device for the optimisations (default: the features' device).
        cache_dir: where features, P's masks, linear probes, LogME and Q are kept: a re-run
            with the same inputs costs no forward pass and no optimisation. Without it,
            features go to the default feature cache and nothing else is kept.
        research: names of :data:`RESEARCH_SCORES` to add to every task's scores (closed
            form, memoised under ``cache_dir``; default none: the report is unchanged).
        union_baselines: model specs whose features join the standard's baseline's (each
            block standardised over the probe set) for the ``union-*`` research scores.
        shortlists: names of :data:`~hf_stdembed.core.shortlist.STAGE1_CONFIGS` reported as
            ``two-stage[<name>]@K`` (each where its scores exist).
        declared: per candidate (pool order), the dataset ids its card declares; with
            ``dataset_ids`` (task name -> its dataset id) it gives the ``declared`` stage-1
            order (:func:`add_declared`) of the ``...+declared`` configurations.
        dataset_ids: see ``declared``.
        on_progress: hears ``evaluate``, in steps (a candidate, a task): each step as it
            starts (``item``: ``candidate <name>``, ``task <name>``), then the end. The same
            lines are logged at INFO level.
        token: Hub token for the candidates, the baseline and the probe set when they are
            private or gated (default: the saved login); no part of any cache key.

    Returns:
        The report, one :class:`TaskResult` per task and split; :meth:`EvaluationReport.save`
        writes markdown, JSON and plots.

    Raises:
        InvalidStandardError: for a union or r2 standard (see ``research`` instead).
        ValueError: on an empty pool or no task, reserved or repeated variant names, an
            unknown research score or shortlist, or ``union-*`` scores without
            ``union_baselines``.
    """
    if not candidates or not tasks:
        raise ValueError("need at least one candidate and one task")
    check_research(research, union_baselines, shortlists)
    check_variant_names(variants, research)
    if not standard.is_paper_form:
        first = standard.baseline.model
        raise InvalidStandardError(
            f"evaluate measures P standards; {standard.id!r} is a union or r2 standard: "
            f"evaluate a standard over its first baseline ({first}) with research=('r2', "
            "'union-r2') and union_baselines=(its other baselines), which give the same scores "
            "(CLI: --research union-r2 --union-baseline SPEC)"
        )
    total = len(candidates) + len(tasks)

    def step(done: int, item: str | None) -> None:
        if item is not None:
            logger.info("%s", item)
        report(on_progress, "evaluate", done, total, item=item)

    setup = PoolSetup.load(standard, cache_dir, token=token)
    transforms = [f for f in FEATURE_TRANSFORMS if any(v.features == f for v in variants)]
    infos: list[CandidateInfo] = []
    masks: dict[str, list[torch.Tensor]] = {f: [] for f in transforms}
    closed = ClosedForm.start(research, union_baselines, setup)
    # per task: per split, per candidate
    accuracies: dict[str, list[list[float]]] = {}
    logmes: dict[str, list[list[float]]] = {}
    for c, spec in enumerate(candidates):
        extractor, cand_probe, info = setup.candidate(
            spec, on_loaded=lambda name, c=c: step(c, f"candidate {name}")
        )
        for transform in transforms:
            mask, fidelity = model_embedding(
                extractor,
                cand_probe,
                setup.base_probe,
                standard,
                features=transform,
                cache_dir=cache_dir,
            )
            info.mask_size[transform] = float(mask.sum())
            info.fidelity[transform] = fidelity
            masks[transform].append(mask)
        closed.add_candidate(extractor, cand_probe, info)
        for task in tasks:
            per_split_acc = accuracies.setdefault(task.name, [])
            per_split_logme = logmes.setdefault(task.name, [])
            for s, (accuracy, score) in enumerate(
                candidate_on_task(extractor, task, probe_config, with_logme, cache_dir, device)
            ):
                if s == len(per_split_acc):
                    per_split_acc.append([])
                    per_split_logme.append([])
                per_split_acc[s].append(accuracy)
                if score is not None:
                    per_split_logme[s].append(score)
        infos.append(info)
    stacked = {c: torch.stack(m) for c, m in masks.items()}
    results = []
    for t, task in enumerate(tasks):
        step(len(candidates) + t, f"task {task.name}")
        runs = ground_truth(setup.baseline, task, probe_config, cache_dir, device)
        for s, run in enumerate(runs):
            q = task_embedding(standard, run, cache_dir, device)
            scores: dict[str, list[float]] = {}
            for v in variants:
                scores[v.name] = fuzzy_similarity(q.mask, stacked[v.features], v.metric).tolist()
            if with_logme:
                scores["logme"] = logmes[task.name][s]
            for transform in transforms:
                scores[FIDELITY_SELECTORS[transform]] = [c.fidelity[transform] for c in infos]
            forwards = closed.scores(scores, q, standard, task, s, run, device)
            scores["largest"] = [
                float(c.num_parameters if c.num_parameters is not None else c.num_features)
                for c in infos
            ]
            scores["random"] = [0.0] * len(infos)
            results.append(
                TaskResult(
                    name=task.name,
                    num_train=len(run.y_train),
                    num_test=run.num_test,
                    num_classes=int(run.num_classes or int(run.y_train.max()) + 1),
                    accuracies=accuracies[task.name][s],
                    baseline_accuracy=run.accuracy,
                    gamma=q.gamma,
                    task_mask_size=float(q.mask.sum()),
                    gamma_sweep={
                        "gammas": q.gammas.tolist(),
                        "accuracies": q.accuracies.tolist(),
                        "mask_sizes": q.mask_sizes.tolist(),
                    },
                    scores=scores,
                    split=s,
                    forwards=forwards,
                )
            )
    add_loto(results)
    if declared is not None:
        add_declared(results, declared, dataset_ids or {})
    step(total, None)
    return EvaluationReport(
        standard_id=standard.id,
        standard_hash=standard.hash,
        baseline=standard.baseline.model,
        probe_size=int(setup.base_probe.shape[0]),
        candidates=infos,
        tasks=results,
        variants=list(variants),
        settings={
            "linear_probe": asdict(probe_config),
            "logme": with_logme,
            **closed.settings(),
            **({"shortlists": list(shortlists)} if shortlists else {}),
        },
    )


def add_declared(
    results: list[TaskResult],
    declared: Sequence[Sequence[str]],
    dataset_ids: Mapping[str, str],
) -> None:
    """Adds the ``declared`` stage-1 order to every result whose task has a dataset id: score
    1 for each candidate whose card declares the task's dataset
    (:func:`~hf_stdembed.core.declared.declares`), NaN (not in the order) for the others.

    Args:
        results: the task results (pool order of candidates, as ``declared``).
        declared: per candidate, the dataset ids its card declares (its ``datasets:``).
        dataset_ids: task name -> the task's dataset id (a task missing here gets no order).

    Raises:
        ValueError: when ``declared`` does not hold one entry per candidate.
    """
    for r in results:
        if len(declared) != len(r.accuracies):
            raise ValueError(
                f"declared datasets for {len(declared)} candidates; the pool has "
                f"{len(r.accuracies)}"
            )
        dataset_id = dataset_ids.get(r.name)
        if dataset_id is not None:
            r.scores[DECLARED] = [1.0 if declares(d, dataset_id) else math.nan for d in declared]


def add_loto(results: list[TaskResult]) -> None:
    """Adds the ``loto`` reference to every result: per candidate, its mean accuracy on the
    OTHER tasks at the same split index (tasks without that split are left out). Nothing is
    added unless every result has another task at its split index."""
    others = {
        id(r): [o for o in results if o.split == r.split and o.name != r.name] for r in results
    }
    if not results or not all(others.values()):
        return
    for r in results:
        m = len(r.accuracies)
        r.scores[LOTO] = [nan_mean([o.accuracies[i] for o in others[id(r)]]) for i in range(m)]
