"""The report's plots (matplotlib, optional): accuracy against every selector's score, Q's
gamma sweep, and recall@K with intervals."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._maths import nan_mean
from .selectors import TASK_BLIND_SELECTORS

if TYPE_CHECKING:
    from .report import EvaluationReport

logger = logging.getLogger(__name__)


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
        logger.warning("matplotlib is missing: no plots (pip install 'hf-stdembed[eval]')")
        return []
    out = Path(out)
    written = []
    labels = [_short(c.name) for c in report.candidates]
    for task_name in report.task_names():
        runs = report.splits_of(task_name)
        scores = {
            n: [nan_mean([t.scores[n][i] for t in runs]) for i in range(len(labels))]
            for n in runs[0].scores
            if n != "random"
        }
        acc = report.accuracy_intervals(task_name)
        ys = [a.mean for a in acc]
        errors = [[a.mean - a.low for a in acc], [a.high - a.mean for a in acc]]
        baseline = nan_mean([t.baseline_accuracy for t in runs])
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


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1].replace("tflite-", "").replace("_quant", "")[:28]


def _recall_plot_name(report: EvaluationReport, pool_name: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in pool_name.lower()).strip("-") or "pool"
    return f"{report.standard_id}-recall-at-k-{slug}.png"
