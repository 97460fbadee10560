"""The data of every benchmark task: evaluation pools, specialist pools and seeded splits.

The contract between the pool and the protocol of issue 11 (``benchmarks/pool.py`` trains
specialists on the specialist pools; ``benchmarks/offline_benchmark.py`` draws every ground
truth train/test split from the evaluation pools):

- USPS, COIL-20, ORL, UMIST, Palm: ``specialist_pool, evaluation_pool =
  stratified_split(full, test_fraction=0.7, seed=SEED)``: 30 % of each class trains the
  specialists, 70 % is where every ground-truth split is drawn, so no evaluation image is ever
  seen by a specialist.
- CIFAR-10: the evaluation pool is :data:`CIFAR_EVAL_SIZE` images drawn stratified (seed
  :data:`SEED`) from the CIFAR-10 train images outside the standards' probe set
  (``select_subset(train, PROBE_SIZE, seed=PROBE_SEED)``); no specialist pool (the CIFAR
  ResNets are the CIFAR-10 specialists). The CIFAR-10 test parquet is not used.
- :func:`splits`: ``n`` seeded stratified ``(train_idx, test_idx)`` pairs of row positions
  into an evaluation pool (seeds ``0..n-1``), so that features are extracted once per pool
  and every split indexes into them. Split ``s`` holds the same rows as
  ``stratified_split(pool, test_fraction=test_fraction, seed=s)``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from hf_stdembed.data import (  # noqa: E402
    ImageDataset,
    load_image_dataset,
    stratified_indices,
    stratified_split,
    take_rows,
)

TASKS = ("cifar10", "usps", "coil20", "orl", "umist", "palm")
DATASET_IDS = {
    "cifar10": "uoft-cs/cifar10",
    "usps": "usps",
    "coil20": "coil20",
    "orl": "orl",
    "umist": "umist",
    "palm": "palm",
}
"""Each task's dataset id, as a user would give it (``select --dataset`` or ``--dataset-id``)
and as a card trained on it would declare it: CIFAR-10's Hub repo; the small sets, local
copies with no Hub repo, by their names."""
SEED = 20261202  # the draw of the specialist / evaluation pools
EVALUATION_SHARE = 0.7  # share of each class of a small task in its evaluation pool
PROBE_SIZE = 5000  # the standards' probe set: select_subset(CIFAR-10 train, 5000, seed=0)
PROBE_SEED = 0
CIFAR_EVAL_SIZE = 2000


def _parquet(path: Path) -> ImageDataset:
    return load_image_dataset("parquet", data_files=str(path), split="train")


def cifar10_train(bench_dir: Path) -> ImageDataset:
    """All 50,000 CIFAR-10 train images of the benchmark folder."""
    return _parquet(Path(bench_dir) / "data" / "cifar10" / "train.parquet")


def probe_rows(num_rows: int, *, size: int = PROBE_SIZE, seed: int = PROBE_SEED) -> torch.Tensor:
    """Sorted row positions of ``select_subset(ds, size, seed=seed)`` for ``len(ds) == num_rows``.

    The same draw as :func:`hf_stdembed.data.select_subset` (tests check they agree).
    """
    if size >= num_rows:
        return torch.arange(num_rows)
    generator = torch.Generator().manual_seed(seed)
    return torch.sort(torch.randperm(num_rows, generator=generator)[:size]).values


def stratified_sample_rows(labels: torch.Tensor, size: int, *, seed: int) -> torch.Tensor:
    """Sorted positions of exactly ``size`` rows drawn class by class (seeded).

    Each class gets ``size * n_c / N`` rows rounded by largest remainder (ties to the lower
    class id), drawn without replacement by a seeded permutation of its members.

    Raises:
        ValueError: ``size`` is not in ``[1, len(labels)]``.
    """
    if not 1 <= size <= len(labels):
        raise ValueError(f"Invalid size value: {size} (must be in [1, {len(labels)}])")
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * size / len(labels)
    quota = exact.floor().long()
    remainder = exact - quota
    order = sorted(range(len(classes)), key=lambda i: (-float(remainder[i]), i))
    for i in order[: size - int(quota.sum())]:
        quota[i] += 1
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for label, take in zip(classes.tolist(), quota.tolist(), strict=True):
        members = torch.nonzero(labels == label).flatten()
        parts.append(members[torch.randperm(len(members), generator=generator)[:take]])
    return torch.sort(torch.cat(parts)).values


def cifar10_rows(train: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """``(probe rows, evaluation rows)`` of the CIFAR-10 train set: disjoint, both sorted."""
    probe = probe_rows(len(train))
    outside = torch.ones(len(train), dtype=torch.bool)
    outside[probe] = False
    rest = torch.nonzero(outside).flatten()
    picked = stratified_sample_rows(train.labels()[rest], CIFAR_EVAL_SIZE, seed=SEED)
    return probe, rest[picked]


def task_data(bench_dir: Path, name: str) -> tuple[ImageDataset, ImageDataset | None]:
    """``(evaluation_pool, specialist_pool)`` of one task (module docstring: how they are drawn).

    Args:
        bench_dir (`Path`): the benchmark folder (``../shared/bench``).
        name (`str`): one of :data:`TASKS`.

    Returns:
        `tuple[ImageDataset, ImageDataset | None]`: the evaluation pool (every ground-truth
        split is drawn from it) and the specialist pool (``None`` for CIFAR-10).

    Raises:
        ValueError: ``name`` is not one of :data:`TASKS`.
        DatasetLoadError: the task's parquet is missing or unreadable.

    Example:
        ```py
        >>> evaluation, specialist = task_data(Path("../shared/bench"), "orl")
        >>> len(evaluation), len(specialist)
        (280, 120)
        ```
    """
    if name not in TASKS:
        raise ValueError(f"Invalid task name: {name!r} (one of {', '.join(TASKS)})")
    if name == "cifar10":
        train = cifar10_train(bench_dir)
        _, rows = cifar10_rows(train)
        return take_rows(train, rows, tag=f"cifar10-outside-probe-{CIFAR_EVAL_SIZE}-{SEED}"), None
    full = _parquet(Path(bench_dir) / "data" / f"{name}.parquet")
    specialist, evaluation = stratified_split(full, test_fraction=EVALUATION_SHARE, seed=SEED)
    return evaluation, specialist


stratified_rows = stratified_indices
"""Sorted ``(train, test)`` positions: the draw of :func:`hf_stdembed.data.stratified_split`."""


def splits(
    pool: ImageDataset, n: int = 5, test_fraction: float = 0.3
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` seeded stratified ``(train_idx, test_idx)`` pairs of row positions into ``pool``.

    Split ``s`` (seed ``s``, ``s = 0..n-1``) holds the rows of
    ``stratified_split(pool, test_fraction=test_fraction, seed=s)``.

    Args:
        pool (`ImageDataset`): an evaluation pool (labelled).
        n (`int`, defaults to 5): number of splits.
        test_fraction (`float`, defaults to 0.3): share of each class in the test part.

    Returns:
        `list[tuple[torch.Tensor, torch.Tensor]]`: sorted ``int64`` positions, disjoint,
        together covering every row.

    Raises:
        ValueError: ``n`` is below 1 or ``test_fraction`` is not in ``(0, 1)``.
    """
    if n < 1:
        raise ValueError(f"Invalid n value: {n} (must be at least 1)")
    labels = pool.labels()
    return [stratified_rows(labels, test_fraction=test_fraction, seed=s) for s in range(n)]
