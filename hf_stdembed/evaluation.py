"""Does selection pick good models? The paper's Table 2 protocol on a user's own pool.

:func:`evaluate` runs, for a pool of candidates, a standard and labelled tasks:

- ground truth: each candidate's linear-probe accuracy (the paper's protocol, Section 5.1,
  on cached features: the task's train split to fit, its test split to score);
- our selector: the fuzzy intersection of the task embedding (Q on the baseline's features
  of the train split) with every model embedding (P over the standard's probe set);
- reference selectors: LogME (You et al. 2021) on every candidate's train features,
  "largest model first", a uniformly random pick (in expectation), and P's fidelity
  ``min(L_to, L_from)`` alone (task-blind: how well a candidate and its masked baseline
  features map onto each other);
- per selector: the gap of the best of its top-1/3/5 to the best candidate (Table 2),
  Kendall tau and weighted tau of its scores against the accuracies, and the model forward
  passes it spends on the task (ours: the baseline only, O(1); LogME: every candidate, O(m)).

Named variants of our selector sit beside the faithful default (``faithful``) and never change
it: ``features`` centres (``centred``) or standardises (``standardised``: centred, then each
feature divided by its standard deviation) candidate and baseline features over the probe set
before P (post-ReLU features share a large mean direction that dominates the cosine
similarities, and a few high-variance features dominate the rest), and
``metric`` replaces the plain intersection by one of the normalised similarities of
:data:`~hf_stdembed.core.metric.SIMILARITIES` (a low-dimensional candidate can only be
equivalent to few baseline features, so the plain intersection favours wide models).
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

from ._files import atomic_path
from .core import (
    LinearProbeConfig,
    TaskEmbeddingResult,
    embed_model,
    embed_task,
    fuzzy_similarity,
    linear_probe,
)
from .core.logme import logme
from .core.metric import SIMILARITIES
from .core.ranking_metrics import (
    expected_random_gap,
    kendall_tau,
    top_k_gap,
    top_k_order,
    weighted_tau,
)
from .data import ImageDataset
from .extractors import FeatureExtractor, load_extractor
from .features import extract_features
from .pipeline import load_baseline, load_probe
from .standards import Standard

TOP_KS = (1, 3, 5)


@dataclass(frozen=True)
class TaskSpec:
    """A labelled downstream task: the train split fits probes and Q, the test split scores."""

    name: str
    train: ImageDataset
    test: ImageDataset


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
TASK_BLIND_SELECTORS = ("random", "largest", *FIDELITY_SELECTORS.values())
"""Selectors that forward no model over the task's data."""

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


@dataclass
class TaskResult:
    """Everything measured on one task; selectors are derived from ``scores``."""

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

    def selectors(self, pool: list[int] | None = None) -> dict[str, SelectorResult]:
        """Gaps, taus and costs of every selector, over ``pool`` (indices; default: all)."""
        pool = list(range(len(self.accuracies))) if pool is None else pool
        acc = [self.accuracies[i] for i in pool]
        m = len(pool)
        out = {}
        for name, all_scores in self.scores.items():
            scores = [all_scores[i] for i in pool]
            if name == "logme":
                models, samples = m, m * self.num_train
            elif name in TASK_BLIND_SELECTORS:
                models, samples = 0, 0
            else:
                models, samples = 1, self.num_train
            if name == "random":
                gaps = {f"top{k}": expected_random_gap(acc, k) for k in TOP_KS}
                taus = (0.0, 0.0)  # in expectation
            else:
                gaps = {f"top{k}": top_k_gap(scores, acc, k) for k in TOP_KS}
                taus = (_nan_safe(kendall_tau, scores, acc), _nan_safe(weighted_tau, scores, acc))
            out[name] = SelectorResult(scores, gaps, taus[0], taus[1], models, samples)
        return out


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

    def summary(self, specs: list[str] | None = None) -> dict[str, Any]:
        """Per task and selector: gaps, taus, costs; and the mean over tasks."""
        pool = self.pool_indices(specs)
        per_task = {
            t.name: {k: asdict(v) for k, v in t.selectors(pool).items()} for t in self.tasks
        }
        for t in self.tasks:
            for sel in per_task[t.name].values():
                sel.pop("scores")
        names = list(self.tasks[0].scores) if self.tasks else []
        mean = {}
        for name in names:
            rows = [per_task[t.name][name] for t in self.tasks]
            mean[name] = {
                "weighted_tau": _mean([r["weighted_tau"] for r in rows]),
                "kendall_tau": _mean([r["kendall_tau"] for r in rows]),
                **{g: _mean([r["gaps"][g] for r in rows]) for g in ("top1", "top3", "top5")},
                **{
                    f"max_{g}": max((r["gaps"][g] for r in rows), default=math.nan)
                    for g in ("top1", "top3", "top5")
                },
                "forward_models": _mean([r["forward_models"] for r in rows]),
            }
        return {"pool": [self.candidates[i].spec for i in pool], "tasks": per_task, "mean": mean}

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
        lines += ["### Candidates per task", ""]
        for task in self.tasks:
            lines += _task_table(self, task)
        return "\n".join(lines)

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
            written += plot_report(self, out)
        return written


def evaluate(
    candidates: list[str | FeatureExtractor],
    standard: Standard,
    tasks: list[TaskSpec],
    *,
    variants: tuple[Variant, ...] = DEFAULT_VARIANTS,
    probe_config: LinearProbeConfig = LinearProbeConfig(),
    with_logme: bool = True,
    device: str | torch.device | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> EvaluationReport:
    """Evaluates selection on a pool of candidates, one standard and labelled tasks.

    Args:
        candidates: model specs (see :func:`~hf_stdembed.extractors.load_extractor`) or loaded
            extractors; loaded one at a time when given as specs.
        standard: the standard (baseline, probe set, P and Q hyper-parameters).
        tasks: the downstream tasks, each with a train and a test split.
        variants: variants of our selector; ``FAITHFUL`` (the paper) should be among them.
        probe_config: the linear probe of the ground truth (the paper's by default).
        with_logme: also score the pool with LogME (reuses the cached train features).
        device: torch device for the optimisations (default: the features' device).
        cache_dir: feature cache folder (a re-run costs no forward pass).
        progress: print progress to stderr.

    Returns:
        The report; :meth:`EvaluationReport.save` writes markdown, JSON and plots.

    Raises:
        ValueError: on an empty pool or no task.
    """
    if not candidates or not tasks:
        raise ValueError("need at least one candidate and one task")
    names = [v.name for v in variants]
    reserved = {"logme", *TASK_BLIND_SELECTORS}
    if len(set(names)) < len(names) or reserved & set(names):
        raise ValueError(
            f"variant names must be unique and not one of {', '.join(sorted(reserved))}: {names}"
        )
    log = _logger(progress)
    feats = {"cache_dir": cache_dir, "progress": False}
    baseline = load_baseline(standard)
    probe = load_probe(standard)
    base_probe = extract_features(baseline, probe, **feats)
    transforms = [f for f in FEATURE_TRANSFORMS if any(v.features == f for v in variants)]
    infos: list[CandidateInfo] = []
    masks: dict[str, list[torch.Tensor]] = {f: [] for f in transforms}
    accuracies: dict[str, list[float]] = {t.name: [] for t in tasks}
    logmes: dict[str, list[float]] = {t.name: [] for t in tasks}
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
        for task in tasks:
            x_train, ident, acc = _ground_truth(extractor, task, probe_config, cache_dir, device)
            accuracies[task.name].append(acc)
            if with_logme:
                score = _memo(
                    cache_dir,
                    "logme",
                    ident,
                    logme,
                    x_train,
                    task.train.labels(),
                    num_classes=task.train.num_classes,
                )
                logmes[task.name].append(score)
        infos.append(info)
    stacked = {c: torch.stack(m) for c, m in masks.items()}
    results = []
    for task in tasks:
        log(f"task {task.name}")
        b_train, _, baseline_acc = _ground_truth(baseline, task, probe_config, cache_dir, device)
        y_train = task.train.labels()
        q = _memo(
            cache_dir,
            "task-embedding",
            [standard.hash, task.train.fingerprint],
            embed_task,
            b_train,
            y_train,
            num_classes=task.train.num_classes,
            config=standard.task_embedding,
            device=device,
        )
        scores: dict[str, list[float]] = {}
        for v in variants:
            models = stacked[v.features]
            scores[v.name] = fuzzy_similarity(q.mask, models, v.metric).tolist()
        if with_logme:
            scores["logme"] = logmes[task.name]
        for transform in transforms:
            scores[FIDELITY_SELECTORS[transform]] = [c.fidelity[transform] for c in infos]
        scores["largest"] = [
            float(c.num_parameters if c.num_parameters is not None else c.num_features)
            for c in infos
        ]
        scores["random"] = [0.0] * len(infos)
        results.append(
            TaskResult(
                name=task.name,
                num_train=len(task.train),
                num_test=len(task.test),
                num_classes=int(task.train.num_classes or int(y_train.max()) + 1),
                accuracies=accuracies[task.name],
                baseline_accuracy=baseline_acc,
                gamma=q.gamma,
                task_mask_size=float(q.mask.sum()),
                gamma_sweep={
                    "gammas": q.gammas.tolist(),
                    "accuracies": q.accuracies.tolist(),
                    "mask_sizes": q.mask_sizes.tolist(),
                },
                scores=scores,
            )
        )
    return EvaluationReport(
        standard_id=standard.id,
        standard_hash=standard.hash,
        baseline=standard.baseline.model,
        probe_size=int(base_probe.shape[0]),
        candidates=infos,
        tasks=results,
        variants=list(variants),
        settings={"linear_probe": asdict(probe_config), "logme": with_logme},
    )


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


def plot_report(report: EvaluationReport, out: str | Path) -> list[Path]:
    """Per task: accuracy against each selector's score (baseline accuracy dashed), and the
    gamma sweep of Q (accuracy and mask size against gamma). Needs matplotlib."""
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
    for task in report.tasks:
        names = [n for n in task.scores if n not in ("random",)]
        cols = min(3, len(names))
        rows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.8 * rows), squeeze=False)
        for ax in axes.flat[len(names) :]:
            ax.axis("off")
        for ax, name in zip(axes.flat, names, strict=False):
            xs = task.scores[name]
            ax.scatter(xs, task.accuracies, s=18)
            for x, y, label in zip(xs, task.accuracies, labels, strict=True):
                ax.annotate(label, (x, y), fontsize=5, alpha=0.8)
            ax.axhline(task.baseline_accuracy, ls="--", c="gray", lw=1, label="baseline")
            if name == "largest":
                ax.set_xscale("log")
            ax.set_xlabel(name)
            ax.set_title(f"{task.name}: {name}", fontsize=9)
        axes[0][0].set_ylabel("linear-probe accuracy (%)")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        path = out / f"{report.standard_id}-{task.name}-accuracy-vs-score.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for task in report.tasks:
        gam = task.gamma_sweep["gammas"]
        xs = [max(g, 1e-7) for g in gam]
        axes[0].plot(xs, task.gamma_sweep["accuracies"], marker=".", label=task.name)
        axes[1].plot(xs, task.gamma_sweep["mask_sizes"], marker=".", label=task.name)
    for ax, ylabel in zip(axes, ("Q accuracy (%)", "|u| (mask size)"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("gamma (0 drawn at 1e-7)")
        ax.set_ylabel(ylabel)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"gamma sweep of Q, standard {report.standard_id}", fontsize=9)
    fig.tight_layout()
    path = out / f"{report.standard_id}-gamma-sweep.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


# --- helpers ----------------------------------------------------------------------------


def _probe_accuracy(*args: Any, **kwargs: Any) -> float:
    return linear_probe(*args, **kwargs).accuracy


def _ground_truth(
    extractor: FeatureExtractor,
    task: TaskSpec,
    config: LinearProbeConfig,
    cache_dir: str | Path | None,
    device: str | torch.device | None,
) -> tuple[torch.Tensor, list[Any], float]:
    """A model's train features on the task, their cache identity, and its linear-probe
    test accuracy (memoised)."""
    x_train = extract_features(extractor, task.train, cache_dir=cache_dir, progress=False)
    x_test = extract_features(extractor, task.test, cache_dir=cache_dir, progress=False)
    ident = [extractor.name, extractor.revision, extractor.preprocessing]
    ident += [task.train.fingerprint, task.test.fingerprint]
    accuracy = _memo(
        cache_dir,
        "linear-probe",
        [*ident, asdict(config)],
        _probe_accuracy,
        x_train,
        task.train.labels(),
        x_test,
        task.test.labels(),
        num_classes=task.train.num_classes,
        config=config,
        device=device,
    )
    return x_train, ident, accuracy


_MEMO_VERSION = 2
"""Bumped when a memoised computation changes (2: Q's head is projected, not reparameterised)."""


def _memo(cache_dir: str | Path | None, kind: str, key: Any, fn: Any, *args: Any, **kw: Any) -> Any:
    """``fn(*args, **kw)`` (a float or a :class:`TaskEmbeddingResult`), kept under
    ``cache_dir/evaluation/<kind>/`` as safetensors, keyed by the JSON of ``key``."""
    if cache_dir is None:
        return fn(*args, **kw)
    text = json.dumps([_MEMO_VERSION, key], sort_keys=True, default=str)
    name = hashlib.sha256(text.encode()).hexdigest()[:24]
    path = Path(cache_dir) / "evaluation" / kind / f"{name}.safetensors"
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


def _task_table(report: EvaluationReport, task: TaskResult) -> list[str]:
    names = list(task.scores)
    lines = [
        f"#### {task.name} (train {task.num_train}, test {task.num_test}, "
        f"{task.num_classes} classes; baseline accuracy {task.baseline_accuracy:.2f}, "
        f"gamma {task.gamma:g}, |u| {task.task_mask_size:.1f})",
        "",
        "| candidate | dim | accuracy | " + " | ".join(names) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    order = top_k_order(task.accuracies)
    for i in order:
        c = report.candidates[i]
        cells = [f"{task.scores[n][i]:.4g}" for n in names]
        lines.append(
            f"| {c.name} | {c.num_features} | {task.accuracies[i]:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    return lines + [""]


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)


def _logger(enabled: bool):
    def log(message: str) -> None:
        if enabled:
            print(message, file=sys.stderr, flush=True)

    return log
