"""The report of an evaluation: its results, their summary (means over tasks and splits with
bootstrap intervals, ties with the best selector), and its JSON and markdown files."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.statistics import Interval, bootstrap_mean, tied_with_best
from ._maths import nan_mean
from .plots import plot_report
from .results import CandidateInfo, SelectorResult, TaskResult
from .selectors import TOP_KS, Variant
from .tables import report_markdown


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
            per_task[task] = {n: over_splits([r[n] for r in runs if n in r]) for n in names}
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
                    per_split[g].append(nan_mean([r.gaps[g] for r in rows]))
                    per_split[f"max_{g}"].append(max(r.gaps[g] for r in rows))
                per_split["weighted_tau"].append(nan_mean([r.weighted_tau for r in rows]))
                per_split["kendall_tau"].append(nan_mean([r.kendall_tau for r in rows]))
                per_split["forward_models"].append(nan_mean([r.forward_models for r in rows]))
                by_k = zip(*(r.recall for r in rows), strict=True)
                recalls.append([nan_mean(list(ks)) for ks in by_k])
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
        return report_markdown(self, pools)

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
                candidates=[known_fields(CandidateInfo, c) for c in data["candidates"]],
                tasks=[known_fields(TaskResult, t) for t in data["tasks"]],
                variants=[known_fields(Variant, v) for v in data["variants"]],
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
            json.dumps(self.to_dict(pools), indent=1, default=json_default) + "\n"
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


def known_fields(cls: Any, data: dict[str, Any]) -> Any:
    """An instance of dataclass ``cls`` from the entries of ``data`` it has fields for."""
    names = set(cls.__dataclass_fields__)
    return cls(**{k: v for k, v in data.items() if k in names})


def over_splits(rows: list[SelectorResult]) -> dict[str, Any]:
    """One selector on one task: means over the splits, with bootstrap intervals."""
    gaps = {g: bootstrap_mean([r.gaps[g] for r in rows]) for g in _GAPS}
    taus = {k: bootstrap_mean([getattr(r, k) for r in rows]) for k in _TAUS}
    recall = [bootstrap_mean(list(ks)) for ks in zip(*(r.recall for r in rows), strict=True)]
    return {
        "gaps": {g: i.mean for g, i in gaps.items()},
        **{k: i.mean for k, i in taus.items()},
        "forward_models": nan_mean([r.forward_models for r in rows]),
        "forward_samples": nan_mean([r.forward_samples for r in rows]),
        "recall": [i.mean for i in recall],
        "intervals": {
            **{g: i.as_list() for g, i in gaps.items()},
            **{k: i.as_list() for k, i in taus.items()},
            "recall": [i.as_list() for i in recall],
        },
        "splits": len(rows),
    }


_GAPS = tuple(f"top{k}" for k in TOP_KS)
_TAUS = ("kendall_tau", "weighted_tau")
_MEAN_FIGURES = (
    *_GAPS,
    *(f"max_{g}" for g in _GAPS),
    "weighted_tau",
    "kendall_tau",
    "forward_models",
)


def json_default(value: Any) -> Any:
    """What the report's JSON writes for a value JSON cannot hold: a tensor's list, else text."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)
