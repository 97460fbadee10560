"""The labelled tasks of an evaluation: one train/test split, or seeded splits of one dataset."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import ImageDataset, load_image_dataset, stratified_indices, stratified_split


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


def load_split_task(
    name: str,
    source: str,
    *,
    split: str = "train",
    splits: int = 5,
    test_fraction: float = 0.3,
    seed: int = 0,
    max_samples: int | None = None,
    token: str | None = None,
) -> SplitTask:
    """A :class:`SplitTask` from a dataset: ``splits`` seeded, stratified train/test splits
    (seeds ``seed .. seed + splits - 1``) of one split of it.

    Args:
        name: the task's name in the report.
        source: a ``.parquet`` file (its rows are the split), a local folder or a Hub id.
        split: the dataset split to divide (not used for a ``.parquet`` file).
        splits: how many train/test splits.
        test_fraction: the share of each class to test on.
        seed: the seed of the first split (and of the subsample).
        max_samples: a stratified subsample of this many rows is taken first (seed ``seed``).
        token: Hub token for a private or gated dataset (default: the saved login).

    Raises:
        ValueError: ``splits`` below 1 or ``test_fraction`` not in ``(0, 1)``.
        DatasetLoadError: the dataset cannot be loaded or is no labelled image dataset.
    """
    if source.endswith(".parquet"):
        data = load_image_dataset("parquet", data_files=source, split="train")
    else:
        data = load_image_dataset(source, split=split, token=token)
    if max_samples is not None and max_samples < len(data):
        data = stratified_split(data, test_fraction=max_samples / len(data), seed=seed)[1]
    indices = repeated_splits(data, n=splits, test_fraction=test_fraction, seed=seed)
    return SplitTask(name, data, indices)
