"""The local embedding index: every crawled model embedding, ready for one sweep.

Modules: :mod:`.store` (:class:`EmbeddingIndex`), :mod:`.transaction` (its updates),
:mod:`.rows` (rows, states, reports, row validation), :mod:`.sweep` (the quantised sweep),
:mod:`.matrices` (the matrix files), :mod:`.schema` (the SQLite schema and its upgrades),
:mod:`.parquet` (the export format) and :mod:`.merge` (importing a parquet file).
"""

from __future__ import annotations

from .store import (
    COMPACT_DEAD_FRACTION,
    INDEX_ENV,
    PARQUET_FORMAT,
    PARQUET_VERSION,
    ROW_FIELDS,
    SCHEMA_VERSION,
    SOURCE_CRAWL,
    SOURCE_LEGACY,
    CrawlState,
    EmbeddingIndex,
    ImportReport,
    IndexRow,
    IndexStats,
    IndexTransaction,
    SkippedRow,
    StandardStats,
    StoredStandard,
    default_index_path,
    default_threads,
    row_problem,
)

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
