"""The evaluation's memo: linear probes, LogME, Q and the research scores kept on disk.

Each value lives in ``<cache_dir>/evaluation/<kind>/<digest>.safetensors`` (a keyed cache
file of :mod:`hf_stdembed._cache`), keyed by the JSON of ``[MEMO_VERSION, key]``: a rerun with
the same inputs computes nothing. The key's text is part of every memo on disk; it is written
as it always was (sorted keys, json's default separators, ``str`` for what JSON cannot hold).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .._cache import keyed_path, read_keyed, write_keyed
from .._hashing import canonical_json
from ..core import TaskEmbeddingResult

MEMO_VERSION = 2
"""Bumped when a memoised computation changes (2: Q's head is projected, not reparameterised)."""

_DIGEST_CHARS = 24


def memo_key_text(key: Any) -> str:
    """The text a memo is keyed by (stored in its file, digested into its name)."""
    return canonical_json([MEMO_VERSION, key], compact=False, default=str)


def memo_path(cache_dir: str | Path, kind: str, key: Any) -> tuple[Path, str]:
    """Where :func:`memo` keeps the value for ``key``, and the key's text stored with it."""
    text = memo_key_text(key)
    return keyed_path(Path(cache_dir) / "evaluation" / kind, text, _DIGEST_CHARS), text


def memo(
    cache_dir: str | Path | None, kind: str, key: Any, fn: Callable[..., Any], *args, **kw
) -> Any:
    """``fn(*args, **kw)`` (a float or a :class:`TaskEmbeddingResult`), kept under
    ``cache_dir/evaluation/<kind>/`` (nothing is kept without ``cache_dir``)."""
    if cache_dir is None:
        return fn(*args, **kw)
    path, text = memo_path(cache_dir, kind, key)
    saved = read_entry(path, text)
    if saved is not None:
        tensors, scalars = saved
        try:
            if "value" in scalars:
                return float(scalars["value"])
            return TaskEmbeddingResult(**tensors, **scalars)
        except (TypeError, ValueError):  # a file of another layout is recomputed, not fatal
            pass
    value = fn(*args, **kw)
    if isinstance(value, TaskEmbeddingResult):
        fields = asdict(value)
        tensors = {k: v for k, v in fields.items() if isinstance(v, torch.Tensor)}
        scalars = {k: v for k, v in fields.items() if k not in tensors}
    else:
        tensors, scalars = {}, {"value": float(value)}
    write_entry(path, text, tensors, scalars)
    return value


def memo_tensor(
    cache_dir: str | Path | None, kind: str, key: Any, fn: Callable[..., Any], *args, **kw
) -> torch.Tensor:
    """``fn(*args, **kw)``, a tensor, kept like :func:`memo`'s values (same key scheme)."""
    if cache_dir is None:
        return fn(*args, **kw)
    path, text = memo_path(cache_dir, kind, key)
    saved = read_entry(path, text)
    if saved is not None and "value" in saved[0]:
        return saved[0]["value"]
    value = fn(*args, **kw)
    write_entry(path, text, {"value": value}, {})
    return value


def read_entry(path: Path, key_text: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Tensors and JSON scalars of a memo file written for ``key_text``; None when absent,
    stale or unreadable (then it is recomputed)."""
    saved = read_keyed(path, key_text)
    if saved is None:
        return None
    tensors, metadata = saved
    try:
        return tensors, json.loads(metadata["scalars"])
    except (KeyError, ValueError):  # a foreign file is recomputed, not fatal
        return None


def write_entry(
    path: Path, key_text: str, tensors: dict[str, torch.Tensor], scalars: dict[str, Any]
) -> None:
    """Writes a memo file: ``tensors``, and ``scalars`` as JSON in its metadata."""
    write_keyed(path, key_text, tensors, {"scalars": json.dumps(scalars)})
