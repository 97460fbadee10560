"""What the index stores besides vectors: rows, crawl states, custom standards, the reports
of its methods, and the validation every row passes before it is stored."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._text import MAX_DECLARED_DATASETS, declared_datasets, shorten
from .._vectors import vector_problem
from ..errors import InvalidStandardError

if TYPE_CHECKING:
    import torch

    from ..embeddings import ModelEmbedding
    from ..standards import Standard

SOURCE_CRAWL = "crawl"
"""``IndexRow.source`` of a row the crawl read from the repo itself. Imported rows have
``import:<file>`` or ``pull:<dataset repo>@<commit>``; rows of an index upgraded from
schema 2 have ``legacy`` (unknown: treated as imported until the next crawl reads them)."""
SOURCE_LEGACY = "legacy"


def now() -> str:
    """The current UTC time, to the second, in ISO 8601 (a row's ``indexed_at``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    indexed_at: str = field(default_factory=now)  # when it entered this index
    source: str = SOURCE_CRAWL  # where the row came from: "crawl", "import:<file>", "pull:..."
    flags: str = ""  # comma-separated plausibility flags (hf_stdembed.plausibility), set on upsert
    # the loadable model spec (``timm:org/name``, ``transformers:org/name``, a repo id) that
    # re-ranking loads at ``model_revision``: the card entry's ``model``, else the file's
    # ``model_spec``; None when neither says (a stranger's text: see hf_stdembed.rerank)
    model_spec: str | None = None
    # the dataset ids the repo's card declares (its ``datasets:``, capped: see
    # hf_stdembed._text.declared_datasets); () when it declares none or the row is not a
    # crawl's (embed-many, an import without the field). A claim: it only earns a shortlist
    # place (hf_stdembed.rerank)
    datasets: tuple[str, ...] = ()

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
        datasets: tuple[str, ...] = (),
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
            datasets: the dataset ids the repo's card declares.

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
            datasets=tuple(datasets),
        )


ROW_FIELDS = tuple(f.name for f in fields(IndexRow))
_row_fields = operator.attrgetter(*ROW_FIELDS)  # astuple deep-copies
_DATASETS_AT = ROW_FIELDS.index("datasets")


def row_values(row: IndexRow) -> tuple:
    """A row's fields as the database stores them, in :data:`ROW_FIELDS` order (``datasets``
    as one text, one id a line: a valid id holds no line break)."""
    values = list(_row_fields(row))
    values[_DATASETS_AT] = "\n".join(row.datasets)
    return tuple(values)


def row_from_values(values: tuple | list) -> IndexRow:
    """The row of database values in :data:`ROW_FIELDS` order (:func:`row_values`'s inverse)."""
    values = list(values)
    text = values[_DATASETS_AT]
    values[_DATASETS_AT] = tuple(text.split("\n")) if text else ()
    return IndexRow(*values)


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
    """A parquet row that :meth:`~hf_stdembed.index.EmbeddingIndex.import_parquet` refused."""

    row_number: int  # 0-based, in file order
    repo_id: str | None
    standard_hash: str | None
    reason: str


@dataclass(frozen=True)
class ImportReport:
    """What :meth:`~hf_stdembed.index.EmbeddingIndex.import_parquet` did."""

    imported: int  # rows added or replaced
    unchanged: int  # rows already in the index, identical
    skipped: list[SkippedRow]


_HASH_RE = re.compile(r"[0-9a-f]{8,64}")


MAX_FIELD_CHARS = {
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


def metadata_problem(row: IndexRow) -> str | None:
    """Why ``row``'s metadata cannot be indexed, or None."""
    for name in ROW_FIELDS:
        value = getattr(row, name)
        if name == "datasets":
            problem = _datasets_problem(value)
            if problem:
                return problem
            continue
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
        limit = MAX_FIELD_CHARS.get(name, _MAX_TEXT_CHARS)
        if len(value) > limit:
            return f"{name} is {len(value)} characters long, more than {limit}"
        if not value.isprintable():
            return f"{name} holds control characters: {shorten(repr(value), 80)}"
    if not _HASH_RE.fullmatch(row.standard_hash):
        return f"standard_hash {row.standard_hash!r} is not 8 to 64 lowercase hex digits"
    return None


def _datasets_problem(value: object) -> str | None:
    """Why a row's ``datasets`` cannot be stored, or None: a tuple of what
    :func:`~hf_stdembed._text.declared_datasets` keeps."""
    if not isinstance(value, tuple) or not all(isinstance(d, str) for d in value):
        return f"datasets is not a list of strings: {shorten(repr(value), 80)}"
    if declared_datasets(list(value)) != value:
        return (
            f"datasets holds an empty, repeated, unprintable or too long id, or more than "
            f"{MAX_DECLARED_DATASETS}: {shorten(repr(value), 80)}"
        )
    return None


def row_problem(row: IndexRow, vector: np.ndarray, *, dim: int | None = None) -> str | None:
    """Why a row and its vector cannot be indexed, or None: what
    :meth:`~hf_stdembed.index.IndexTransaction.upsert` would refuse, so that a crawler can
    refuse one repo instead of failing a whole batch.

    Args:
        row: the metadata.
        vector: the embedding (float32 ``(N,)`` in [0, 1]).
        dim: the standard's N, when known.
    """
    return metadata_problem(row) or vector_problem(np.asarray(vector), dim)


def as_array(vector: torch.Tensor | np.ndarray) -> np.ndarray:
    """A detached C-contiguous numpy copy of a tensor or array."""
    if hasattr(vector, "detach"):
        vector = vector.detach().cpu().numpy()
    return np.array(vector, copy=True, order="C")
