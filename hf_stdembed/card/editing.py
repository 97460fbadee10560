"""Editing a README to record published embeddings (:func:`update_card`): the tag, the
``hf_stdembed`` block and the rendered section change; every other front matter line and all
of the owner's prose are kept byte for byte. A new card comes from ``templates/modelcard.md``
through ``huggingface_hub``'s :class:`~huggingface_hub.ModelCard`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._text import shorten
from ..errors import InvalidCardError
from .entries import CARD_TAG, METADATA_KEY, SCHEMA_VERSION, CardEntry
from .reading import EMPTY_FRONT_RE, CardReading, read_card, read_front_matter
from .section import render_section, replace_section, template_path


def update_card(readme: str | None, entries: list[CardEntry], *, repo_id: str) -> str:
    """The README with ``entries`` recorded: tag, metadata and the rendered section.

    The card is edited in place, as text: only the ``tags`` list (which gains
    ``hf-stdembed``), the ``hf_stdembed`` block and the marked section change. Every other
    front matter line (comments, ``~``, quoting, key order) and every word of the body are
    kept. Entries of other standards already in the card are kept (entries of the same
    standard are replaced). The section is the text between the two markers, each alone on
    its own line outside code blocks (markers quoted in prose or code are text, never a
    section); a card without one gets it appended. A leading byte-order mark is dropped (the
    Hub would not see the front matter behind it). A missing or blank README becomes a new
    card from ``templates/modelcard.md``. Publishing the same entries twice gives the same
    README.

    Args:
        readme (`str`, *optional*): the current README.md, or None when the repo has none.
        entries (`list[CardEntry]`): the embeddings being published.
        repo_id (`str`): the repo, for a new card's title and the section's instructions.

    Returns:
        `str`: the new README.md.

    Raises:
        InvalidCardError: the card cannot be edited (see :func:`editable_card`).

    Example:
        ```py
        >>> text = update_card("# My model\\n", [entry], repo_id="me/model")
        >>> read_front_matter(text)["tags"]
        ['hf-stdembed']
        ```
    """
    from huggingface_hub import ModelCard, ModelCardData

    if not entries:
        raise ValueError("Invalid entries value: [] (need at least one embedding to record)")
    text = (readme or "").removeprefix("\ufeff")
    if not text.strip():
        block = _merged_block(None, entries)
        data = ModelCardData(tags=[CARD_TAG])
        data[METADATA_KEY] = block
        with template_path("modelcard.md") as template:
            card = ModelCard.from_template(
                data,
                template_path=str(template),
                repo_id=repo_id,
                stdembed_section=render_section(block, repo_id),
            )
        return str(card)

    card = editable_card(text, repo_id=repo_id)
    data, tags = card.data, card.tags or []
    block = _merged_block(data.get(METADATA_KEY), entries)
    newline = "\r\n" if "\r\n" in text else "\n"
    head, front, tail, body = _split_card(text, newline)
    edits: dict[str, Any] = {} if CARD_TAG in tags else {"tags": [*tags, CARD_TAG]}
    edits[METADATA_KEY] = block
    front = _edit_front_matter(front, data, edits, newline)
    body = replace_section(body, render_section(block, repo_id), newline)
    return f"{head}{front}{tail}{body}"


def editable_card(readme: str | None, *, repo_id: str) -> CardReading:
    """The README read (:func:`~hf_stdembed.card.read_card`), refused unless publishing can
    edit it: its front matter readable, its ``tags`` a list, its ``hf_stdembed`` block and
    every entry well-formed (an entry of another version, or one hand-edited wrong, is not
    overwritten unseen).

    Raises:
        InvalidCardError: why not, and to fix it, then publish again.
    """
    card = read_card(readme)
    if not card.readable:
        raise InvalidCardError(f"{card.problems[0]}; fix it, then publish again", repo_id=repo_id)
    tags = card.data.get("tags")
    if card.tags is None:
        raise InvalidCardError(
            f"the README's front matter cannot be read: its 'tags' is a {type(tags).__name__}; "
            "make it a list, then publish again",
            repo_id=repo_id,
        )
    if card.problems:
        raise InvalidCardError(
            f"the README's '{METADATA_KEY}' metadata cannot be read: "
            f"{shorten('; '.join(card.problems))}; fix or remove it, then publish again",
            repo_id=repo_id,
        )
    return card


def _merged_block(existing: Any, entries: list[CardEntry]) -> dict[str, Any]:
    """The metadata block: existing entries of other standards kept as they are (an unknown
    future field survives), those of the published standards replaced."""
    embeddings: dict[str, Any] = {}
    if (
        isinstance(existing, Mapping)
        and existing.get("schema_version") == SCHEMA_VERSION
        and isinstance(existing.get("embeddings"), Mapping)
    ):
        embeddings.update(existing["embeddings"])
    for entry in entries:
        embeddings[entry.standard_id] = entry.to_metadata()
    ordered = dict(sorted(embeddings.items(), key=lambda item: str(item[0])))
    return {"schema_version": SCHEMA_VERSION, "embeddings": ordered}


def _split_card(text: str, newline: str) -> tuple[str, str, str, str]:
    """``(opening, front matter YAML, closing, body)`` of a README; a README without front
    matter gets empty delimiters to fill."""
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    empty = EMPTY_FRONT_RE.match(text)
    if empty is not None:
        return empty.group(1), "", newline + empty.group(2), text[empty.end() :]
    match = REGEX_YAML_BLOCK.search(text)
    if match is None:
        return f"---{newline}", "", f"{newline}---{newline}", text
    return match.group(1), match.group(2), match.group(3), text[match.end() :]


def _dump(key: str, value: Any, newline: str) -> str:
    """``key: value`` as block YAML, without a final line break."""
    return _dump_all({key: value}, newline)


def _dump_all(data: dict[str, Any], newline: str) -> str:
    """``data`` as block YAML, without a final line break: readable Unicode unless a
    character would not read back as written (PyYAML writes a raw NEL, read as a break)."""
    import yaml

    text = ""
    for readable in (True, False):
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=readable, width=4096)
        if readable and _same_yaml(yaml.safe_load(text), data):
            break
    return text.rstrip("\n").replace("\n", newline)


def _same_yaml(a: Any, b: Any) -> bool:
    import yaml

    return yaml.safe_dump(a, sort_keys=True) == yaml.safe_dump(b, sort_keys=True)


def _edit_front_matter(
    front: str, data: dict[str, Any], edits: dict[str, Any], newline: str
) -> str:
    """The front matter with each key of ``edits`` set, as text: the entry of a key we own
    is replaced where it stands (``tags`` in block style only gains a line), a missing key is
    appended, and nothing else changes. Where a layout is too unusual to edit in place (a
    flow mapping, explicit keys), or the edit would not read back as intended, the front
    matter is written anew from its data (comments then lost, values kept)."""
    try:
        edited = _edit_in_place(front, edits, newline)
    except _Unusual:
        edited = None
    if edited is not None:
        try:
            reread = read_front_matter(f"---\n{edited}\n---\n")
        except InvalidCardError:
            reread = None
        if reread is not None and _same_yaml(reread, {**data, **edits}):
            return edited
    return _dump_all({**data, **edits}, newline)


class _Unusual(Exception):
    pass


def _edit_in_place(front: str, edits: dict[str, Any], newline: str) -> str:
    import yaml

    root = yaml.compose(front, Loader=yaml.SafeLoader)  # nodes only: builds no object
    pairs = []
    if root is not None:
        if not isinstance(root, yaml.MappingNode) or root.flow_style:
            raise _Unusual
        pairs = root.value
    spans: dict[str, list[tuple[int, int, yaml.Node]]] = {}
    for key, value in pairs:
        if key.start_mark.column != 0:
            raise _Unusual  # an explicit key (? key) or an indented mapping
        if isinstance(key, yaml.ScalarNode) and key.value in edits:
            start = key.start_mark.index
            spans.setdefault(key.value, []).append((start, _entry_end(front, value), value))
    replacements: list[tuple[int, int, str]] = []
    appended: list[str] = []
    for name, value in edits.items():
        found = spans.get(name, [])
        for start, end, _ in found[:-1]:  # duplicate keys: the last one is the one read
            replacements.append((start, _next_line(front, end), ""))
        if not found:
            appended.append(_dump(name, value, newline))
            continue
        start, end, node = found[-1]
        if (
            name == "tags"
            and isinstance(node, yaml.SequenceNode)
            and not node.flow_style
            and node.value
        ):  # a block list of tags gains one line, in the list's own indentation
            item = " " * node.start_mark.column + "- " + CARD_TAG
            replacements.append((end, end, newline + item))
        else:
            replacements.append((start, end, _dump(name, value, newline)))
    for start, end, new in sorted(replacements, reverse=True):
        front = front[:start] + new + front[end:]
    if appended:
        kept = front.rstrip("\r\n")
        front = newline.join(([kept] if kept.strip() else []) + appended)
    return front


def _entry_end(text: str, node: Any) -> int:
    """Where a top-level value ends: the end of the line of its last character (so a comment
    on that line goes with it; comments on the lines after stay)."""
    import yaml

    while isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) and not node.flow_style:
        if not node.value:
            break
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    end = node.end_mark.index
    while end > 0 and text[end - 1] in " \t\r\n":
        end -= 1
    line_end = text.find("\n", end)
    if line_end == -1:
        return len(text)
    return line_end - 1 if text[line_end - 1] == "\r" else line_end


def _next_line(text: str, end: int) -> int:
    """The start of the line after the one ``end`` lies on."""
    line_end = text.find("\n", end)
    return len(text) if line_end == -1 else line_end + 1
