"""The shared hostile-card corpus: README.md texts that `verify`, `publish`, the crawl (both
listings) and the one card reader (:func:`hf_stdembed.card.read_card`) must all survive.

Each case is malformed for the tool: its front matter cannot be read (invalid YAML, an alias,
over the size limit, not a mapping, never closed, not UTF-8...) or its ``hf_stdembed`` block
or entries are of the wrong shape. Whoever reads one must give a reason (an ``Error:`` line,
a crawl problem), never a traceback. Aliases are kept small here: the fake Hub parses cards
with plain ``yaml.safe_load`` (the alias bomb is in tests/test_registry_hostile.py).
"""

from __future__ import annotations

from hf_stdembed.standards import get_standard

STANDARD = get_standard("resnet18-in1k-val")
"""The standard every case's entries claim (built in: verify and publish resolve it)."""

_ENTRY = (
    "file: stdembed/resnet18-in1k-val.safetensors\n"
    f"      sha256: {'a' * 64}\n"
    f"      dim: {STANDARD.dim}\n"
    f"      standard_hash: {STANDARD.hash}\n"
    "      l_to: 0.9\n      l_from: 0.8\n      fidelity: 0.8\n"
    f"      model_revision: {'b' * 40}\n      tool_version: 0.1.0\n"
)


def _block(embeddings: str, *, version: str = "1") -> str:
    return f"hf_stdembed:\n  schema_version: {version}\n  embeddings:\n{embeddings}"


def _entry(**changes: str) -> str:
    """``resnet18-in1k-val``'s entry with some fields replaced by raw YAML values."""
    lines = [line.strip() for line in _ENTRY.splitlines()]
    fields = dict(line.split(": ", 1) for line in lines)
    fields.update(changes)
    body = "".join(f"      {k}: {v}\n" for k, v in fields.items())
    return f"    {STANDARD.id}:\n{body}"


def _card(front: str, *, tagged: bool = True) -> bytes:
    tags = "tags: [hf-stdembed]\n" if tagged else ""
    return f"---\n{tags}{front}---\n# A model\n\nhf-stdembed\n".encode()


HOSTILE_CARDS: dict[str, bytes] = {
    # the reproducer: `tags` a number (and a block of the wrong type)
    "tags-a-number": _card("tags: 5\nhf_stdembed: 7\n", tagged=False),
    "block-a-list": _card("hf_stdembed: [1, 2]\n"),
    "block-a-number": _card("hf_stdembed: 42\n"),
    "block-a-string": _card("hf_stdembed: yes please\n"),
    "schema-version-future": _card(_block(_entry(), version="2")),
    "schema-version-bool": _card(_block(_entry(), version="true")),
    "embeddings-a-list": _card("hf_stdembed:\n  schema_version: 1\n  embeddings: [1, 2]\n"),
    "entry-a-number": _card(_block(f"    {STANDARD.id}: 5\n")),
    "entry-wrong-types": _card(
        _block(_entry(file="5", sha256="[]", dim="'many'", l_to=".nan", tool_version="{}"))
    ),
    "entry-path-escape": _card(_block(_entry(file="../../../etc/passwd.safetensors"))),
    "entry-huge-dim": _card(_block(_entry(dim=str(10**30)))),
    "entry-missing-fields": _card(_block(f"    {STANDARD.id}: {{dim: 3}}\n")),
    "entry-bad-ids": _card(_block("    ../escape: {dim: 3}\n    5: {dim: 3}\n    [a]: 1\n")),
    "front-a-list": b"---\n- hf-stdembed\n- not a mapping\n---\n# A model\n",
    "front-a-string": b"---\nhf-stdembed is here\n---\n# A model\n",
    "front-text-free-keys": b"---\n1: hf-stdembed\n? [x]\n: y\n---\n# A model\n",
    "invalid-yaml": _card("key: [unclosed\n"),
    "tab-indented": _card("hf_stdembed:\n\tschema_version: 1\n"),
    "python-tag": _card("x: !!python/object/apply:os.system ['echo hi']\n"),
    "nul-byte": _card("hf_stdembed: \x00\n"),
    "small-alias": _card("a: &x [hf-stdembed]\nb: *x\n"),
    # PyYAML's scanner is quadratic in the depth: refused before parsing (_yaml.MAX_YAML_NESTING)
    "deep-nesting": _card("hf_stdembed: " + "[" * 600 + "]" * 600 + "\n"),
    "half-a-megabyte-of-brackets": _card("hf_stdembed: " + "[" * 500_000 + "\n"),
    "huge-front-matter": _card("pad: " + "x" * (1200 * 1024) + "\n"),
    "bom-block-a-number": b"\xef\xbb\xbf" + _card("hf_stdembed: 42\n"),
    "crlf-block-a-list": _card("hf_stdembed: [1]\n").replace(b"\n", b"\r\n"),
    "not-utf8": b"---\ntags: [hf-stdembed]\nhf_stdembed: \xff\xfe\n---\n# A model\n",
    "no-closing-line": b"---\ntags: [hf-stdembed]\nhf_stdembed:\n  schema_version: 1\n# A model\n",
}
"""Case name -> README.md bytes."""

README_A_FOLDER = "readme-a-folder"
"""One more case, not a text: README.md is a folder (directory registries only)."""
