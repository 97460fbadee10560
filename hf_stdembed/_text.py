"""Text from strangers, made safe to store and show."""

from __future__ import annotations

MAX_REASON_CHARS = 300
"""Longest reason stored in the index or printed: a card or file can hold megabytes of text,
and a reason quotes it."""


def shorten(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, ending with an ellipsis when cut.

    Example:
        >>> shorten("x" * 400, 10)
        'xxxxxxxxx…'
    """
    if limit < 1:
        raise ValueError(f"Invalid limit value: {limit}")
    return text if len(text) <= limit else text[: limit - 1] + "…"


MAX_DECLARED_DATASETS = 16
"""Most datasets kept of what a card declares (``datasets:``); the rest are dropped."""
MAX_DATASET_ID_CHARS = 200
"""Longest declared dataset id kept (a Hub id is at most 96 + 1 + 96 characters); a longer
one is dropped, not cut (a cut id would name another dataset)."""


def declared_datasets(value: object) -> tuple[str, ...]:
    """The dataset ids a card's ``datasets:`` declares, read as a stranger's: one string or a
    list of them; anything else (a number, a mapping) declares none. Entries that are not
    strings, empty, longer than :data:`MAX_DATASET_ID_CHARS` or not printable are dropped,
    repeats too; at most :data:`MAX_DECLARED_DATASETS` are kept, in the card's order.

    Example:
        >>> declared_datasets(["uoft-cs/cifar10", 5, " cifar100 ", "uoft-cs/cifar10"])
        ('uoft-cs/cifar10', 'cifar100')
        >>> declared_datasets({"name": "x"})
        ()
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    kept: dict[str, None] = {}
    for entry in value:
        if len(kept) >= MAX_DECLARED_DATASETS:
            break
        if not isinstance(entry, str) or len(entry) > MAX_DATASET_ID_CHARS + 64:
            continue
        entry = entry.strip()
        if 0 < len(entry) <= MAX_DATASET_ID_CHARS and entry.isprintable():
            kept.setdefault(entry, None)
    return tuple(kept)
