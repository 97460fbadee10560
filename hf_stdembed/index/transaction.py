"""Updates of the index: :class:`IndexTransaction` records changes, then writes them in one
commit that a crash cannot tear.

Crash safety: a transaction holds the SQLite write lock (``BEGIN IMMEDIATE``) from start to
end and writes no byte that a committed state points at:

- rows appended to a standard (new rows and the new vectors of replaced rows) go past the
  committed ``count`` of its live matrix files, which readers never look at;
- a compaction writes a new generation of the standard's files;

then the files are fsynced, and only then are the rows and the new ``(generation, count)``
committed in one SQLite transaction (``synchronous=FULL``), together with the positions
that become dead. A crash before the commit leaves the previous state: bytes past ``count``
and unreferenced generations are ignored by readers and removed by the next update. Old
generations are deleted after the commit; a reader that mapped one keeps its pages, one
that had not yet opened it retries on the new state.

A matrix position is either live (one row of the ``rows`` table points at it) or dead (listed
in the ``dead`` table): replacing a row's vector appends the new vector and marks the old
position dead, removing a row marks its position dead, so either costs O(changed rows), not
a copy of the matrix. When more than :data:`COMPACT_DEAD_FRACTION` of a standard's matrix
would be dead, the commit instead writes a new generation without them (compaction), so dead
space stays bounded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._files import fsync_dir
from .._text import shorten
from ..errors import InvalidEmbeddingError
from ..plausibility import row_flags
from . import _checkpoint
from .matrices import KINDS, Live, MatrixWriter, changed_block, matrix_path
from .rows import (
    ROW_FIELDS,
    CrawlState,
    IndexRow,
    as_array,
    metadata_problem,
    now,
    row_values,
    vector_problem,
)
from .schema import ROW_COLUMNS
from .sweep import BLOCK_ROWS, quantise

if TYPE_CHECKING:
    import torch

    from ..standards import Standard
    from .store import EmbeddingIndex

COMPACT_DEAD_FRACTION = 0.25
"""A commit that would leave more than this fraction of a standard's matrix positions dead
rewrites the standard into a new generation without them (see the module docstring)."""


@dataclass
class _StandardChange:
    """What a transaction does to one standard's rows."""

    added: list[tuple[IndexRow, np.ndarray]] = field(default_factory=list)  # (row, vector)
    replaced: dict[int, tuple[int, IndexRow, np.ndarray]] = field(default_factory=dict)
    # ^ pos: (rowid, row, vector), the vector changed
    relabelled: dict[int, tuple[int, IndexRow, np.ndarray]] = field(default_factory=dict)
    # ^ the same, for replacements whose vector is the indexed one: metadata only
    removed: dict[int, int] = field(default_factory=dict)  # pos: rowid

    def dead_after(self, live: Live | None) -> tuple[int, int]:
        """``(matrix rows, dead positions)`` after the non-compacting commit."""
        count = live.count if live else 0
        dead = live.dead if live else 0
        new_rows = len(self.added) + len(self.replaced)
        return count + new_rows, dead + len(self.replaced) + len(self.removed)


class IndexTransaction:
    """Changes recorded inside :meth:`EmbeddingIndex.update`; nothing is written until the
    block exits."""

    def __init__(self, index: EmbeddingIndex) -> None:
        self._index = index
        self._ops: dict[tuple[str, str], tuple[IndexRow, np.ndarray] | None] = {}
        self._crawl: dict[str, CrawlState] = {}
        self._standards: dict[str, tuple[Standard, bool, str]] = {}
        self._dims: dict[str, int] = {}
        self._new_files: list[Path] = []
        self._old_files: list[Path] = []
        self._last_generation: int | None = None  # read from the database at first use
        self._closed = False

    def upsert(self, row: IndexRow, vector: torch.Tensor | np.ndarray) -> None:
        """Adds a row, or replaces the row of the same repo and standard.

        The row's ``flags`` are computed here from the vector and fidelities
        (:func:`hf_stdembed.plausibility.row_flags`); the ones given are ignored.

        Args:
            row: the metadata.
            vector: the float32 embedding ``(N,)`` in [0, 1]; copied.

        Raises:
            InvalidEmbeddingError: on invalid metadata, or a vector that is not float32,
                is not of the standard's length, or holds values outside [0, 1] or NaN.
        """
        self._check_open()
        vector = as_array(vector)
        problem = metadata_problem(row) or vector_problem(vector, self._dim(row.standard_hash))
        if problem:
            raise InvalidEmbeddingError(problem, path=f"{row.repo_id}/{row.file_path}")
        self._dims.setdefault(row.standard_hash, vector.shape[0])
        flags = row_flags(vector, l_to=row.l_to, l_from=row.l_from)
        row = replace(row, flags=",".join(flags))
        self._ops[(row.standard_hash, row.repo_id)] = (row, vector)

    def remove(self, repo_id: str, standard_hash: str) -> None:
        """Removes the row of a repo under a standard (nothing if there is none)."""
        self._check_open()
        self._ops[(standard_hash, repo_id)] = None

    def remember_standard(self, standard: Standard, *, trusted: bool, origin: str) -> None:
        """Keeps a custom standard's definition, so that its id resolves later.

        A trusted copy (given by the user) replaces an untrusted one of the same hash; an
        untrusted copy never replaces anything.

        Args:
            standard: the standard.
            trusted: whether the index's user gave it (else: fetched from a stranger).
            origin: where it came from, for display (``user``, ``repo:...``, ``import:...``).
        """
        self._check_open()
        key = standard.hash
        if key in self._standards and self._standards[key][1] >= trusted:
            return
        self._standards[key] = (standard, trusted, shorten(origin, 1024))

    def record_crawl(
        self, repo_id: str, sha: str | None, status: str, reason: str | None = None
    ) -> None:
        """Records what crawling a repo found.

        Args:
            repo_id: the repo.
            sha: the commit seen (None if the repo could not be read).
            status: e.g. ``"indexed"``, ``"no-embedding"``, ``"invalid"``, ``"error"``.
            reason: why, for an invalid repo or an error (shortened to
                :data:`hf_stdembed._text.MAX_REASON_CHARS`).
        """
        self._check_open()
        reason = shorten(reason) if reason is not None else None
        self._crawl[repo_id] = CrawlState(repo_id, sha, status, reason, now())

    # ---- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this transaction is over: open a new `with index.update()`")

    def _new_generation(self, standard_hash: str) -> Live:
        """A generation number never used by a committed state (so a reader holding an old
        state can never open another state's file under the same name)."""
        if self._last_generation is None:
            found = self._index._conn.execute(
                "SELECT value FROM meta WHERE key = 'last_generation'"
            ).fetchone()
            self._last_generation = int(found[0]) if found else 0
        self._last_generation += 1
        target = Live(standard_hash, self._last_generation, 0, 0)
        self._new_files += [
            matrix_path(self._index.root, standard_hash, target.generation, k) for k in KINDS
        ]
        return target

    def _dim(self, standard_hash: str) -> int | None:
        """N of a standard: the index's, or that of the first vector upserted."""
        if standard_hash not in self._dims:  # the state can't change: this writer holds it
            live = self._index._live(standard_hash)
            if live is not None:
                self._dims[standard_hash] = live.dim
        return self._dims.get(standard_hash)

    def _commit(self) -> None:
        """Writes the matrices, then the rows, then commits (see the module docstring)."""
        changes: dict[str, dict[str, tuple[IndexRow, np.ndarray] | None]] = {}
        for (standard_hash, repo_id), op in self._ops.items():
            changes.setdefault(standard_hash, {})[repo_id] = op
        apply_sql = [self._write_standard(h, ops) for h, ops in changes.items()]
        _checkpoint.reached("matrices-synced")
        conn = self._index._conn
        for apply in apply_sql:
            apply(conn)
        conn.executemany(
            "INSERT OR REPLACE INTO crawl VALUES (?, ?, ?, ?, ?)",
            [(c.repo_id, c.sha, c.status, c.reason, c.updated_at) for c in self._crawl.values()],
        )
        conn.executemany(  # a trusted copy wins; an untrusted one never replaces anything
            "INSERT INTO standards VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (standard_hash) DO "
            "UPDATE SET yaml = excluded.yaml, trusted = 1, origin = excluded.origin, "
            "added_at = excluded.added_at WHERE excluded.trusted = 1 AND trusted = 0",
            [
                (h, std.id, std.to_yaml(), int(trusted), origin, now())
                for h, (std, trusted, origin) in self._standards.items()
            ],
        )
        if self._last_generation is not None:
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('last_generation', ?)",
                (str(self._last_generation),),
            )
        _checkpoint.reached("sql-pending")
        conn.execute("COMMIT")

    def _write_standard(
        self, standard_hash: str, ops: dict[str, tuple[IndexRow, np.ndarray] | None]
    ) -> Callable[[sqlite3.Connection], None]:
        """Writes one standard's matrix files; returns what to run in SQL afterwards."""
        conn = self._index._conn
        change = _StandardChange()
        repos, indexed = list(ops), {}
        for s in range(0, len(repos), 500):
            part = repos[s : s + 500]
            cur = conn.execute(
                "SELECT repo_id, rowid, pos FROM rows WHERE standard_hash = ? "
                f"AND repo_id IN ({', '.join('?' * len(part))})",
                (standard_hash, *part),
            )
            indexed.update((repo_id, (rowid, pos)) for repo_id, rowid, pos in cur)
        live = self._index._live(standard_hash)
        old = self._index._matrix(live, "f32") if live is not None and indexed else None
        for repo_id, op in ops.items():
            found = indexed.get(repo_id)
            if found and op is None:
                change.removed[found[1]] = found[0]
            elif found and old is not None and old[found[1]].tobytes() == op[1].tobytes():
                change.relabelled[found[1]] = (found[0], *op)
            elif found:
                change.replaced[found[1]] = (found[0], *op)
            elif op is not None:
                change.added.append(op)
        if live is None:
            return self._append(standard_hash, None, change)
        count, dead = change.dead_after(live)
        # ``dead >= count`` is defensive: a live matrix has count > 0, so the fraction test
        # already catches "every position dead"; it would also catch count == 0.
        if dead >= count or dead > COMPACT_DEAD_FRACTION * count:
            return self._rewrite(live, change)
        return self._append(standard_hash, live, change)

    def _append(
        self, standard_hash: str, live: Live | None, change: _StandardChange
    ) -> Callable[[sqlite3.Connection], None]:
        """No compaction: new rows, then the new vectors of replaced rows, are written past
        the committed count, which readers never read; the old positions of replaced and
        removed rows are marked dead in the same SQL transaction."""
        if not (change.added or change.replaced or change.removed or change.relabelled):
            return lambda conn: None
        start = live.count if live else 0
        count, dead = change.dead_after(live)
        if live is None:
            target = replace(self._new_generation(standard_hash), dim=self._dims[standard_hash])
        else:
            target = live
        vectors = [v for _, v in change.added] + [v for _, _, v in change.replaced.values()]
        if vectors:
            writer = MatrixWriter(self._index.root, target, start=start, create=live is None)
            try:
                for s in range(0, len(vectors), BLOCK_ROWS):
                    writer.write(np.stack(vectors[s : s + BLOCK_ROWS]))
                writer.finish()
            finally:
                writer.close()
            if live is None:
                fsync_dir(self._index.root / "matrices")

        def apply(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "DELETE FROM rows WHERE rowid = ?", [(r,) for r in change.removed.values()]
            )
            moved = start + len(change.added)
            conn.executemany(
                f"UPDATE rows SET pos = ?, {', '.join(f'{n} = ?' for n in ROW_FIELDS)} "
                "WHERE rowid = ?",
                [
                    (moved + i, *row_values(row), rowid)
                    for i, (rowid, row, _) in enumerate(change.replaced.values())
                ],
            )
            _update_rows(conn, change.relabelled.values())
            _insert_rows(conn, [(row, start + i) for i, (row, _) in enumerate(change.added)])
            conn.executemany(
                "INSERT INTO dead VALUES (?, ?)",
                [(standard_hash, pos) for pos in [*change.replaced, *change.removed]],
            )
            _set_live(conn, target, count, dead)

        return apply

    def _rewrite(self, live: Live, change: _StandardChange) -> Callable[[sqlite3.Connection], None]:
        """Compaction: a new generation, copied from the live one without its dead positions
        nor the removed rows; replaced rows keep their place (no new dead position)."""
        old, old_q = self._index._matrix(live, "f32"), self._index._matrix(live, "u8")
        dead_before = self._index._dead_positions(live)
        dropped = np.union1d(dead_before, np.array(list(change.removed), dtype=np.int64))
        kept = live.count - len(dropped)
        target = Live(live.standard_hash, live.generation, live.dim, 0)
        self._old_files += [
            matrix_path(self._index.root, live.standard_hash, live.generation, k) for k in KINDS
        ]
        if kept + len(change.added) > 0:
            target = replace(self._new_generation(live.standard_hash), dim=live.dim)
            replaced = np.array(sorted(change.replaced), dtype=np.int64)
            new_rows = np.empty((len(replaced), live.dim), dtype=np.float32)
            for i, pos in enumerate(replaced.tolist()):
                new_rows[i] = change.replaced[pos][2]
            new_q = quantise(new_rows)
            writer = MatrixWriter(self._index.root, target, start=0, create=True)
            try:
                for s in range(0, live.count, BLOCK_ROWS):  # copies: no re-quantising
                    writer.write(
                        changed_block(old, s, replaced, new_rows, dropped),
                        changed_block(old_q, s, replaced, new_q, dropped),
                    )
                for s in range(0, len(change.added), BLOCK_ROWS):
                    writer.write(np.stack([v for _, v in change.added[s : s + BLOCK_ROWS]]))
                writer.finish()
            finally:
                writer.close()
            fsync_dir(self._index.root / "matrices")

        def apply(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "DELETE FROM rows WHERE rowid = ?", [(r,) for r in change.removed.values()]
            )
            if len(dropped):
                moved = conn.execute(
                    "SELECT rowid, pos FROM rows WHERE standard_hash = ? AND pos > ?",
                    (live.standard_hash, int(dropped[0])),
                ).fetchall()
                shift = np.searchsorted(dropped, [pos for _, pos in moved])
                conn.executemany(
                    "UPDATE rows SET pos = ? WHERE rowid = ?",
                    [(pos - int(d), rowid) for (rowid, pos), d in zip(moved, shift, strict=True)],
                )
            _update_rows(conn, [*change.replaced.values(), *change.relabelled.values()])
            _insert_rows(conn, [(row, kept + i) for i, (row, _) in enumerate(change.added)])
            conn.execute("DELETE FROM dead WHERE standard_hash = ?", (live.standard_hash,))
            _set_live(conn, target, kept + len(change.added))

        return apply

    def _discard(self) -> None:
        """After a failed commit: removes the new files no committed state points at."""
        for path in self._new_files:
            standard_hash, generation, _ = path.name.split(".")
            live = self._index._live(standard_hash)
            if live is None or str(live.generation) != generation:
                path.unlink(missing_ok=True)

    def _forget_old_files(self) -> None:
        """After a commit: deletes replaced generations (readers keep what they mapped)."""
        for path in self._old_files:
            with suppress(OSError):  # e.g. mapped on Windows: the next update removes it
                path.unlink(missing_ok=True)


def _insert_rows(conn: sqlite3.Connection, rows: list[tuple[IndexRow, int]]) -> None:
    conn.executemany(
        f"INSERT INTO rows (pos, {ROW_COLUMNS}) VALUES ({', '.join('?' * (len(ROW_FIELDS) + 1))})",
        [(pos, *row_values(row)) for row, pos in rows],
    )


def _update_rows(
    conn: sqlite3.Connection, changed: Iterable[tuple[int, IndexRow, np.ndarray]]
) -> None:
    """New metadata for rows that keep their position: ``(rowid, row, vector)``."""
    conn.executemany(
        f"UPDATE rows SET {', '.join(f'{n} = ?' for n in ROW_FIELDS)} WHERE rowid = ?",
        [(*row_values(row), rowid) for rowid, row, _ in changed],
    )


def _set_live(conn: sqlite3.Connection, target: Live, count: int, dead: int = 0) -> None:
    if count == 0:
        conn.execute("DELETE FROM matrices WHERE standard_hash = ?", (target.standard_hash,))
    else:
        conn.execute(
            "INSERT OR REPLACE INTO matrices (standard_hash, generation, dim, count, dead) "
            "VALUES (?, ?, ?, ?, ?)",
            (target.standard_hash, target.generation, target.dim, count, dead),
        )
