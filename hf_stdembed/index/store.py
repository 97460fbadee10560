"""The local embedding index: every crawled model embedding, ready for one sweep.

A crawler puts the model embeddings it finds on the Hub here; :meth:`EmbeddingIndex.search`
then ranks every indexed model of a standard against a task embedding in one sweep.

Layout of the index folder::

    index.sqlite                  rows, crawl state, the live matrices, dead positions (WAL)
    matrices/<hash>.<gen>.f32     float32 (m, N), row-major: the vectors exactly as published
    matrices/<hash>.<gen>.u8      uint8 (m, N), row-major: round(255 v), what the sweep reads

Row ``pos`` of a standard is row ``pos`` of both matrices of its live generation. The sweep
reads the uint8 matrix (a quarter of the float32 bytes), then rescores in float32 every row
whose quantised score is within the quantisation error bound of the k-th best, so the top-k
is the exact float32 one.

A matrix position is either live (one row of the ``rows`` table points at it) or dead (listed
in the ``dead`` table): replacing a row's vector appends the new vector and marks the old
position dead, removing a row marks its position dead, so either costs O(changed rows), not
a copy of the matrix. Readers never see dead positions (the sweep gives them no score). When
more than :data:`COMPACT_DEAD_FRACTION` of a standard's matrix would be dead, the commit
instead writes a new generation without them (compaction), so dead space stays bounded.

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
"""

from __future__ import annotations

import functools
import json
import math
import operator
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .._text import shorten
from ..errors import (
    IndexBusyError,
    IndexCorruptError,
    InvalidEmbeddingError,
    InvalidStandardError,
    StandardMismatchError,
)
from ..plausibility import fidelity_problem, row_flags

if TYPE_CHECKING:
    import torch

    from ..embeddings import ModelEmbedding
    from ..standards import Standard

INDEX_ENV = "HF_STDEMBED_INDEX"
"""Environment variable that overrides the default index folder."""
SCHEMA_VERSION = "3"
# 2: dead matrix positions (the ``dead`` table, ``matrices.dead``)
# 3: provenance, flags and model spec of rows (``rows.source``, ``rows.flags``,
#    ``rows.model_spec``), custom standards (the ``standards`` table)
SOURCE_CRAWL = "crawl"
"""``IndexRow.source`` of a row the crawl read from the repo itself. Imported rows have
``import:<file>`` or ``pull:<dataset repo>@<commit>``; rows of an index upgraded from
schema 2 have ``legacy`` (unknown: treated as imported until the next crawl reads them)."""
SOURCE_LEGACY = "legacy"
PARQUET_FORMAT = "hf-stdembed/index"
PARQUET_VERSION = "1"  # of the exported parquet files: independent of the database schema
COMPACT_DEAD_FRACTION = 0.25
"""A commit that would leave more than this fraction of a standard's matrix positions dead
rewrites the standard into a new generation without them (see the module docstring)."""
_PAUSE_ENV = "HF_STDEMBED_INDEX_TEST_PAUSE"
_HASH_RE = re.compile(r"[0-9a-f]{8,64}")
_SWEEP_BLOCK_BYTES = 256 * 1024  # rows per sweep chunk: about this many uint8 bytes
_WRITE_BLOCK_ROWS = 65536
_STALE_RETRIES = 5

T = TypeVar("T")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# =========================================================================================
# Rows and states
# =========================================================================================


@dataclass(frozen=True)
class IndexRow:
    """One indexed model embedding: where it was read on the Hub and what it says."""

    repo_id: str  # Hub repo holding the embedding file
    revision: str  # commit sha the file was read at
    standard_id: str
    standard_hash: str
    file_path: str  # path in the repo, e.g. "stdembed/<standard>.safetensors"
    file_sha256: str  # of the file's bytes
    model_id: str
    model_revision: str | None
    l_to: float
    l_from: float
    library_version: str  # hf-stdembed version that computed the embedding
    created_at: str  # when the embedding was computed
    indexed_at: str = field(default_factory=_now)  # when it entered this index
    source: str = SOURCE_CRAWL  # where the row came from: "crawl", "import:<file>", "pull:..."
    flags: str = ""  # comma-separated plausibility flags (hf_stdembed.plausibility), set on upsert
    # the loadable model spec (``timm:org/name``, ``transformers:org/name``, a repo id) that
    # re-ranking loads at ``model_revision``: the card entry's ``model``, else the file's
    # ``model_spec``; None when neither says (a stranger's text: see hf_stdembed.rerank)
    model_spec: str | None = None

    @property
    def fidelity(self) -> float:
        """``min(L_to, L_from)``."""
        return min(self.l_to, self.l_from)

    @property
    def flag_names(self) -> tuple[str, ...]:
        """The plausibility flags, as names (see :data:`hf_stdembed.plausibility.FLAG_LEGEND`)."""
        return tuple(f for f in self.flags.split(",") if f)

    @property
    def crawled(self) -> bool:
        """Whether the crawl read this row from the repo itself (not an import)."""
        return self.source == SOURCE_CRAWL

    @classmethod
    def from_embedding(
        cls,
        embedding: ModelEmbedding,
        repo_id: str,
        *,
        revision: str,
        file_path: str,
        file_sha256: str,
        source: str = SOURCE_CRAWL,
        model_spec: str | None = None,
    ) -> IndexRow:
        """The row of a model embedding file read from a Hub repo.

        Args:
            embedding: the loaded file (:func:`hf_stdembed.embeddings.load_embedding`).
            repo_id: the repo it was read from.
            revision: the commit sha it was read at.
            file_path: its path in the repo.
            file_sha256: sha256 of its bytes.
            source: where the row comes from (default: the crawl).
            model_spec: the loadable model spec (e.g. the card entry's ``model``); default:
                the file's own ``model_spec``.

        Returns:
            The row; ``indexed_at`` is now.
        """
        return cls(
            repo_id=repo_id,
            revision=revision,
            standard_id=embedding.standard_id,
            standard_hash=embedding.standard_hash,
            file_path=file_path,
            file_sha256=file_sha256,
            model_id=embedding.model_id,
            model_revision=embedding.model_revision,
            l_to=embedding.l_to,
            l_from=embedding.l_from,
            library_version=embedding.library_version,
            created_at=embedding.created_at,
            source=source,
            model_spec=model_spec or embedding.model_spec,
        )


ROW_FIELDS = tuple(f.name for f in fields(IndexRow))
_row_values = operator.attrgetter(*ROW_FIELDS)  # a row's fields as a tuple (astuple deep-copies)


@dataclass(frozen=True)
class CrawlState:
    """What the last crawl of a repo found (so the next one can skip unchanged repos)."""

    repo_id: str
    sha: str | None  # last commit seen; None if the repo could not be read
    status: str  # e.g. "indexed", "no-embedding", "invalid", "error"
    reason: str | None  # why, for any status but success
    updated_at: str


@dataclass(frozen=True)
class StoredStandard:
    """A custom standard the index has seen, kept so that its id resolves."""

    standard_hash: str
    standard_id: str
    yaml: str  # the definition, as :meth:`hf_stdembed.standards.Standard.to_yaml` writes it
    trusted: bool  # given by the index's user; False: fetched from a stranger's repo or index
    origin: str  # where it came from: "user", "repo:<repo>@<sha>/<path>", "import:<file>"...
    added_at: str

    def load(self) -> Standard:
        """The standard (an untrusted one loaded with ``trusted=False``: no entry points).

        Raises:
            InvalidStandardError: if the stored text is not the standard of its hash.
        """
        from ..standards import standard_from_text

        where = f"standard {self.standard_id!r} stored in the index (from {self.origin})"
        standard = standard_from_text(self.yaml, source=where, trusted=self.trusted)
        if standard.hash != self.standard_hash:
            raise InvalidStandardError(
                f"{where} has hash {standard.hash}, stored as {self.standard_hash}"
            )
        return standard


@dataclass(frozen=True)
class StandardStats:
    """One standard's share of the index."""

    rows: int
    dim: int
    generation: int
    vector_bytes: int  # float32 matrix, dead rows included
    sweep_bytes: int  # uint8 matrix, dead rows included
    dead: int = 0  # matrix rows no row points at any more (until the next compaction)


@dataclass(frozen=True)
class IndexStats:
    """Sizes of an index."""

    path: Path
    rows: int
    standards: dict[str, StandardStats]
    crawled_repos: int
    crawl_status: dict[str, int]  # repos per last crawl status
    disk_bytes: int  # database and matrix files


@dataclass(frozen=True)
class SkippedRow:
    """A parquet row that :meth:`EmbeddingIndex.import_parquet` refused."""

    row_number: int  # 0-based, in file order
    repo_id: str | None
    standard_hash: str | None
    reason: str


@dataclass(frozen=True)
class ImportReport:
    """What :meth:`EmbeddingIndex.import_parquet` did."""

    imported: int  # rows added or replaced
    unchanged: int  # rows already in the index, identical
    skipped: list[SkippedRow]


@dataclass(frozen=True)
class _Live:
    """A standard's live matrix generation, as committed."""

    standard_hash: str
    generation: int
    dim: int
    count: int  # matrix rows, live and dead
    dead: int = 0  # dead positions among them

    @property
    def rows(self) -> int:
        """Live rows."""
        return self.count - self.dead


# =========================================================================================
# Validation
# =========================================================================================


def _vector_problem(vector: np.ndarray, dim: int | None) -> str | None:
    """Why ``vector`` cannot be indexed (float32 ``(N,)``, in [0, 1], no NaN), or None."""
    if vector.dtype != np.float32:
        return f"embedding dtype is {vector.dtype}, expected float32"
    if vector.ndim != 1 or vector.shape[0] == 0:
        return f"embedding shape is {vector.shape}, expected (N,)"
    if dim is not None and vector.shape[0] != dim:
        return f"embedding has {vector.shape[0]} values, the standard has {dim}"
    if np.isnan(vector).any():
        return "embedding holds NaN"
    low, high = float(vector.min()), float(vector.max())
    if low < 0 or high > 1:
        return f"embedding values must lie in [0, 1]; found [{low}, {high}]"
    return None


_MAX_FIELD_CHARS = {
    "file_path": 1024,
    "model_id": 1024,
    "source": 1024,
    "flags": 256,
    "model_spec": 512,  # as a card's (hf_stdembed.card)
}
"""Longest text field believed (others: :data:`_MAX_TEXT_CHARS`); a shared index is a
stranger's file, and a field of megabytes would be stored and printed."""
_MAX_TEXT_CHARS = 256
_FREE_FIELDS = ("model_revision", "flags", "model_spec")  # may be empty
_NULLABLE_FIELDS = ("model_revision", "model_spec")


def _row_problem(row: IndexRow) -> str | None:
    """Why ``row``'s metadata cannot be indexed, or None."""
    for name in ROW_FIELDS:
        value = getattr(row, name)
        if name in ("l_to", "l_from"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{name} is not a number: {shorten(repr(value), 80)}"
            if not math.isfinite(value):
                return f"{name} is not finite: {value!r}"
            continue
        if value is None and name in _NULLABLE_FIELDS:
            continue
        if not isinstance(value, str) or (not value and name not in _FREE_FIELDS):
            return f"{name} is missing or not a string: {shorten(repr(value), 80)}"
        limit = _MAX_FIELD_CHARS.get(name, _MAX_TEXT_CHARS)
        if len(value) > limit:
            return f"{name} is {len(value)} characters long, more than {limit}"
        if not value.isprintable():
            return f"{name} holds control characters: {shorten(repr(value), 80)}"
    if not _HASH_RE.fullmatch(row.standard_hash):
        return f"standard_hash {row.standard_hash!r} is not 8 to 64 lowercase hex digits"
    return None


def row_problem(row: IndexRow, vector: np.ndarray, *, dim: int | None = None) -> str | None:
    """Why a row and its vector cannot be indexed, or None: what
    :meth:`IndexTransaction.upsert` would refuse, so that a crawler can refuse one repo
    instead of failing a whole batch.

    Args:
        row: the metadata.
        vector: the embedding (float32 ``(N,)`` in [0, 1]).
        dim: the standard's N, when known.
    """
    return _row_problem(row) or _vector_problem(np.asarray(vector), dim)


def _as_array(vector: torch.Tensor | np.ndarray) -> np.ndarray:
    """A detached C-contiguous numpy copy of a tensor or array."""
    if hasattr(vector, "detach"):
        vector = vector.detach().cpu().numpy()
    return np.array(vector, copy=True, order="C")


def _quantise(block: np.ndarray) -> np.ndarray:
    """``round(255 v)`` as uint8 (v in [0, 1])."""
    return np.rint(block * np.float32(255)).astype(np.uint8)


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


def default_threads() -> int:
    """Sweep threads when none are given: the CPU count, at most 8."""
    return min(os.cpu_count() or 1, 8)


def _test_pause(stage: str) -> None:
    """Test hook: ``HF_STDEMBED_INDEX_TEST_PAUSE=<stage>[:<file>]`` makes a writer print
    ``paused: <stage>`` and wait there (until ``<file>`` exists, or forever), so that tests
    can kill or watch it mid-update."""
    spec = os.environ.get(_PAUSE_ENV)
    if not spec:
        return
    wanted, _, resume = spec.partition(":")
    if wanted != stage:
        return
    print(f"paused: {stage}", flush=True)
    while not (resume and os.path.exists(resume)):
        time.sleep(0.01)


# =========================================================================================
# The sweep
# =========================================================================================


def _sweep(matrix: np.ndarray, task: np.ndarray, *, threads: int) -> np.ndarray:
    """``sum_i min(task_i, row_i)`` of every uint8 row, as int32.

    Cache-sized chunks, ``threads`` contiguous ranges in parallel (numpy releases the GIL;
    no OpenMP region, so it degrades gracefully when other processes hold cores).
    """
    m, n = matrix.shape
    out = np.empty(m, dtype=np.int32)
    if m == 0:
        return out
    chunk = max(16, _SWEEP_BLOCK_BYTES // n)

    def run(bounds: tuple[int, int]) -> None:
        start, stop = bounds
        buf = np.empty((chunk, n), dtype=np.uint8)
        for s in range(start, stop, chunk):
            e = min(s + chunk, stop)
            block = np.minimum(matrix[s:e], task, out=buf[: e - s])
            np.add.reduce(block, axis=1, dtype=np.int32, out=out[s:e])

    parts = min(threads * 4, -(-m // chunk)) if threads > 1 else 1
    step = -(-m // max(parts, 1))
    ranges = [(s, min(s + step, m)) for s in range(0, m, step)]
    if len(ranges) <= 1:
        run((0, m))
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, ranges))
    return out


def _candidate_margin(dim: int) -> int:
    """Quantised-score distance (in 1/255 units) within which a row may still beat the
    k-th best in float32.

    Per coordinate ``|min(q(u), q(v)) - 255 min(u, v)| <= 1/2`` (min is 1-Lipschitz; the
    float32 product ``255 v`` adds at most 2e-5), so a row's quantised score is within
    ``N/2`` of 255 times its exact one; two rows: ``N``. Float32 summation of the exact
    scores adds at most ``N^2 2^-24`` per score.
    """
    return math.ceil(dim * (1 + 4e-5) + 2 * 255 * dim * dim * 2.0**-24) + 1


_DEAD_SCORE = np.iinfo(np.int32).min  # the quantised score a dead position gets


def _live_positions(count: int, dead: np.ndarray) -> np.ndarray:
    """``0..count-1`` without the sorted positions ``dead``."""
    if dead.shape[0] == 0:
        return np.arange(count)
    alive = np.ones(count, dtype=bool)
    alive[dead] = False
    return np.flatnonzero(alive)


def _top_candidates(approx: np.ndarray, k: int, dim: int, dead: np.ndarray) -> np.ndarray:
    """Positions of every live row that may be in the exact top-k, sorted.

    ``dead``: the sorted dead positions, whose ``approx`` is ``_DEAD_SCORE``; ``k`` is at
    most the number of live rows, so the k-th best score is a live row's (>= 0).
    """
    m = approx.shape[0]
    if k >= m - dead.shape[0]:
        return _live_positions(m, dead)
    kth = np.partition(approx, m - k)[m - k]
    candidates = np.flatnonzero(approx >= int(kth) - _candidate_margin(dim))
    if dead.shape[0]:  # kth - margin may be negative: drop dead positions explicitly
        candidates = candidates[np.isin(candidates, dead, assume_unique=True, invert=True)]
    return candidates


def _best(positions: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best ``(position, score)`` pairs, best first; ties by position."""
    if scores.shape[0] > k:
        kth = np.partition(scores, scores.shape[0] - k)[scores.shape[0] - k]
        keep = scores >= kth  # every tie of the k-th score: the order below picks among them
        positions, scores = positions[keep], scores[keep]
    order = np.lexsort((positions, -scores))[:k]
    return positions[order], scores[order]


# =========================================================================================
# The index
# =========================================================================================

_DEAD_TABLE = """CREATE TABLE IF NOT EXISTS dead (
    standard_hash TEXT NOT NULL,
    pos INTEGER NOT NULL,
    PRIMARY KEY (standard_hash, pos)
) WITHOUT ROWID"""
"""The dead positions of every live matrix (schema 2; created by the 1 -> 2 upgrade too)."""
_STANDARDS_TABLE = """CREATE TABLE IF NOT EXISTS standards (
    standard_hash TEXT PRIMARY KEY,
    standard_id TEXT NOT NULL,
    yaml TEXT NOT NULL,
    trusted INTEGER NOT NULL,
    origin TEXT NOT NULL,
    added_at TEXT NOT NULL
)"""
"""Custom standards seen by this index (schema 3), so that their ids resolve: ``trusted`` 1
for one its user gave (``--standard FILE``), 0 for one fetched from a stranger's repo or
index (never allowed to run code: see :func:`hf_stdembed.standards.standard_from_dict`)."""
_SCHEMA_3_INDEXES = (
    "CREATE INDEX IF NOT EXISTS rows_repo ON rows (repo_id)",
    "CREATE INDEX IF NOT EXISTS rows_sha ON rows (file_sha256)",
)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS matrices (
    standard_hash TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    dim INTEGER NOT NULL,
    count INTEGER NOT NULL,
    dead INTEGER NOT NULL DEFAULT 0
);
{_DEAD_TABLE};
CREATE TABLE IF NOT EXISTS rows (
    standard_hash TEXT NOT NULL,
    repo_id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    revision TEXT NOT NULL,
    standard_id TEXT NOT NULL,
    file_path TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_revision TEXT,
    l_to REAL NOT NULL,
    l_from REAL NOT NULL,
    library_version TEXT NOT NULL,
    created_at TEXT NOT NULL,
    indexed_at TEXT NOT NULL,
    source TEXT NOT NULL,
    flags TEXT NOT NULL,
    model_spec TEXT,
    PRIMARY KEY (standard_hash, repo_id)
);
CREATE INDEX IF NOT EXISTS rows_pos ON rows (standard_hash, pos);
{_SCHEMA_3_INDEXES[0]};
{_SCHEMA_3_INDEXES[1]};
{_STANDARDS_TABLE};
CREATE TABLE IF NOT EXISTS crawl (
    repo_id TEXT PRIMARY KEY,
    sha TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    updated_at TEXT NOT NULL
);
"""
_ROW_COLUMNS = ", ".join(ROW_FIELDS)
_KINDS = {"f32": np.float32, "u8": np.uint8}


class _StaleState(Exception):
    """A matrix file of the state being read was replaced meanwhile: read again."""


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
        conn = sqlite3.connect(root / "index.sqlite", timeout=timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            _init_schema(conn, root, timeout)
        except BaseException:
            conn.close()
            raise
        return cls(root, conn, timeout=timeout)

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
            f"SELECT {_ROW_COLUMNS} FROM rows WHERE standard_hash = ? AND repo_id = ?",
            (standard_hash, repo_id),
        )
        found = cur.fetchone()
        return IndexRow(*found) if found else None

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
            f"SELECT {_ROW_COLUMNS} FROM rows WHERE repo_id = ? ORDER BY standard_hash",
            (repo_id,),
        )
        return [IndexRow(*found) for found in cur]

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
        task = _as_array(task_vector).astype(np.float32)
        problem = _vector_problem(task, None)
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
            approx = _sweep(self._matrix(live, "u8"), _quantise(task), threads=threads)
            dead = self._dead_positions(live)
            approx[dead] = _DEAD_SCORE  # below every live score (>= 0): never a candidate
            k = min(top, live.rows)
            if k == 0:  # defensive: a commit leaving no live row compacts the matrix away
                return []
            if exact:
                positions, scores = self._rescore(live, task, approx, k, dead)
            else:
                alive = _live_positions(live.count, dead)
                positions, scores = _best(alive, approx[alive], k)
                scores = scores / 255.0
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
                f32, u8 = self._matrix(live, "f32"), self._matrix(live, "u8")
                for s in range(0, live.count, _WRITE_BLOCK_ROWS):
                    if not np.array_equal(
                        _quantise(f32[s : s + _WRITE_BLOCK_ROWS]), u8[s : s + _WRITE_BLOCK_ROWS]
                    ):
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
            self._clean_files()
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
        import pyarrow.parquet as pq

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")

        def run() -> None:
            wanted = {x.standard_hash for x in self._all_live()} & (
                {standard_hash} if standard_hash else {x.standard_hash for x in self._all_live()}
            )
            standards = {s.standard_hash: s.yaml for s in self.standards()}
            carried = {h: standards[h] for h in sorted(wanted) if h in standards}
            with pq.ParquetWriter(tmp, _parquet_schema(carried)) as writer:
                for live in self._all_live():
                    if standard_hash in (None, live.standard_hash):
                        for batch in self._record_batches(live, batch_rows):
                            writer.write_batch(batch)
            _fsync_file(tmp)

        try:
            self._read(run)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
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
        source = shorten(source or f"import:{path}", _MAX_FIELD_CHARS["source"])
        imported = unchanged = 0
        skipped: list[SkippedRow] = []
        known_dims: dict[str, int] = {}
        seen: dict[tuple[str, str], int] = {}
        standards, batches = _read_parquet(Path(path), batch_rows)
        if standards:
            with self.update() as tx:
                for standard in standards:
                    tx.remember_standard(standard, trusted=False, origin=source)
        for batch in batches:
            with self.update() as tx:
                added, same = tx._import_batch(batch, known_dims, seen, skipped, source)
            imported, unchanged = imported + added, unchanged + same
        return ImportReport(imported, unchanged, skipped)

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
            except _StaleState:
                continue
        raise IndexCorruptError(
            "a matrix file of the committed state is missing", path=str(self.root)
        )

    def _live(self, standard_hash: str) -> _Live | None:
        found = self._conn.execute(
            "SELECT standard_hash, generation, dim, count, dead FROM matrices "
            "WHERE standard_hash = ?",
            (standard_hash,),
        ).fetchone()
        return _Live(*found) if found else None

    def _all_live(self) -> list[_Live]:
        cur = self._conn.execute(
            "SELECT standard_hash, generation, dim, count, dead FROM matrices "
            "ORDER BY standard_hash"
        )
        return [_Live(*found) for found in cur]

    def _dead_positions(self, live: _Live) -> np.ndarray:
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

    def _live_matrix(self, live: _Live, kind: str) -> np.ndarray:
        """The live rows of a matrix, in position order (so aligned with its rows): the
        memory map itself when nothing is dead, else a read-only copy without the dead
        rows."""
        matrix = self._matrix(live, kind)
        dead = self._dead_positions(live)
        if dead.shape[0] == 0:
            return matrix
        kept = np.delete(matrix, dead, axis=0)
        kept.setflags(write=False)
        return kept

    def _matrix_path(self, standard_hash: str, generation: int, kind: str) -> Path:
        return self.root / "matrices" / f"{standard_hash}.{generation}.{kind}"

    def _matrix(self, live: _Live, kind: str) -> np.ndarray:
        """The memory map of a live matrix (its first ``count`` rows).

        Raises:
            _StaleState: if the file is gone (a writer replaced it since the state was read).
            IndexCorruptError: if the file is shorter than the state says.
        """
        dtype = _KINDS[kind]
        if live.count == 0:
            return np.empty((0, live.dim), dtype=dtype)
        path = self._matrix_path(live.standard_hash, live.generation, kind)
        try:
            size = path.stat().st_size
        except FileNotFoundError as e:
            raise _StaleState() from e
        need = live.count * live.dim * np.dtype(dtype).itemsize
        if size < need:
            raise IndexCorruptError(
                f"matrix file holds {size} bytes, the index needs {need}", path=str(path)
            )
        try:
            return np.memmap(path, dtype=dtype, mode="r", shape=(live.count, live.dim))
        except FileNotFoundError as e:
            raise _StaleState() from e

    def _select_rows(self, standard_hash: str | None) -> list[IndexRow]:
        if standard_hash is None:
            cur = self._conn.execute(f"SELECT {_ROW_COLUMNS} FROM rows ORDER BY standard_hash, pos")
        else:
            cur = self._conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM rows WHERE standard_hash = ? ORDER BY pos",
                (standard_hash,),
            )
        return [IndexRow(*found) for found in cur]

    def _rows_at(self, standard_hash: str, positions: list[int]) -> list[IndexRow]:
        """The rows at matrix positions, in the order given."""
        found: dict[int, IndexRow] = {}
        for s in range(0, len(positions), 500):
            part = positions[s : s + 500]
            cur = self._conn.execute(
                f"SELECT pos, {_ROW_COLUMNS} FROM rows WHERE standard_hash = ? "
                f"AND pos IN ({', '.join('?' * len(part))})",
                (standard_hash, *part),
            )
            found.update((pos, IndexRow(*rest)) for pos, *rest in cur)
        missing = [p for p in positions if p not in found]
        if missing:
            raise IndexCorruptError(
                f"standard {standard_hash}: no row at matrix positions {missing[:5]}",
                path=str(self.root),
            )
        return [found[p] for p in positions]

    def _rescore(
        self, live: _Live, task: np.ndarray, approx: np.ndarray, k: int, dead: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact float32 top-k among the live rows the quantised sweep cannot rule out."""
        import torch

        from ..core import fuzzy_intersection

        candidates = _top_candidates(approx, k, live.dim, dead)
        matrix, u = self._matrix(live, "f32"), torch.from_numpy(task)
        # Usually a few dozen rows: chunks under torch's parallel grain (32768 values) run
        # inline, without waking an OpenMP team (slow when other processes hold the cores).
        chunk_rows = max(1, 32767 // live.dim) if candidates.shape[0] <= 4096 else 65536
        scores = np.empty(candidates.shape[0], dtype=np.float32)
        for s in range(0, candidates.shape[0], _WRITE_BLOCK_ROWS):
            part = candidates[s : s + _WRITE_BLOCK_ROWS]  # in blocks: all rows may tie
            block = torch.from_numpy(matrix[part])
            scores[s : s + part.shape[0]] = fuzzy_intersection(u, block, chunk_rows=chunk_rows)
        return _best(candidates, scores, k)

    def _record_batches(self, live: _Live, batch_rows: int) -> Iterator[Any]:
        """The rows and vectors of one standard as pyarrow record batches."""
        vectors = self._matrix(live, "f32")
        cur = self._conn.execute(
            f"SELECT pos, {_ROW_COLUMNS} FROM rows WHERE standard_hash = ? ORDER BY pos",
            (live.standard_hash,),
        )
        while found := cur.fetchmany(batch_rows):
            positions = [f[0] for f in found]
            if positions[-1] - positions[0] + 1 == len(positions):  # no dead row between
                block = np.asarray(vectors[positions[0] : positions[-1] + 1])  # no copy
            else:  # dead positions in the range: gather the live rows only
                block = np.asarray(vectors[positions])
            yield _record_batch([IndexRow(*f[1:]) for f in found], block)

    def _clean_files(self) -> None:
        """Removes what crashed writers left (unreferenced generations, bytes past
        ``count``). Only under the write lock: a running writer's new files look the same.

        Raises:
            IndexCorruptError: if a live matrix file is missing or short.
        """
        live = {x.standard_hash: x for x in self._all_live()}
        wanted = {}
        for x in live.values():
            for kind, dtype in _KINDS.items():
                need = x.count * x.dim * np.dtype(dtype).itemsize
                wanted[self._matrix_path(x.standard_hash, x.generation, kind).name] = need
        for path in (self.root / "matrices").iterdir():
            if path.name not in wanted:
                path.unlink(missing_ok=True)
            elif path.stat().st_size > wanted[path.name]:
                os.truncate(path, wanted[path.name])
        for x in live.values():
            for kind in _KINDS:
                try:
                    self._matrix(x, kind)
                except _StaleState as e:
                    raise IndexCorruptError(
                        f"matrix file {x.standard_hash}.{x.generation}.{kind} is missing",
                        path=str(self.root),
                    ) from e


def _init_schema(conn: sqlite3.Connection, root: Path, timeout: float) -> None:
    """Creates the tables on a new index; checks (and upgrades) the schema of an existing one.

    Raises:
        IndexCorruptError: on an unknown schema version, or a version 1 index that this
            process cannot write to (so cannot upgrade).
        IndexBusyError: if creating or upgrading waited ``timeout`` seconds for another
            process's write lock.
    """
    try:
        found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:
        found = None
    if found is None:
        with _schema_change(conn, root, timeout, upgrade=False):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
            )
        # Read again: a process that created the index meanwhile may have another version.
        found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if found[0] == "1":
        found = _migrate_from_1(conn, root, timeout)
    if found[0] == "2":
        found = _migrate_from_2(conn, root, timeout)
    if found[0] != SCHEMA_VERSION:
        raise IndexCorruptError(
            f"index schema version {found[0]!r}; this hf-stdembed reads version "
            f"{SCHEMA_VERSION} (try upgrading hf-stdembed)",
            path=str(root),
        )
    if "model_spec" not in _columns(conn, "rows"):
        _add_model_spec(conn, root, timeout)


def _add_model_spec(conn: sqlite3.Connection, root: Path, timeout: float) -> None:
    """Adds ``rows.model_spec`` (NULL: unknown) to a schema 3 index written before schema 3
    had it (schema 3 was never released without it; development indexes have it so)."""
    with _schema_change(conn, root, timeout, upgrade=True):
        if "model_spec" not in _columns(conn, "rows"):  # not added by another process meanwhile
            conn.execute("ALTER TABLE rows ADD COLUMN model_spec TEXT")


def _migrate_from_1(conn: sqlite3.Connection, root: Path, timeout: float) -> tuple[str]:
    """Schema 1 to 2 (in place, one transaction): no position of a version 1 index is dead."""
    with _schema_change(conn, root, timeout, upgrade=True):
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version == "1":  # not already migrated by another process meanwhile
            if "dead" not in _columns(conn, "matrices"):
                conn.execute("ALTER TABLE matrices ADD COLUMN dead INTEGER NOT NULL DEFAULT 0")
            conn.execute(_DEAD_TABLE)
            conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
            version = "2"
    return (version,)


def _migrate_from_2(conn: sqlite3.Connection, root: Path, timeout: float) -> tuple[str]:
    """Schema 2 to 3 (in place, one transaction): rows get a source and flags, the index a
    table of custom standards.

    Whether a version 2 row was crawled or imported is unknown, so its source is ``legacy``:
    the next crawl reads its repo again (even at an unchanged commit) and replaces it with
    what the repo holds. Flags start empty (the rows were ranked unflagged before).
    """
    with _schema_change(conn, root, timeout, upgrade=True):
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version == "2":  # not already migrated by another process meanwhile
            columns = _columns(conn, "rows")
            if "source" not in columns:
                conn.execute(
                    f"ALTER TABLE rows ADD COLUMN source TEXT NOT NULL DEFAULT '{SOURCE_LEGACY}'"
                )
            if "flags" not in columns:
                conn.execute("ALTER TABLE rows ADD COLUMN flags TEXT NOT NULL DEFAULT ''")
            if "model_spec" not in columns:
                conn.execute("ALTER TABLE rows ADD COLUMN model_spec TEXT")
            for statement in (*_SCHEMA_3_INDEXES, _STANDARDS_TABLE):
                conn.execute(statement)
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,)
            )
            version = SCHEMA_VERSION
    return (version,)


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {found[1] for found in conn.execute(f"PRAGMA table_info({table})")}


@contextmanager
def _schema_change(
    conn: sqlite3.Connection, root: Path, timeout: float, *, upgrade: bool
) -> Iterator[None]:
    """One write transaction that creates or upgrades the schema (inside ``open``).

    Raises:
        IndexBusyError: if another process held the write lock for ``timeout`` seconds.
        IndexCorruptError: if the database is read-only.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.OperationalError as e:
        code = getattr(e, "sqlite_errorcode", None)  # Python >= 3.11
        primary = code & 0xFF if code is not None else None
        text = str(e).lower()
        if primary in (5, 6) or (primary is None and ("locked" in text or "busy" in text)):
            what = "an upgrade of the index" if upgrade else "creating the index"
            raise IndexBusyError(
                f"{what} was waiting for another hf-stdembed process, which is still "
                f"updating the index after {timeout:g} s: try again when it is done",
                path=str(root),
            ) from e
        if primary == 8 or (primary is None and "readonly" in text):  # SQLITE_READONLY
            if upgrade:
                message = (
                    "this index was written by an older hf-stdembed and must be upgraded "
                    f"once by a process that can write to {root}"
                )
            else:
                message = f"cannot create an index in {root}: it is read-only"
            raise IndexCorruptError(message) from e
        raise


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    """Makes new directory entries durable (POSIX; a no-op where directories can't be
    opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# =========================================================================================
# Parquet
# =========================================================================================


_PARQUET_STANDARDS_KEY = "hf-stdembed-standards"
_OPTIONAL_COLUMNS = {"source": SOURCE_CRAWL, "flags": "", "model_spec": None}  # older exports
_MAX_CARRIED_STANDARDS = 256


def _parquet_schema(standards: dict[str, str] | None = None) -> Any:
    """Every :class:`IndexRow` field, then ``embedding`` as ``list<float32>``; ``standards``
    (hash: YAML) in the metadata."""
    import pyarrow as pa

    numbers = {"l_to": pa.float64(), "l_from": pa.float64()}
    columns = [pa.field(name, numbers.get(name, pa.string())) for name in ROW_FIELDS]
    columns.append(pa.field("embedding", pa.list_(pa.float32())))
    meta = {"hf-stdembed": json.dumps({"format": PARQUET_FORMAT, "version": PARQUET_VERSION})}
    if standards:
        meta[_PARQUET_STANDARDS_KEY] = json.dumps(standards)
    return pa.schema(columns, metadata=meta)


def _carried_standards(metadata: dict[bytes, bytes] | None) -> list[Standard]:
    """The custom standards a parquet file carries, read as a stranger's (untrusted); an
    entry that is not the standard of its hash is ignored."""
    from ..standards import MAX_STANDARD_BYTES, standard_from_text

    raw = (metadata or {}).get(_PARQUET_STANDARDS_KEY.encode())
    if not raw or len(raw) > _MAX_CARRIED_STANDARDS * MAX_STANDARD_BYTES:
        return []
    try:
        carried = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(carried, dict):
        return []
    found = []
    for standard_hash, text in list(carried.items())[:_MAX_CARRIED_STANDARDS]:
        if not isinstance(text, str):
            continue
        try:
            standard = standard_from_text(text, source="a standard in the file", trusted=False)
        except InvalidStandardError:
            continue
        if standard.hash == standard_hash:
            found.append(standard)
    return found


def _record_batch(rows: list[IndexRow], block: np.ndarray) -> Any:
    """Rows and their vectors ``(r, N)`` as one pyarrow record batch."""
    import pyarrow as pa

    schema = _parquet_schema()
    columns = [pa.array([getattr(r, n) for r in rows], schema.field(n).type) for n in ROW_FIELDS]
    count, dim = block.shape
    offsets = pa.array(np.arange(0, (count + 1) * dim, dim, dtype=np.int64), pa.int32())
    values = pa.array(np.ascontiguousarray(block, dtype=np.float32).reshape(-1), pa.float32())
    columns.append(pa.ListArray.from_arrays(offsets, values))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


_ParsedRow = tuple[int, IndexRow, "np.ndarray | None", "str | None"]


def _read_parquet(path: Path, batch_rows: int) -> tuple[list[Standard], Iterator[list[_ParsedRow]]]:
    """The standards a parquet file carries, and its rows as
    ``(number, row, vector or None, problem or None)``.

    Raises:
        FileNotFoundError: if there is no such file.
        InvalidEmbeddingError: if it is not parquet, lacks a column, or its ``embedding``
            column is not a list of float32.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise FileNotFoundError(f"no parquet file at {path}")
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise InvalidEmbeddingError(f"not a readable parquet file ({e})", path=str(path)) from e
    schema = file.schema_arrow
    required = [name for name in ROW_FIELDS if name not in _OPTIONAL_COLUMNS]
    missing = [name for name in (*required, "embedding") if name not in schema.names]
    if missing:
        raise InvalidEmbeddingError(f"missing columns {missing}", path=str(path))
    kind = schema.field("embedding").type
    is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind)
    if not (is_list or pa.types.is_fixed_size_list(kind)) or kind.value_type != pa.float32():
        raise InvalidEmbeddingError(
            f"column 'embedding' is {kind}, expected list<float32>", path=str(path)
        )
    present = [name for name in ROW_FIELDS if name in schema.names]
    return _carried_standards(schema.metadata), _parsed_batches(file, present, batch_rows)


def _parsed_batches(file: Any, present: list[str], batch_rows: int) -> Iterator[list[_ParsedRow]]:
    """The rows of an open parquet file (see :func:`_read_parquet`).

    Raises:
        InvalidEmbeddingError: if a row group cannot be read (a damaged file).
    """
    import pyarrow as pa

    batches = file.iter_batches(batch_size=batch_rows, columns=[*present, "embedding"])
    number = 0
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as e:
            raise InvalidEmbeddingError(f"a row group cannot be read ({shorten(str(e))})") from e
        if batch is None:
            return
        meta = {name: batch.column(name).to_pylist() for name in present}
        for name, default in _OPTIONAL_COLUMNS.items():
            meta.setdefault(name, [default] * batch.num_rows)
        vectors = batch.column("embedding").cast(pa.large_list(pa.float32()))
        offsets = vectors.offsets.to_numpy()
        values = vectors.values.to_numpy(zero_copy_only=False)  # null values become NaN
        nulls = vectors.is_null().to_numpy(zero_copy_only=False)
        parsed: list[_ParsedRow] = []
        for i in range(batch.num_rows):
            row = IndexRow(**{name: meta[name][i] for name in ROW_FIELDS})
            if nulls[i]:
                parsed.append((number, row, None, "embedding is null"))
            else:
                vector = np.array(values[offsets[i] : offsets[i + 1]], dtype=values.dtype)
                parsed.append((number, row, vector, None))
            number += 1
        yield parsed


# =========================================================================================
# Transactions
# =========================================================================================


class _MatrixWriter:
    """Writes float32 rows and their quantised uint8 rows to a generation's two files."""

    def __init__(self, index: EmbeddingIndex, live: _Live, *, start: int, create: bool) -> None:
        self.paths = [index._matrix_path(live.standard_hash, live.generation, k) for k in _KINDS]
        self.dim = live.dim
        self.rows = start
        self.files = [open(p, "w+b" if create else "r+b") for p in self.paths]  # noqa: SIM115
        for f, dtype in zip(self.files, _KINDS.values(), strict=True):
            f.seek(start * self.dim * np.dtype(dtype).itemsize)

    def write(self, block: np.ndarray, quantised: np.ndarray | None = None) -> None:
        """Appends rows ``(r, N)`` float32, and their uint8 rows (computed if not given)."""
        if block.shape[0] == 0:
            return
        self.files[0].write(np.ascontiguousarray(block, dtype=np.float32).data)
        _test_pause("partial-matrix")
        quantised = _quantise(block) if quantised is None else quantised
        self.files[1].write(np.ascontiguousarray(quantised).data)
        self.rows += block.shape[0]

    def finish(self) -> None:
        """Cuts anything past the last row written, flushes and fsyncs both files."""
        for f, dtype in zip(self.files, _KINDS.values(), strict=True):
            f.truncate(self.rows * self.dim * np.dtype(dtype).itemsize)
            f.flush()
            os.fsync(f.fileno())
        self.close()

    def close(self) -> None:
        for f in self.files:
            f.close()


@dataclass
class _StandardChange:
    """What a transaction does to one standard's rows."""

    added: list[tuple[IndexRow, np.ndarray]] = field(default_factory=list)  # (row, vector)
    replaced: dict[int, tuple[int, IndexRow, np.ndarray]] = field(default_factory=dict)
    # ^ pos: (rowid, row, vector), the vector changed
    relabelled: dict[int, tuple[int, IndexRow, np.ndarray]] = field(default_factory=dict)
    # ^ the same, for replacements whose vector is the indexed one: metadata only
    removed: dict[int, int] = field(default_factory=dict)  # pos: rowid

    def dead_after(self, live: _Live | None) -> tuple[int, int]:
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
        vector = _as_array(vector)
        problem = _row_problem(row) or _vector_problem(vector, self._dim(row.standard_hash))
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
        self._crawl[repo_id] = CrawlState(repo_id, sha, status, reason, _now())

    # ---- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this transaction is over: open a new `with index.update()`")

    def _new_generation(self, standard_hash: str) -> _Live:
        """A generation number never used by a committed state (so a reader holding an old
        state can never open another state's file under the same name)."""
        if self._last_generation is None:
            found = self._index._conn.execute(
                "SELECT value FROM meta WHERE key = 'last_generation'"
            ).fetchone()
            self._last_generation = int(found[0]) if found else 0
        self._last_generation += 1
        target = _Live(standard_hash, self._last_generation, 0, 0)
        self._new_files += [
            self._index._matrix_path(standard_hash, target.generation, k) for k in _KINDS
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
        _test_pause("matrices-synced")
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
                (h, std.id, std.to_yaml(), int(trusted), origin, _now())
                for h, (std, trusted, origin) in self._standards.items()
            ],
        )
        if self._last_generation is not None:
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('last_generation', ?)",
                (str(self._last_generation),),
            )
        _test_pause("sql-pending")
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
        self, standard_hash: str, live: _Live | None, change: _StandardChange
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
            writer = _MatrixWriter(self._index, target, start=start, create=live is None)
            try:
                for s in range(0, len(vectors), _WRITE_BLOCK_ROWS):
                    writer.write(np.stack(vectors[s : s + _WRITE_BLOCK_ROWS]))
                writer.finish()
            finally:
                writer.close()
            if live is None:
                _fsync_dir(self._index.root / "matrices")

        def apply(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "DELETE FROM rows WHERE rowid = ?", [(r,) for r in change.removed.values()]
            )
            moved = start + len(change.added)
            conn.executemany(
                f"UPDATE rows SET pos = ?, {', '.join(f'{n} = ?' for n in ROW_FIELDS)} "
                "WHERE rowid = ?",
                [
                    (moved + i, *_row_values(row), rowid)
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

    def _rewrite(
        self, live: _Live, change: _StandardChange
    ) -> Callable[[sqlite3.Connection], None]:
        """Compaction: a new generation, copied from the live one without its dead positions
        nor the removed rows; replaced rows keep their place (no new dead position)."""
        old, old_q = self._index._matrix(live, "f32"), self._index._matrix(live, "u8")
        dead_before = self._index._dead_positions(live)
        dropped = np.union1d(dead_before, np.array(list(change.removed), dtype=np.int64))
        kept = live.count - len(dropped)
        target = _Live(live.standard_hash, live.generation, live.dim, 0)
        self._old_files += [
            self._index._matrix_path(live.standard_hash, live.generation, k) for k in _KINDS
        ]
        if kept + len(change.added) > 0:
            target = replace(self._new_generation(live.standard_hash), dim=live.dim)
            replaced = np.array(sorted(change.replaced), dtype=np.int64)
            new_rows = np.empty((len(replaced), live.dim), dtype=np.float32)
            for i, pos in enumerate(replaced.tolist()):
                new_rows[i] = change.replaced[pos][2]
            new_q = _quantise(new_rows)
            writer = _MatrixWriter(self._index, target, start=0, create=True)
            try:
                for s in range(0, live.count, _WRITE_BLOCK_ROWS):  # copies: no re-quantising
                    writer.write(
                        _changed_block(old, s, replaced, new_rows, dropped),
                        _changed_block(old_q, s, replaced, new_q, dropped),
                    )
                for s in range(0, len(change.added), _WRITE_BLOCK_ROWS):
                    writer.write(np.stack([v for _, v in change.added[s : s + _WRITE_BLOCK_ROWS]]))
                writer.finish()
            finally:
                writer.close()
            _fsync_dir(self._index.root / "matrices")

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

    def _import_batch(
        self,
        batch: list[_ParsedRow],
        known_dims: dict[str, int],
        seen: dict[tuple[str, str], int],
        skipped: list[SkippedRow],
        source: str,
    ) -> tuple[int, int]:
        """Checks and upserts parsed parquet rows; returns (imported, unchanged)."""
        imported = unchanged = 0
        for number, row, vector, problem in batch:
            if problem is None and vector is not None:
                problem = self._import_problem(number, row, vector, known_dims, seen)
            if problem is None and vector is not None:
                row = replace(row, source=source)
                existing = self._index.get(row.repo_id, row.standard_hash)
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
                skipped.append(
                    SkippedRow(
                        number,
                        _short_or_none(row.repo_id),
                        _short_or_none(row.standard_hash),
                        shorten(str(problem)),
                    )
                )
                continue
            self.upsert(row, vector)
            imported += 1
        return imported, unchanged

    def _import_problem(
        self,
        number: int,
        row: IndexRow,
        vector: np.ndarray,
        known_dims: dict[str, int],
        seen: dict[tuple[str, str], int],
    ) -> str | None:
        problem = _row_problem(row) or fidelity_problem(row.l_to, row.l_from)
        if problem:
            return problem
        key = (row.standard_hash, row.repo_id)
        if key in seen:
            return f"duplicate of row {seen[key]} (same repo and standard)"
        dim = self._dim(row.standard_hash) or known_dims.get(row.standard_hash)
        if dim is None:
            dim = _builtin_dims().get(row.standard_hash)
        problem = _vector_problem(vector, dim)
        if problem:
            return problem
        known_dims.setdefault(row.standard_hash, vector.shape[0])
        seen[key] = number
        return None

    def _crawled_disagreement(self, row: IndexRow, vector: np.ndarray) -> str | None:
        """Why an imported row contradicts a crawled one of the same file, or None: a
        ``file_sha256`` names one file, hence one standard and one vector."""
        cur = self._index._conn.execute(
            "SELECT repo_id, standard_hash, pos FROM rows WHERE file_sha256 = ? "
            f"AND source = '{SOURCE_CRAWL}' LIMIT 16",
            (row.file_sha256,),
        )
        for repo_id, standard_hash, pos in cur.fetchall():
            live = self._index._live(standard_hash)
            same = (
                standard_hash == row.standard_hash
                and live is not None
                and np.array_equal(self._index._matrix(live, "f32")[pos], vector)
            )
            if not same:
                return (
                    f"its vector disagrees with the file of sha256 {row.file_sha256} as the "
                    f"crawl read it from {repo_id}"
                )
        return None

    def _same_vector(self, row: IndexRow, vector: np.ndarray) -> bool:
        live = self._index._live(row.standard_hash)
        found = self._index._conn.execute(
            "SELECT pos FROM rows WHERE standard_hash = ? AND repo_id = ?",
            (row.standard_hash, row.repo_id),
        ).fetchone()
        if live is None or found is None:
            return False
        return bool(np.array_equal(self._index._matrix(live, "f32")[found[0]], vector))

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


def _same_content(a: IndexRow, b: IndexRow) -> bool:
    """Whether two rows say the same, whenever and wherever they were indexed."""
    ignored = {"indexed_at": "", "source": "", "flags": ""}
    return replace(a, **ignored) == replace(b, **ignored)


def _short_or_none(value: object) -> str | None:
    return shorten(value, 200) if isinstance(value, str) else None


def _changed_block(
    old: np.ndarray, start: int, replaced: np.ndarray, new_rows: np.ndarray, dropped: np.ndarray
) -> np.ndarray:
    """Rows ``start..start+B`` of the old matrix, with the rows at the sorted positions
    ``replaced`` set to ``new_rows`` and those at the sorted positions ``dropped`` left out
    (the memory-mapped rows themselves when none of them changes)."""
    block = old[start : start + _WRITE_BLOCK_ROWS]
    stop = start + block.shape[0]
    r_lo, r_hi = np.searchsorted(replaced, [start, stop])
    d_lo, d_hi = np.searchsorted(dropped, [start, stop])
    if r_hi > r_lo:
        block = np.array(block)
        block[replaced[r_lo:r_hi] - start] = new_rows[r_lo:r_hi]
    if d_hi > d_lo:
        block = np.delete(block, dropped[d_lo:d_hi] - start, axis=0)
    return block


def _insert_rows(conn: sqlite3.Connection, rows: list[tuple[IndexRow, int]]) -> None:
    conn.executemany(
        f"INSERT INTO rows (pos, {_ROW_COLUMNS}) VALUES ({', '.join('?' * (len(ROW_FIELDS) + 1))})",
        [(pos, *_row_values(row)) for row, pos in rows],
    )


def _update_rows(
    conn: sqlite3.Connection, changed: Iterable[tuple[int, IndexRow, np.ndarray]]
) -> None:
    """New metadata for rows that keep their position: ``(rowid, row, vector)``."""
    conn.executemany(
        f"UPDATE rows SET {', '.join(f'{n} = ?' for n in ROW_FIELDS)} WHERE rowid = ?",
        [(*_row_values(row), rowid) for rowid, row, _ in changed],
    )


def _set_live(conn: sqlite3.Connection, target: _Live, count: int, dead: int = 0) -> None:
    if count == 0:
        conn.execute("DELETE FROM matrices WHERE standard_hash = ?", (target.standard_hash,))
    else:
        conn.execute(
            "INSERT OR REPLACE INTO matrices (standard_hash, generation, dim, count, dead) "
            "VALUES (?, ?, ?, ?, ?)",
            (target.standard_hash, target.generation, target.dim, count, dead),
        )


@functools.cache
def _builtin_dims() -> dict[str, int]:
    """N of every built-in standard, by hash."""
    from ..standards import builtin_standards

    return {standard.hash: standard.dim for standard in builtin_standards().values()}
