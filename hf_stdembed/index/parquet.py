"""The parquet format of an exported index: one row per :class:`IndexRow`, its vector in an
``embedding`` column, and the custom standards of its rows in the file's metadata.

``datasets.load_dataset("parquet", data_files=path)`` reads it, so it can be pushed as a Hub
dataset. Reading a file checks its columns; each row's content is checked by the import
(:mod:`hf_stdembed.index.importing`): the file is a stranger's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._text import shorten
from ..errors import InvalidEmbeddingError, InvalidStandardError
from .rows import ROW_FIELDS, SOURCE_CRAWL, IndexRow

if TYPE_CHECKING:
    from ..standards import Standard

PARQUET_FORMAT = "hf-stdembed/index"
PARQUET_VERSION = "1"  # of the exported parquet files: independent of the database schema
_PARQUET_STANDARDS_KEY = "hf-stdembed-standards"
_OPTIONAL_COLUMNS = {"source": SOURCE_CRAWL, "flags": "", "model_spec": None, "datasets": ()}
"""Columns an older export lacks, and the value each of its rows then has."""
_MAX_CARRIED_STANDARDS = 256


def parquet_schema(standards: dict[str, str] | None = None) -> Any:
    """Every :class:`IndexRow` field (``datasets`` as ``list<string>``), then ``embedding`` as
    ``list<float32>``; ``standards`` (hash: YAML) in the metadata."""
    import pyarrow as pa

    kinds = {"l_to": pa.float64(), "l_from": pa.float64(), "datasets": pa.list_(pa.string())}
    columns = [pa.field(name, kinds.get(name, pa.string())) for name in ROW_FIELDS]
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

    schema = parquet_schema()
    columns = [pa.array([getattr(r, n) for r in rows], schema.field(n).type) for n in ROW_FIELDS]
    count, dim = block.shape
    offsets = pa.array(np.arange(0, (count + 1) * dim, dim, dtype=np.int64), pa.int32())
    values = pa.array(np.ascontiguousarray(block, dtype=np.float32).reshape(-1), pa.float32())
    columns.append(pa.ListArray.from_arrays(offsets, values))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def write_parquet(
    path: Path, standards: dict[str, str], blocks: Iterable[tuple[list[IndexRow], np.ndarray]]
) -> None:
    """Writes rows and their vectors to a parquet file, one row group per block.

    Args:
        path: the file to (over)write.
        standards: the custom standards to carry (hash: YAML), in the file's metadata.
        blocks: ``(rows, vectors)``, the vectors float32 ``(len(rows), N)``.
    """
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, parquet_schema(standards)) as writer:
        for rows, block in blocks:
            writer.write_batch(_record_batch(rows, block))


ParsedRow = tuple[int, IndexRow, "np.ndarray | None", "str | None"]


def read_parquet(path: Path, batch_rows: int) -> tuple[list[Standard], Iterator[list[ParsedRow]]]:
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


def _parsed_batches(file: Any, present: list[str], batch_rows: int) -> Iterator[list[ParsedRow]]:
    """The rows of an open parquet file (see :func:`read_parquet`).

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
        parsed: list[ParsedRow] = []
        for i in range(batch.num_rows):
            row = IndexRow(**{name: meta[name][i] for name in ROW_FIELDS})
            if isinstance(row.datasets, list) or row.datasets is None:  # list<string>, or null
                row = replace(row, datasets=tuple(row.datasets or ()))
            if nulls[i]:
                parsed.append((number, row, None, "embedding is null"))
            else:
                vector = np.array(values[offsets[i] : offsets[i + 1]], dtype=values.dtype)
                parsed.append((number, row, vector, None))
            number += 1
        yield parsed
