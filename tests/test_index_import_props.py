"""Property-based tests: a shared index is a stranger's file. Whatever its rows hold,
``import_parquet`` never crashes, stores nothing invalid, and gives every refused row a
short reason (issue 10, deliverable 4)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_stdembed.errors import InvalidEmbeddingError
from hf_stdembed.index import ROW_FIELDS, EmbeddingIndex, IndexRow
from hf_stdembed.index.parquet import parquet_schema

DIM = 8
GOOD = {
    "repo_id": "org/model",
    "revision": "a" * 40,
    "standard_id": "test-standard",
    "standard_hash": "0123456789abcdef",
    "file_path": "stdembed/test-standard.safetensors",
    "file_sha256": "b" * 64,
    "model_id": "org/model",
    "model_revision": None,
    "l_to": 0.9,
    "l_from": 0.8,
    "library_version": "0.1.0",
    "created_at": "2025-01-01T00:00:00+00:00",
    "indexed_at": "2025-01-02T00:00:00+00:00",
    "source": "crawl",
    "flags": "",
}
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["", "[/x]", "../../etc", "a" * 300, "\x1b[31m", "0123456789abcdef"]),
)
numbers = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -2.0])
)
vectors = st.one_of(
    st.none(),
    st.lists(st.one_of(st.none(), st.floats(width=32)), max_size=2 * DIM),
    st.lists(st.floats(0, 1, width=32), min_size=DIM, max_size=DIM),
)


@st.composite
def rows(draw) -> dict:
    row = dict(GOOD, repo_id=f"org/m{draw(st.integers(0, 5))}")
    for name in draw(st.sets(st.sampled_from(ROW_FIELDS), max_size=4)):
        row[name] = draw(numbers if name in ("l_to", "l_from") else texts)
    row["embedding"] = draw(vectors)
    return row


def stored_rows_are_valid(index: EmbeddingIndex) -> None:
    index.check()
    for row in index.rows():
        assert isinstance(row, IndexRow) and row.source.startswith("import:")
        assert math.isfinite(row.l_to) and abs(row.l_to) <= 1.001
        vector = index.vectors(row.standard_hash)
        assert vector.shape[1] >= 1 and np.all((vector >= 0) & (vector <= 1))


@PROPS
@given(st.lists(rows(), max_size=12))
def test_import_of_arbitrary_rows_never_crashes_and_explains_refusals(table: list[dict]):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.parquet"
        pq.write_table(pa.Table.from_pylist(table, schema=parquet_schema()), path)
        with EmbeddingIndex.open(Path(tmp) / "index") as index:
            report = index.import_parquet(path)
            assert report.imported + report.unchanged + len(report.skipped) == len(table)
            for skipped in report.skipped:
                assert skipped.reason and len(skipped.reason) <= 300
            stored_rows_are_valid(index)


@st.composite
def tables(draw) -> pa.Table:
    """Tables of any column types: missing, extra, or mistyped columns."""
    count = draw(st.integers(0, 4))
    columns = {}
    for name in [*ROW_FIELDS, "embedding", "extra"]:
        kind = draw(st.sampled_from(["absent", "string", "int", "float", "list", "good"]))
        if kind == "absent":
            continue
        if kind == "good":
            value = GOOD.get(name, [0.5] * DIM)
            columns[name] = pa.array([value] * count)
        elif kind == "string":
            columns[name] = pa.array([draw(st.text(max_size=8)) for _ in range(count)])
        elif kind == "int":
            columns[name] = pa.array([draw(st.integers(-5, 5)) for _ in range(count)], pa.int64())
        elif kind == "float":
            columns[name] = pa.array([draw(st.floats()) for _ in range(count)], pa.float64())
        else:
            columns[name] = pa.array(
                [[0.25] * draw(st.integers(0, DIM)) for _ in range(count)], pa.list_(pa.float32())
            )
    return pa.table(columns) if columns else pa.table({"x": pa.array([], pa.int64())})


@PROPS
@given(tables())
def test_import_of_arbitrary_tables_is_an_error_or_a_report(table: pa.Table):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.parquet"
        pq.write_table(table, path)
        with EmbeddingIndex.open(Path(tmp) / "index") as index:
            try:
                report = index.import_parquet(path)
            except InvalidEmbeddingError as e:
                assert len(str(e)) < 2000
                assert index.rows() == []
                return
            assert report.imported + report.unchanged + len(report.skipped) == table.num_rows
            stored_rows_are_valid(index)
