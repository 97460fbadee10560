"""Embedding artefacts: model and task embeddings as validated safetensors files.

A file holds the vector as the float32 tensor ``embedding`` (task files also hold the gamma
sweep) and string metadata: format, schema version, standard id and hash, what was embedded
(for a model: its name, revision and, when others can load it, its spec), its fidelity or
gamma, the library version and the creation time. Loading checks all of it, so a file that
loads is safe to compare. Files may come from strangers: they are parsed with safetensors only
(never pickle), after checks of the file size, the header size, and the header's tensors.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar, overload

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors_bytes

from . import __version__
from ._files import atomic_write
from ._hashing import canonical_json
from ._vectors import vector_problem
from .errors import InvalidEmbeddingError, StandardMismatchError, StandardNotFoundError
from .standards import Standard, builtin_standards

MODEL_FORMAT = "hf-stdembed/model-embedding"
TASK_FORMAT = "hf-stdembed/task-embedding"
SCHEMA_VERSION = "1"
MAX_FILE_BYTES = 64 * 1024 * 1024
"""Largest embedding file read (an N = 10^6 float32 vector is 4 MB)."""
MAX_HEADER_BYTES = 64 * 1024
"""Largest safetensors header read (ours is under 2 KB): refused before it is parsed."""
MAX_METADATA_CHARS = 1024
"""Longest metadata string kept (a model spec, a path, a version)."""
COSINE_SLACK = 1e-3
"""L_to / L_from are mean cosine similarities: in [-1, 1] up to this rounding."""
_TENSORS = ("embedding", "sweep.gammas", "sweep.accuracies", "sweep.mask_sizes")
_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ModelEmbedding:
    """A model's embedding under a standard: ``v`` and how faithful it is."""

    vector: torch.Tensor = field(repr=False)  # float32 (N,) in [0, 1]
    standard_id: str
    standard_hash: str
    model_id: str
    model_revision: str | None
    l_to: float
    l_from: float
    library_version: str = __version__
    created_at: str = field(default_factory=_now)
    # the spec others can load the model with (timm:org/name, transformers:org/name, a repo
    # id); None when unknown or not loadable by others (a local directory, an entry point)
    model_spec: str | None = None

    @property
    def fidelity(self) -> float:
        """``min(L_to, L_from)``."""
        return min(self.l_to, self.l_from)


@dataclass(frozen=True)
class TaskEmbedding:
    """A task's embedding under a standard, with the gamma sweep that chose it."""

    vector: torch.Tensor = field(repr=False)  # float32 (N,) in [0, 1]
    standard_id: str
    standard_hash: str
    dataset_id: str
    dataset_split: str
    gamma: float
    converged_accuracy: float
    gammas: torch.Tensor = field(repr=False)  # float64 (G,)
    accuracies: torch.Tensor = field(repr=False)  # float64 (G,), in %
    mask_sizes: torch.Tensor = field(repr=False)  # float64 (G,)
    library_version: str = __version__
    created_at: str = field(default_factory=_now)


Embedding = ModelEmbedding | TaskEmbedding
EmbeddingKind = TypeVar("EmbeddingKind", ModelEmbedding, TaskEmbedding)
_KIND_NAMES = {ModelEmbedding: "model embedding", TaskEmbedding: "task embedding"}


def save_embedding(embedding: Embedding, path: str | Path) -> Path:
    """Writes an embedding file atomically (a crash never leaves a torn file).

    Returns:
        The path written.
    """
    return atomic_write(path, embedding_bytes(embedding))


def embedding_bytes(embedding: Embedding) -> bytes:
    """The bytes of an embedding's file: the same embedding always gives the same bytes
    (safetensors writes the metadata in a random order; the header is written sorted), so a
    dry run's sha256 is the published file's."""
    tensors, metadata = _to_file(embedding)
    data = save_safetensors_bytes(tensors, metadata=metadata)
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    text = canonical_json(header, ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the tensor data stays 8-byte aligned
    return struct.pack("<Q", len(text)) + text + data[8 + length :]


@overload
def load_embedding(
    path: str | Path,
    *,
    standard: Standard | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    kind: type[EmbeddingKind],
) -> EmbeddingKind: ...


@overload
def load_embedding(
    path: str | Path,
    *,
    standard: Standard | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    kind: None = None,
) -> Embedding: ...


def load_embedding(
    path: str | Path,
    *,
    standard: Standard | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    kind: type[ModelEmbedding] | type[TaskEmbedding] | None = None,
) -> Embedding:
    """Reads and validates an embedding file.

    Args:
        path: the ``.safetensors`` file.
        standard: the standard the file must belong to. When None, the file's standard id
            must name a built-in standard whose hash it matches.
        max_bytes: files larger than this are refused before being read.
        kind: :class:`ModelEmbedding` or :class:`TaskEmbedding` when the file must hold that
            kind (checked after the standard); None accepts both.

    Returns:
        A :class:`ModelEmbedding` or :class:`TaskEmbedding` (of ``kind`` when given).

    Raises:
        FileNotFoundError: if there is no such file.
        InvalidEmbeddingError: on a file that is too large, not safetensors (or with a header
            over :data:`MAX_HEADER_BYTES`, or a tensor of an unknown dtype), of an unknown
            format or schema, with a metadata string over :data:`MAX_METADATA_CHARS`, with
            fidelities that are not cosine similarities, whose vector has a wrong shape,
            dtype or values (`vector_problem`), or of another ``kind`` ("<path>: is a task
            embedding, expected a model embedding").
        StandardNotFoundError: if no standard was given and the file's is not built in.
        StandardMismatchError: if the file belongs to another standard (its id or hash
            differs).
    """
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise InvalidEmbeddingError(f"file is {size} bytes, over the {max_bytes} limit", path=path)
    _check_header(path, size)
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            names = set(f.keys())
            tensors = {key: f.get_tensor(key) for key in _TENSORS if key in names}
    except (SafetensorError, ValueError, OSError, TypeError, RuntimeError) as e:
        # a stranger's file: whatever the parser rejects is a bad file, never a crash
        raise InvalidEmbeddingError(f"not a readable safetensors file ({e})", path=path) from e
    embedding = _from_file(tensors, metadata, str(path))
    _check_standard(embedding, standard, str(path))
    if kind is not None and not isinstance(embedding, kind):
        found, expected = _KIND_NAMES[type(embedding)], _KIND_NAMES[kind]
        raise InvalidEmbeddingError(f"is a {found}, expected a {expected}", path=path)
    return embedding


def _check_header(path: Path, size: int) -> None:
    """Reads the header's length before safetensors does: a header over
    :data:`MAX_HEADER_BYTES` is refused unparsed; the header must be a JSON object whose
    tensors have a known dtype (torch cannot hold every safetensors dtype)."""

    def bad(message: str) -> InvalidEmbeddingError:
        return InvalidEmbeddingError(f"not a readable safetensors file ({message})", path=path)

    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise bad(f"{size} bytes, too short for a header")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES:
            raise bad(f"a header of {length} bytes, over the {MAX_HEADER_BYTES} limit")
        if 8 + length > size:
            raise bad(f"a header of {length} bytes in a file of {size}")
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise bad(f"the header is not JSON: {e}") from e
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info.get("dtype") if isinstance(info, dict) else None
        if dtype not in _DTYPES:
            raise bad(f"tensor {name[:64]!r} has dtype {str(dtype)[:16]!r}")


def _to_file(embedding: Embedding) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    meta = {
        "schema_version": SCHEMA_VERSION,
        "standard_id": embedding.standard_id,
        "standard_hash": embedding.standard_hash,
        "library_version": embedding.library_version,
        "created_at": embedding.created_at,
    }
    tensors = {"embedding": embedding.vector.detach().to("cpu", torch.float32).contiguous()}
    if isinstance(embedding, ModelEmbedding):
        meta |= {
            "format": MODEL_FORMAT,
            "model_id": embedding.model_id,
            "model_revision": embedding.model_revision or "",
            "model_spec": embedding.model_spec or "",
            "l_to": repr(float(embedding.l_to)),
            "l_from": repr(float(embedding.l_from)),
        }
    else:
        meta |= {
            "format": TASK_FORMAT,
            "dataset_id": embedding.dataset_id,
            "dataset_split": embedding.dataset_split,
            "gamma": repr(float(embedding.gamma)),
            "converged_accuracy": repr(float(embedding.converged_accuracy)),
        }
        for name in ("gammas", "accuracies", "mask_sizes"):
            tensors[f"sweep.{name}"] = getattr(embedding, name).to("cpu", torch.float64)
    return tensors, meta


def _from_file(tensors: dict[str, torch.Tensor], meta: dict[str, str], source: str) -> Embedding:
    def bad(message: str) -> InvalidEmbeddingError:
        return InvalidEmbeddingError(message, path=source)

    fmt = meta.get("format")
    if fmt not in (MODEL_FORMAT, TASK_FORMAT):
        raise bad(f"unknown format {fmt!r}: not an hf-stdembed embedding file")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise bad(
            f"unknown schema version {meta.get('schema_version')!r} (this hf-stdembed "
            f"{__version__} reads version {SCHEMA_VERSION}; try upgrading hf-stdembed)"
        )
    vector = tensors.get("embedding")
    if vector is None:
        raise bad("no 'embedding' tensor")
    _check_vector(vector, bad)

    for key, value in meta.items():
        if len(value) > MAX_METADATA_CHARS:
            raise bad(
                f"metadata {key[:64]!r} is {len(value)} characters, over the "
                f"{MAX_METADATA_CHARS} limit"
            )

    def text(key: str) -> str:
        if key not in meta:
            raise bad(f"metadata lacks {key!r}")
        return meta[key]

    def number(key: str) -> float:
        try:
            value = float(text(key))
        except ValueError as e:
            raise bad(f"metadata {key!r} is not a number: {meta[key]!r}") from e
        if not math.isfinite(value):
            raise bad(f"metadata {key!r} is not finite: {meta[key]!r}")
        return value

    def cosine(key: str) -> float:
        value = number(key)
        if abs(value) > 1 + COSINE_SLACK:
            raise bad(f"metadata {key!r} is {meta[key]!r}, not a cosine similarity in [-1, 1]")
        return value

    common = {
        "vector": vector,
        "standard_id": text("standard_id"),
        "standard_hash": text("standard_hash"),
        "library_version": text("library_version"),
        "created_at": text("created_at"),
    }
    if fmt == MODEL_FORMAT:
        return ModelEmbedding(
            **common,
            model_id=text("model_id"),
            model_revision=text("model_revision") or None,
            model_spec=meta.get("model_spec") or None,  # absent from files of 0.1
            l_to=cosine("l_to"),
            l_from=cosine("l_from"),
        )
    sweep = {}
    for name in ("gammas", "accuracies", "mask_sizes"):
        t = tensors.get(f"sweep.{name}")
        if t is None or t.ndim != 1 or not t.is_floating_point() or not torch.isfinite(t).all():
            raise bad(f"missing or invalid tensor 'sweep.{name}'")
        sweep[name] = t.double()
    if len({t.shape[0] for t in sweep.values()}) != 1:
        raise bad("the gamma sweep tensors have different lengths")
    return TaskEmbedding(
        **common,
        **sweep,
        dataset_id=text("dataset_id"),
        dataset_split=text("dataset_split"),
        gamma=number("gamma"),
        converged_accuracy=number("converged_accuracy"),
    )


def _check_vector(vector: torch.Tensor, bad) -> None:
    problem = vector_problem(vector)
    if problem is not None:
        raise bad(problem)


def _check_standard(embedding: Embedding, standard: Standard | None, source: str) -> None:
    if standard is None:
        known = builtin_standards()
        if embedding.standard_id not in known:
            raise StandardNotFoundError(
                f"{source}: unknown standard {embedding.standard_id!r}; pass its YAML file "
                "(--standard FILE.yaml) to read this embedding"
            )
        standard = known[embedding.standard_id]
    if embedding.standard_id != standard.id or embedding.standard_hash != standard.hash:
        raise StandardMismatchError(
            f"{source}: embedding of standard {embedding.standard_id!r} (hash "
            f"{embedding.standard_hash}) does not belong to standard {standard.id!r} "
            f"(hash {standard.hash})"
        )
    if embedding.vector.shape[0] != standard.dim:
        raise InvalidEmbeddingError(
            f"embedding has {embedding.vector.shape[0]} values but standard {standard.id!r} "
            f"has {standard.dim} baseline features",
            path=source,
        )
