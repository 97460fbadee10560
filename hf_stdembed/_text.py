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
