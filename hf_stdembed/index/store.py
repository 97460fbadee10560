"""The index itself: :class:`EmbeddingIndex` opens a folder, reads and searches it, and
hands out the transactions that change it (see the package docstring for its layout)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from .._files import atomic_path
from ..errors import IndexBusyError, IndexCorruptError, StandardMismatchError
from . import importing
from .matrices import Live, StaleState, clean_files, first_disagreement, open_matrix, without_dead
from .parquet import write_parquet
from .rows import (
    CrawlState,
    ImportReport,
    IndexRow,
    IndexStats,
    StandardStats,
    StoredStandard,
    as_array,
    row_from_values,
    vector_problem,
)
from .schema import ROW_COLUMNS, connect
from .sweep import default_threads, rank
from .transaction import IndexTransaction

if TYPE_CHECKING:
    import torch

INDEX_ENV = "HF_STDEMBED_INDEX"
"""Environment variable that overrides the default index folder."""
_STALE_RETRIES = 5

T = TypeVar("T")


def default_index_path() -> Path:
    """The index folder used when none is given.

    Returns:
        ``$HF_STDEMBED_INDEX`` if set, else ``stdembed/index`` beside the Hugging Face Hub
        cache (``~/.cache/huggingface/stdembed/index`` by default).
    """
    env = os.environ.get(INDEX_ENV)
    if env:
        return Path(env).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).parent / "stdembed" / "index"


class EmbeddingIndex:
    """A local index of model embeddings: rows in SQLite, vectors in one matrix per standard.

    Open with :meth:`open`; change with :meth:`update`. Readers never block and always see
    a committed state. One object is for one thread; open another for another thread.
    """

    def __init__(self, root: Path, conn: sqlite3.Connection, *, timeout: float = 60.0) -> None:
        self.root = root
        self._conn = conn
        self._timeout = timeout
        self._tx: IndexTransaction | None = None
        self._dead_cache: dict[str, tuple[tuple[str, int, int], np.ndarray]] = {}

    # ---- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path | None = None, *, timeout: float = 60.0) -> EmbeddingIndex:
        """Opens (creating if needed) the index in a folder.

        Opening an index written by an older hf-stdembed upgrades it in place, once (a short
        write transaction, so it needs write access and waits for another process's write
        lock).

        Args:
            path: the index folder (default: :func:`default_index_path`).
            timeout: seconds to wait for another process's write lock where one is needed.

        Returns:
            The index.

        Raises:
            IndexCorruptError: if the folder holds an index of an unknown schema version, or
                an older index that this process cannot write to (to upgrade it).
            IndexBusyError: if creating or upgrading the index waited ``timeout`` seconds
                for another process that holds its write lock.

        Example:
            >>> index = EmbeddingIndex.open("/tmp/my-index")  # doctest: +SKIP
            >>> index.search(task.vector, task.standard_hash, top=5)  # doctest: +SKIP
        """
        root = Path(path).expanduser() if path is not None else default_index_path()
        (root / "matrices").mkdir(parents=True, exist_ok=True)
        return cls(root, connect(root, timeout), timeout=timeout)

    def close(self) -> None:
        """Closes the database connection (memory maps already handed out stay valid)."""
        self._conn.close()

    def __enter__(self) -> EmbeddingIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddingIndex({str(self.root)!r})"

    # ---- reading ------------------------------------------------------------------------

    def rows(self, standard_hash: str | None = None) -> list[IndexRow]:
        """Every row, or every row of one standard in matrix order.

        Args:
            standard_hash: only this standard's rows (aligned with :meth:`vectors`).

        Returns:
            Rows sorted by standard hash, then matrix position.
        """
        with self._snapshot():
            return self._select_rows(standard_hash)

    def get(self, repo_id: str, standard_hash: str) -> IndexRow | None:
        """The row of a repo under a standard, or None."""
        cur = self._conn.execute(
            f"SELECT {ROW_COLUMNS} FROM rows WHERE standard_hash = ? AND repo_id = ?",
            (standard_hash, repo_id),
        )
        found = cur.fetchone()
        return row_from_values(found) if found else None

    def crawl_state(self, repo_id: str) -> CrawlState | None:
        """What the last crawl recorded for a repo, or None if it was never crawled."""
        cur = self._conn.execute(
            "SELECT repo_id, sha, status, reason, updated_at FROM crawl WHERE repo_id = ?",
            (repo_id,),
        )
        found = cur.fetchone()
        return CrawlState(*found) if found else None

    def rows_of_repo(self, repo_id: str) -> list[IndexRow]:
        """Every row of a repo (one per standard it is indexed under)."""
        cur = self._conn.execute(
            f"SELECT {ROW_COLUMNS} FROM rows WHERE repo_id = ? ORDER BY standard_hash",
            (repo_id,),
        )
        return [row_from_values(found) for found in cur]

    def standards(self) -> list[StoredStandard]:
        """The custom standards this index has seen, by id then hash."""
        cur = self._conn.execute(
            "SELECT standard_hash, standard_id, yaml, trusted, origin, added_at FROM standards "
            "ORDER BY standard_id, standard_hash"
        )
        return [StoredStandard(h, i, y, bool(t), o, a) for h, i, y, t, o, a in cur]

    def vectors(self, standard_hash: str) -> np.ndarray:
        """The float32 vectors of a standard, aligned with :meth:`rows` of that standard.

        Under a concurrent writer, use :meth:`snapshot` to get both from one state.

        Returns:
            A read-only ``(m, N)`` array of the ``m`` live rows: a ``np.memmap`` of the
            matrix file while the standard has no dead positions; with dead positions, the
            live rows copied into memory (``m * N * 4`` bytes; until the next compaction
            removes the dead ones); an empty ``(0, 0)`` array if the index holds no row of
            that standard.

        Raises:
            IndexCorruptError: if the matrix file is missing or too short.
        """
        return self.snapshot(standard_hash)[1]

    def snapshot(self, standard_hash: str) -> tuple[list[IndexRow], np.ndarray]:
        """A standard's rows and float32 vectors, read from one committed state.

        While the standard has dead positions the vectors are the live rows copied into
        memory (until the next compaction), else a memory map (see :meth:`vectors`).

        Returns:
            ``(rows, vectors)`` as :meth:`rows` and :meth:`vectors` give them.
        """

        def read() -> tuple[list[IndexRow], np.ndarray]:
            live = self._live(standard_hash)
            if live is None:
                return [], np.empty((0, 0), dtype=np.float32)
            return self._select_rows(standard_hash), self._live_matrix(live, "f32")

        return self._read(read)

    def search(
        self,
        task_vector: torch.Tensor | np.ndarray,
        standard_hash: str,
        *,
        top: int = 10,
        exact: bool = True,
        threads: int | None = None,
    ) -> list[tuple[IndexRow, float]]:
        """The models of a standard that best fit a task: fuzzy intersection, best first.

        One sweep ``sum_i min(u_i, v_i)`` over the standard's uint8 matrix, then the rows
        that may be in the top-k are rescored from the float32 matrix with
        :func:`hf_stdembed.core.fuzzy_intersection`, so scores and order are the float32
        ones. Ties keep matrix order. A replaced row's position depends on its update: one
        that appends moves it to the end of the matrix, one that compacts (see
        :data:`COMPACT_DEAD_FRACTION`) keeps it in place.

        Args:
            task_vector: the task embedding ``u``, ``(N,)`` in [0, 1].
            standard_hash: the standard the task embedding belongs to.
            top: how many rows to return.
            exact: False skips the rescoring: scores are then the quantised ones, within
                ``N / 510`` of the float32 ones.
            threads: sweep threads (default: the CPU count, at most 8).

        Returns:
            ``(row, score)`` pairs, at most ``top``; empty if the standard has no rows.

        Raises:
            ValueError: on an invalid ``top`` or task vector.
            StandardMismatchError: if the task vector's length is not the standard's N.
        """
        if top < 1:
            raise ValueError(f"Invalid top value: {top}")
        task = as_array(task_vector).astype(np.float32)
        problem = vector_problem(task, None)
        if problem:
            raise ValueError(f"invalid task vector: {problem}")
        threads = threads or default_threads()

        def run() -> list[tuple[IndexRow, float]]:
            live = self._live(standard_hash)
            if live is None:
                return []
            if task.shape[0] != live.dim:
                raise StandardMismatchError(
                    f"task vector has {task.shape[0]} values; standard {standard_hash} has "
                    f"{live.dim}"
                )
            quantised = self._matrix(live, "u8")
            dead = self._dead_positions(live)
            k = min(top, live.rows)
            if k == 0:  # defensive: a commit leaving no live row compacts the matrix away
                return []
            vectors = self._matrix(live, "f32") if exact else None
            positions, scores = rank(quantised, task, dead, k, threads=threads, vectors=vectors)
            rows = self._rows_at(standard_hash, positions.tolist())
            return [(row, float(s)) for row, s in zip(rows, scores, strict=True)]

        return self._read(run)

    def stats(self) -> IndexStats:
        """Rows, standards, crawl states and bytes on disk."""
        with self._snapshot():
            standards = {}
            for live in self._all_live():
                cells = live.count * live.dim
                standards[live.standard_hash] = StandardStats(
                    live.rows, live.dim, live.generation, cells * 4, cells, live.dead
                )
            status = dict(self._conn.execute("SELECT status, count(*) FROM crawl GROUP BY status"))
        disk = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return IndexStats(
            path=self.root,
            rows=sum(s.rows for s in standards.values()),
            standards=standards,
            crawled_repos=sum(status.values()),
            crawl_status=status,
            disk_bytes=disk,
        )

    def check(self) -> None:
        """Checks that the database and the matrix files agree.

        Raises:
            IndexCorruptError: naming the first disagreement (SQLite integrity, live and
                dead positions not together ``0..m-1`` once each, a dead count that is not
                the matrix's, a matrix file missing or short, a uint8 row that is not the
                quantised float32 one).
        """

        def run() -> None:
            (verdict,) = self._conn.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise IndexCorruptError(f"database check failed: {verdict}", path=str(self.root))
            for live in self._all_live():
                count, low, high, distinct, dead = self._conn.execute(
                    "SELECT count(*), min(pos), max(pos), count(DISTINCT pos), sum(d) FROM "
                    "(SELECT pos, 0 AS d FROM rows WHERE standard_hash = ? "
                    "UNION ALL SELECT pos, 1 AS d FROM dead WHERE standard_hash = ?)",
                    (live.standard_hash, live.standard_hash),
                ).fetchone()
                want = (live.count, live.count, 0, live.count - 1, live.dead)
                if (count, distinct, low, high, dead) != want:
                    raise IndexCorruptError(
                        f"standard {live.standard_hash}: {count - (dead or 0)} rows and "
                        f"{dead} dead positions ({distinct} distinct, {low}..{high}) for a "
                        f"matrix of {live.count} with {live.dead} dead",
                        path=str(self.root),
                    )
                s = first_disagreement(self._matrix(live, "f32"), self._matrix(live, "u8"))
                if s is not None:
                    raise IndexCorruptError(
                        f"standard {live.standard_hash}: the sweep matrix disagrees with "
                        f"the vectors near row {s}",
                        path=str(self.root),
                    )
            for standard_hash, count in self._conn.execute(
                "SELECT standard_hash, count(*) FROM (SELECT standard_hash FROM rows UNION ALL "
                "SELECT standard_hash FROM dead) WHERE standard_hash NOT IN "
                "(SELECT standard_hash FROM matrices) GROUP BY standard_hash"
            ):
                raise IndexCorruptError(
                    f"{count} rows of standard {standard_hash} have no matrix",
                    path=str(self.root),
                )

        self._read(run)

    # ---- writing ------------------------------------------------------------------------

    @contextmanager
    def update(self, *, timeout: float = 60.0) -> Iterator[IndexTransaction]:
        """A transaction: its changes become visible together when the block exits cleanly.

        An exception (or Ctrl-C) in the block, or a crash anywhere, leaves the previous
        state. Rows added to a standard, and the new vectors of replaced rows, are appended
        to its matrix; the old position of a replaced or removed row becomes dead. A commit
        that would leave more than :data:`COMPACT_DEAD_FRACTION` of the matrix dead rewrites
        it without them instead.

        Args:
            timeout: seconds to wait while another writer holds the index.

        Yields:
            The :class:`IndexTransaction` to record changes on.

        Raises:
            IndexBusyError: if another writer still holds the index after ``timeout``.

        Example:
            >>> with index.update() as tx:  # doctest: +SKIP
            ...     tx.upsert(IndexRow.from_embedding(emb, "org/model", ...), emb.vector)
            ...     tx.record_crawl("org/model", sha, "indexed")
        """
        if self._tx is not None:
            raise RuntimeError("an update is already open on this index object")
        self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise IndexBusyError(
                f"another process is updating the index (waited {timeout:g} s): {e}",
                path=str(self.root),
            ) from e
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        tx = self._tx = IndexTransaction(self)
        try:
            clean_files(self.root, self._all_live())
            yield tx
            tx._commit()
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            tx._discard()
            raise
        finally:
            tx._closed = True
            self._tx = None
        tx._forget_old_files()

    def record_crawl(
        self, repo_id: str, sha: str | None, status: str, reason: str | None = None
    ) -> None:
        """Records a crawl result in its own transaction (see :meth:`update`)."""
        with self.update() as tx:
            tx.record_crawl(repo_id, sha, status, reason)

    # ---- parquet ------------------------------------------------------------------------

    def export_parquet(
        self,
        path: str | Path,
        *,
        standard_hash: str | None = None,
        batch_rows: int = 65536,
    ) -> Path:
        """Writes the rows and their vectors to one parquet file (atomically).

        Columns: every :class:`IndexRow` field and ``embedding`` (``list<float32>``), so
        ``datasets.load_dataset("parquet", data_files=path)`` reads it and it can be pushed
        as a Hub dataset. The definitions of the custom standards of the rows written travel
        in the file's metadata (an import remembers them as untrusted).

        Args:
            path: the file to write.
            standard_hash: only this standard's rows.
            batch_rows: rows per parquet row group.

        Returns:
            The path written.
        """
        path = Path(path)

        def run(tmp: Path) -> None:
            wanted = {x.standard_hash for x in self._all_live()} & (
                {standard_hash} if standard_hash else {x.standard_hash for x in self._all_live()}
            )
            standards = {s.standard_hash: s.yaml for s in self.standards()}
            carried = {h: standards[h] for h in sorted(wanted) if h in standards}
            blocks = (
                block
                for live in self._all_live()
                if standard_hash in (None, live.standard_hash)
                for block in self._row_blocks(live, batch_rows)
            )
            write_parquet(tmp, carried, blocks)

        with atomic_path(path) as tmp:
            self._read(lambda: run(tmp))
        return path

    def import_parquet(
        self, path: str | Path, *, batch_rows: int = 65536, source: str | None = None
    ) -> ImportReport:
        """Merges the rows of a parquet file written by :meth:`export_parquet`.

        Every row is checked (metadata; fidelities in [-1, 1]; vector float32, of the
        standard's length N, in [0, 1], no NaN); a bad row is skipped with its reason and
        never imported. Provenance: every imported row gets ``source`` (whatever the file
        says), and flags computed here. An imported row never shadows a crawled one: a row
        of a repo and standard that the crawl read from the repo itself is kept (the import's
        is skipped, unless identical), and a row whose vector differs from the crawled one of
        the same ``file_sha256`` is refused. Otherwise a good row replaces the index's row of
        the same repo and standard. Custom standards the file carries are remembered as
        untrusted. Each batch of ``batch_rows`` rows is one transaction; importing again is
        harmless.

        Args:
            path: the parquet file.
            batch_rows: rows per transaction.
            source: the provenance recorded on each row (default ``import:<path>``).

        Returns:
            Counts of imported and unchanged rows, and the skipped rows with reasons.

        Raises:
            FileNotFoundError: if there is no such file.
            InvalidEmbeddingError: if the file lacks a column or its ``embedding`` column
                is not a list of float32.
        """
        return importing.import_parquet(self, path, batch_rows=batch_rows, source=source)

    # ---- internals ----------------------------------------------------------------------

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read transaction: every query inside sees the same committed state."""
        if self._conn.in_transaction:  # inside this object's own update: already one state
            yield
            return
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    def _read(self, fn: Callable[[], T]) -> T:
        """Runs ``fn`` in a snapshot, again if a writer replaced a file it needed."""
        for _ in range(_STALE_RETRIES):
            try:
                with self._snapshot():
                    return fn()
            except StaleState:
                continue
        raise IndexCorruptError(
            "a matrix file of the committed state is missing", path=str(self.root)
        )

    def _live(self, standard_hash: str) -> Live | None:
        found = self._conn.execute(
            "SELECT standard_hash, generation, dim, count, dead FROM matrices "
            "WHERE standard_hash = ?",
            (standard_hash,),
        ).fetchone()
        return Live(*found) if found else None

    def _all_live(self) -> list[Live]:
        cur = self._conn.execute(
            "SELECT standard_hash, generation, dim, count, dead FROM matrices "
            "ORDER BY standard_hash"
        )
        return [Live(*found) for found in cur]

    def _dead_positions(self, live: Live) -> np.ndarray:
        """The sorted dead positions of a live matrix (int64).

        Cached by ``(standard, generation, dead count)``: within a generation positions only
        ever die, and generation numbers are never reused, so that triple names one set.

        Raises:
            IndexCorruptError: if the ``dead`` table disagrees with the dead count.
        """
        if live.dead == 0:
            return np.empty(0, dtype=np.int64)
        key = (live.standard_hash, live.generation, live.dead)
        cached = self._dead_cache.get(live.standard_hash)
        if cached is not None and cached[0] == key:
            return cached[1]
        cur = self._conn.execute(
            "SELECT pos FROM dead WHERE standard_hash = ? ORDER BY pos", (live.standard_hash,)
        )
        found = np.fromiter((pos for (pos,) in cur), dtype=np.int64)
        if found.shape[0] != live.dead or (found.shape[0] and found[-1] >= live.count):
            raise IndexCorruptError(
                f"standard {live.standard_hash}: {found.shape[0]} dead positions listed, "
                f"the matrix says {live.dead} of {live.count}",
                path=str(self.root),
            )
        found.setflags(write=False)
        self._dead_cache[live.standard_hash] = (key, found)
        return found

    def _matrix(self, live: Live, kind: str) -> np.ndarray:
        """The memory map of a live matrix (see :func:`~.matrices.open_matrix`)."""
        return open_matrix(self.root, live, kind)

    def _live_matrix(self, live: Live, kind: str) -> np.ndarray:
        """The live rows of a matrix, in position order (so aligned with its rows): the
        memory map itself when nothing is dead, else a read-only copy without the dead
        rows."""
        return without_dead(self._matrix(live, kind), self._dead_positions(live))

    def _select_rows(self, standard_hash: str | None) -> list[IndexRow]:
        if standard_hash is None:
            cur = self._conn.execute(f"SELECT {ROW_COLUMNS} FROM rows ORDER BY standard_hash, pos")
        else:
            cur = self._conn.execute(
                f"SELECT {ROW_COLUMNS} FROM rows WHERE standard_hash = ? ORDER BY pos",
                (standard_hash,),
            )
        return [row_from_values(found) for found in cur]

    def _rows_at(self, standard_hash: str, positions: list[int]) -> list[IndexRow]:
        """The rows at matrix positions, in the order given."""
        found: dict[int, IndexRow] = {}
        for s in range(0, len(positions), 500):
            part = positions[s : s + 500]
            cur = self._conn.execute(
                f"SELECT pos, {ROW_COLUMNS} FROM rows WHERE standard_hash = ? "
                f"AND pos IN ({', '.join('?' * len(part))})",
                (standard_hash, *part),
            )
            found.update((pos, row_from_values(rest)) for pos, *rest in cur)
        missing = [p for p in positions if p not in found]
        if missing:
            raise IndexCorruptError(
                f"standard {standard_hash}: no row at matrix positions {missing[:5]}",
                path=str(self.root),
            )
        return [found[p] for p in positions]

    def _row_blocks(
        self, live: Live, batch_rows: int
    ) -> Iterator[tuple[list[IndexRow], np.ndarray]]:
        """The rows and vectors of one standard, ``batch_rows`` at a time, in matrix order."""
        vectors = self._matrix(live, "f32")
        cur = self._conn.execute(
            f"SELECT pos, {ROW_COLUMNS} FROM rows WHERE standard_hash = ? ORDER BY pos",
            (live.standard_hash,),
        )
        while found := cur.fetchmany(batch_rows):
            positions = [f[0] for f in found]
            if positions[-1] - positions[0] + 1 == len(positions):  # no dead row between
                block = np.asarray(vectors[positions[0] : positions[-1] + 1])  # no copy
            else:  # dead positions in the range: gather the live rows only
                block = np.asarray(vectors[positions])
            yield [row_from_values(f[1:]) for f in found], block
