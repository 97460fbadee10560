"""Importing a parquet file into an index: every row checked, and a stranger's row never
shadows one the crawl read from the repo itself."""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._text import shorten
from ..plausibility import fidelity_problem, r2_problem
from .parquet import ParsedRow, read_parquet
from .rows import (
    MAX_FIELD_CHARS,
    SOURCE_CRAWL,
    ImportReport,
    IndexRow,
    SkippedRow,
    metadata_problem,
    vector_problem,
)

if TYPE_CHECKING:
    from .store import EmbeddingIndex
    from .transaction import IndexTransaction


def import_parquet(
    index: EmbeddingIndex, path: str | Path, *, batch_rows: int, source: str | None
) -> ImportReport:
    """Merges the rows of a parquet file into ``index``: see
    :meth:`hf_stdembed.index.EmbeddingIndex.import_parquet`."""
    source = shorten(source or f"import:{path}", MAX_FIELD_CHARS["source"])
    standards, batches = read_parquet(Path(path), batch_rows)
    if standards:
        with index.update() as tx:
            for standard in standards:
                tx.remember_standard(standard, trusted=False, origin=source)
    merge = _Merge(index, source)
    imported = unchanged = 0
    for batch in batches:
        with index.update() as tx:
            added, same = merge.batch(tx, batch)
        imported, unchanged = imported + added, unchanged + same
    return ImportReport(imported, unchanged, merge.skipped)


class _Merge:
    """The checks of one import, across its batches (each one transaction)."""

    def __init__(self, index: EmbeddingIndex, source: str) -> None:
        self.index = index
        self.source = source
        self.skipped: list[SkippedRow] = []
        self.known_dims: dict[str, int] = {}  # N of the standards seen in the file
        self.seen: dict[tuple[str, str], int] = {}  # (standard, repo): row number
        self.r2_hashes = _r2_hashes(index)  # standards whose embeddings are R^2 masks

    def batch(self, tx: IndexTransaction, batch: list[ParsedRow]) -> tuple[int, int]:
        """Checks and upserts parsed parquet rows; returns (imported, unchanged)."""
        imported = unchanged = 0
        for number, row, vector, problem in batch:
            if problem is None and vector is not None:
                problem = self._problem(tx, number, row, vector)
            if problem is None and vector is not None:
                row = replace(row, source=self.source)
                existing = self.index.get(row.repo_id, row.standard_hash)
                same = existing is not None and self._same_vector(row, vector)
                if same and _same_content(existing, row):
                    unchanged += 1
                    continue
                if existing is not None and existing.crawled:
                    problem = (
                        "the index holds this repo's embedding as the crawl read it from the "
                        f"repo itself (revision {existing.revision}); an import never replaces it"
                    )
                else:
                    problem = self._crawled_disagreement(row, vector)
            if problem is not None or vector is None:
                self.skipped.append(
                    SkippedRow(
                        number,
                        _short_or_none(row.repo_id),
                        _short_or_none(row.standard_hash),
                        shorten(str(problem)),
                    )
                )
                continue
            tx.upsert(row, vector)
            imported += 1
        return imported, unchanged

    def _problem(
        self, tx: IndexTransaction, number: int, row: IndexRow, vector: np.ndarray
    ) -> str | None:
        problem = metadata_problem(row) or fidelity_problem(row.l_to, row.l_from)
        if problem:
            return problem
        key = (row.standard_hash, row.repo_id)
        if key in self.seen:
            return f"duplicate of row {self.seen[key]} (same repo and standard)"
        dim = tx._dim(row.standard_hash) or self.known_dims.get(row.standard_hash)
        if dim is None:
            dim = _builtin_dims().get(row.standard_hash)
        problem = vector_problem(vector, dim)
        if not problem and row.standard_hash in self.r2_hashes:
            problem = r2_problem(vector, row.l_to, row.l_from)
        if problem:
            return problem
        self.known_dims.setdefault(row.standard_hash, vector.shape[0])
        self.seen[key] = number
        return None

    def _crawled_disagreement(self, row: IndexRow, vector: np.ndarray) -> str | None:
        """Why an imported row contradicts a crawled one of the same file, or None: a
        ``file_sha256`` names one file, hence one standard and one vector."""
        cur = self.index._conn.execute(
            "SELECT repo_id, standard_hash, pos FROM rows WHERE file_sha256 = ? "
            f"AND source = '{SOURCE_CRAWL}' LIMIT 16",
            (row.file_sha256,),
        )
        for repo_id, standard_hash, pos in cur.fetchall():
            live = self.index._live(standard_hash)
            same = (
                standard_hash == row.standard_hash
                and live is not None
                and np.array_equal(self.index._matrix(live, "f32")[pos], vector)
            )
            if not same:
                return (
                    f"its vector disagrees with the file of sha256 {row.file_sha256} as the "
                    f"crawl read it from {repo_id}"
                )
        return None

    def _same_vector(self, row: IndexRow, vector: np.ndarray) -> bool:
        live = self.index._live(row.standard_hash)
        found = self.index._conn.execute(
            "SELECT pos FROM rows WHERE standard_hash = ? AND repo_id = ?",
            (row.standard_hash, row.repo_id),
        ).fetchone()
        if live is None or found is None:
            return False
        return bool(np.array_equal(self.index._matrix(live, "f32")[found[0]], vector))


def _same_content(a: IndexRow, b: IndexRow) -> bool:
    """Whether two rows say the same, whenever and wherever they were indexed."""
    ignored = {"indexed_at": "", "source": "", "flags": ""}
    return replace(a, **ignored) == replace(b, **ignored)


def _short_or_none(value: object) -> str | None:
    return shorten(value, 200) if isinstance(value, str) else None


def _r2_hashes(index: EmbeddingIndex) -> set[str]:
    """The hashes of the r2 standards (built-in or seen by ``index``): their rows' fidelities
    must agree with the mask (:func:`~hf_stdembed.plausibility.r2_problem`), as the crawl
    checks. Read once per import, after the file's own standards are remembered (not
    cached: a later import into the same index may bring new ones)."""
    from ..errors import InvalidStandardError
    from ..standards import builtin_standards

    known = list(builtin_standards().values())
    for stored in index.standards():
        try:
            known.append(stored.load())
        except InvalidStandardError:
            continue
    return {standard.hash for standard in known if standard.method == "r2"}


@functools.cache
def _builtin_dims() -> dict[str, int]:
    """N of every built-in standard, by hash."""
    from ..standards import builtin_standards

    return {standard.hash: standard.dim for standard in builtin_standards().values()}
