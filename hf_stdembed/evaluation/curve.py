"""A two-stage selector's quality against its shortlist size, from a saved report."""

from __future__ import annotations

from typing import Any

from ..core.shortlist import CURVE_FIGURES, STAGE1_CONFIGS, Stage1Config, shortlist_curve
from ..core.statistics import bootstrap_mean
from ._maths import interval_text, nan_mean
from .report import EvaluationReport
from .results import has_config

CURVE_KS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20)
"""The shortlist sizes :func:`curve_markdown` shows (and the whole pool)."""
CURVE_LABELS = {
    "top1": "mean top-1 gap",
    "max_top1": "worst top-1 gap",
    "weighted_tau": "wτ",
    "recall1": "recall@1",
    "stage1_recall": "stage-1 recall@K",
}
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
                values[figure].append(nan_mean([c[k][figure] for c in curves]))
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


def curve_table(curve: dict[str, Any], ks: tuple[int, ...] = CURVE_KS) -> list[str]:
    """Markdown rows of one :func:`two_stage_curve`: its figures at each K of ``ks`` below
    the pool's size, and at the whole pool."""
    m = curve["ks"][-1]
    lines = [
        "| K | " + " | ".join(CURVE_LABELS[f] for f in CURVE_SUMMARY_FIGURES) + " |",
        "| --- " * (len(CURVE_SUMMARY_FIGURES) + 1) + "|",
    ]
    for k in [k for k in ks if k < m] + [m]:
        i = k - 1
        row = [interval_text(curve["mean"][f][i], curve["intervals"][f][i]) for f in CURVE_LABELS]
        lines.append(f"| {k} | " + " | ".join(row) + " |")
    return lines


def logme_table(logme: dict[str, Any]) -> list[str]:
    """Markdown rows: the figures' header and LogME over the whole pool (of
    :func:`logme_over_all`), K = the pool's size."""
    return [
        "| selector | K | " + " | ".join(CURVE_LABELS[f] for f in CURVE_SUMMARY_FIGURES) + " |",
        "| --- " * (len(CURVE_SUMMARY_FIGURES) + 2) + "|",
        f"| LogME over all | {logme['forward_models']} | "
        + " | ".join(interval_text(logme["mean"][f], logme["intervals"][f]) for f in CURVE_LABELS)
        + " |",
    ]


def curve_markdown(report: EvaluationReport, configs: list[str] | tuple[str, ...]) -> str:
    """Markdown: LogME over the whole pool, then each named stage-1 configuration's quality
    against the shortlist size K (mean over tasks, then over splits [95 % interval]); a
    configuration whose scores the report lacks is said to be missing."""
    logme = logme_over_all(report)
    lines = [f"# Two-stage selection against the shortlist size K: `{report.standard_id}`", ""]
    if logme is None:
        return "\n".join(lines + ["No LogME in this report: no two-stage selector.", ""])
    lines += [
        "Stage 1 merges the configuration's scores into a shortlist of K; stage 2 orders it by "
        "LogME (K forward passes); the rest keep the first score's order.",
        "",
        *logme_table(logme),
        "",
    ]
    for name in configs:
        curve = two_stage_curve(report, name)
        lines += [f"## `{name}`", ""]
        if curve is None:
            lines += ["Not measured: the report lacks its stage-1 scores.", ""]
            continue
        lines += [*curve_table(curve), ""]
    return "\n".join(lines)
