"""What a card's ``hf_stdembed`` block holds: :class:`CardEntry`, where files go in a repo,
and the validation of a stranger's entries (:func:`card_entries`: a reason per malformed
entry, never an exception)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..embeddings import MAX_FILE_BYTES, ModelEmbedding
from ..errors import InvalidStandardError

CARD_TAG = "hf-stdembed"
METADATA_KEY = "hf_stdembed"
SCHEMA_VERSION = 1
EMBEDDING_FOLDER = "stdembed"
SECTION_START = "<!-- hf-stdembed:start -->"
SECTION_END = "<!-- hf-stdembed:end -->"
MAX_DIM = MAX_FILE_BYTES // 4
"""Largest ``dim`` believed: the float32 vector must fit in an embedding file."""

STANDARD_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_STANDARD_HASH_RE = re.compile(r"[0-9a-f]{8,64}")
# segments never start with ".": no "..", no hidden files
_FILE_RE = re.compile(rf"{EMBEDDING_FOLDER}/(?:[A-Za-z0-9_+-][A-Za-z0-9._+-]*/)*"
                      r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*\.safetensors")  # fmt: skip
_STANDARD_FILE_RE = re.compile(rf"{EMBEDDING_FOLDER}/[A-Za-z0-9_+-][A-Za-z0-9._+-]*\.ya?ml")
_MAX_MODEL_SPEC = 512
_COSINE_SLACK = 1e-3  # L_to / L_from are mean cosine similarities: [-1, 1] up to rounding


@dataclass(frozen=True)
class CardEntry:
    """One published embedding as the card records it."""

    standard_id: str
    standard_hash: str
    file: str  # path in the repo, under stdembed/
    sha256: str  # of the file's bytes
    dim: int  # N, the number of baseline features
    l_to: float
    l_from: float
    model_revision: str | None  # the model commit (or weights hash) embedded
    tool_version: str  # the hf-stdembed that wrote the entry
    model: str | None = None  # the model spec embedded (timm:..., transformers:..., a repo)
    standard_file: str | None = None  # a custom standard's YAML in the repo (stdembed/*.yaml)

    @property
    def fidelity(self) -> float:
        """``min(L_to, L_from)``."""
        return min(self.l_to, self.l_from)

    @classmethod
    def from_embedding(
        cls,
        embedding: ModelEmbedding,
        data: bytes,
        *,
        sha256: str,
        standard_file: str | None = None,
    ) -> CardEntry:
        """The entry for an embedding whose file holds ``data`` (with digest ``sha256``); the
        model spec is the one the embedding records (None when others cannot load it), and
        ``standard_file`` the path of a custom standard's YAML published beside it."""
        return cls(
            standard_id=embedding.standard_id,
            standard_hash=embedding.standard_hash,
            file=embedding_path(embedding.standard_id),
            sha256=sha256,
            dim=int(embedding.vector.shape[0]),
            l_to=float(embedding.l_to),
            l_from=float(embedding.l_from),
            model_revision=embedding.model_revision,
            tool_version=__version__,
            model=embedding.model_spec,
            standard_file=standard_file,
        )

    def to_metadata(self) -> dict[str, Any]:
        """The entry as card metadata (plain YAML types, in reading order); the optional
        ``model`` and ``standard_file`` only when set."""
        optional = {"model": self.model, "standard_file": self.standard_file}
        return {
            "file": self.file,
            "sha256": self.sha256,
            "dim": int(self.dim),
            "standard_hash": self.standard_hash,
            "l_to": float(self.l_to),
            "l_from": float(self.l_from),
            "fidelity": float(self.fidelity),
            "model_revision": self.model_revision,
            "tool_version": self.tool_version,
            **{k: v for k, v in optional.items() if v is not None},
        }


def embedding_path(standard_id: str) -> str:
    """Where a standard's embedding lives in a repo: ``stdembed/<standard_id>.safetensors``.

    Never at the repo root: timm loads every root ``*.safetensors`` as weights.

    Raises:
        InvalidStandardError: if the id cannot name a file (allowed: letters, digits, ``.``,
            ``_``, ``+``, ``-``; starting with a letter or digit).
    """
    if not STANDARD_ID_RE.fullmatch(standard_id):
        raise InvalidStandardError(
            f"standard id {standard_id!r} cannot name a file in a repo: use letters, digits, "
            "'.', '_', '+' and '-', starting with a letter or digit (at most 128 characters)"
        )
    return f"{EMBEDDING_FOLDER}/{standard_id}.safetensors"


def standard_path(standard_id: str) -> str:
    """Where a custom standard's YAML is published in a repo: ``stdembed/<standard_id>.yaml``.

    Raises:
        InvalidStandardError: as :func:`embedding_path`.
    """
    embedding_path(standard_id)
    return f"{EMBEDDING_FOLDER}/{standard_id}.yaml"


def card_entries(card_data: Any) -> tuple[dict[str, CardEntry], list[str]]:
    """The embeddings a card declares, and why any entry was rejected.

    Args:
        card_data (`dict`): the card's front matter (a stranger's: any type may be wrong).

    Returns:
        `tuple[dict[str, CardEntry], list[str]]`: valid entries by standard id, and one
        human-readable reason per rejected entry (or for a malformed ``hf_stdembed`` block).
        A card without the key gives ``({}, [])``.

    Example:
        ```py
        >>> entries, problems = card_entries(model_info.card_data.to_dict())
        >>> entries["resnet18-in1k-val"].fidelity
        0.87
        ```
    """
    if not isinstance(card_data, Mapping):
        return {}, [f"card metadata is a {type(card_data).__name__}, not a mapping"]
    block = card_data.get(METADATA_KEY)
    if block is None:
        return {}, []
    if not isinstance(block, Mapping):
        return {}, [f"'{METADATA_KEY}' is a {type(block).__name__}, not a mapping"]
    version = block.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        return {}, [
            f"'{METADATA_KEY}' has schema_version {version!r}; this hf-stdembed "
            f"{__version__} reads version {SCHEMA_VERSION} (try upgrading hf-stdembed)"
        ]
    embeddings = block.get("embeddings")
    if not isinstance(embeddings, Mapping):
        return {}, [f"'{METADATA_KEY}.embeddings' is a {type(embeddings).__name__}, not a mapping"]
    entries: dict[str, CardEntry] = {}
    reasons: list[str] = []
    for standard_id, raw in embeddings.items():
        if not isinstance(standard_id, str) or not STANDARD_ID_RE.fullmatch(standard_id):
            reasons.append(f"invalid standard id {standard_id!r}")
            continue
        try:
            entries[standard_id] = _entry(standard_id, raw)
        except _Malformed as e:
            reasons.append(f"{standard_id}: {e}")
    return entries, reasons


class _Malformed(Exception):
    pass


def _entry(standard_id: str, raw: Any) -> CardEntry:
    if not isinstance(raw, Mapping):
        raise _Malformed(f"entry is a {type(raw).__name__}, not a mapping")

    def field(name: str, kind: type | tuple[type, ...]) -> Any:
        if name not in raw:
            raise _Malformed(f"missing field {name!r}")
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise _Malformed(f"{name} is {value!r}, expected {_kind_name(kind)}")
        return value

    def matching(name: str, pattern: re.Pattern[str], what: str) -> str:
        value = field(name, str)
        if not pattern.fullmatch(value):
            raise _Malformed(f"{name} {value!r} is not {what}")
        return value

    file = matching("file", _FILE_RE, f"a .safetensors path under {EMBEDDING_FOLDER}/")
    dim = field("dim", int)
    if not 1 <= dim <= MAX_DIM:
        raise _Malformed(f"dim {dim} is out of range [1, {MAX_DIM}]")
    losses = {}
    for name in ("l_to", "l_from"):
        value = float(field(name, (int, float)))
        if not math.isfinite(value) or abs(value) > 1 + _COSINE_SLACK:
            raise _Malformed(f"{name} {value!r} is not a cosine similarity in [-1, 1]")
        losses[name] = value
    revision = field("model_revision", (str, type(None)))
    tool_version = field("tool_version", str)
    if revision is not None and not 0 < len(revision) <= 256:
        raise _Malformed("model_revision is empty or too long")
    if not 0 < len(tool_version) <= 64:
        raise _Malformed("tool_version is empty or too long")
    model = raw.get("model")
    if model is not None and (
        not isinstance(model, str)
        or not 0 < len(model) <= _MAX_MODEL_SPEC
        or not model.isprintable()
    ):
        raise _Malformed(f"model is not a model spec (printable text of 1 to {_MAX_MODEL_SPEC} "
                         "characters)")  # fmt: skip
    standard_file = raw.get("standard_file")
    if standard_file is not None and (
        not isinstance(standard_file, str) or not _STANDARD_FILE_RE.fullmatch(standard_file)
    ):
        raise _Malformed(f"standard_file is not a .yaml path under {EMBEDDING_FOLDER}/")
    return CardEntry(
        standard_id=standard_id,
        standard_hash=matching("standard_hash", _STANDARD_HASH_RE, "a lowercase hex hash"),
        file=file,
        sha256=matching("sha256", _HEX64_RE, "a sha256 (64 lowercase hex digits)"),
        dim=dim,
        model_revision=revision,
        tool_version=tool_version,
        model=model,
        standard_file=standard_file,
        **losses,
    )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", type(None): "null"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
