"""The local embedding index: updates, exact search, crash safety, concurrency, parquet."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from index_rows import DIM, H2, H, make_row, vectors

import hf_stdembed.index as index_module
from hf_stdembed.core import fuzzy_intersection
from hf_stdembed.errors import (
    IndexBusyError,
    IndexCorruptError,
    InvalidEmbeddingError,
    StandardMismatchError,
    StdEmbedError,
)
from hf_stdembed.index import (
    SCHEMA_VERSION,
    EmbeddingIndex,
    IndexRow,
    _checkpoint,
    default_index_path,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def fill(index: EmbeddingIndex, vecs: np.ndarray, *, start: int = 0, standard_hash: str = H):
    with index.update() as tx:
        for i, v in enumerate(vecs, start):
            tx.upsert(make_row(i, standard_hash), v)


def state(index: EmbeddingIndex, standard_hash: str = H) -> tuple[list[IndexRow], np.ndarray]:
    rows, vecs = index.snapshot(standard_hash)
    return rows, np.array(vecs)


@pytest.fixture
def index(tmp_path: Path) -> EmbeddingIndex:
    with EmbeddingIndex.open(tmp_path / "index") as opened:
        yield opened


# ---- updates ----------------------------------------------------------------------------


def test_upsert_replace_remove(index: EmbeddingIndex):
    vecs = vectors(6)
    fill(index, vecs)
    assert [r.repo_id for r in index.rows(H)] == [f"org/model-{i}" for i in range(6)]
    np.testing.assert_array_equal(index.vectors(H), vecs)
    assert index.get("org/model-2", H) == make_row(2)
    assert index.get("org/model-2", H2) is None

    new = vectors(2, seed=1)
    with index.update() as tx:
        tx.upsert(make_row(2, revision="b" * 40), new[0])  # replace: moves to the end
        tx.upsert(make_row(3, revision="c" * 40), vecs[3])  # same vector: keeps its place
        tx.remove("org/model-0", H)
        tx.remove("org/never-indexed", H)  # nothing
        tx.upsert(make_row(9), new[1])  # append
    rows, got = state(index)
    assert [r.repo_id for r in rows] == [f"org/model-{i}" for i in (1, 3, 4, 5, 9, 2)]
    assert (rows[-1].revision, rows[1].revision) == ("b" * 40, "c" * 40)
    np.testing.assert_array_equal(got, np.stack([vecs[1], *vecs[3:], new[1], new[0]]))
    assert (index.stats().standards[H].rows, index.stats().standards[H].dead) == (6, 2)
    assert index.rows() == rows
    index.check()

    with index.update() as tx:
        for row in rows:
            tx.remove(row.repo_id, H)
    assert index.rows(H) == []
    assert index.vectors(H).shape == (0, 0)
    assert list((index.root / "matrices").iterdir()) == []


def test_standards_are_separate_and_rows_carry_fidelity(index: EmbeddingIndex):
    fill(index, vectors(3))
    fill(index, vectors(2, dim=8), standard_hash=H2)
    assert len(index.rows()) == 5
    assert [r.standard_hash for r in index.rows()] == [H] * 3 + [H2] * 2
    assert index.vectors(H2).shape == (2, 8)
    assert make_row(1).fidelity == pytest.approx(0.501)
    stats = index.stats()
    assert stats.rows == 5
    assert stats.standards[H].dim == DIM and stats.standards[H2].rows == 2
    assert stats.standards[H].sweep_bytes * 4 == stats.standards[H].vector_bytes


def test_row_from_model_embedding(index: EmbeddingIndex):
    from hf_stdembed.embeddings import ModelEmbedding

    embedding = ModelEmbedding(torch.rand(DIM), "test-standard", H, "org/m", None, 0.7, 0.8)
    row = IndexRow.from_embedding(
        embedding, "org/m", revision="c" * 40, file_path="stdembed/s.safetensors", file_sha256="d"
    )
    assert (row.standard_hash, row.model_id, row.created_at) == (H, "org/m", embedding.created_at)
    assert row.fidelity == pytest.approx(0.7)
    with index.update() as tx:
        tx.upsert(row, embedding.vector)
    assert index.get("org/m", H) == row
    np.testing.assert_array_equal(index.vectors(H)[0], embedding.vector.numpy())


def test_record_crawl(index: EmbeddingIndex):
    assert index.crawl_state("org/a") is None
    with index.update() as tx:
        tx.record_crawl("org/a", "abc", "indexed")
        tx.record_crawl("org/b", "def", "invalid", "embedding values must lie in [0, 1]")
    assert index.crawl_state("org/a").sha == "abc"
    assert index.crawl_state("org/b").reason.startswith("embedding values")
    index.record_crawl("org/a", "abd", "no-embedding")
    assert index.crawl_state("org/a").status == "no-embedding"
    assert index.stats().crawl_status == {"invalid": 1, "no-embedding": 1}


@pytest.mark.parametrize(
    ("row", "vector", "message"),
    [
        (make_row(0), np.full(DIM, 0.5, np.float64), "dtype is float64"),
        (make_row(0), np.full((2, DIM), 0.5, np.float32), "shape"),
        (make_row(0), np.full(DIM + 1, 0.5, np.float32), f"{DIM + 1} values, the standard has"),
        (make_row(0), np.full(DIM, 1.5, np.float32), r"\[0, 1\]"),
        (make_row(0), np.full(DIM, np.nan, np.float32), "NaN"),
        (make_row(0, standard_hash="../../etc"), np.full(DIM, 0.5, np.float32), "hex"),
        (make_row(0, l_to=float("inf")), np.full(DIM, 0.5, np.float32), "l_to is not finite"),
        (make_row(0, repo_id=""), np.full(DIM, 0.5, np.float32), "repo_id is missing"),
    ],
)
def test_upsert_refuses_bad_input(index: EmbeddingIndex, row, vector, message):
    fill(index, vectors(1))
    with pytest.raises(InvalidEmbeddingError, match=message), index.update() as tx:
        tx.upsert(row, vector)
    assert len(index.rows()) == 1


def test_upsert_copies_the_vector_and_accepts_tensors(index: EmbeddingIndex):
    v = vectors(1)[0]
    with index.update() as tx:
        tx.upsert(make_row(0), v)
        tx.upsert(make_row(1), torch.from_numpy(v))
        v[:] = 0  # too late to change what was upserted
    assert (index.vectors(H) > 0).any(axis=1).all()


def test_generations_are_never_reused(index: EmbeddingIndex):
    # A reader holding an old state must never open another state's file of the same name.
    fill(index, vectors(3))
    first = index.stats().standards[H].generation
    with index.update() as tx:
        for i in range(3):
            tx.remove(f"org/model-{i}", H)
    assert H not in index.stats().standards
    fill(index, vectors(2, seed=4))
    assert index.stats().standards[H].generation > first


def test_a_reader_whose_files_were_replaced_reads_again(tmp_path: Path, monkeypatch):
    path = tmp_path / "index"
    with EmbeddingIndex.open(path) as writer, EmbeddingIndex.open(path) as reader:
        fill(writer, vectors(5))
        read_state = EmbeddingIndex._live
        raced = []

        def read_then_race(self: EmbeddingIndex, standard_hash: str):
            found = read_state(self, standard_hash)
            if self is reader and not raced:  # a writer commits a new generation right here
                raced.append(found)
                with writer.update() as tx:  # 2 dead of 5: a compaction, a new generation
                    tx.remove("org/model-0", H)
                    tx.remove("org/model-1", H)
            return found

        monkeypatch.setattr(EmbeddingIndex, "_live", read_then_race)
        rows, got = reader.snapshot(H)
        assert raced and [r.repo_id for r in rows] == [f"org/model-{i}" for i in range(2, 5)]
        np.testing.assert_array_equal(got, vectors(5)[2:])


# ---- search -----------------------------------------------------------------------------


@pytest.mark.parametrize("top", [1, 7, 50, 1000])
def test_search_equals_fuzzy_intersection_ranking(index: EmbeddingIndex, top: int):
    vecs = vectors(300, dim=96)
    fill(index, vecs)
    task = np.random.default_rng(5).random(96, dtype=np.float32)
    reference = fuzzy_intersection(torch.from_numpy(task), torch.from_numpy(vecs))
    expected = torch.argsort(reference, descending=True, stable=True)[:top].tolist()

    for threads in (1, 3):
        found = index.search(torch.from_numpy(task), H, top=top, threads=threads)
        assert [int(r.repo_id.rsplit("-", 1)[1]) for r, _ in found] == expected
        np.testing.assert_allclose([s for _, s in found], reference[expected].numpy(), rtol=1e-6)


def test_search_is_exact_on_ties_and_masks(index: EmbeddingIndex):
    # Binary-ish masks give many equal scores: ties keep matrix order, as rank_embeddings does.
    rng = np.random.default_rng(2)
    vecs = (rng.random((400, 32)) < 0.3).astype(np.float32)
    vecs[::7] *= np.float32(0.37)  # some values that uint8 rounds
    fill(index, vecs)
    task = (rng.random(32) < 0.5).astype(np.float32) * np.float32(0.8)
    reference = fuzzy_intersection(torch.from_numpy(task), torch.from_numpy(vecs))
    expected = torch.argsort(reference, descending=True, stable=True)[:25].tolist()
    found = index.search(task, H, top=25)
    assert [int(r.repo_id.rsplit("-", 1)[1]) for r, _ in found] == expected


def test_search_quantised_scores_are_within_the_bound(index: EmbeddingIndex):
    vecs = vectors(200, dim=64)
    fill(index, vecs)
    task = np.random.default_rng(3).random(64, dtype=np.float32)
    reference = fuzzy_intersection(torch.from_numpy(task), torch.from_numpy(vecs)).numpy()
    found = index.search(task, H, top=200, exact=False)
    errors = [abs(s - reference[int(r.repo_id.rsplit("-", 1)[1])]) for r, s in found]
    assert max(errors) <= 64 / 510


def test_search_refusals(index: EmbeddingIndex):
    fill(index, vectors(3))
    assert index.search(np.full(DIM, 0.5, np.float32), H2) == []
    with pytest.raises(StandardMismatchError, match=f"has {DIM}"):
        index.search(np.full(DIM + 1, 0.5, np.float32), H)
    with pytest.raises(ValueError, match="Invalid top value: 0"):
        index.search(np.full(DIM, 0.5, np.float32), H, top=0)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full(DIM, np.nan, np.float32), H)


# ---- replacements, removals, dead positions and compaction --------------------------------


def matrix_files(index: EmbeddingIndex) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (index.root / "matrices").iterdir()}


def repo_number(row: IndexRow) -> int:
    return int(row.repo_id.rsplit("-", 1)[1])


def brute_force(index: EmbeddingIndex, task: np.ndarray, top: int) -> list[tuple[str, float]]:
    """The exact top-k over the live rows, ties in matrix order."""
    rows, vecs = state(index)
    reference = fuzzy_intersection(torch.from_numpy(task), torch.from_numpy(vecs))
    best = torch.argsort(reference, descending=True, stable=True)[:top].tolist()
    return [(rows[i].repo_id, float(reference[i])) for i in best]


def test_replacing_one_row_appends_one_row(index: EmbeddingIndex, monkeypatch):
    n = 1000
    fill(index, vectors(n))
    before = matrix_files(index)
    assert before == {f"{H}.1.f32": n * DIM * 4, f"{H}.1.u8": n * DIM}

    def no_rewrite(*args: object) -> None:
        raise AssertionError("a replacement of one row must not rewrite the matrix")

    monkeypatch.setattr(index_module.IndexTransaction, "_rewrite", no_rewrite)
    new = np.full(DIM, 0.999, np.float32)  # beats every random row
    with index.update() as tx:
        tx.upsert(make_row(500, revision="e" * 40), new)
    # O(N) bytes written: exactly one row appended to the same generation's files
    assert matrix_files(index) == {f"{H}.1.f32": (n + 1) * DIM * 4, f"{H}.1.u8": (n + 1) * DIM}
    stats = index.stats().standards[H]
    assert (stats.rows, stats.dead, stats.generation) == (n, 1, 1)
    rows, got = state(index)
    assert len(rows) == n and rows[-1].repo_id == "org/model-500"
    np.testing.assert_array_equal(got[-1], new)
    np.testing.assert_array_equal(got[:500], vectors(n)[:500])
    np.testing.assert_array_equal(got[500:-1], vectors(n)[501:])
    assert [r.revision for r, _ in index.search(new, H, top=1)] == ["e" * 40]

    with index.update() as tx:  # a removal writes no matrix byte at all
        tx.remove("org/model-7", H)
    assert matrix_files(index) == {f"{H}.1.f32": (n + 1) * DIM * 4, f"{H}.1.u8": (n + 1) * DIM}
    assert index.stats().standards[H].dead == 2 and index.get("org/model-7", H) is None
    index.check()


@pytest.mark.parametrize("top", [1, 7, 50, 1000])
def test_search_is_exact_over_live_rows_only(index: EmbeddingIndex, top: int):
    rng = np.random.default_rng(11)
    vecs = vectors(300, dim=96)
    vecs[::5] = np.maximum(vecs[::5], np.float32(0.9))  # strong rows: dead ones would win
    fill(index, vecs)
    with index.update() as tx:
        for i in range(0, 300, 10):  # 30 strong rows replaced by weak vectors
            tx.upsert(make_row(i), rng.random(96, dtype=np.float32) * np.float32(0.2))
        for i in range(5, 300, 10):  # 30 strong rows removed
            tx.remove(f"org/model-{i}", H)
    stats = index.stats().standards[H]
    assert (stats.rows, stats.dead, stats.generation) == (270, 60, 1)  # 60 of 330: no compaction
    task = np.random.default_rng(5).random(96, dtype=np.float32)
    expected = brute_force(index, task, top)
    for threads in (1, 3):
        found = index.search(torch.from_numpy(task), H, top=top, threads=threads)
        assert [r.repo_id for r, _ in found] == [repo for repo, _ in expected]
        np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-6)
    quantised = index.search(task, H, top=top, exact=False)
    assert len(quantised) == min(top, 270)
    scores = dict(brute_force(index, task, 1000))
    assert max(abs(s - scores[r.repo_id]) for r, s in quantised) <= 96 / 510
    assert all(repo_number(r) % 10 != 5 for r, _ in index.search(task, H, top=1000))


def test_removed_rows_never_come_back(index: EmbeddingIndex, tmp_path: Path):
    vecs = vectors(40)
    fill(index, vecs)
    with index.update() as tx:
        for i in (3, 17, 39):
            tx.remove(f"org/model-{i}", H)
    gone = {"org/model-3", "org/model-17", "org/model-39"}
    for i in (3, 17, 39):  # each removed row's own vector: it would be its best match
        found = index.search(vecs[i], H, top=37)
        assert len(found) == 37 and not gone & {r.repo_id for r, _ in found}
    rows, got = state(index)
    assert [repo_number(r) for r in rows] == [i for i in range(40) if i not in (3, 17, 39)]
    np.testing.assert_array_equal(got, np.delete(vecs, [3, 17, 39], axis=0))
    assert index.rows(H) == rows and index.stats().rows == 37
    table = pq.read_table(index.export_parquet(tmp_path / "x.parquet", batch_rows=8))
    assert table.column("repo_id").to_pylist() == [r.repo_id for r in rows]
    np.testing.assert_array_equal(np.array(table.column("embedding").to_pylist()), got)
    index.check()


def test_compaction_above_the_dead_fraction_only(index: EmbeddingIndex):
    n = 40
    limit = int(index_module.COMPACT_DEAD_FRACTION * n)  # dead positions n rows may hold
    assert 0 < limit < n - 1
    vecs = vectors(n)
    fill(index, vecs)
    with index.update() as tx:  # exactly at the fraction: kept
        for i in range(limit):
            tx.remove(f"org/model-{i}", H)
    stats = index.stats().standards[H]
    assert (stats.rows, stats.dead, stats.generation) == (n - limit, limit, 1)
    assert matrix_files(index) == {f"{H}.1.f32": n * DIM * 4, f"{H}.1.u8": n * DIM}

    new = vectors(1, seed=8)[0]
    with index.update() as tx:  # one replacement more: (limit + 1) / (n + 1) is above it
        tx.upsert(make_row(n - 1, revision="f" * 40), new)
    stats = index.stats().standards[H]
    assert (stats.rows, stats.dead, stats.generation) == (n - limit, 0, 2)
    m = n - limit
    assert matrix_files(index) == {f"{H}.2.f32": m * DIM * 4, f"{H}.2.u8": m * DIM}
    rows, got = state(index)
    assert [repo_number(r) for r in rows] == list(range(limit, n))  # replaced in place
    np.testing.assert_array_equal(got, np.concatenate([vecs[limit:-1], new[None]]))
    task = np.random.default_rng(4).random(DIM, dtype=np.float32)
    found, expected = index.search(task, H, top=m), brute_force(index, task, m)
    assert [r.repo_id for r, _ in found] == [repo for repo, _ in expected]
    np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-6)
    index.check()


def make_version_1(path: Path, count: int = 10) -> None:
    """An index of ``count`` rows as hf-stdembed wrote it with schema version 1 (no dead
    positions). Rebuilds ``matrices`` instead of ``DROP COLUMN`` (SQLite 3.35+ only)."""
    import sqlite3

    with EmbeddingIndex.open(path) as index:
        fill(index, vectors(count))
    conn = sqlite3.connect(path / "index.sqlite", isolation_level=None)
    conn.executescript(
        """
        BEGIN;
        DROP TABLE dead;
        CREATE TABLE matrices_1 (standard_hash TEXT PRIMARY KEY, generation INTEGER NOT NULL,
                                 dim INTEGER NOT NULL, count INTEGER NOT NULL);
        INSERT INTO matrices_1 SELECT standard_hash, generation, dim, count FROM matrices;
        DROP TABLE matrices;
        ALTER TABLE matrices_1 RENAME TO matrices;
        UPDATE meta SET value = '1' WHERE key = 'schema_version';
        COMMIT;
        """
    )
    conn.close()


def schema_version(path: Path) -> str:
    import sqlite3

    conn = sqlite3.connect(path / "index.sqlite")
    try:
        return conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        conn.close()


def test_upgrades_a_version_1_index(tmp_path: Path):
    import sqlite3

    path = tmp_path / "i"
    make_version_1(path)
    assert schema_version(path) == "1"
    with EmbeddingIndex.open(path) as index:
        assert schema_version(path) == SCHEMA_VERSION
        with index.update() as tx:
            tx.upsert(make_row(4), vectors(1, seed=2)[0])
        assert index.stats().standards[H].dead == 1
        assert [repo_number(r) for r in index.rows(H)] == [0, 1, 2, 3, 5, 6, 7, 8, 9, 4]
        index.check()
        before = state(index)
    # A second open is a no-op: it needs no write lock (another connection holds it here).
    blocker = sqlite3.connect(path / "index.sqlite", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with EmbeddingIndex.open(path, timeout=0.1) as index:
            after = state(index)
            assert after[0] == before[0]
            np.testing.assert_array_equal(after[1], before[1])
            assert index.stats().standards[H].dead == 1
    finally:
        blocker.close()
    assert schema_version(path) == SCHEMA_VERSION


def test_upgrade_waiting_for_another_writer_is_busy(tmp_path: Path):
    import sqlite3

    path = tmp_path / "i"
    make_version_1(path)
    blocker = sqlite3.connect(path / "index.sqlite", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(IndexBusyError, match="upgrade of the index was waiting") as caught:
            EmbeddingIndex.open(path, timeout=0.1)
        assert isinstance(caught.value, StdEmbedError)
        assert "another hf-stdembed process" in str(caught.value)
        blocker.execute("ROLLBACK")
        assert schema_version(path) == "1"  # nothing half-done
        with EmbeddingIndex.open(path, timeout=0.1) as index:  # once free, it upgrades
            assert len(index.rows(H)) == 10
            index.check()
    finally:
        blocker.close()
    assert schema_version(path) == SCHEMA_VERSION


def test_upgrade_of_a_read_only_index_says_so(tmp_path: Path, monkeypatch):
    import sqlite3

    path = tmp_path / "i"
    make_version_1(path)
    connect = sqlite3.connect

    def read_only(database, **kwargs):  # as if the file were not writable (tests run as root)
        return connect(Path(database).as_uri() + "?mode=ro", uri=True, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", read_only)
    message = f"must be upgraded once by a process that can write to {re.escape(str(path))}"
    with pytest.raises(IndexCorruptError, match=message) as caught:
        EmbeddingIndex.open(path, timeout=0.1)
    assert isinstance(caught.value, StdEmbedError)
    monkeypatch.undo()
    assert schema_version(path) == "1"


# ---- persistence and crash safety -------------------------------------------------------


def test_persists_across_reopen(tmp_path: Path):
    vecs = vectors(20)
    with EmbeddingIndex.open(tmp_path / "i") as index:
        fill(index, vecs[:10])
        fill(index, vecs[10:], start=10)  # appended to the same matrix file
        with index.update() as tx:
            tx.record_crawl("org/model-1", "abc", "indexed")
        before = state(index)
    with EmbeddingIndex.open(tmp_path / "i") as index:
        after = state(index)
        assert after[0] == before[0]
        np.testing.assert_array_equal(after[1], vecs)
        assert index.crawl_state("org/model-1").sha == "abc"
        assert index.stats().standards[H].generation == 1


def test_default_path_follows_env_and_hub_cache(monkeypatch, offline_caches: Path, tmp_path):
    assert default_index_path() == offline_caches / "stdembed" / "index"
    monkeypatch.setenv("HF_STDEMBED_INDEX", str(tmp_path / "elsewhere"))
    with EmbeddingIndex.open() as index:
        assert index.root == tmp_path / "elsewhere"


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_error_inside_the_block_rolls_back(index: EmbeddingIndex, error):
    fill(index, vectors(4))
    before = state(index)
    with pytest.raises(error), index.update() as tx:
        tx.upsert(make_row(9), vectors(1)[0])
        tx.remove("org/model-1", H)
        tx.record_crawl("org/model-9", "abc", "indexed")
        raise error()
    after = state(index)
    assert after[0] == before[0]
    np.testing.assert_array_equal(after[1], before[1])
    assert index.crawl_state("org/model-9") is None


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("stage", ["partial-matrix", "sql-pending"])
def test_interrupt_during_commit_rolls_back(
    index: EmbeddingIndex, monkeypatch, stage: str, compact: bool
):
    fill(index, vectors(4))
    before = state(index)

    def interrupt(at: str) -> None:
        if at == stage:
            raise KeyboardInterrupt

    monkeypatch.setattr(_checkpoint, "reached", interrupt)
    with pytest.raises(KeyboardInterrupt), index.update() as tx:
        # 1 dead of 5: appended in place; 2 dead of 5: a compaction into a new generation
        tx.upsert(make_row(1, revision="c" * 40), vectors(1, seed=9)[0])
        if compact:
            tx.remove("org/model-0", H)
    monkeypatch.undo()
    after = state(index)
    assert after[0] == before[0]
    np.testing.assert_array_equal(after[1], before[1])
    assert sorted(p.name for p in (index.root / "matrices").iterdir()) == [
        f"{H}.1.f32",
        f"{H}.1.u8",
    ]
    index.check()


@pytest.mark.parametrize("compact", [False, True])
def test_an_update_reaches_each_checkpoint_in_order(index: EmbeddingIndex, monkeypatch, compact):
    fill(index, vectors(4))
    reached: list[str] = []
    monkeypatch.setattr(_checkpoint, "reached", reached.append)
    with index.update() as tx:
        tx.upsert(make_row(1, revision="c" * 40), vectors(1, seed=9)[0])
        if compact:
            tx.remove("org/model-0", H)
    # one block of float32 rows written (the replaced row's, or the compacted generation's)
    assert reached == ["partial-matrix", "matrices-synced", "sql-pending"]
    assert index.stats().standards[H].generation == (2 if compact else 1)


def test_the_library_has_no_test_hook_nor_print():
    assert _checkpoint.reached("sql-pending") is None  # production: a no-op
    package = Path(index_module.__file__).parent
    for module in package.glob("*.py"):
        text = module.read_text()
        assert "print(" not in text and "time.sleep" not in text, module.name
        environ = [line.strip() for line in text.splitlines() if "environ" in line]
        allowed = ["env = os.environ.get(INDEX_ENV)"] if module.stem == "store" else []
        assert environ == allowed, module.name


CHILD = textwrap.dedent(
    """
    import os
    import sys
    import time
    import numpy as np
    from hf_stdembed.index import EmbeddingIndex, IndexRow, _checkpoint

    path, mode, standard_hash, dim = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pause, _, resume = (sys.argv[5] if len(sys.argv) > 5 else "").partition(":")

    def reached(stage):  # pause at one stage (until the resume file exists, or forever)
        if stage != pause:
            return
        print(f"paused: {stage}", flush=True)
        while not (resume and os.path.exists(resume)):
            time.sleep(0.01)

    _checkpoint.reached = reached
    def row(i, revision):
        return IndexRow(f"org/model-{i}", revision, "test-standard", standard_hash,
                        "f.safetensors", "0" * 64, f"org/model-{i}", None, 0.5, 0.5, "0.1.0",
                        "2025", "2025")
    vectors = np.random.default_rng(7).random((3000, dim), dtype=np.float32)
    with EmbeddingIndex.open(path).update() as tx:
        if mode == "replace":  # 2 dead positions, 3001 rows appended
            tx.remove("org/model-0", standard_hash)
            tx.upsert(row(1, "new"), vectors[0])
        if mode == "compact":  # 21 dead of 51: a new generation of 30 rows
            for i in range(20):
                tx.remove(f"org/model-{i}", standard_hash)
            tx.upsert(row(20, "new"), vectors[0])
        else:
            for i in range(100, 3100):
                tx.upsert(row(i, "new"), vectors[i - 100])
        tx.record_crawl("org/model-100", "new", "indexed")
    print("committed", flush=True)
    """
)


def start_writer(path: Path, mode: str, pause: str) -> subprocess.Popen:
    """A writer process paused at ``pause`` (``<stage>`` or ``<stage>:<resume file>``)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode, H, str(DIM), pause],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = child.stdout.readline()
    if not line.startswith("paused"):
        child.kill()
        pytest.fail(f"the writer did not pause: {line!r} {child.stderr.read()}")
    return child


@pytest.mark.parametrize("mode", ["append", "replace", "compact"])
@pytest.mark.parametrize("stage", ["partial-matrix", "matrices-synced", "sql-pending"])
def test_sigkill_mid_update_keeps_the_previous_state(tmp_path: Path, mode: str, stage: str):
    path = tmp_path / "index"
    with EmbeddingIndex.open(path) as index:
        fill(index, vectors(50))
        before = state(index)

    writer = start_writer(path, mode, stage)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    writer.stderr.close()

    with EmbeddingIndex.open(path) as index:
        index.check()
        after = state(index)
        assert after[0] == before[0]
        np.testing.assert_array_equal(after[1], before[1])
        assert index.crawl_state("org/model-100") is None
        assert [r.repo_id for r, _ in index.search(before[1][3], H, top=1)] == ["org/model-3"]
        fill(index, vectors(1, seed=3), start=50)  # the next update cleans up and works
        names = sorted(p.name for p in (path / "matrices").iterdir())
        assert names == [f"{H}.1.f32", f"{H}.1.u8"]
        assert (path / "matrices" / f"{H}.1.f32").stat().st_size == 51 * DIM * 4
        index.check()


def test_a_replacing_writer_process_commits(tmp_path: Path):
    path = tmp_path / "index"
    with EmbeddingIndex.open(path) as index:
        fill(index, vectors(50))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "replace", H, str(DIM)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert done.stdout.strip() == "committed"
    with EmbeddingIndex.open(path) as index:
        index.check()
        rows, got = state(index)
        assert len(rows) == 50 - 1 + 3000 and rows[-1].repo_id == "org/model-1"
        assert [r.repo_id for r in rows[:2]] == ["org/model-2", "org/model-3"]
        assert index.stats().standards[H].dead == 2
        new = np.random.default_rng(7).random((3000, DIM), dtype=np.float32)
        np.testing.assert_array_equal(got[-1], new[0])
        assert matrix_files(index) == {f"{H}.1.f32": 3051 * DIM * 4, f"{H}.1.u8": 3051 * DIM}


@pytest.mark.parametrize("mode", ["replace", "compact"])
def test_readers_see_the_old_state_while_a_writer_works(tmp_path: Path, mode: str):
    path = tmp_path / "index"
    with EmbeddingIndex.open(path) as index:
        fill(index, vectors(50))
        before = state(index)
    resume = tmp_path / "resume"
    writer = start_writer(path, mode, f"sql-pending:{resume}")
    try:
        with EmbeddingIndex.open(path) as reader:
            after = state(reader)
            assert after[0] == before[0]
            np.testing.assert_array_equal(after[1], before[1])
            busy = pytest.raises(IndexBusyError, match="another process")
            with busy as caught, reader.update(timeout=0.1):
                pass
            assert isinstance(caught.value, StdEmbedError)
            mapped = reader.vectors(H)  # stays valid after the writer deletes its file
            resume.touch()
            assert writer.stdout.readline().strip() == "committed"
            assert writer.wait() == 0
            rows, got = state(reader)
            np.testing.assert_array_equal(mapped, before[1])
            if mode == "compact":  # a new generation; the old file is deleted
                assert len(rows) == 50 - 20
                assert rows[0].repo_id == "org/model-20" and rows[0].revision == "new"
                assert not (path / "matrices" / f"{H}.1.f32").exists()
            else:  # appended past the old count to the same file; 2 old positions dead
                assert len(rows) == 50 - 1 + 3000 and reader.stats().standards[H].dead == 2
                assert rows[-1].repo_id == "org/model-1" and rows[-1].revision == "new"
                assert matrix_files(reader)[f"{H}.1.f32"] == 3051 * DIM * 4
                assert mapped.shape == (50, DIM)  # the old count: appended rows not seen
                np.testing.assert_array_equal(got[:48], before[1][2:])
            reader.check()
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()
        writer.stderr.close()


# ---- parquet ----------------------------------------------------------------------------


def test_parquet_round_trip_is_exact(index: EmbeddingIndex, tmp_path: Path):
    import datasets

    fill(index, vectors(30))
    fill(index, vectors(5, dim=8), standard_hash=H2)
    exported = index.export_parquet(tmp_path / "index.parquet", batch_rows=7)

    with EmbeddingIndex.open(tmp_path / "copy") as copy:
        report = copy.import_parquet(exported, batch_rows=11)
        assert (report.imported, report.unchanged, report.skipped) == (35, 0, [])
        for standard_hash in (H, H2):
            rows, vecs = state(copy, standard_hash)
            source = f"import:{exported}"  # provenance: what was imported, from where
            expected = [dataclasses.replace(r, source=source) for r in index.rows(standard_hash)]
            assert rows == expected
            np.testing.assert_array_equal(vecs, index.vectors(standard_hash))
        assert copy.import_parquet(exported).unchanged == 35

    ds = datasets.load_dataset("parquet", data_files=str(exported), split="train")
    assert ds.num_rows == 35
    assert ds[0]["repo_id"] == "org/model-0"
    assert ds.features["embedding"].feature.dtype == "float32"
    np.testing.assert_array_equal(np.array(ds[0]["embedding"], np.float32), index.vectors(H)[0])

    only = index.export_parquet(tmp_path / "h2.parquet", standard_hash=H2)
    assert pq.read_table(only).column("standard_hash").to_pylist() == [H2] * 5


def test_import_refuses_bad_rows_with_reasons(index: EmbeddingIndex, tmp_path: Path):
    fill(index, vectors(3))
    exported = pq.read_table(index.export_parquet(tmp_path / "good.parquet"))
    table = exported.to_pylist()
    bad = [dict(table[0], repo_id=f"org/bad-{i}") for i in range(7)]
    bad[0]["embedding"] = [float("nan")] * DIM
    bad[1]["embedding"] = [1.5] * DIM
    bad[2]["embedding"] = [0.5] * (DIM - 1)
    bad[3]["embedding"] = None
    bad[4]["standard_hash"] = "../../x"
    bad[5]["l_from"] = float("nan")
    bad[6]["embedding"] = [None, *table[0]["embedding"][1:]]  # a null value inside the list
    good = dict(table[1], repo_id="org/good")
    rows = [*bad, good, dict(good)]  # and a duplicate
    pq.write_table(pa.Table.from_pylist(rows, schema=exported.schema), tmp_path / "bad.parquet")

    report = index.import_parquet(tmp_path / "bad.parquet")
    assert report.imported == 1
    reasons = {s.row_number: s.reason for s in report.skipped}
    assert [s.repo_id for s in report.skipped][:2] == ["org/bad-0", "org/bad-1"]
    for number, pattern in enumerate(
        ["NaN", r"\[0, 1\]", f"{DIM - 1} values", "null", "hex", "l_from", "NaN"]
    ):
        assert re.search(pattern, reasons[number]), reasons[number]
    assert reasons[8] == "duplicate of row 7 (same repo and standard)"
    assert [r.repo_id for r in index.rows(H)] == [*(f"org/model-{i}" for i in range(3)), "org/good"]
    index.check()


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("embedding", [[0.5] * DIM], "expected list<float32>"),  # float64 lists
        ("revision", None, r"missing columns \['revision'\]"),
    ],
)
def test_import_refuses_bad_files(index: EmbeddingIndex, tmp_path: Path, column, values, message):
    fill(index, vectors(1))
    table = pq.read_table(index.export_parquet(tmp_path / "good.parquet"))
    at = table.schema.get_field_index(column)
    table = table.remove_column(at)
    if values is not None:
        table = table.append_column(column, pa.array(values, pa.list_(pa.float64())))
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(InvalidEmbeddingError, match=message):
        index.import_parquet(tmp_path / "bad.parquet")
    with pytest.raises(FileNotFoundError):
        index.import_parquet(tmp_path / "missing.parquet")
