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

The package's modules, bottom up: ``selectors`` (names, variants, checks), ``tasks`` (task
specs, splits, loading), ``memo`` (the on-disk memo), ``embeddings`` (P and Q, memoised),
``ground_truth`` (linear probes, LogME), ``results`` and ``report`` (what was measured, its
summary and files), ``tables`` and ``plots`` (markdown, PNG), ``pool`` (the shared set-up),
``research`` (closed-form stage-1 scores), ``protocol`` (:func:`evaluate`), ``curve``
(:func:`two_stage_curve`).
"""

from .curve import (
    CURVE_SUMMARY_FIGURES,
    curve_markdown,
    curve_table,
    logme_over_all,
    logme_table,
    two_stage_curve,
)
from .embeddings import model_embedding
from .ground_truth import precompute_ground_truth
from .plots import plot_recall, plot_report
from .protocol import add_declared, add_loto, evaluate
from .report import EvaluationReport, load_report
from .research import precompute_research
from .results import CandidateInfo, SelectorResult, TaskResult, has_config
from .selectors import (
    BEYOND_BASELINE,
    CONFIG_PREFIX,
    DECLARED,
    DEFAULT_VARIANTS,
    FAITHFUL,
    FEATURE_TRANSFORMS,
    FIDELITY_SELECTORS,
    LOTO,
    RESEARCH_SCORES,
    SHORTLIST_KS,
    TASK_BLIND_SELECTORS,
    TOP_KS,
    TWO_STAGE_KS,
    TWO_STAGE_PREFIX,
    TWO_STAGE_STAGE1,
    UNION_SCORES,
    Variant,
)
from .tables import interval_table, recall_table
from .tasks import SplitTask, TaskSpec, load_split_task, repeated_splits, split_indices

__all__ = [
    "BEYOND_BASELINE",
    "CONFIG_PREFIX",
    "DECLARED",
    "CURVE_SUMMARY_FIGURES",
    "CandidateInfo",
    "DEFAULT_VARIANTS",
    "EvaluationReport",
    "FAITHFUL",
    "FEATURE_TRANSFORMS",
    "FIDELITY_SELECTORS",
    "LOTO",
    "RESEARCH_SCORES",
    "SHORTLIST_KS",
    "SelectorResult",
    "SplitTask",
    "TASK_BLIND_SELECTORS",
    "TOP_KS",
    "TWO_STAGE_KS",
    "TWO_STAGE_PREFIX",
    "TWO_STAGE_STAGE1",
    "TaskResult",
    "TaskSpec",
    "UNION_SCORES",
    "Variant",
    "add_declared",
    "curve_markdown",
    "curve_table",
    "logme_table",
    "add_loto",
    "evaluate",
    "has_config",
    "interval_table",
    "load_report",
    "load_split_task",
    "logme_over_all",
    "model_embedding",
    "plot_recall",
    "plot_report",
    "precompute_ground_truth",
    "precompute_research",
    "recall_table",
    "repeated_splits",
    "split_indices",
    "two_stage_curve",
]
