"""The ground truth of an evaluation: every model's linear-probe accuracy per task split (the
paper's protocol, Section 5.1, on cached features), and LogME on the same train features."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..core import LinearProbeConfig, linear_probe
from ..core.logme import logme
from ..extractors import FeatureExtractor, load_extractor
from ..features import extract_features
from ..pipeline import load_baseline
from ..progress import Progress, report
from ..standards import Standard
from .embeddings import task_embedding
from .memo import memo
from .tasks import SplitTask, TaskSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitRun:
    """One model on one split of a task: train features, ident keys and probe accuracy."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    num_test: int
    num_classes: int | None
    data_ident: list[Any]  # the split's identity (fingerprints, row digests)
    ident: list[Any]  # the model's and the split's identity
    accuracy: float


def ground_truth(
    extractor: FeatureExtractor,
    task: TaskSpec | SplitTask,
    config: LinearProbeConfig,
    cache_dir: str | Path | None,
    device: str | torch.device | None,
) -> list[SplitRun]:
    """Per split of the task: a model's train features, their cache identity, and its
    linear-probe test accuracy (memoised). A :class:`SplitTask`'s features are extracted once
    and indexed per split."""
    model = [extractor.name, extractor.revision, extractor.preprocessing]
    parts = []
    if isinstance(task, TaskSpec):
        x_train = extract_features(extractor, task.train, cache_dir=cache_dir)
        x_test = extract_features(extractor, task.test, cache_dir=cache_dir)
        data_ident = [task.train.fingerprint, task.test.fingerprint]
        labels = (task.train.labels(), task.test.labels())
        parts.append((x_train, x_test, *labels, data_ident, task.train.num_classes))
    else:
        x = extract_features(extractor, task.data, cache_dir=cache_dir)
        y = task.data.labels()
        for train, test in task.splits:
            data_ident = [task.data.fingerprint, rows_digest(train), rows_digest(test)]
            parts.append((x[train], x[test], y[train], y[test], data_ident, task.data.num_classes))
    runs = []
    for x_train, x_test, y_train, y_test, data_ident, num_classes in parts:
        ident = [*model, *data_ident]
        accuracy = memo(
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
            SplitRun(x_train, y_train, len(y_test), num_classes, data_ident, ident, accuracy)
        )
    return runs


def candidate_on_task(
    extractor: FeatureExtractor,
    task: TaskSpec | SplitTask,
    probe_config: LinearProbeConfig,
    with_logme: bool,
    cache_dir: str | Path | None,
    device: str | torch.device | None,
) -> list[tuple[float, float | None]]:
    """Per split: the candidate's linear-probe accuracy and its LogME score (memoised)."""
    out = []
    for run in ground_truth(extractor, task, probe_config, cache_dir, device):
        score = None
        if with_logme:
            score = memo(
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


def train_features(
    extractor: FeatureExtractor,
    task: TaskSpec | SplitTask,
    split: int,
    cache_dir: str | Path | None,
) -> torch.Tensor:
    """A model's features of one split's train rows (indexed as :func:`ground_truth` does)."""
    if isinstance(task, TaskSpec):
        return extract_features(extractor, task.train, cache_dir=cache_dir)
    x = extract_features(extractor, task.data, cache_dir=cache_dir)
    return x[task.splits[split][0]]


def precompute_ground_truth(
    candidates: list[str],
    standards: list[Standard],
    tasks: list[TaskSpec | SplitTask],
    *,
    probe_config: LinearProbeConfig = LinearProbeConfig(),
    with_logme: bool = True,
    device: str | torch.device | None = None,
    cache_dir: str | Path,
    on_progress: Progress | None = None,
) -> None:
    """Fills ``cache_dir`` with what :func:`~hf_stdembed.evaluation.evaluate` needs besides P:
    every candidate's linear probes and LogME scores on every split (standard-independent)
    and every standard's task embeddings. Lets a cold benchmark run the ground truth beside
    P's optimisations. ``on_progress`` hears ``ground truth``: each candidate (``item``:
    ``ground truth <name>``), then each standard and task (``task embeddings <id> <task>``),
    as it is done."""
    total, done = len(candidates) + len(standards) * len(tasks), 0

    def tell(item: str) -> None:
        nonlocal done
        done += 1
        logger.info("%s", item)
        report(on_progress, "ground truth", done, total, item=item)

    for spec in candidates:
        extractor = load_extractor(spec)
        for task in tasks:
            candidate_on_task(extractor, task, probe_config, with_logme, cache_dir, device)
        tell(f"ground truth {extractor.name}")
    for standard in standards:
        baseline = load_baseline(standard)
        for task in tasks:
            for run in ground_truth(baseline, task, probe_config, cache_dir, device):
                task_embedding(standard, run, cache_dir, device)
            tell(f"task embeddings {standard.id} {task.name}")


def rows_digest(rows: torch.Tensor) -> str:
    """The identity of a split's rows (part of the memo keys): 24 hex digits of the sha256 of
    their int64 bytes."""
    return hashlib.sha256(rows.to(torch.int64).numpy().tobytes()).hexdigest()[:24]


def _probe_accuracy(*args: Any, **kwargs: Any) -> float:
    return linear_probe(*args, **kwargs).accuracy
