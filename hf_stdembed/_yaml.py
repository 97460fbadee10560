"""YAML from strangers: parsed without aliases and within a size limit.

``yaml.safe_load`` builds no objects but expands aliases: a few hundred bytes of nested
aliases (a "billion laughs") expand to gigabytes. Cards and standards are small plain
documents, so a text over the limit or with any alias is refused before it is built.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_YAML_BYTES = 1024 * 1024
"""Largest YAML text parsed (a card's front matter, a standard)."""

MAX_YAML_NESTING = 100
"""Deepest nesting of flow collections (``[``, ``{``) parsed: PyYAML's pure-Python scanner
takes time in the square of the depth (5,000 levels: seconds; a megabyte of ``[``: hours)."""


class UnsafeYAMLError(ValueError):
    """The text is not plain YAML this project reads: too large, an alias, or invalid."""


def load_plain_yaml(text: str, *, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """``yaml.safe_load(text)``, refusing texts over ``max_bytes`` and any alias.

    Raises:
        UnsafeYAMLError: the text is too large, uses an alias (``*name``), is nested too
            deeply, or is not valid YAML (the message says which).
    """
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise UnsafeYAMLError(f"{size} bytes of YAML, over the {max_bytes} byte limit")
    if _flow_depth(text) > MAX_YAML_NESTING:
        raise UnsafeYAMLError(f"YAML nested deeper than {MAX_YAML_NESTING} levels")
    try:
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text)):
            raise UnsafeYAMLError("YAML aliases (*name) are not allowed")
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UnsafeYAMLError(f"not valid YAML: {_one_line(e)}") from e
    except RecursionError as e:  # nesting deeper than the parser's recursion allows
        raise UnsafeYAMLError("YAML nested too deeply") from e


def _flow_depth(text: str) -> int:
    """The deepest run of open ``[`` / ``{`` in ``text``, brackets inside strings counted too
    (an over-estimate only refuses a card no one writes)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


_BRACKETS = re.compile(r"[\[\]{}]")


def _one_line(error: yaml.YAMLError) -> str:
    """A YAML error as one line: the problem and where (PyYAML's text spans several lines)."""
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(error).split())
