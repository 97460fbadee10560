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
is the exact float32 one (:mod:`hf_stdembed.index.sweep`). Readers never see dead positions
(the sweep gives them no score); how updates keep them bounded and survive a crash:
:mod:`hf_stdembed.index.transaction`.

Modules: :mod:`.store` (:class:`EmbeddingIndex`: opening, reading, searching),
:mod:`.transaction` (:class:`IndexTransaction`: updates, compaction, crash safety),
:mod:`.rows` (rows, states, reports, row validation), :mod:`.sweep` (the quantised sweep and
exact top-k), :mod:`.matrices` (the matrix files), :mod:`.schema` (the SQLite tables and
their upgrades), :mod:`.parquet` (the export format) and :mod:`.importing` (merging an
exported file).
"""

from __future__ import annotations

from .parquet import PARQUET_FORMAT, PARQUET_VERSION
from .rows import (
    ROW_FIELDS,
    SOURCE_CRAWL,
    SOURCE_LEGACY,
    CrawlState,
    ImportReport,
    IndexRow,
    IndexStats,
    SkippedRow,
    StandardStats,
    StoredStandard,
    row_problem,
)
from .schema import SCHEMA_VERSION
from .store import INDEX_ENV, EmbeddingIndex, default_index_path
from .sweep import default_threads
from .transaction import COMPACT_DEAD_FRACTION, IndexTransaction

__all__ = [
    "COMPACT_DEAD_FRACTION",
    "INDEX_ENV",
    "PARQUET_FORMAT",
    "PARQUET_VERSION",
    "ROW_FIELDS",
    "SCHEMA_VERSION",
    "SOURCE_CRAWL",
    "SOURCE_LEGACY",
    "CrawlState",
    "EmbeddingIndex",
    "ImportReport",
    "IndexRow",
    "IndexStats",
    "IndexTransaction",
    "SkippedRow",
    "StandardStats",
    "StoredStandard",
    "default_index_path",
    "default_threads",
    "row_problem",
]
