"""Index rows and vectors as the index tests build them (tests/test_index*.py and others)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from hf_stdembed.index import EmbeddingIndex, IndexRow

H = "0123456789abcdef"  # a standard hash
H2 = "fedcba9876543210"
DIM = 16


def make_row(i: int, standard_hash: str = H, **changes: object) -> IndexRow:
    """Row ``i`` of a made-up model under ``standard_hash``; fields overridden by ``changes``."""
    row = IndexRow(
        repo_id=f"org/model-{i}",
        revision=f"{i:040x}",
        standard_id="test-standard",
        standard_hash=standard_hash,
        file_path="stdembed/test-standard.safetensors",
        file_sha256=f"{i:064x}",
        model_id=f"org/model-{i}",
        model_revision=None if i % 2 else f"{i:040x}",
        l_to=0.5 + i / 1000,
        l_from=0.9,
        library_version="0.1.0",
        created_at="2025-01-01T00:00:00+00:00",
        indexed_at="2025-01-02T00:00:00+00:00",
    )
    return dataclasses.replace(row, **changes)


def vectors(count: int, dim: int = DIM, *, seed: int = 0) -> np.ndarray:
    """``count`` reproducible float32 vectors in [0, 1)."""
    return np.random.default_rng(seed).random((count, dim), dtype=np.float32)


def standard_row(i: int, standard_hash: str) -> IndexRow:
    """make_row's row, with one standard id per hash (``standard-<first 4 hex digits>``)."""
    return make_row(i, standard_hash, standard_id=f"standard-{standard_hash[:4]}")


def fill(folder: Path, rows: list[tuple[int, str]], *, seed: int = 0) -> None:
    """Upsert ``standard_row(i, standard_hash)`` for each ``(i, standard_hash)`` of ``rows``
    into the index at ``folder``, with reproducible vectors."""
    with EmbeddingIndex.open(folder) as index, index.update() as tx:
        for (i, standard_hash), vector in zip(rows, vectors(len(rows), seed=seed), strict=True):
            tx.upsert(standard_row(i, standard_hash), vector)
