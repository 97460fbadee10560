"""Keyed safetensors cache files: the one on-disk cache of features and evaluation memos.

A cache file is named by a digest of its key's text (see :mod:`hf_stdembed._hashing`) and
holds tensors plus string metadata; the metadata's ``"key"`` is the full key text, so a file
that was written for another key (a digest collision, a renamed file) is never answered. A
missing, torn, foreign or mismatching file reads as ``None`` (the caller recomputes); writes
are atomic (:func:`hf_stdembed._files.atomic_path`), so a crash leaves no torn file.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ._files import atomic_path

__all__ = ["KEY", "keyed_path", "read_keyed", "write_keyed"]

logger = logging.getLogger(__name__)

KEY = "key"
"""The metadata entry holding the key's text."""


def keyed_path(folder: str | Path, key_text: str, chars: int) -> Path:
    """``<folder>/<first chars hex digits of sha256(key_text)>.safetensors``.

    The text is digested as given: build it with :func:`hf_stdembed._hashing.canonical_json`
    (a cache's key spelling is part of every file on disk and must never change).
    """
    digest = hashlib.sha256(key_text.encode()).hexdigest()[:chars]
    return Path(folder) / f"{digest}.safetensors"


def read_keyed(
    path: Path, key_text: str, *, what: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """The tensors and metadata of a cache file written for ``key_text``.

    Args:
        path: the file.
        key_text: the key's text, as written by :func:`write_keyed`.
        what: a name for warnings (``"feature cache"``); None: a rejected file is silent.

    Returns:
        ``(tensors, metadata)``, or None when the file is absent, unreadable (torn, foreign)
        or was written for another key.
    """
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get(KEY) != key_text:
                if what is not None:
                    logger.warning("ignoring stale %s %s", what, path)
                return None
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except Exception as e:  # a torn or foreign file is recomputed, not fatal
        if what is not None:
            logger.warning("ignoring unreadable %s %s: %s", what, path, e)
        return None
    return tensors, metadata


def write_keyed(
    path: Path, key_text: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> None:
    """Writes ``tensors`` with ``metadata`` and ``key_text`` (under :data:`KEY`) atomically."""
    with atomic_path(path) as temp:
        save_file(
            {name: t.contiguous() for name, t in tensors.items()},
            temp,
            metadata={**metadata, KEY: key_text},
        )
