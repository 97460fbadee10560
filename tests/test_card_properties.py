"""Property-based tests of card parsing and writing on arbitrary front matter (issue 10
deliverable 4): entries or reasons, or InvalidCardError; never another exception; and a
publish keeps every foreign key and the owner's text."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hf_stdembed.card import (
    CARD_TAG,
    METADATA_KEY,
    SECTION_END,
    SECTION_START,
    CardEntry,
    CardReading,
    card_entries,
    read_card,
    read_front_matter,
    update_card,
)
from hf_stdembed.errors import InvalidCardError

ENTRY = CardEntry(
    standard_id="tiny-test",
    standard_hash="0123456789abcdef",
    file="stdembed/tiny-test.safetensors",
    sha256="a" * 64,
    dim=64,
    l_to=0.9,
    l_from=0.8,
    model_revision="1" * 40,
    tool_version="0.1.0",
)
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=15,
)
keys = st.sampled_from(
    ["license", "tags", "library_name", "model-index", "base_model", METADATA_KEY]
) | st.text(min_size=1, max_size=12)
front_data = st.dictionaries(keys, values, max_size=6)
entry_fields = st.fixed_dictionaries(
    {},
    optional={
        name: values | st.just(value)
        for name, value in ENTRY.to_metadata().items()
    } | {"model": st.text(max_size=600) | st.none(), "standard_file": st.text(max_size=40)},
)  # fmt: skip


@SETTINGS
@given(
    data=values
    | st.fixed_dictionaries(
        {METADATA_KEY: st.fixed_dictionaries(
            {"schema_version": st.sampled_from([1, 1, 2, True, "1"]),
             "embeddings": st.dictionaries(st.text(max_size=12), entry_fields, max_size=3) | values}
        )}
    )
)  # fmt: skip
def test_card_entries_give_entries_or_reasons(data) -> None:
    entries, reasons = card_entries(data)

    assert all(isinstance(e, CardEntry) for e in entries.values())
    assert all(isinstance(r, str) for r in reasons)
    for entry in entries.values():
        assert math.isfinite(entry.fidelity) and -1.001 <= entry.fidelity <= 1.001


@SETTINGS
@given(text=st.text(max_size=300), prefix=st.sampled_from(["", "---\n", "\ufeff---\n"]))
def test_read_front_matter_of_any_text(text: str, prefix: str) -> None:
    try:
        data = read_front_matter(prefix + text + "\n---\nbody\n")
    except InvalidCardError:
        return
    assert isinstance(data, dict) and all(isinstance(k, str) for k in data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=values
    | front_data
    | st.fixed_dictionaries(
        {METADATA_KEY: st.fixed_dictionaries(
            {"schema_version": st.sampled_from([1, 2, True]),
             "embeddings": st.dictionaries(st.text(max_size=12), entry_fields | st.dates(),
                                           max_size=3) | values}
        )},
        optional={"tags": values | st.dates()},
    ),
    style=st.sampled_from([False, True, None]),
    junk=st.text(max_size=40),
    frame=st.sampled_from(["---\n{}---\n# Body\n", "\ufeff---\r\n{}---\r\n", "---\n{}", "{}"]),
)  # fmt: skip
def test_the_one_reader_of_any_front_matter(data, style, junk: str, frame: str) -> None:
    """read_card never raises on a README's text; what it reads from the text it reads the
    same from the card data (the path of a listing's cardData)."""
    front = yaml.safe_dump(data, default_flow_style=style, allow_unicode=True) + junk
    card = read_card(frame.format(front))

    assert isinstance(card, CardReading) and all(isinstance(p, str) for p in card.problems)
    assert all(isinstance(e, CardEntry) for e in card.entries.values())
    assert card.tags is None or isinstance(card.tags, list)
    if not card.readable:
        assert card.data == {} and not card.entries and len(card.problems) == 1
        return
    assert all(isinstance(k, str) for k in card.data)
    assert read_card(card.data) == card


def _equal(a, b) -> bool:
    return yaml.safe_dump(a, sort_keys=True) == yaml.safe_dump(b, sort_keys=True)


@st.composite
def readmes(draw) -> str:
    """A README: front matter of random data in random YAML styles, sometimes with comments
    and null spellings, a BOM or CRLF line ends; a body that may quote the markers."""
    data = draw(front_data)
    style = draw(st.sampled_from([False, True, None]))
    front = yaml.safe_dump(data, default_flow_style=style, allow_unicode=draw(st.booleans()))
    if draw(st.booleans()):  # comments before top-level lines (never inside a value)
        front = "".join(
            (f"# comment {i}\n" if line[:1].isalnum() and i % 2 else "") + line
            for i, line in enumerate(front.splitlines(keepends=True))
        )
    front = front.replace(": null\n", draw(st.sampled_from([": null\n", ": ~\n", ":\n"])))
    body = draw(
        st.lists(
            st.sampled_from(
                ["# Title", "Text.", f"inline `{SECTION_START}` and `{SECTION_END}`",
                 f"{SECTION_START}\nold section\n{SECTION_END}", "```", "", "- item"]
            ),
            max_size=8,
        )
    )  # fmt: skip
    if draw(st.booleans()):
        body.append(SECTION_START)  # a stray marker: nothing after it to pair with
    text = "---\n" + front + "---\n" + "\n".join(["# Model", *body]) + "\n"
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    return draw(st.sampled_from(["", "\ufeff"])) + text


@pytest.mark.slow
@SETTINGS
@given(readme=readmes())
def test_update_card_keeps_foreign_keys_and_is_idempotent(readme: str) -> None:
    try:
        before = read_front_matter(readme)
    except InvalidCardError:
        assume(False)
    try:
        after = update_card(readme, [ENTRY], repo_id="me/model")
    except InvalidCardError as e:  # the refusals of a readable card: tags not a list, or
        assert "'tags'" in str(e) or f"'{METADATA_KEY}'" in str(e), e  # a malformed block
        return

    data = read_front_matter(after)
    for key, value in before.items():
        if key not in ("tags", METADATA_KEY):
            assert _equal(data[key], value), key
    assert CARD_TAG in data["tags"]
    assert card_entries(data)[0]["tiny-test"] == ENTRY
    assert update_card(after, [ENTRY], repo_id="me/model") == after
    for line in readme.removeprefix("\ufeff").splitlines():
        if "inline" in line or line == "Text.":
            assert line in after  # the owner's prose is never lost


@SETTINGS
@given(front=st.text(max_size=200))
def test_update_card_on_any_front_matter_text(front: str) -> None:
    readme = f"---\n{front}\n---\n# Body\n"
    try:
        after = update_card(readme, [ENTRY], repo_id="me/model")
    except InvalidCardError:
        return
    assert card_entries(read_front_matter(after))[0] == {"tiny-test": ENTRY}


def test_deep_flow_nesting_is_refused_before_parsing() -> None:
    """PyYAML's pure-Python scanner is quadratic in the nesting depth: a megabyte of ``[``
    would take hours; it is refused at once with a one-line reason."""
    import time

    from hf_stdembed._yaml import MAX_YAML_NESTING, UnsafeYAMLError, load_plain_yaml

    assert load_plain_yaml("a: " + "[" * MAX_YAML_NESTING + "]" * MAX_YAML_NESTING) is not None
    start = time.monotonic()
    with pytest.raises(UnsafeYAMLError, match=f"nested deeper than {MAX_YAML_NESTING} levels"):
        load_plain_yaml("a: " + "[" * 1_000_000)
    assert time.monotonic() - start < 20  # seconds, on a loaded machine (unguarded: hours)
