"""The report's markdown: Table-2-like tables per pool, intervals, recall@K, candidates."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..core.ranking_metrics import top_k_order
from ._maths import interval_text, nan_mean
from .selectors import DECLARED

if TYPE_CHECKING:
    from .report import EvaluationReport


def report_markdown(
    report: EvaluationReport, pools: dict[str, list[str] | None] | None = None
) -> str:
    """Table-2-like tables (one per pool) and a per-task table of candidates."""
    pools = pools or {"all": None}
    lines = [f"## Standard `{report.standard_id}` (baseline `{report.baseline}`)", ""]
    for pool_name, specs in pools.items():
        summary = report.summary(specs)
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
        mean_cells = [_cell(summary["mean"][n], summary["mean"][n]["weighted_tau"]) for n in names]
        lines.append("| **mean** | " + " | ".join(mean_cells) + " |")
        cost = [f"{summary['mean'][n]['forward_models']:.0f}" for n in names]
        lines += ["| forward passes (models) | " + " | ".join(cost) + " |", ""]
        lines += interval_table(summary) + recall_table(summary)
    lines += ["### Candidates per task", ""]
    for task in report.task_names():
        lines += task_table(report, task)
    return "\n".join(lines)


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
            text = interval_text(m[f], m["intervals"][f])
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
        return interval_text(mean["recall"][k - 1], mean["recall_intervals"][k - 1])

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


def task_table(report: EvaluationReport, task_name: str) -> list[str]:
    """Markdown: one task's candidates, best first: dimension, accuracy, every score."""
    runs = report.splits_of(task_name)
    first = runs[0]
    names = list(first.scores)
    acc = report.accuracy_intervals(task_name)
    many = len(runs) > 1
    head = (
        f"#### {task_name} (train {first.num_train}, test {first.num_test}, "
        f"{first.num_classes} classes; baseline accuracy "
        f"{nan_mean([t.baseline_accuracy for t in runs]):.2f}, "
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
        cells = [_score_text(n, nan_mean([t.scores[n][i] for t in runs])) for n in names]
        accuracy = interval_text(acc[i].mean, acc[i].as_list()) if many else f"{acc[i].mean:.2f}"
        lines.append(f"| {c.name} | {c.num_features} | {accuracy} | " + " | ".join(cells) + " |")
    return lines + [""]


def _score_text(name: str, value: float) -> str:
    if name == DECLARED:  # an order, not a score: 1 where the card declares the task's data
        return "yes" if value == 1.0 else "no"
    return f"{value:.4g}"


def _cell(gaps: dict[str, float], wtau: float) -> str:
    return f"{gaps['top1']:.2f} / {gaps['top3']:.2f} / {gaps['top5']:.2f}, wτ {wtau:.2f}"
