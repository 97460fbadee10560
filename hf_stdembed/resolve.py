"""Standard resolution: a YAML file, a built-in id, or a standard the index has seen.

A custom standard is printed by id everywhere (``index list``, cards), so its id must work
wherever a standard is asked for: ids resolve through the built-in standards first, then
the standards stored in the local index (those a user gave as a YAML file to a crawl:
``select --standard FILE``, ``index update --standard-file FILE``; those fetched from a
repo's ``standard_file``; those carried by an imported index). A stored standard keeps
its provenance: one fetched from a stranger is loaded with ``trusted=False`` (its baseline
may not be a Python entry point).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StandardNotFoundError
from .standards import Standard, builtin_standards, get_standard

if TYPE_CHECKING:
    from .index import EmbeddingIndex


def is_standard_file(id_or_path: str | Path) -> bool:
    """Whether a ``--standard`` value names a YAML file (rather than an id)."""
    text = str(id_or_path)
    return text.endswith((".yaml", ".yml")) or Path(text).is_file()


def file_standard(id_or_path: str | Path) -> Standard | None:
    """The standard of a ``--standard`` value that names a YAML file (read and validated now,
    so that a bad file fails before any work), else None: the value is an id, to resolve with
    :func:`resolve_standard` once the index that may know it is open.

    Raises:
        InvalidStandardError: the file is not a valid standard.
        StandardNotFoundError: a ``.yaml`` / ``.yml`` value names no file.
    """
    return get_standard(id_or_path) if is_standard_file(id_or_path) else None


def resolve_standard(id_or_path: str | Path, *, index: EmbeddingIndex | None = None) -> Standard:
    """The standard a ``--standard`` value names.

    Args:
        id_or_path: a YAML file, a built-in id, or the id (or hash) of a standard stored in
            ``index``.
        index: the local index whose stored standards also resolve.

    Returns:
        The standard.

    Raises:
        StandardNotFoundError: nothing matches (the message names the known ids), or an id
            names several stored standards (pass the hash or the YAML file instead).
        InvalidStandardError: the file or the stored definition is not a valid standard.

    Example:
        >>> resolve_standard("newcomer-digits", index=EmbeddingIndex.open())  # doctest: +SKIP
    """
    text = str(id_or_path)
    if is_standard_file(text):
        return get_standard(text)
    builtins = builtin_standards()
    if text in builtins:
        return builtins[text]
    stored = index.standards() if index is not None else []
    matches = [s for s in stored if text in (s.standard_id, s.standard_hash)]
    if len(matches) == 1:
        return matches[0].load()
    if len(matches) > 1:
        hashes = ", ".join(s.standard_hash for s in matches)
        raise StandardNotFoundError(
            f"standard id {text!r} names {len(matches)} standards in the index (hashes "
            f"{hashes}): pass the hash or the standard's YAML file"
        )
    seen = sorted({s.standard_id for s in stored})
    more = f"; standards seen in the index: {', '.join(seen)}" if seen else ""
    raise StandardNotFoundError(
        f"unknown standard {text!r}; built-in standards: {', '.join(sorted(builtins))}{more} "
        "(or pass the path of a standard YAML file)"
    )


def resolve_standard_or_indexed(
    id_or_path: str | Path, *, index_path: str | Path | None = None
) -> Standard:
    """:func:`resolve_standard` for commands that have no index open: a YAML file or a
    built-in id first; then, only when that fails and a local index exists, its stored
    standards (so a custom standard's id printed by ``index list`` or a card works in
    ``embed``, ``task``, ``rank``, ``publish``, ``verify``, ``evaluate`` and ``standards show``).

    Args:
        id_or_path: a YAML file, a built-in id, or a standard id (or hash) the index stores.
        index_path: the index folder (default: :func:`~hf_stdembed.index.default_index_path`).

    Raises:
        StandardNotFoundError, InvalidStandardError: as :func:`resolve_standard`.
    """
    from .index import EmbeddingIndex, default_index_path

    try:
        return resolve_standard(id_or_path)
    except StandardNotFoundError:
        folder = Path(index_path) if index_path is not None else default_index_path()
        if not (folder / "index.sqlite").is_file():
            raise
        with EmbeddingIndex.open(folder) as index:
            return resolve_standard(id_or_path, index=index)
