"""The README rendered anew: the human-readable section between its two markers (from
``templates/stdembed_section.md``), found and replaced outside code blocks."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from .entries import METADATA_KEY, SECTION_END, SECTION_START, card_entries


def render_section(block: Mapping[str, Any], repo_id: str) -> str:
    """The human-readable section for a metadata block, between the markers."""
    import jinja2

    entries, _ = card_entries({METADATA_KEY: block})
    with template_path("stdembed_section.md") as path:
        source = path.read_text(encoding="utf-8")
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False
    )
    environment.filters["code"] = _inline_code
    rendered = environment.from_string(source).render(
        entries=list(entries.values()), repo_id=repo_id
    )
    return f"{SECTION_START}\n{rendered.strip()}\n{SECTION_END}"


def _inline_code(value: object) -> str:
    """``value`` as Markdown inline code that no backtick or ``|`` inside can break out of
    (a table cell)."""
    text = str(value).replace("|", "\\|").replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_FENCE_RE = re.compile(r" {0,3}(`{3,}|~{3,})")


def _sections(lines: list[str]) -> tuple[list[tuple[int, int]], str | None]:
    """The sections the tool wrote, as ``(start line, end line)`` pairs: a start marker and
    the next end marker, each alone on its own line (from column 0) outside fenced code, with
    no other start marker between. Also the fence the text ends inside, if any."""
    found: list[tuple[int, int]] = []
    fence: str | None = None
    start: int | None = None
    for i, line in enumerate(lines):
        bare = line.rstrip("\r\n")
        opening = _FENCE_RE.match(bare)
        if fence is not None:
            if (
                opening
                and opening.group(1)[0] == fence[0]
                and len(opening.group(1)) >= len(fence)
                and not bare[opening.end() :].strip()
            ):
                fence = None
            continue
        if opening:
            fence = opening.group(1)
            continue
        if bare.rstrip(" \t") == SECTION_START:
            start = i
        elif bare.rstrip(" \t") == SECTION_END and start is not None:
            found.append((start, i))
            start = None
    return found, fence


def replace_section(text: str, section: str, newline: str) -> str:
    """``text`` with the first section the tool wrote replaced by ``section`` (further such
    sections removed: they are stale copies); the section is appended when there is none.
    Markers anywhere else are the owner's text and stay."""
    section = section.replace("\n", newline)
    lines = text.splitlines(keepends=True)
    spans, open_fence = _sections(lines)
    if not spans:
        body = text.rstrip()
        if open_fence:  # close the owner's unterminated code block, or the section is code
            body += newline + open_fence
        if not body:
            return f"{newline}{section}{newline}"
        return f"{body}{newline}{newline}{section}{newline}"
    pieces: list[str] = []
    last = 0
    for n, (start, end) in enumerate(spans):
        pieces += lines[last:start]
        if n == 0:
            ending = lines[end][len(lines[end].rstrip("\r\n")) :]
            pieces.append(section + ending)
        last = end + 1
    pieces += lines[last:]
    return "".join(pieces)


@contextlib.contextmanager
def template_path(name: str) -> Iterator[Path]:
    with resources.as_file(resources.files("hf_stdembed").joinpath("templates", name)) as path:
        yield path
