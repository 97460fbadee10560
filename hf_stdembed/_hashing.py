"""Canonical JSON and its digest: the one way this package names content by a hash.

Cache keys, content hashes and file names all come from here, so two places never disagree on
what "the same key" means. The text of a key is part of every cache on disk: changing how it
is written invalidates them, so the two spellings in use are kept as options.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

__all__ = ["canonical_json", "json_digest"]


def canonical_json(
    value: Any,
    *,
    compact: bool = True,
    default: Callable[[Any], Any] | None = None,
    ensure_ascii: bool = True,
) -> str:
    """``value`` as JSON with sorted keys: compact (``","`` and ``":"``) unless ``compact`` is
    false (json's default ``", "`` and ``": "``, the spelling of the evaluation memo keys);
    ``default`` converts what JSON cannot hold and ``ensure_ascii`` (false: non-ASCII text kept
    as is, the spelling of embedding file headers) is as in :func:`json.dumps`."""
    separators = (",", ":") if compact else None
    return json.dumps(
        value, sort_keys=True, separators=separators, default=default, ensure_ascii=ensure_ascii
    )


def json_digest(
    value: Any,
    chars: int = 32,
    *,
    compact: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """The first ``chars`` hex digits of the sha256 of :func:`canonical_json` of ``value``."""
    text = canonical_json(value, compact=compact, default=default)
    return hashlib.sha256(text.encode()).hexdigest()[:chars]
