"""Model cards: what a published embedding records in its repo's README.md.

Publishing adds the tag ``hf-stdembed`` and one namespaced metadata key to the card's YAML
front matter::

    tags: [..., hf-stdembed]
    hf_stdembed:
      schema_version: 1
      embeddings:
        resnet18-in1k-val:          # one entry per standard
          file: stdembed/resnet18-in1k-val.safetensors
          sha256: 3b1f...           # of the file's bytes
          dim: 512
          standard_hash: 9c0e...
          l_to: 0.91
          l_from: 0.87
          fidelity: 0.87            # min(l_to, l_from), for people reading the card
          model_revision: 5d2c...   # the commit embedded
          tool_version: 0.1.0
          model: timm:org/name      # optional: the model spec embedded (loadable)
          standard_file: stdembed/my-standard.yaml  # optional: a custom standard's YAML

and a short human-readable section (``templates/stdembed_section.md``) between two HTML
comment markers, each alone on its own line, so publishing again replaces it. An existing card
is edited as text (:func:`update_card`): every other front matter line, comments included,
and all of the owner's prose are kept byte for byte. A new card comes from
``templates/modelcard.md`` through ``huggingface_hub``'s :class:`~huggingface_hub.ModelCard`.

Cards of other people's repos are read by crawlers, so :func:`card_entries` trusts no type:
a malformed entry becomes a reason, never an exception.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from . import __version__
from ._yaml import UnsafeYAMLError, load_plain_yaml
from .embeddings import MAX_FILE_BYTES, ModelEmbedding
from .errors import InvalidCardError, InvalidStandardError

CARD_TAG = "hf-stdembed"
METADATA_KEY = "hf_stdembed"
SCHEMA_VERSION = 1
EMBEDDING_FOLDER = "stdembed"
SECTION_START = "<!-- hf-stdembed:start -->"
SECTION_END = "<!-- hf-stdembed:end -->"
MAX_DIM = MAX_FILE_BYTES // 4
"""Largest ``dim`` believed: the float32 vector must fit in an embedding file."""

STANDARD_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_STANDARD_HASH_RE = re.compile(r"[0-9a-f]{8,64}")
# segments never start with ".": no "..", no hidden files
_FILE_RE = re.compile(rf"{EMBEDDING_FOLDER}/(?:[A-Za-z0-9_+-][A-Za-z0-9._+-]*/)*"
                      r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*\.safetensors")  # fmt: skip
_STANDARD_FILE_RE = re.compile(rf"{EMBEDDING_FOLDER}/[A-Za-z0-9_+-][A-Za-z0-9._+-]*\.ya?ml")
_MAX_MODEL_SPEC = 512
_COSINE_SLACK = 1e-3  # L_to / L_from are mean cosine similarities: [-1, 1] up to rounding


@dataclass(frozen=True)
class CardEntry:
    """One published embedding as the card records it."""

    standard_id: str
    standard_hash: str
    file: str  # path in the repo, under stdembed/
    sha256: str  # of the file's bytes
    dim: int  # N, the number of baseline features
    l_to: float
    l_from: float
    model_revision: str | None  # the model commit (or weights hash) embedded
    tool_version: str  # the hf-stdembed that wrote the entry
    model: str | None = None  # the model spec embedded (timm:..., transformers:..., a repo)
    standard_file: str | None = None  # a custom standard's YAML in the repo (stdembed/*.yaml)

    @property
    def fidelity(self) -> float:
        """``min(L_to, L_from)``."""
        return min(self.l_to, self.l_from)

    @classmethod
    def from_embedding(
        cls,
        embedding: ModelEmbedding,
        data: bytes,
        *,
        sha256: str,
        standard_file: str | None = None,
    ) -> CardEntry:
        """The entry for an embedding whose file holds ``data`` (with digest ``sha256``); the
        model spec is the one the embedding records (None when others cannot load it), and
        ``standard_file`` the path of a custom standard's YAML published beside it."""
        return cls(
            standard_id=embedding.standard_id,
            standard_hash=embedding.standard_hash,
            file=embedding_path(embedding.standard_id),
            sha256=sha256,
            dim=int(embedding.vector.shape[0]),
            l_to=float(embedding.l_to),
            l_from=float(embedding.l_from),
            model_revision=embedding.model_revision,
            tool_version=__version__,
            model=embedding.model_spec,
            standard_file=standard_file,
        )

    def to_metadata(self) -> dict[str, Any]:
        """The entry as card metadata (plain YAML types, in reading order); the optional
        ``model`` and ``standard_file`` only when set."""
        optional = {"model": self.model, "standard_file": self.standard_file}
        return {
            "file": self.file,
            "sha256": self.sha256,
            "dim": int(self.dim),
            "standard_hash": self.standard_hash,
            "l_to": float(self.l_to),
            "l_from": float(self.l_from),
            "fidelity": float(self.fidelity),
            "model_revision": self.model_revision,
            "tool_version": self.tool_version,
            **{k: v for k, v in optional.items() if v is not None},
        }


def embedding_path(standard_id: str) -> str:
    """Where a standard's embedding lives in a repo: ``stdembed/<standard_id>.safetensors``.

    Never at the repo root: timm loads every root ``*.safetensors`` as weights.

    Raises:
        InvalidStandardError: if the id cannot name a file (allowed: letters, digits, ``.``,
            ``_``, ``+``, ``-``; starting with a letter or digit).
    """
    if not STANDARD_ID_RE.fullmatch(standard_id):
        raise InvalidStandardError(
            f"standard id {standard_id!r} cannot name a file in a repo: use letters, digits, "
            "'.', '_', '+' and '-', starting with a letter or digit (at most 128 characters)"
        )
    return f"{EMBEDDING_FOLDER}/{standard_id}.safetensors"


def standard_path(standard_id: str) -> str:
    """Where a custom standard's YAML is published in a repo: ``stdembed/<standard_id>.yaml``.

    Raises:
        InvalidStandardError: as :func:`embedding_path`.
    """
    embedding_path(standard_id)
    return f"{EMBEDDING_FOLDER}/{standard_id}.yaml"


def card_entries(card_data: Any) -> tuple[dict[str, CardEntry], list[str]]:
    """The embeddings a card declares, and why any entry was rejected.

    Args:
        card_data (`dict`): the card's front matter (a stranger's: any type may be wrong).

    Returns:
        `tuple[dict[str, CardEntry], list[str]]`: valid entries by standard id, and one
        human-readable reason per rejected entry (or for a malformed ``hf_stdembed`` block).
        A card without the key gives ``({}, [])``.

    Example:
        ```py
        >>> entries, problems = card_entries(model_info.card_data.to_dict())
        >>> entries["resnet18-in1k-val"].fidelity
        0.87
        ```
    """
    if not isinstance(card_data, Mapping):
        return {}, [f"card metadata is a {type(card_data).__name__}, not a mapping"]
    block = card_data.get(METADATA_KEY)
    if block is None:
        return {}, []
    if not isinstance(block, Mapping):
        return {}, [f"'{METADATA_KEY}' is a {type(block).__name__}, not a mapping"]
    version = block.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        return {}, [
            f"'{METADATA_KEY}' has schema_version {version!r}; this hf-stdembed "
            f"{__version__} reads version {SCHEMA_VERSION} (try upgrading hf-stdembed)"
        ]
    embeddings = block.get("embeddings")
    if not isinstance(embeddings, Mapping):
        return {}, [f"'{METADATA_KEY}.embeddings' is a {type(embeddings).__name__}, not a mapping"]
    entries: dict[str, CardEntry] = {}
    reasons: list[str] = []
    for standard_id, raw in embeddings.items():
        if not isinstance(standard_id, str) or not STANDARD_ID_RE.fullmatch(standard_id):
            reasons.append(f"invalid standard id {standard_id!r}")
            continue
        try:
            entries[standard_id] = _entry(standard_id, raw)
        except _Malformed as e:
            reasons.append(f"{standard_id}: {e}")
    return entries, reasons


class _Malformed(Exception):
    pass


def _entry(standard_id: str, raw: Any) -> CardEntry:
    if not isinstance(raw, Mapping):
        raise _Malformed(f"entry is a {type(raw).__name__}, not a mapping")

    def field(name: str, kind: type | tuple[type, ...]) -> Any:
        if name not in raw:
            raise _Malformed(f"missing field {name!r}")
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise _Malformed(f"{name} is {value!r}, expected {_kind_name(kind)}")
        return value

    def matching(name: str, pattern: re.Pattern[str], what: str) -> str:
        value = field(name, str)
        if not pattern.fullmatch(value):
            raise _Malformed(f"{name} {value!r} is not {what}")
        return value

    file = matching("file", _FILE_RE, f"a .safetensors path under {EMBEDDING_FOLDER}/")
    dim = field("dim", int)
    if not 1 <= dim <= MAX_DIM:
        raise _Malformed(f"dim {dim} is out of range [1, {MAX_DIM}]")
    losses = {}
    for name in ("l_to", "l_from"):
        value = float(field(name, (int, float)))
        if not math.isfinite(value) or abs(value) > 1 + _COSINE_SLACK:
            raise _Malformed(f"{name} {value!r} is not a cosine similarity in [-1, 1]")
        losses[name] = value
    revision = field("model_revision", (str, type(None)))
    tool_version = field("tool_version", str)
    if revision is not None and not 0 < len(revision) <= 256:
        raise _Malformed("model_revision is empty or too long")
    if not 0 < len(tool_version) <= 64:
        raise _Malformed("tool_version is empty or too long")
    model = raw.get("model")
    if model is not None and (
        not isinstance(model, str)
        or not 0 < len(model) <= _MAX_MODEL_SPEC
        or not model.isprintable()
    ):
        raise _Malformed(f"model is not a model spec (printable text of 1 to {_MAX_MODEL_SPEC} "
                         "characters)")  # fmt: skip
    standard_file = raw.get("standard_file")
    if standard_file is not None and (
        not isinstance(standard_file, str) or not _STANDARD_FILE_RE.fullmatch(standard_file)
    ):
        raise _Malformed(f"standard_file is not a .yaml path under {EMBEDDING_FOLDER}/")
    return CardEntry(
        standard_id=standard_id,
        standard_hash=matching("standard_hash", _STANDARD_HASH_RE, "a lowercase hex hash"),
        file=file,
        sha256=matching("sha256", _HEX64_RE, "a sha256 (64 lowercase hex digits)"),
        dim=dim,
        model_revision=revision,
        tool_version=tool_version,
        model=model,
        standard_file=standard_file,
        **losses,
    )


def read_front_matter(text: str) -> dict[str, Any]:
    """A README's YAML front matter as a dict, read as a stranger's: ``{}`` when it has none.

    A leading UTF-8 byte-order mark is ignored. The YAML is parsed without aliases and
    within :data:`~hf_stdembed._yaml.MAX_YAML_BYTES` (see :mod:`hf_stdembed._yaml`).

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
        raise InvalidCardError(f"the README's front matter cannot be read: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise InvalidCardError("the README's front matter is not a mapping with text keys")
    return data


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", type(None): "null"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


# -----------------------------------------------------------------------------------------
# Writing
# -----------------------------------------------------------------------------------------


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
        InvalidCardError: if the README's front matter cannot be read (invalid YAML, an alias,
            too large, not a mapping) or has ``tags`` that are not a list.

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
        with _template_path("modelcard.md") as template:
            card = ModelCard.from_template(
                data,
                template_path=str(template),
                repo_id=repo_id,
                stdembed_section=_section(block, repo_id),
            )
        return str(card)

    try:
        data = read_front_matter(text)
    except InvalidCardError as e:
        raise InvalidCardError(f"{e}; fix it, then publish again", repo_id=repo_id) from e
    tags = data.get("tags")
    if tags is None:
        tags = []
    elif isinstance(tags, str):
        tags = [tags]
    elif not isinstance(tags, list):
        raise InvalidCardError(
            f"the README's front matter cannot be read: its 'tags' is a {type(tags).__name__}; "
            "make it a list, then publish again",
            repo_id=repo_id,
        )
    block = _merged_block(data.get(METADATA_KEY), entries)
    newline = "\r\n" if "\r\n" in text else "\n"
    head, front, tail, body = _split_card(text, newline)
    edits: dict[str, Any] = {} if CARD_TAG in tags else {"tags": [*tags, CARD_TAG]}
    edits[METADATA_KEY] = block
    front = _edit_front_matter(front, data, edits, newline)
    body = _replace_section(body, _section(block, repo_id), newline)
    return f"{head}{front}{tail}{body}"


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


_EMPTY_FRONT_RE = re.compile(r"^(\s*---(?:\r\n|\r|\n))(---[ \t]*(?:\r\n|\n|$))")


def _split_card(text: str, newline: str) -> tuple[str, str, str, str]:
    """``(opening, front matter YAML, closing, body)`` of a README; a README without front
    matter gets empty delimiters to fill."""
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    empty = _EMPTY_FRONT_RE.match(text)
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


def _section(block: Mapping[str, Any], repo_id: str) -> str:
    """The human-readable section for a metadata block, between the markers."""
    import jinja2

    entries, _ = card_entries({METADATA_KEY: block})
    with _template_path("stdembed_section.md") as path:
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


def _replace_section(text: str, section: str, newline: str) -> str:
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
def _template_path(name: str):
    with resources.as_file(resources.files(__package__).joinpath("templates", name)) as path:
        yield path
