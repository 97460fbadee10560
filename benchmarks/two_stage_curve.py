"""Two-stage selection against its shortlist size K, from saved evaluation reports (issue 12).

    python benchmarks/two_stage_curve.py benchmarks/results/bench-* --out OUT_DIR

For every ``report.json`` given (a report folder or the file) and every named stage-1
configuration of ``hf_stdembed.core.shortlist.STAGE1_CONFIGS`` whose scores the report holds:
quality against K = 1..m (mean and worst top-1 gap, weighted tau, recall@1 of the final
order, stage-1 recall@K, forward passes = K), each the mean over splits with a 95 % bootstrap
interval, beside LogME over the whole pool (m forward passes). Writes ``two_stage_curve.md``,
``two_stage_curve.json`` and one ``<standard>-two-stage-curve.png`` per report under
``--out``, and prints, per configuration, the smallest K whose stage-1 recall reaches 0.9 and
its gaps to LogME there, and the smallest K meeting issue 12's targets. Reads the reports
only: no model, no optimisation; seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks import pool as pool_module  # noqa: E402
from benchmarks import tasks as tasks_module  # noqa: E402
from hf_stdembed.core.shortlist import STAGE1_CONFIGS, Stage1Config  # noqa: E402
from hf_stdembed.evaluation import (  # noqa: E402
    DECLARED,
    EvaluationReport,
    add_declared,
    curve_table,
    load_report,
    logme_over_all,
    logme_table,
    two_stage_curve,
)
from hf_stdembed.evaluation.curve import CURVE_KS, CURVE_LABELS  # noqa: E402

RECALL_TARGET = 0.9
"""Stage-1 recall@K the shortlist must reach (issue 12's target)."""
WORST_GAP_MARGIN = 0.5  # worst top-1 gap within this many points of LogME-over-all's
TAU_MARGIN = 0.05  # mean weighted tau at least LogME-over-all's minus this
POOL_SHARE = 0.25  # ... at K <= this share of the pool


def with_declared(report: EvaluationReport) -> EvaluationReport:
    """``report`` with the ``declared`` stage-1 order (from ``benchmarks/pool.py``'s declared
    datasets and ``benchmarks/tasks.py``'s dataset ids) where it lacks one: it is read from
    metadata, so a report saved before it existed gains it without a re-run."""
    if report.tasks and all(DECLARED in t.scores for t in report.tasks):
        return report
    by_spec = {entry.spec: entry.datasets for entry in pool_module.POOL}
    declared = [by_spec.get(c.spec, ()) for c in report.candidates]
    add_declared(report.tasks, declared, tasks_module.DATASET_IDS)
    return report


TAIL_SCORES = ("faithful", "union-r2")
"""First stage-1 scores whose tail order :func:`tail_bounds` measures."""


def tail_bounds(report: EvaluationReport) -> dict[str, list[float]]:
    """Per first score of :data:`TAIL_SCORES` in ``report``: mean weighted tau per K of the
    best any stage 1 ordering its tail by that score can do without the accuracies: a
    shortlist of LogME's own top K (what LogME over all would have put first), the rest in
    the first score's order. A wτ target above it cannot be met at that K by a better
    shortlist; only a better tail order (or a larger K) helps."""
    out = {}
    m = len(report.candidates)
    for first in TAIL_SCORES:
        oracle = Stage1Config((first, "logme"), rule="quotas", quotas=(0, m))
        curve = two_stage_curve(report, oracle)
        if curve is not None:
            out[first] = curve["mean"]["weighted_tau"]
    return out


def curves(report: EvaluationReport, configs: list[str] | None = None) -> dict[str, Any]:
    """Per configuration present in ``report``, its curve; LogME over all; the tail bounds."""
    out: dict[str, Any] = {"logme": logme_over_all(report), "configs": {}}
    for name in configs or STAGE1_CONFIGS:
        curve = two_stage_curve(report, name)
        if curve is not None:
            out["configs"][name] = curve
    out["tail_bounds"] = tail_bounds(report) if out["logme"] is not None else {}
    return out


def recall_k(curve: dict[str, Any], target: float = RECALL_TARGET) -> int | None:
    """The smallest K whose mean stage-1 recall reaches ``target`` (None: never)."""
    for k, recall in zip(curve["ks"], curve["mean"]["stage1_recall"], strict=True):
        if recall >= target - 1e-12:
            return k
    return None


def target_k(curve: dict[str, Any], logme: dict[str, Any]) -> int | None:
    """The smallest K <= POOL_SHARE of the pool meeting every target of issue 12 (stage-1
    recall, worst gap and tau against LogME over all); None when none does."""
    m = curve["ks"][-1]
    for i, k in enumerate(curve["ks"]):
        if k > POOL_SHARE * m:
            break
        mean = curve["mean"]
        if (
            mean["stage1_recall"][i] >= RECALL_TARGET - 1e-12
            and mean["max_top1"][i] <= logme["mean"]["max_top1"] + WORST_GAP_MARGIN
            and mean["weighted_tau"][i] >= logme["mean"]["weighted_tau"] - TAU_MARGIN
        ):
            return k
    return None


def markdown(per_standard: dict[str, dict[str, Any]]) -> str:
    """Per standard: LogME over all, the K of each configuration (recall target, all
    targets), and each configuration's figures on a grid of K."""
    lines = [
        "# Two-stage selection against the shortlist size K",
        "",
        "Stage 1 merges the named configuration's scores into a shortlist of K; stage 2 orders it "
        "by LogME (K forward passes). Every figure: mean over tasks, then mean over splits "
        "[95 % bootstrap interval over splits]; worst top-1 gap: the worst task per split. "
        f"Targets (issue 12): stage-1 recall@K >= {RECALL_TARGET}, worst top-1 gap within "
        f"{WORST_GAP_MARGIN} points of LogME over all, wτ >= LogME's - {TAU_MARGIN}, at "
        f"K <= {POOL_SHARE:.0%} of the pool.",
        "",
    ]
    for standard, data in per_standard.items():
        logme = data["logme"]
        m = data["pool"]
        lines += [f"## Standard `{standard}`: {m} candidates, {data['splits']} split(s)", ""]
        if logme is None:
            lines += ["No LogME in this report: no two-stage selector.", ""]
            continue
        lines += [
            *logme_table(logme),
            "",
            "| configuration | K: stage-1 recall >= 0.9 | mean gap − LogME there | worst gap − "
            "LogME there | wτ − LogME there | smallest K meeting every target |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, curve in data["configs"].items():
            k = recall_k(curve)
            if k is None:
                cells = ["never", "", "", ""]
            else:
                i = k - 1
                cells = [
                    str(k),
                    *(
                        f"{curve['mean'][f][i] - logme['mean'][f]:+.2f}"
                        for f in ("top1", "max_top1", "weighted_tau")
                    ),
                ]
            met = target_k(curve, logme)
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {met if met else 'none'} |")
        lines.append("")
        ks = [k for k in CURVE_KS if k < m] + [m]
        if data.get("tail_bounds"):
            lines += [
                "The tail's cost: wτ when stage 1 shortlists exactly LogME's own top K (an ideal "
                "stage 1), the rest in the first score's order. The wτ target is "
                f"{logme['mean']['weighted_tau'] - TAU_MARGIN:.2f}.",
                "",
                "| tail ordered by | " + " | ".join(f"K={k}" for k in ks) + " |",
                "| --- " * (len(ks) + 1) + "|",
            ]
            for first, taus in data["tail_bounds"].items():
                lines.append(f"| {first} | " + " | ".join(f"{taus[k - 1]:.2f}" for k in ks) + " |")
            lines.append("")
        for name, curve in data["configs"].items():
            lines += [f"### `{name}`", "", *curve_table(curve), ""]
    return "\n".join(lines)


def plot(standard: str, data: dict[str, Any], path: Path) -> Path | None:
    """Quality against K per configuration (shaded 95 % intervals), LogME over all dashed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib is missing: no plot (pip install 'hf-stdembed[eval]')", file=sys.stderr)
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    colours = plt.get_cmap("tab20" if len(data["configs"]) > 10 else "tab10").colors
    m = data["pool"]
    shown = ("top1", "max_top1", "weighted_tau", "stage1_recall")
    for ax, figure in zip(axes.flat, shown, strict=True):
        label = CURVE_LABELS[figure]
        for c, (name, curve) in enumerate(data["configs"].items()):
            ks = curve["ks"]
            (line,) = ax.plot(
                ks,
                curve["mean"][figure],
                lw=1,
                marker=".",
                ms=3,
                label=name,
                c=colours[c % len(colours)],
            )
            low = [i[0] for i in curve["intervals"][figure]]
            high = [i[1] for i in curve["intervals"][figure]]
            ax.fill_between(ks, low, high, color=line.get_color(), alpha=0.1, lw=0)
        if data["logme"] is not None:
            value = data["logme"]["mean"][figure]
            ax.axhline(value, ls="--", c="black", lw=1, label=f"LogME over all ({m} passes)")
        ax.axvline(POOL_SHARE * m, ls=":", c="gray", lw=1)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("K (shortlist size = forward passes)")
        ax.set_ylabel(label)
    axes[1][1].axhline(RECALL_TARGET, ls=":", c="red", lw=1)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(
        f"two-stage selection vs K, {standard}: {m} candidates, {data['splits']} split(s); "
        f"dotted: K = {POOL_SHARE:.0%} of the pool",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="report folders or report.json")
    parser.add_argument("--out", type=Path, required=True, help="folder for the outputs")
    parser.add_argument(
        "--configs", nargs="*", default=None, help="configuration names (default: all present)"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.configs or ()) - set(STAGE1_CONFIGS))
    if unknown:
        parser.error(f"unknown --configs {unknown}; choose from {', '.join(STAGE1_CONFIGS)}")
    per_standard: dict[str, dict[str, Any]] = {}
    for path in args.reports:
        try:
            report = with_declared(load_report(path))
        except (OSError, ValueError) as e:
            print(f"Error: cannot read a report from {path}: {e}", file=sys.stderr)
            return 1
        data = curves(report, args.configs)
        data["pool"] = len(report.candidates)
        data["splits"] = report.num_splits
        per_standard[report.standard_id] = data
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "two_stage_curve.md").write_text(markdown(per_standard) + "\n")
    (args.out / "two_stage_curve.json").write_text(json.dumps(per_standard, indent=1) + "\n")
    for standard, data in per_standard.items():
        plot(standard, data, args.out / f"{standard}-two-stage-curve.png")
        logme = data["logme"]
        for name, curve in data["configs"].items():
            k = recall_k(curve)
            if k is None or logme is None:
                print(f"{standard}  {name}: stage-1 recall never reaches {RECALL_TARGET}")
                continue
            i = k - 1
            gaps = {f: curve["mean"][f][i] - logme["mean"][f] for f in ("top1", "max_top1")}
            tau = curve["mean"]["weighted_tau"][i] - logme["mean"]["weighted_tau"]
            met = target_k(curve, logme)
            print(
                f"{standard}  {name}: recall>={RECALL_TARGET} at K={k}/{data['pool']}; "
                f"vs LogME: mean gap {gaps['top1']:+.2f}, worst gap {gaps['max_top1']:+.2f}, "
                f"wtau {tau:+.2f}; every target at K={met if met else 'none'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
