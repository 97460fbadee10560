"""Does selection pick good models? The paper's Table 2 protocol on a user's own pool.

:func:`evaluate` runs, for a pool of candidates, a standard and labelled tasks:

- ground truth: each candidate's linear-probe accuracy (the paper's protocol, Section 5.1,
  on cached features: the task's train split to fit, its test split to score), on every
  seeded split of a :class:`SplitTask` (features are extracted once per task's data and
  indexed per split; Q and LogME run per split, P once per candidate: it is task-blind);
- our selector: the fuzzy intersection of the task embedding (Q on the baseline's features
  of the train split) with every model embedding (P over the standard's probe set);
- reference selectors: LogME (You et al. 2021) on every candidate's train features,
  "largest model first", a uniformly random pick (in expectation), P's fidelity
  ``min(L_to, L_from)`` alone (task-blind: how well a candidate and its masked baseline
  features map onto each other), and ``loto``, leave-one-task-out general quality (a
  candidate's mean accuracy on the OTHER tasks at the same split index: what "pick the model
  that is good everywhere" is worth; it needs at least two tasks);
- per selector: the gap of the best of its top-1/3/5 to the best candidate (Table 2),
  Kendall tau and weighted tau of its scores against the accuracies, recall@K (a candidate
  within :data:`~hf_stdembed.core.ranking_metrics.RECALL_TOLERANCE` points of the best is in
  its top K, K = 1..m), and the model forward passes it spends on the task (ours: the
  baseline only, O(1); LogME: every candidate, O(m));
- every figure as the mean over splits with a 95 % percentile bootstrap interval
  (:mod:`hf_stdembed.core.statistics`); the summary marks selectors whose paired difference
  to the best one has an interval holding 0 as tied with it.

Named variants of our selector sit beside the faithful default (``faithful``) and never change
it: ``features`` centres (``centred``) or standardises (``standardised``: centred, then each
feature divided by its standard deviation) candidate and baseline features over the probe set
before P (post-ReLU features share a large mean direction that dominates the cosine
similarities, and a few high-variance features dominate the rest), and
``metric`` replaces the plain intersection by one of the normalised similarities of
:data:`~hf_stdembed.core.metric.SIMILARITIES` (a low-dimensional candidate can only be
equivalent to few baseline features, so the plain intersection favours wide models).

Research scores (issue 12; off by default, ``research=``): closed-form stage-1 scores of
:mod:`hf_stdembed.core.closed_form` beside P's: ``r2`` / ``r2+normalised`` (Q's mask against
held-out ridge R^2 masks), ``beyond-baseline`` (task-blind: the share of a candidate's features
the baseline fails to explain), ``union-r2`` / ``union-r2+normalised`` (Q and the R^2 masks on
the union of the standard's baseline and ``union_baselines``, each block standardised).
Two-stage selectors over named stage-1 configurations (``shortlists=``,
:data:`~hf_stdembed.core.shortlist.STAGE1_CONFIGS`) are reported as ``two-stage[<config>]@K``
over :data:`SHORTLIST_KS`, and :func:`two_stage_curve` gives their quality for every K.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .._files import atomic_path
from ..core import (
    LinearProbeConfig,
    TaskEmbeddingResult,
    embed_model,
    embed_task,
    fuzzy_similarity,
    linear_probe,
)
from ..core.closed_form import (
    DEFAULT_RIDGE,
    DEFAULT_SPLIT_SEED,
    beyond_baseline,
    r2_mask,
    union_features,
)
from ..core.logme import logme
from ..core.metric import SIMILARITIES
from ..core.ranking_metrics import (
    expected_random_gap,
    expected_random_recall,
    kendall_tau,
    recall_curve,
    top_k_gap,
    top_k_order,
    weighted_tau,
)
from ..core.shortlist import (
    CURVE_FIGURES,
    STAGE1_CONFIGS,
    Stage1Config,
    shortlist_curve,
    two_stage_scores,
)
from ..core.statistics import Interval, bootstrap_mean, tied_with_best
from ..data import ImageDataset, stratified_indices
from ..extractors import FeatureExtractor, load_extractor
from ..features import cache_key, extract_features
from ..pipeline import load_baseline, load_probe
from ..standards import Standard

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
:func:`two_stage_curve`)."""
BEYOND_BASELINE = "beyond-baseline"
RESEARCH_SCORES = ("r2", "r2+normalised", BEYOND_BASELINE, "union-r2", "union-r2+normalised")
"""Optional research scores of :func:`evaluate` (``research=``), named as in the report."""
UNION_SCORES = ("union-r2", "union-r2+normalised")


@dataclass(frozen=True)
class TaskSpec:
    """A labelled downstream task: the train split fits probes and Q, the test split scores."""

    name: str
    train: ImageDataset
    test: ImageDataset


@dataclass(frozen=True)
class SplitTask:
    """A labelled task measured over several train/test splits of one dataset.

    ``splits`` holds ``(train_idx, test_idx)`` row positions into ``data`` (see
    :func:`repeated_splits`): every model's features are extracted once over ``data`` and
    indexed per split, and the ground truth, Q and LogME are computed per split.
    """

    name: str
    data: ImageDataset
    splits: tuple[tuple[torch.Tensor, torch.Tensor], ...]

    def __post_init__(self) -> None:
        if not self.splits:
            raise ValueError(f"task {self.name!r} has no split")
        n = len(self.data)
        for i, (train, test) in enumerate(self.splits):
            for part, idx in (("train", train), ("test", test)):
                if idx.ndim != 1 or len(idx) == 0:
                    raise ValueError(f"task {self.name!r} split {i}: empty {part} part")
                if int(idx.min()) < 0 or int(idx.max()) >= n:
                    raise ValueError(f"task {self.name!r} split {i}: {part} row outside 0..{n - 1}")
            if len(set(train.tolist()) & set(test.tolist())):
                raise ValueError(f"task {self.name!r} split {i}: a row is in train and test")


split_indices = stratified_indices
"""Sorted ``(train_idx, test_idx)`` of a seeded stratified split (see
:func:`hf_stdembed.data.stratified_indices`)."""


def repeated_splits(
    data: ImageDataset, *, n: int = 5, test_fraction: float = 0.3, seed: int = 0
) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """``n`` seeded stratified splits of ``data`` (seeds ``seed .. seed + n - 1``).

    Raises:
        ValueError: ``n`` below 1 or ``test_fraction`` not in ``(0, 1)``.
    """
    if n < 1:
        raise ValueError(f"Invalid splits value: {n} (must be >= 1)")
    labels = data.labels()
    return tuple(
        split_indices(labels, test_fraction=test_fraction, seed=seed + i) for i in range(n)
    )


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


FEATURE_TRANSFORMS = ("raw", "centred", "standardised")
"""What is done to candidate and baseline probe features before P (over the probe set)."""
FIDELITY_SELECTORS = {f: "fidelity" if f == "raw" else f"{f} fidelity" for f in FEATURE_TRANSFORMS}
"""Task-blind reference selectors: P's min(L_to, L_from) of each candidate, per transform."""
LOTO = "loto"
"""Leave-one-task-out general quality: mean accuracy on the other tasks, same split index."""
TASK_BLIND_SELECTORS = ("random", "largest", *FIDELITY_SELECTORS.values(), LOTO, BEYOND_BASELINE)
"""Selectors that forward no model over the task's data (``loto`` reuses the other tasks')."""

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


@dataclass
class CandidateInfo:
    """What the evaluation learned about one candidate, independent of the tasks."""

    spec: str
    name: str
    num_features: int
    num_parameters: int | None
    # per feature transform of P ("raw", "centred", "standardised"): |v| and min(L_to, L_from)
    mask_size: dict[str, float] = field(default_factory=dict)
    fidelity: dict[str, float] = field(default_factory=dict)


@dataclass
class SelectorResult:
    """One selector on one task (over one pool)."""

    scores: list[float]
    gaps: dict[str, float]  # "top1" / "top3" / "top5" -> gap in accuracy points
    kendall_tau: float
    weighted_tau: float
    forward_models: int  # models run over the task's data to score the pool
    forward_samples: int  # sum over those models of the samples forwarded
    recall: list[float] = field(default_factory=list)  # recall@K for K = 1..m


@dataclass
class TaskResult:
    """Everything measured on one task and split; selectors are derived from ``scores``."""

    name: str
    num_train: int
    num_test: int
    num_classes: int
    accuracies: list[float]  # linear-probe test accuracy (%) per candidate, pool order
    baseline_accuracy: float
    gamma: float
    task_mask_size: float
    gamma_sweep: dict[str, list[float]]  # gammas, accuracies, mask_sizes
    scores: dict[str, list[float]]  # selector -> score per candidate (higher = pick first)
    split: int = 0  # index of the train/test split of the task
    forwards: dict[str, int] = field(default_factory=dict)  # models forwarded, where not 1

    def selectors(
        self, pool: list[int] | None = None, shortlists: tuple[str, ...] | list[str] = ()
    ) -> dict[str, SelectorResult]:
        """Gaps, taus and costs of every selector, over ``pool`` (indices; default: all);
        ``shortlists``: names of :data:`STAGE1_CONFIGS` to add as ``two-stage[<name>]@K``."""
        pool = list(range(len(self.accuracies))) if pool is None else pool
        acc = [self.accuracies[i] for i in pool]
        m = len(pool)
        out = {}
        configured = self._configured(pool, shortlists)
        for name, all_scores in {**self.scores, **self._two_stage(pool), **configured}.items():
            scores = [all_scores[i] for i in pool]
            if name == "logme":
                models, samples = m, m * self.num_train
            elif name.startswith(TWO_STAGE_PREFIX):  # stage 2 forwards the shortlist only
                models = min(int(name.removeprefix(TWO_STAGE_PREFIX)), m)
                samples = models * self.num_train
            elif name.startswith(CONFIG_PREFIX):
                models = min(int(name.rsplit("@", 1)[1]), m)
                samples = models * self.num_train
            elif name in self.forwards:
                models = self.forwards[name]
                samples = models * self.num_train
            elif name in TASK_BLIND_SELECTORS:
                models, samples = 0, 0
            else:
                models, samples = 1, self.num_train
            if name == "random":
                gaps = {f"top{k}": expected_random_gap(acc, k) for k in TOP_KS}
                taus = (0.0, 0.0)  # in expectation
                recall = expected_random_recall(acc)
            else:
                gaps = {f"top{k}": top_k_gap(scores, acc, k) for k in TOP_KS}
                taus = (_nan_safe(kendall_tau, scores, acc), _nan_safe(weighted_tau, scores, acc))
                recall = recall_curve(scores, acc)
            out[name] = SelectorResult(scores, gaps, taus[0], taus[1], models, samples, recall)
        return out

    def _two_stage(self, pool: list[int]) -> dict[str, list[float]]:
        """``two-stage@K`` scores over ``pool`` (indexed like ``self.scores``): the shortlist
        of K merged round-robin from :data:`TWO_STAGE_STAGE1`, ordered by LogME; empty
        without LogME or those variants."""
        config = Stage1Config(TWO_STAGE_STAGE1)
        if not has_config(self, config):
            return {}
        return {f"{TWO_STAGE_PREFIX}{k}": self._shortlisted(pool, config, k) for k in TWO_STAGE_KS}

    def _configured(self, pool: list[int], names: tuple[str, ...] | list[str]) -> dict:
        """``two-stage[<name>]@K`` scores over ``pool`` for each named configuration whose
        scores (and LogME) this result holds, K in :data:`SHORTLIST_KS`."""
        out: dict[str, list[float]] = {}
        for name in names:
            config = STAGE1_CONFIGS.get(name)  # a name a newer version dropped: left out
            if config is None or not has_config(self, config):
                continue
            for k in SHORTLIST_KS:
                out[f"{CONFIG_PREFIX}{name}]@{k}"] = self._shortlisted(pool, config, k)
        return out

    def _shortlisted(self, pool: list[int], config: Stage1Config, k: int) -> list[float]:
        """A two-stage selector's scores over ``pool`` (NaN outside it): the shortlist of K
        from ``config``'s stage-1 scores, ordered by LogME."""
        stage1 = [[self.scores[v][i] for i in pool] for v in config.scores]
        stage2 = [self.scores["logme"][i] for i in pool]
        within = two_stage_scores(stage1, stage2, k, rule=config.rule, quotas=config.quotas)
        full = [float("nan")] * len(self.accuracies)
        for j, i in enumerate(pool):
            full[i] = within[j]
        return full


def has_config(result: TaskResult, config: Stage1Config) -> bool:
    """Whether a task result holds every score of a stage-1 configuration, and LogME."""
    return "logme" in result.scores and all(s in result.scores for s in config.scores)


@dataclass
class EvaluationReport:
    """The evaluation of one pool under one standard over several tasks."""

    standard_id: str
    standard_hash: str
    baseline: str
    probe_size: int
    candidates: list[CandidateInfo]
    tasks: list[TaskResult]
    variants: list[Variant]
    settings: dict[str, Any] = field(default_factory=dict)

    def pool_indices(self, specs: list[str] | None) -> list[int]:
        """Indices of the candidates whose spec is in ``specs`` (all when None)."""
        if specs is None:
            return list(range(len(self.candidates)))
        return [i for i, c in enumerate(self.candidates) if c.spec in specs]

    def task_names(self) -> list[str]:
        """The tasks' names, in evaluation order (each task may have several splits)."""
        return list(dict.fromkeys(t.name for t in self.tasks))

    def splits_of(self, name: str) -> list[TaskResult]:
        """The results of one task, one per split, in split order."""
        return sorted((t for t in self.tasks if t.name == name), key=lambda t: t.split)

    @property
    def num_splits(self) -> int:
        """The most splits any task has."""
        return max((len(self.splits_of(n)) for n in self.task_names()), default=0)

    def summary(self, specs: list[str] | None = None) -> dict[str, Any]:
        """Per task and selector: gaps, taus, recall@K and costs (means over the task's splits,
        ``intervals`` their 95 % bootstrap intervals); and ``mean``: per selector, the mean
        over tasks measured per split index, then its mean and interval over split indices
        (``max_top1``...: the worst task of each split), with ``per_split`` values and
        ``tied_best``: whether the selector ties the best selector on that figure."""
        pool = self.pool_indices(specs)
        shortlists = tuple(self.settings.get("shortlists", ()))
        results = {(t.name, t.split): t.selectors(pool, shortlists) for t in self.tasks}
        names = list(results[next(iter(results))]) if results else []
        per_task: dict[str, dict[str, Any]] = {}
        for task in self.task_names():
            runs = [results[(t.name, t.split)] for t in self.splits_of(task)]
            per_task[task] = {n: _over_splits([r[n] for r in runs if n in r]) for n in names}
        split_ids = sorted({t.split for t in self.tasks})
        mean: dict[str, Any] = {}
        for name in names:
            per_split: dict[str, list[Any]] = {k: [] for k in _MEAN_FIGURES}
            recalls = []
            for s in split_ids:
                rows = [r[name] for (_, split), r in results.items() if split == s and name in r]
                if not rows:
                    continue
                for g in _GAPS:
                    per_split[g].append(_mean([r.gaps[g] for r in rows]))
                    per_split[f"max_{g}"].append(max(r.gaps[g] for r in rows))
                per_split["weighted_tau"].append(_mean([r.weighted_tau for r in rows]))
                per_split["kendall_tau"].append(_mean([r.kendall_tau for r in rows]))
                per_split["forward_models"].append(_mean([r.forward_models for r in rows]))
                by_k = zip(*(r.recall for r in rows), strict=True)
                recalls.append([_mean(list(ks)) for ks in by_k])
            intervals = {k: bootstrap_mean(v) for k, v in per_split.items()}
            recall = [bootstrap_mean(list(ks)) for ks in zip(*recalls, strict=True)]
            mean[name] = {
                **{k: i.mean for k, i in intervals.items()},
                "intervals": {k: i.as_list() for k, i in intervals.items()},
                "recall": [i.mean for i in recall],
                "recall_intervals": [i.as_list() for i in recall],
                "per_split": per_split,
            }
        for figure in _MEAN_FIGURES:
            if figure == "forward_models":
                continue
            values = {n: mean[n]["per_split"][figure] for n in names}
            tied = tied_with_best(values, lower_is_better="tau" not in figure)
            for n in names:
                mean[n].setdefault("tied_best", {})[figure] = tied[n]
        return {
            "pool": [self.candidates[i].spec for i in pool],
            "splits": len(split_ids),
            "tasks": per_task,
            "mean": mean,
        }

    def accuracy_intervals(self, name: str) -> list[Interval]:
        """Per candidate, its linear-probe accuracy on task ``name`` over the splits."""
        runs = self.splits_of(name)
        m = len(self.candidates)
        return [bootstrap_mean([t.accuracies[i] for t in runs]) for i in range(m)]

    def to_dict(self, pools: dict[str, list[str] | None] | None = None) -> dict[str, Any]:
        """Every number: candidates, tasks (accuracies, scores, gamma sweep), summaries."""
        pools = pools or {"all": None}
        return {
            "standard": {"id": self.standard_id, "hash": self.standard_hash},
            "baseline": self.baseline,
            "probe_size": self.probe_size,
            "variants": [asdict(v) for v in self.variants],
            "settings": self.settings,
            "candidates": [asdict(c) for c in self.candidates],
            "tasks": [asdict(t) for t in self.tasks],
            "summary": {name: self.summary(specs) for name, specs in pools.items()},
        }

    def to_markdown(self, pools: dict[str, list[str] | None] | None = None) -> str:
        """Table-2-like tables (one per pool) and a per-task table of candidates."""
        pools = pools or {"all": None}
        lines = [f"## Standard `{self.standard_id}` (baseline `{self.baseline}`)", ""]
        for pool_name, specs in pools.items():
            summary = self.summary(specs)
            names = list(summary["mean"])
            lines += [
                f"### Pool: {pool_name} ({len(summary['pool'])} candidates)",
                "",
                "Gap (points) of the best of the top-1 / top-3 / top-5 to the best candidate,"
                " weighted Kendall tau (wτ) of scores vs accuracy, models forwarded per task.",
                "",
                "| task | " + " | ".join(names) + " |",
                "| --- | " + " | ".join("---" for _ in names) + " |",
            ]
            for task, sels in summary["tasks"].items():
                cells = [_cell(sels[n]["gaps"], sels[n]["weighted_tau"]) for n in names]
                lines.append(f"| {task} | " + " | ".join(cells) + " |")
            mean_cells = [
                _cell(summary["mean"][n], summary["mean"][n]["weighted_tau"]) for n in names
            ]
            lines.append("| **mean** | " + " | ".join(mean_cells) + " |")
            cost = [f"{summary['mean'][n]['forward_models']:.0f}" for n in names]
            lines += ["| forward passes (models) | " + " | ".join(cost) + " |", ""]
            lines += interval_table(summary) + recall_table(summary)
        lines += ["### Candidates per task", ""]
        for task in self.task_names():
            lines += _task_table(self, task)
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationReport:
        """The report back from :meth:`to_dict`'s JSON (summaries are recomputed, not read;
        fields a older report lacks take their defaults, unknown ones are ignored).

        Raises:
            ValueError: the data is not a saved evaluation report.
        """
        try:
            return cls(
                standard_id=data["standard"]["id"],
                standard_hash=data["standard"]["hash"],
                baseline=data["baseline"],
                probe_size=int(data["probe_size"]),
                candidates=[_known(CandidateInfo, c) for c in data["candidates"]],
                tasks=[_known(TaskResult, t) for t in data["tasks"]],
                variants=[_known(Variant, v) for v in data["variants"]],
                settings=dict(data.get("settings") or {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a saved evaluation report ({type(e).__name__}: {e})") from e

    def save(
        self,
        out: str | Path,
        *,
        pools: dict[str, list[str] | None] | None = None,
        plots: bool = True,
    ) -> list[Path]:
        """Writes ``report.md``, ``report.json`` and (with matplotlib) PNG plots under ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "report.md", out / "report.json"]
        written[0].write_text(self.to_markdown(pools) + "\n")
        written[1].write_text(
            json.dumps(self.to_dict(pools), indent=1, default=_json_default) + "\n"
        )
        if plots:
            written += plot_report(self, out, pools=pools)
        return written


def load_report(path: str | Path) -> EvaluationReport:
    """An :class:`EvaluationReport` from a saved ``report.json`` (or the folder holding one).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not JSON or not a saved evaluation report.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a saved evaluation report")
    try:
        return EvaluationReport.from_dict(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def _known(cls: Any, data: dict[str, Any]) -> Any:
    names = set(cls.__dataclass_fields__)
    return cls(**{k: v for k, v in data.items() if k in names})


CURVE_SUMMARY_FIGURES = ("top1", "max_top1", "weighted_tau", "recall1", "stage1_recall")
"""Figures of :func:`two_stage_curve` per K: mean and worst (over tasks) top-1 gap, weighted
tau, recall@1 of the final order, stage-1 recall@K."""


def two_stage_curve(
    report: EvaluationReport,
    config: str | Stage1Config,
    *,
    specs: list[str] | None = None,
) -> dict[str, Any] | None:
    """A two-stage selector's quality against its shortlist size K = 1..m, over a pool.

    Per task and split :func:`~hf_stdembed.core.shortlist.shortlist_curve` (the shortlist of
    K from the configuration's stage-1 scores, ordered by LogME); per split index the mean
    over tasks (``max_top1``: the worst task), then the mean over split indices with its 95 %
    bootstrap interval, as :meth:`EvaluationReport.summary` does. Stage 2 forwards K models.

    Args:
        report: the evaluation (with LogME).
        config: a name of :data:`~hf_stdembed.core.shortlist.STAGE1_CONFIGS` or a
            configuration (``Stage1Config(("logme",))`` at K = m is LogME over all).
        specs: the pool (candidate specs; default all).

    Returns:
        ``{"ks", "forward_models", "mean": {figure: [per K]}, "intervals": {figure: [[low,
        high] per K]}, "splits"}`` over :data:`CURVE_SUMMARY_FIGURES`; None when a task lacks
        the configuration's scores or LogME.
    """
    config = STAGE1_CONFIGS[config] if isinstance(config, str) else config
    if not report.tasks or not all(has_config(t, config) for t in report.tasks):
        return None
    pool = report.pool_indices(specs)
    per_split: dict[int, list[list[dict[str, float]]]] = {}
    for t in report.tasks:
        curve = shortlist_curve(
            [[t.scores[s][i] for i in pool] for s in config.scores],
            [t.scores["logme"][i] for i in pool],
            [t.accuracies[i] for i in pool],
            rule=config.rule,
            quotas=config.quotas,
        )
        per_split.setdefault(t.split, []).append(curve)
    m = len(pool)
    mean: dict[str, list[float]] = {f: [] for f in CURVE_SUMMARY_FIGURES}
    intervals: dict[str, list[list[float]]] = {f: [] for f in CURVE_SUMMARY_FIGURES}
    for k in range(m):
        values: dict[str, list[float]] = {f: [] for f in CURVE_SUMMARY_FIGURES}
        for curves in per_split.values():
            for figure in CURVE_FIGURES:
                values[figure].append(_mean([c[k][figure] for c in curves]))
            values["max_top1"].append(max(c[k]["top1"] for c in curves))
        for figure, per in values.items():
            interval = bootstrap_mean(per)
            mean[figure].append(interval.mean)
            intervals[figure].append(interval.as_list())
    ks = list(range(1, m + 1))
    return {
        "ks": ks,
        "forward_models": ks,
        "mean": mean,
        "intervals": intervals,
        "splits": len(per_split),
    }


def logme_over_all(report: EvaluationReport, *, specs: list[str] | None = None) -> dict | None:
    """LogME over the whole pool (every candidate forwarded) in :func:`two_stage_curve`'s
    figures: ``{"forward_models", "mean": {figure: value}, "intervals": {figure: [low,
    high]}}``; None without LogME."""
    curve = two_stage_curve(report, Stage1Config(("logme",)), specs=specs)
    if curve is None:
        return None
    return {
        "forward_models": curve["ks"][-1],
        "mean": {f: v[-1] for f, v in curve["mean"].items()},
        "intervals": {f: v[-1] for f, v in curve["intervals"].items()},
        "splits": curve["splits"],
    }


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
    progress: bool = True,
    research: tuple[str, ...] = (),
    union_baselines: tuple[str, ...] | list[str] = (),
    shortlists: tuple[str, ...] = (),
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
        progress: print progress to stderr.
        research: names of :data:`RESEARCH_SCORES` to add to every task's scores (closed
            form, memoised under ``cache_dir``; default none: the report is unchanged).
        union_baselines: model specs whose features join the standard's baseline's (each
            block standardised over the probe set) for the ``union-*`` research scores.
        shortlists: names of :data:`~hf_stdembed.core.shortlist.STAGE1_CONFIGS` reported as
            ``two-stage[<name>]@K`` (each where its scores exist).

    Returns:
        The report, one :class:`TaskResult` per task and split; :meth:`EvaluationReport.save`
        writes markdown, JSON and plots.

    Raises:
        ValueError: on an empty pool or no task, reserved or repeated variant names, an
            unknown research score or shortlist, or ``union-*`` scores without
            ``union_baselines``.
    """
    if not candidates or not tasks:
        raise ValueError("need at least one candidate and one task")
    _check_research(research, union_baselines, shortlists)
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
    log = _logger(progress)
    feats = {"cache_dir": cache_dir, "progress": False}
    baseline = load_baseline(standard)
    probe = load_probe(standard)
    base_probe = extract_features(baseline, probe, **feats)
    transforms = [f for f in FEATURE_TRANSFORMS if any(v.features == f for v in variants)]
    infos: list[CandidateInfo] = []
    masks: dict[str, list[torch.Tensor]] = {f: [] for f in transforms}
    closed = _ClosedForm.start(research, union_baselines, baseline, probe, base_probe, cache_dir)
    # per task: per split, per candidate
    accuracies: dict[str, list[list[float]]] = {}
    logmes: dict[str, list[list[float]]] = {}
    for spec in candidates:
        extractor = spec if isinstance(spec, FeatureExtractor) else load_extractor(spec)
        log(f"candidate {extractor.name}")
        cand_probe = extract_features(extractor, probe, **feats)
        info = CandidateInfo(
            spec=spec if isinstance(spec, str) else extractor.name,
            name=extractor.name,
            num_features=int(cand_probe.shape[1]),
            num_parameters=_num_parameters(extractor),
        )
        for transform in transforms:
            mask, fidelity = model_embedding(
                extractor, cand_probe, base_probe, standard, features=transform, cache_dir=cache_dir
            )
            info.mask_size[transform] = float(mask.sum())
            info.fidelity[transform] = fidelity
            masks[transform].append(mask)
        closed.add_candidate(extractor, cand_probe, info)
        for task in tasks:
            per_split_acc = accuracies.setdefault(task.name, [])
            per_split_logme = logmes.setdefault(task.name, [])
            for s, (accuracy, score) in enumerate(
                _candidate_on_task(extractor, task, probe_config, with_logme, cache_dir, device)
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
    for task in tasks:
        log(f"task {task.name}")
        runs = _ground_truth(baseline, task, probe_config, cache_dir, device)
        for s, run in enumerate(runs):
            q = _task_embedding(standard, run, cache_dir, device)
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
    return EvaluationReport(
        standard_id=standard.id,
        standard_hash=standard.hash,
        baseline=standard.baseline.model,
        probe_size=int(base_probe.shape[0]),
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


def _check_research(
    research: tuple[str, ...], union_baselines: Any, shortlists: tuple[str, ...]
) -> None:
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


@dataclass
class _ClosedForm:
    """The research scores of one :func:`evaluate` run: closed-form masks and scalars per
    candidate (memoised under new memo kinds, keyed by the feature caches' identities), and
    per task split the scores Q's mask gets against them.

    The union's blocks are put in a canonical order (by feature identity), so two standards
    whose baselines form the same union (A's with B, B's with A) share its Q and R^2 masks."""

    research: tuple[str, ...]
    cache_dir: str | Path | None
    probe: ImageDataset
    base_key: dict[str, Any]
    base_probe: torch.Tensor
    union: list[FeatureExtractor | None]  # the union's blocks, canonical order; None: baseline
    union_keys: list[dict[str, Any]]  # their feature identities, same order
    union_probe: torch.Tensor | None
    union_stats: list[Any]
    r2: list[torch.Tensor] = field(default_factory=list)
    union_r2: list[torch.Tensor] = field(default_factory=list)
    beyond: list[float] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        research: tuple[str, ...],
        union_baselines: Any,
        baseline: FeatureExtractor,
        probe: ImageDataset,
        base_probe: torch.Tensor,
        cache_dir: str | Path | None,
    ) -> _ClosedForm:
        union: list[FeatureExtractor | None] = []
        union_keys: list[dict[str, Any]] = []
        union_probe, stats = None, []
        if any(r in UNION_SCORES for r in research):
            members: list[FeatureExtractor | None] = [None]
            members += [load_extractor(spec) for spec in union_baselines]
            keyed = [(cache_key(baseline if u is None else u, probe), u) for u in members]
            keyed.sort(key=lambda pair: json.dumps(pair[0], sort_keys=True))
            union_keys, union = [k for k, _ in keyed], [u for _, u in keyed]
            blocks = [
                base_probe
                if u is None
                else extract_features(u, probe, cache_dir=cache_dir, progress=False)
                for u in union
            ]
            union_probe, stats = union_features(blocks)
        return cls(
            research=tuple(research),
            cache_dir=cache_dir,
            probe=probe,
            base_key=cache_key(baseline, probe),
            base_probe=base_probe,
            union=union,
            union_keys=union_keys,
            union_probe=union_probe,
            union_stats=stats,
        )

    def _key(self, candidate: FeatureExtractor, targets: list[Any]) -> list[Any]:
        return [cache_key(candidate, self.probe), targets, list(DEFAULT_RIDGE), DEFAULT_SPLIT_SEED]

    def add_candidate(
        self, extractor: FeatureExtractor, cand_probe: torch.Tensor, info: CandidateInfo
    ) -> None:
        """The candidate's R^2 masks and beyond-baseline scalar (what ``research`` needs)."""
        if {"r2", "r2+normalised"} & set(self.research):
            key = self._key(extractor, [self.base_key])
            mask = _memo_tensor(
                self.cache_dir, "r2-mask", key, r2_mask, cand_probe, self.base_probe
            )
            self.r2.append(mask)
            info.mask_size["r2"] = float(mask.sum())
        if BEYOND_BASELINE in self.research:
            key = self._key(extractor, [self.base_key])
            value = _memo(
                self.cache_dir, "beyond-baseline", key, beyond_baseline, cand_probe, self.base_probe
            )
            self.beyond.append(float(value))
        if self.union_probe is not None:
            key = self._key(extractor, self.union_keys)
            mask = _memo_tensor(
                self.cache_dir, "union-r2-mask", key, r2_mask, cand_probe, self.union_probe
            )
            self.union_r2.append(mask)
            info.mask_size["union-r2"] = float(mask.sum())

    def scores(
        self,
        scores: dict[str, list[float]],
        q: TaskEmbeddingResult,
        standard: Standard,
        task: TaskSpec | SplitTask,
        split: int,
        run: _SplitRun,
        device: str | torch.device | None,
    ) -> dict[str, int]:
        """Adds the research scores of one task split to ``scores``; returns the models each
        forwards over the task where that is not one (the union's baselines)."""
        forwards: dict[str, int] = {}
        metrics = {"r2": "intersection", "r2+normalised": "model-normalised"}
        for name, metric in metrics.items():
            if name in self.research:
                scores[name] = fuzzy_similarity(q.mask, torch.stack(self.r2), metric).tolist()
        if BEYOND_BASELINE in self.research:
            scores[BEYOND_BASELINE] = list(self.beyond)
        if self.union_probe is not None:
            q_union = self._union_task_embedding(standard, task, split, run, device)
            stacked = torch.stack(self.union_r2)
            for name, metric in zip(UNION_SCORES, metrics.values(), strict=True):
                if name in self.research:
                    scores[name] = fuzzy_similarity(q_union.mask, stacked, metric).tolist()
                    forwards[name] = len(self.union)
        return forwards

    def _union_task_embedding(
        self,
        standard: Standard,
        task: TaskSpec | SplitTask,
        split: int,
        run: _SplitRun,
        device: str | torch.device | None,
    ) -> TaskEmbeddingResult:
        """Q on the union's standardised train features of one split (memoised: new work,
        shared by the standards whose baselines form the same union)."""
        blocks = [
            run.x_train if u is None else _train_features(u, task, split, self.cache_dir)
            for u in self.union
        ]
        x_train, _ = union_features(blocks, stats=self.union_stats)
        key = [asdict(standard.task_embedding), self.union_keys, *run.data_ident]
        return _memo(
            self.cache_dir,
            "union-task-embedding",
            key,
            embed_task,
            x_train,
            run.y_train,
            num_classes=run.num_classes,
            config=standard.task_embedding,
            device=device,
        )

    def settings(self) -> dict[str, Any]:
        """What the report records of the research scores (nothing when none were asked)."""
        if not self.research:
            return {}
        return {
            "research": {
                "scores": list(self.research),
                "union_baselines": [u.name for u in self.union if u is not None],
                "ridge": list(DEFAULT_RIDGE),
                "split_seed": DEFAULT_SPLIT_SEED,
            }
        }


def _train_features(
    extractor: FeatureExtractor,
    task: TaskSpec | SplitTask,
    split: int,
    cache_dir: str | Path | None,
) -> torch.Tensor:
    """A model's features of one split's train rows (indexed as :func:`_ground_truth` does)."""
    if isinstance(task, TaskSpec):
        return extract_features(extractor, task.train, cache_dir=cache_dir, progress=False)
    x = extract_features(extractor, task.data, cache_dir=cache_dir, progress=False)
    return x[task.splits[split][0]]


def _memo_tensor(
    cache_dir: str | Path | None, kind: str, key: Any, fn: Any, *args: Any, **kw: Any
) -> torch.Tensor:
    """``fn(*args, **kw)``, a tensor, kept like :func:`_memo`'s values (same key scheme)."""
    if cache_dir is None:
        return fn(*args, **kw)
    path, text = _memo_path(cache_dir, kind, key)
    saved = _read_cached(path, text)
    if saved is not None and "value" in saved[0]:
        return saved[0]["value"]
    value = fn(*args, **kw)
    _write_cached(path, text, {"value": value}, {})
    return value


def precompute_ground_truth(
    candidates: list[str],
    standards: list[Standard],
    tasks: list[TaskSpec | SplitTask],
    *,
    probe_config: LinearProbeConfig = LinearProbeConfig(),
    with_logme: bool = True,
    device: str | torch.device | None = None,
    cache_dir: str | Path,
    log: Any = None,
) -> None:
    """Fills ``cache_dir`` with what :func:`evaluate` needs besides P: every candidate's
    linear probes and LogME scores on every split (standard-independent) and every standard's
    task embeddings. Lets a cold benchmark run the ground truth beside P's optimisations."""
    log = log or (lambda message: None)
    for spec in candidates:
        extractor = load_extractor(spec)
        for task in tasks:
            for _ in _candidate_on_task(
                extractor, task, probe_config, with_logme, cache_dir, device
            ):
                pass
        log(f"ground truth {extractor.name}")
    for standard in standards:
        baseline = load_baseline(standard)
        for task in tasks:
            for run in _ground_truth(baseline, task, probe_config, cache_dir, device):
                _task_embedding(standard, run, cache_dir, device)
            log(f"task embeddings {standard.id} {task.name}")


def precompute_research(
    candidates: list[str],
    standard: Standard,
    research: tuple[str, ...],
    *,
    union_baselines: tuple[str, ...] | list[str] = (),
    cache_dir: str | Path,
    log: Any = None,
) -> None:
    """Fills ``cache_dir`` with the closed-form research masks and scalars of every candidate
    under ``standard`` (what :func:`evaluate` with ``research`` reads back), without P."""
    log = log or (lambda message: None)
    _check_research(research, union_baselines, ())
    probe = load_probe(standard)
    baseline = load_baseline(standard)
    base_probe = extract_features(baseline, probe, cache_dir=cache_dir, progress=False)
    closed = _ClosedForm.start(research, union_baselines, baseline, probe, base_probe, cache_dir)
    for spec in candidates:
        extractor = load_extractor(spec)
        cand_probe = extract_features(extractor, probe, cache_dir=cache_dir, progress=False)
        info = CandidateInfo(spec, extractor.name, int(cand_probe.shape[1]), None)
        closed.add_candidate(extractor, cand_probe, info)
        log(f"research {standard.id} {extractor.name}")


def _candidate_on_task(
    extractor: FeatureExtractor,
    task: TaskSpec | SplitTask,
    probe_config: LinearProbeConfig,
    with_logme: bool,
    cache_dir: str | Path | None,
    device: str | torch.device | None,
) -> list[tuple[float, float | None]]:
    """Per split: the candidate's linear-probe accuracy and its LogME score (memoised)."""
    out = []
    for run in _ground_truth(extractor, task, probe_config, cache_dir, device):
        score = None
        if with_logme:
            score = _memo(
                cache_dir,
                "logme",
                run.ident,
                logme,
                run.x_train,
                run.y_train,
                num_classes=run.num_classes,
            )
        out.append((run.accuracy, score))
    return out


def _task_embedding(
    standard: Standard,
    run: _SplitRun,
    cache_dir: str | Path | None,
    device: str | torch.device | None,
) -> TaskEmbeddingResult:
    """Q on the baseline's train features of one split (memoised)."""
    return _memo(
        cache_dir,
        "task-embedding",
        [standard.hash, *run.data_ident],
        embed_task,
        run.x_train,
        run.y_train,
        num_classes=run.num_classes,
        config=standard.task_embedding,
        device=device,
    )


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
        r.scores[LOTO] = [_mean([o.accuracies[i] for o in others[id(r)]]) for i in range(m)]


def model_embedding(
    extractor: FeatureExtractor,
    candidate: torch.Tensor,
    baseline: torch.Tensor,
    standard: Standard,
    *,
    features: str = "raw",
    cache_dir: str | Path | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, float]:
    """P of one candidate on the probe features, transformed first (``features``, one of
    :data:`FEATURE_TRANSFORMS`): mask and fidelity.

    ``candidate`` and ``baseline`` must be the features of the standard's probe set: with
    ``cache_dir``, the result is kept under ``cache_dir/model-embeddings`` keyed by the model's
    identity, the standard's hash (which fixes the probe set) and the centring, not by the
    tensors, so a re-run skips the optimisation.
    """
    key = json.dumps(
        [extractor.name, extractor.revision, extractor.preprocessing, standard.hash, features]
    )
    path = None
    if cache_dir is not None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        path = Path(cache_dir) / "model-embeddings" / f"{digest}.safetensors"
        saved = _read_cached(path, key)
        if saved is not None:
            tensors, scalars = saved
            return tensors["mask"], float(scalars["fidelity"])
    candidate, baseline = _transform(candidate, features), _transform(baseline, features)
    result = embed_model(candidate, baseline, config=standard.model_embedding, device=device)
    if path is not None:
        _write_cached(path, key, {"mask": result.mask}, {"fidelity": result.fidelity})
    return result.mask, result.fidelity


def interval_table(summary: dict[str, Any]) -> list[str]:
    """Markdown: per selector, the mean over tasks of each figure with its 95 % bootstrap
    interval over splits; the best selector's figure in bold, ``≈`` on the ones tied with it
    (their paired difference to the best has an interval holding 0)."""
    figures = [
        ("top1", "top-1 gap"),
        ("top3", "top-3 gap"),
        ("top5", "top-5 gap"),
        ("max_top1", "worst top-1"),
        ("max_top3", "worst top-3"),
        ("weighted_tau", "wτ"),
        ("kendall_tau", "τ"),
    ]
    lines = [
        f"Mean over tasks, [95 % bootstrap interval] over {summary['splits']} split(s); "
        "**bold**: the best selector, ≈: tied with it (paired difference inside its interval).",
        "",
        "| selector | " + " | ".join(label for _, label in figures) + " | models forwarded |",
        "| --- " * (len(figures) + 2) + "|",
    ]
    means = summary["mean"]
    best = {
        f: (min if "tau" not in f else max)(
            (n for n in means if not math.isnan(means[n][f])),
            key=lambda n, f=f: means[n][f],
            default=None,
        )
        for f, _ in figures
    }
    for name, m in means.items():
        cells = []
        for f, _ in figures:
            text = _interval_text(m[f], m["intervals"][f])
            if name == best[f]:
                text = f"**{text}**"
            elif m["tied_best"][f]:
                text += " ≈"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {m['forward_models']:.0f} |")
    return [*lines, ""]


def recall_table(summary: dict[str, Any], ks: list[int] | None = None) -> list[str]:
    """Markdown: recall@K (a candidate within 1 point of the best in the top K), share of
    task x split, with 95 % intervals: one row per K = 1..m and one column per selector, or,
    given ``ks``, one row per selector and one column per K of ``ks`` (a compact view)."""
    names = list(summary["mean"])
    m = len(summary["pool"])
    lines = [
        "recall@K: share of task x split where a candidate within 1 point of the best is in "
        "the selector's top K [95 % interval over splits].",
        "",
    ]

    def cell(name: str, k: int) -> str:
        mean = summary["mean"][name]
        return _interval_text(mean["recall"][k - 1], mean["recall_intervals"][k - 1])

    if ks is not None:
        ks = [k for k in ks if 1 <= k <= m]
        lines += ["| selector | " + " | ".join(f"K={k}" for k in ks) + " |"]
        lines += ["| --- " * (len(ks) + 1) + "|"]
        lines += [f"| {n} | " + " | ".join(cell(n, k) for k in ks) + " |" for n in names]
        return [*lines, ""]
    lines += ["| K | " + " | ".join(names) + " |", "| --- " * (len(names) + 1) + "|"]
    for k in range(1, m + 1):
        lines.append(f"| {k} | " + " | ".join(cell(n, k) for n in names) + " |")
    return [*lines, ""]


def plot_report(
    report: EvaluationReport,
    out: str | Path,
    *,
    pools: dict[str, list[str] | None] | None = None,
) -> list[Path]:
    """Per task: mean accuracy over splits against each selector's mean score (bars: the
    accuracy's 95 % interval; baseline accuracy dashed); the gamma sweep of Q (first split);
    per pool, recall@K of every selector with its interval. Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing: no plots (pip install 'hf-stdembed[eval]')", file=sys.stderr)
        return []
    out = Path(out)
    written = []
    labels = [_short(c.name) for c in report.candidates]
    for task_name in report.task_names():
        runs = report.splits_of(task_name)
        scores = {
            n: [_mean([t.scores[n][i] for t in runs]) for i in range(len(labels))]
            for n in runs[0].scores
            if n != "random"
        }
        acc = report.accuracy_intervals(task_name)
        ys = [a.mean for a in acc]
        errors = [[a.mean - a.low for a in acc], [a.high - a.mean for a in acc]]
        baseline = _mean([t.baseline_accuracy for t in runs])
        names = list(scores)
        cols = min(3, len(names))
        rows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.8 * rows), squeeze=False)
        for ax in axes.flat[len(names) :]:
            ax.axis("off")
        for ax, name in zip(axes.flat, names, strict=False):
            xs = scores[name]
            ax.errorbar(xs, ys, yerr=errors, fmt="o", ms=3, lw=0.8)
            for x, y, label in zip(xs, ys, labels, strict=True):
                ax.annotate(label, (x, y), fontsize=5, alpha=0.8)
            ax.axhline(baseline, ls="--", c="gray", lw=1, label="baseline")
            if name == "largest":
                ax.set_xscale("log")
            ax.set_xlabel(name)
            ax.set_title(f"{task_name}: {name}", fontsize=9)
        axes[0][0].set_ylabel(f"linear-probe accuracy (%), mean of {len(runs)} split(s)")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        path = out / f"{report.standard_id}-{task_name}-accuracy-vs-score.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for task_name in report.task_names():
        task = report.splits_of(task_name)[0]
        gam = task.gamma_sweep["gammas"]
        xs = [max(g, 1e-7) for g in gam]
        axes[0].plot(xs, task.gamma_sweep["accuracies"], marker=".", label=task.name)
        axes[1].plot(xs, task.gamma_sweep["mask_sizes"], marker=".", label=task.name)
    for ax, ylabel in zip(axes, ("Q accuracy (%)", "|u| (mask size)"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("gamma (0 drawn at 1e-7)")
        ax.set_ylabel(ylabel)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"gamma sweep of Q (first split), standard {report.standard_id}", fontsize=9)
    fig.tight_layout()
    path = out / f"{report.standard_id}-gamma-sweep.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    for pool_name, specs in (pools or {"all": None}).items():
        path = out / _recall_plot_name(report, pool_name)
        written.append(plot_recall(report.summary(specs), path))
    return written


def plot_recall(summary: dict[str, Any], path: str | Path, *, title: str = "") -> Path:
    """recall@K against K for every selector of a summary, shaded 95 % intervals; the named
    stage-1 configurations (``two-stage[<config>]@K``) are left to their own curves
    (:func:`two_stage_curve`), the table keeps them."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    m = len(summary["pool"])
    ks = list(range(1, m + 1))
    colours = plt.get_cmap("tab20").colors
    shown = {n: v for n, v in summary["mean"].items() if not n.startswith("two-stage[")}
    for i, (name, stats) in enumerate(shown.items()):
        style = "--" if name in TASK_BLIND_SELECTORS or name == "logme" else "-"
        (line,) = ax.plot(
            ks, stats["recall"], style, marker=".", ms=3, lw=1, label=name, c=colours[i % 20]
        )
        low = [i[0] for i in stats["recall_intervals"]]
        high = [i[1] for i in stats["recall_intervals"]]
        ax.fill_between(ks, low, high, color=line.get_color(), alpha=0.12, lw=0)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("K (models kept)")
    ax.set_ylabel("recall@K (a model within 1 point of the best in the top K)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title or f"recall@K over {summary['splits']} split(s), {m} candidates", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --- helpers ----------------------------------------------------------------------------


def _probe_accuracy(*args: Any, **kwargs: Any) -> float:
    return linear_probe(*args, **kwargs).accuracy


@dataclass(frozen=True)
class _SplitRun:
    """One model on one split of a task: train features, ident keys and probe accuracy."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    num_test: int
    num_classes: int | None
    data_ident: list[Any]  # the split's identity (fingerprints, row digests)
    ident: list[Any]  # the model's and the split's identity
    accuracy: float


def _ground_truth(
    extractor: FeatureExtractor,
    task: TaskSpec | SplitTask,
    config: LinearProbeConfig,
    cache_dir: str | Path | None,
    device: str | torch.device | None,
) -> list[_SplitRun]:
    """Per split of the task: a model's train features, their cache identity, and its
    linear-probe test accuracy (memoised). A :class:`SplitTask`'s features are extracted once
    and indexed per split."""
    model = [extractor.name, extractor.revision, extractor.preprocessing]
    parts = []
    if isinstance(task, TaskSpec):
        x_train = extract_features(extractor, task.train, cache_dir=cache_dir, progress=False)
        x_test = extract_features(extractor, task.test, cache_dir=cache_dir, progress=False)
        data_ident = [task.train.fingerprint, task.test.fingerprint]
        labels = (task.train.labels(), task.test.labels())
        parts.append((x_train, x_test, *labels, data_ident, task.train.num_classes))
    else:
        x = extract_features(extractor, task.data, cache_dir=cache_dir, progress=False)
        y = task.data.labels()
        for train, test in task.splits:
            data_ident = [task.data.fingerprint, _rows_digest(train), _rows_digest(test)]
            parts.append((x[train], x[test], y[train], y[test], data_ident, task.data.num_classes))
    runs = []
    for x_train, x_test, y_train, y_test, data_ident, num_classes in parts:
        ident = [*model, *data_ident]
        accuracy = _memo(
            cache_dir,
            "linear-probe",
            [*ident, asdict(config)],
            _probe_accuracy,
            x_train,
            y_train,
            x_test,
            y_test,
            num_classes=num_classes,
            config=config,
            device=device,
        )
        runs.append(
            _SplitRun(x_train, y_train, len(y_test), num_classes, data_ident, ident, accuracy)
        )
    return runs


def _rows_digest(rows: torch.Tensor) -> str:
    return hashlib.sha256(rows.to(torch.int64).numpy().tobytes()).hexdigest()[:24]


_MEMO_VERSION = 2
"""Bumped when a memoised computation changes (2: Q's head is projected, not reparameterised)."""


def _memo(cache_dir: str | Path | None, kind: str, key: Any, fn: Any, *args: Any, **kw: Any) -> Any:
    """``fn(*args, **kw)`` (a float or a :class:`TaskEmbeddingResult`), kept under
    ``cache_dir/evaluation/<kind>/`` as safetensors, keyed by the JSON of ``key``."""
    if cache_dir is None:
        return fn(*args, **kw)
    path, text = _memo_path(cache_dir, kind, key)
    saved = _read_cached(path, text)
    if saved is not None:
        tensors, scalars = saved
        try:
            if "value" in scalars:
                return float(scalars["value"])
            return TaskEmbeddingResult(**tensors, **scalars)
        except (TypeError, ValueError):  # a file of another layout is recomputed, not fatal
            pass
    value = fn(*args, **kw)
    if isinstance(value, TaskEmbeddingResult):
        fields = asdict(value)
        tensors = {k: v for k, v in fields.items() if isinstance(v, torch.Tensor)}
        scalars = {k: v for k, v in fields.items() if k not in tensors}
    else:
        tensors, scalars = {}, {"value": float(value)}
    _write_cached(path, text, tensors, scalars)
    return value


def _memo_path(cache_dir: str | Path, kind: str, key: Any) -> tuple[Path, str]:
    """Where :func:`_memo` keeps the value for ``key``, and the key's text stored with it."""
    text = json.dumps([_MEMO_VERSION, key], sort_keys=True, default=str)
    name = hashlib.sha256(text.encode()).hexdigest()[:24]
    return Path(cache_dir) / "evaluation" / kind / f"{name}.safetensors", text


def _read_cached(path: Path, key: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Tensors and JSON scalars of a cache file written for ``key``; None when absent, stale
    or unreadable (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("key") != key:
                return None
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
        return tensors, json.loads(metadata["scalars"])
    except Exception:  # a torn or foreign file is recomputed, not fatal
        return None


def _write_cached(
    path: Path, key: str, tensors: dict[str, torch.Tensor], scalars: dict[str, Any]
) -> None:
    metadata = {"key": key, "scalars": json.dumps(scalars)}
    with atomic_path(path) as temp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, temp, metadata=metadata)


def _transform(x: torch.Tensor, features: str) -> torch.Tensor:
    """One of :data:`FEATURE_TRANSFORMS`, per feature over the rows (the probe set)."""
    if features == "raw":
        return x
    x = x - x.mean(dim=0, keepdim=True)
    if features == "standardised":
        x = x / x.std(dim=0, keepdim=True).clamp_min(1e-6)  # constant features stay 0
    return x


def _num_parameters(extractor: FeatureExtractor) -> int | None:
    if "num_parameters" in extractor.metadata:
        return int(extractor.metadata["num_parameters"])
    if extractor.module is not None:
        return sum(p.numel() for p in extractor.module.parameters())
    return None


def _nan_safe(fn, scores: list[float], acc: list[float]) -> float:
    if len(set(scores)) < 2 or len(set(acc)) < 2:
        return math.nan
    return fn(scores, acc)


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def _cell(gaps: dict[str, float], wtau: float) -> str:
    return f"{gaps['top1']:.2f} / {gaps['top3']:.2f} / {gaps['top5']:.2f}, wτ {wtau:.2f}"


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1].replace("tflite-", "").replace("_quant", "")[:28]


def _task_table(report: EvaluationReport, task_name: str) -> list[str]:
    runs = report.splits_of(task_name)
    first = runs[0]
    names = list(first.scores)
    acc = report.accuracy_intervals(task_name)
    many = len(runs) > 1
    head = (
        f"#### {task_name} (train {first.num_train}, test {first.num_test}, "
        f"{first.num_classes} classes; baseline accuracy "
        f"{_mean([t.baseline_accuracy for t in runs]):.2f}, "
        f"gamma {first.gamma:g}, |u| {first.task_mask_size:.1f})"
    )
    if many:
        head += f"; accuracy: mean [95 % interval] over {len(runs)} splits, scores: means"
        head += "; gamma and |u| of the first split"
    lines = [
        head,
        "",
        "| candidate | dim | accuracy | " + " | ".join(names) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    order = top_k_order([a.mean for a in acc])
    for i in order:
        c = report.candidates[i]
        cells = [f"{_mean([t.scores[n][i] for t in runs]):.4g}" for n in names]
        accuracy = _interval_text(acc[i].mean, acc[i].as_list()) if many else f"{acc[i].mean:.2f}"
        lines.append(f"| {c.name} | {c.num_features} | {accuracy} | " + " | ".join(cells) + " |")
    return lines + [""]


def _interval_text(mean: float, interval: list[float]) -> str:
    low, high = interval
    if math.isnan(mean):
        return "n/a"
    if low == high == mean:
        return f"{mean:.2f}"
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def _over_splits(rows: list[SelectorResult]) -> dict[str, Any]:
    """One selector on one task: means over the splits, with bootstrap intervals."""
    gaps = {g: bootstrap_mean([r.gaps[g] for r in rows]) for g in _GAPS}
    taus = {k: bootstrap_mean([getattr(r, k) for r in rows]) for k in _TAUS}
    recall = [bootstrap_mean(list(ks)) for ks in zip(*(r.recall for r in rows), strict=True)]
    return {
        "gaps": {g: i.mean for g, i in gaps.items()},
        **{k: i.mean for k, i in taus.items()},
        "forward_models": _mean([r.forward_models for r in rows]),
        "forward_samples": _mean([r.forward_samples for r in rows]),
        "recall": [i.mean for i in recall],
        "intervals": {
            **{g: i.as_list() for g, i in gaps.items()},
            **{k: i.as_list() for k, i in taus.items()},
            "recall": [i.as_list() for i in recall],
        },
        "splits": len(rows),
    }


def _recall_plot_name(report: EvaluationReport, pool_name: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in pool_name.lower()).strip("-") or "pool"
    return f"{report.standard_id}-recall-at-k-{slug}.png"


_GAPS = tuple(f"top{k}" for k in TOP_KS)
_TAUS = ("kendall_tau", "weighted_tau")
_MEAN_FIGURES = (
    *_GAPS,
    *(f"max_{g}" for g in _GAPS),
    "weighted_tau",
    "kendall_tau",
    "forward_models",
)


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)


def _logger(enabled: bool):
    def log(message: str) -> None:
        if enabled:
            print(message, file=sys.stderr, flush=True)

    return log
