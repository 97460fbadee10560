"""The one card reader: a README's text (or a listing's already parsed card data) read as a
stranger's, into its front matter, the embeddings it declares, and why anything was rejected.

Every path that reads a card goes through :func:`read_card`: a directory registry's listing,
the crawl (of either listing's card data), ``verify``, and ``publish`` before it edits a card.
The YAML is read by :func:`~hf_stdembed._yaml.load_plain_yaml` (no aliases, a size limit),
not by ``huggingface_hub``'s ``RepoCard``: its ``yaml.safe_load`` expands aliases without
limit, and its ``ModelCardData`` raises ``TypeError`` on ``tags: 5`` even with
``ignore_metadata_errors=True``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._text import declared_datasets
from .._yaml import UnsafeYAMLError, load_plain_yaml
from ..errors import InvalidCardError
from .entries import CardEntry, card_entries

EMPTY_FRONT_RE = re.compile(r"^(\s*---(?:\r\n|\r|\n))(---[ \t]*(?:\r\n|\n|$))")
"""An empty front matter (``---`` twice), which the Hub's pattern does not match."""
_OPENING_RE = re.compile(r"\s*---[ \t]*(?:\r\n|\r|\n|$)")
_CANNOT_READ = "the README's front matter cannot be read"


@dataclass(frozen=True)
class CardReading:
    """A card read as a stranger's.

    Attributes:
        data: the front matter; ``{}`` when there is none or it cannot be read.
        entries: the valid embeddings it declares, by standard id.
        problems: why the front matter cannot be read, or one reason per rejected entry (or
            for a malformed ``hf_stdembed`` block); empty when all is well.
        readable: False when the front matter itself cannot be read (``problems[0]`` says
            why; ``data`` and ``entries`` are empty).
    """

    data: dict[str, Any] = field(default_factory=dict)
    entries: dict[str, CardEntry] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    readable: bool = True

    @property
    def tags(self) -> list[Any] | None:
        """The ``tags`` as a list (one string is one tag; none is ``[]``); None when they
        are something else (``tags: 5``)."""
        tags = self.data.get("tags")
        if tags is None:
            return []
        if isinstance(tags, str):
            return [tags]
        return tags if isinstance(tags, list) else None

    @property
    def datasets(self) -> tuple[str, ...]:
        """The dataset ids the card's top-level ``datasets:`` declares (what the model was
        trained or fine-tuned on), capped and cleaned
        (:func:`~hf_stdembed._text.declared_datasets`): a stranger's claim, only ever used to
        put a model on a shortlist."""
        return declared_datasets(self.data.get("datasets"))


def read_card(card: str | Mapping[str, Any] | None) -> CardReading:
    """A README's text, or card data a listing already parsed (the Hub's ``cardData``, a
    :class:`~hf_stdembed.registry.RepoSummary`'s ``card_data``), read as a stranger's.

    Never raises for what the card holds: a front matter that cannot be read (invalid YAML,
    an alias, too large, not a mapping with text keys, an opening ``---`` never closed) gives
    ``readable=False`` and its reason; malformed entries give reasons (:func:`card_entries`).

    Args:
        card: the README's text (a leading byte-order mark is ignored), its parsed front
            matter, or None (no README).

    Returns:
        `CardReading`: the front matter, the valid entries and the problems.

    Example:
        ```py
        >>> card = read_card(readme_text)
        >>> card.entries["resnet18-in1k-val"].fidelity if card.readable else card.problems[0]
        0.87
        ```
    """
    if card is None:
        return CardReading()
    if isinstance(card, str):
        try:
            data = read_front_matter(card)
        except InvalidCardError as e:
            return _unreadable(str(e))
        if not data and _unclosed(card.removeprefix("\ufeff")):
            return _unreadable(f"{_CANNOT_READ}: its opening '---' line is never closed by another")
    elif isinstance(card, Mapping) and all(isinstance(k, str) for k in card):
        data = dict(card)
    else:
        what = type(card).__name__ if not isinstance(card, Mapping) else "mapping without text keys"
        return _unreadable(f"card metadata is a {what}, not a mapping with text keys")
    entries, problems = card_entries(data)
    return CardReading(data, entries, tuple(problems))


def read_front_matter(text: str) -> dict[str, Any]:
    """A README's YAML front matter as a dict, read as a stranger's: ``{}`` when it has none.

    A leading UTF-8 byte-order mark is ignored. The YAML is parsed without aliases and
    within :data:`~hf_stdembed._yaml.MAX_YAML_BYTES` (see :mod:`hf_stdembed._yaml`).
    :func:`read_card` reads a whole card (entries too) without raising.

    Raises:
        InvalidCardError: the front matter is too large, uses an alias, is not valid YAML,
            or is not a mapping with text keys.
    """
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    match = REGEX_YAML_BLOCK.search(text.removeprefix("\ufeff"))
    if match is None:
        return {}
    try:
        data = load_plain_yaml(match.group(2))
    except UnsafeYAMLError as e:
        raise InvalidCardError(f"{_CANNOT_READ}: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise InvalidCardError("the README's front matter is not a mapping with text keys")
    return data


def _unclosed(text: str) -> bool:
    """Whether ``text`` opens a front matter (a first line ``---``) that no line closes."""
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    return (
        _OPENING_RE.match(text) is not None
        and REGEX_YAML_BLOCK.search(text) is None
        and EMPTY_FRONT_RE.match(text) is None
    )


def _unreadable(reason: str) -> CardReading:
    return CardReading(problems=(reason,), readable=False)
