"""Model cards: the metadata an embedding records, its parsing and the rendered section."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard import REGEX_YAML_BLOCK

from hf_stdembed.card import (
    CARD_TAG,
    METADATA_KEY,
    SECTION_END,
    SECTION_START,
    CardEntry,
    card_entries,
    embedding_path,
    update_card,
)
from hf_stdembed.errors import InvalidCardError, InvalidStandardError

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
OTHER = CardEntry(
    standard_id="other-std",
    standard_hash="fedcba9876543210",
    file="stdembed/other-std.safetensors",
    sha256="b" * 64,
    dim=32,
    l_to=0.5,
    l_from=0.7,
    model_revision=None,
    tool_version="0.1.0",
)
FOREIGN = """---
license: apache-2.0
library_name: timm
datasets:
- imagenet-1k
tags: image-classification
model-index:
- name: resnet
  results:
  - task:
      type: image-classification
    dataset:
      name: ImageNet
      type: imagenet-1k
    metrics:
    - type: accuracy
      value: 71.2
custom_key:
  nested: [1, 2]
---

# My model

Some text the owner wrote.

## Usage

    model = timm.create_model(...)
"""


def data_of(text: str) -> dict[str, Any]:
    return ModelCard(text).data.to_dict()


def test_new_card_from_template() -> None:
    text = update_card(None, [ENTRY], repo_id="me/model")

    card = ModelCard(text)
    assert card.data.tags == [CARD_TAG]
    entries, problems = card_entries(card.data.to_dict())
    assert entries == {"tiny-test": ENTRY} and problems == []
    assert card.data[METADATA_KEY]["embeddings"]["tiny-test"]["fidelity"] == 0.8
    assert "# me/model" in card.text
    assert text.count(SECTION_START) == 1 and text.count(SECTION_END) == 1
    assert "hf-stdembed select --dataset" in text and "| 0.8000 |" in text
    assert update_card("  \n", [ENTRY], repo_id="me/model") == text  # blank = missing


def test_existing_card_keeps_every_key_and_the_body() -> None:
    text = update_card(FOREIGN, [ENTRY], repo_id="me/model")

    data = data_of(text)
    before = data_of(FOREIGN)
    for key in ("license", "library_name", "datasets", "model-index", "custom_key"):
        assert data[key] == before[key], key
    assert data["tags"] == ["image-classification", CARD_TAG]  # a lone tag became a list
    # the keys keep their order (model-index is not moved to the end)
    written = yaml.safe_load(REGEX_YAML_BLOCK.search(text).group(2))
    assert list(written) == [
        "license", "library_name", "datasets", "tags", "model-index", "custom_key", METADATA_KEY
    ]  # fmt: skip
    body = FOREIGN.split("---\n", 2)[2]
    assert ModelCard(text).text.startswith(body)
    assert text.count(SECTION_START) == 1


def test_card_without_front_matter() -> None:
    text = update_card("# Just a title\n\nBody.\n", [ENTRY], repo_id="me/model")

    card = ModelCard(text)
    assert card.data.tags == [CARD_TAG]
    assert card.text.startswith("# Just a title\n\nBody.\n")
    assert card_entries(card.data.to_dict())[0] == {"tiny-test": ENTRY}


def test_republishing_replaces_the_section_and_merges_standards() -> None:
    first = update_card(FOREIGN, [ENTRY], repo_id="me/model")
    assert update_card(first, [ENTRY], repo_id="me/model") == first  # idempotent

    both = update_card(first, [OTHER], repo_id="me/model")
    newer = CardEntry(**{**ENTRY.__dict__, "l_to": 0.95, "sha256": "c" * 64})
    replaced = update_card(both, [newer], repo_id="me/model")

    entries, problems = card_entries(data_of(replaced))
    assert entries == {"tiny-test": newer, "other-std": OTHER} and problems == []
    assert replaced.count(SECTION_START) == 1 and replaced.count(SECTION_END) == 1
    assert "`other-std`" in replaced and "`tiny-test`" in replaced
    assert data_of(replaced)["tags"].count(CARD_TAG) == 1


def test_stray_and_duplicate_markers_leave_one_section() -> None:
    readme = (
        "---\nlicense: mit\n---\n# T\n\n"
        f"{SECTION_START}\nold\n{SECTION_END}\n\nkept text\n"
        f"{SECTION_START}\nolder\n{SECTION_END}\ntail {SECTION_END}\n"
    )

    text = update_card(readme, [ENTRY], repo_id="me/model")

    # the marker quoted in the owner's prose ("tail <marker>") is their text: it stays
    assert text.count(SECTION_START) == 1 and text.count(f"\n{SECTION_END}\n") == 1
    assert "kept text" in text and f"tail {SECTION_END}\n" in text
    assert "old\n" not in text and "older" not in text
    assert text.index("# T") < text.index(SECTION_START) < text.index("kept text")


def test_unknown_fields_of_other_entries_survive() -> None:
    card = ModelCard(update_card(None, [OTHER], repo_id="me/model"))
    card.data[METADATA_KEY]["embeddings"]["other-std"]["future_field"] = "x"

    text = update_card(str(card), [ENTRY], repo_id="me/model")

    assert data_of(text)[METADATA_KEY]["embeddings"]["other-std"]["future_field"] == "x"


@pytest.mark.parametrize(
    ("readme", "message"),
    [
        ("---\nlicense: [mit\n---\nbody\n", "cannot be read"),
        ("---\n- a\n- b\n---\nbody\n", "not a mapping"),
        ("---\ntags: 5\n---\nbody\n", "cannot be read"),
        ("---\ntags: {a: 1}\n---\nbody\n", "make it a list"),
    ],
)
def test_unreadable_cards_are_refused(readme: str, message: str) -> None:
    with pytest.raises(InvalidCardError, match=message) as caught:
        update_card(readme, [ENTRY], repo_id="me/model")
    assert caught.value.repo_id == "me/model"


def test_embedding_path() -> None:
    assert embedding_path("resnet18-in1k-val") == "stdembed/resnet18-in1k-val.safetensors"
    for bad in ("../x", "a/b", "", ".hidden", "a b"):
        with pytest.raises(InvalidStandardError, match="cannot name a file"):
            embedding_path(bad)


def _block(**entries: Any) -> dict[str, Any]:
    return {METADATA_KEY: {"schema_version": 1, "embeddings": entries}}


GOOD = ENTRY.to_metadata()


def _bad(**changes: Any) -> dict[str, Any]:
    entry = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is _MISSING:
            del entry[key]
        else:
            entry[key] = value
    return entry


_MISSING = object()


@pytest.mark.parametrize(
    ("card_data", "reason"),
    [
        ([1, 2], "not a mapping"),
        ({METADATA_KEY: "yes"}, "'hf_stdembed' is a str"),
        ({METADATA_KEY: {"schema_version": 2, "embeddings": {}}}, "schema_version 2"),
        ({METADATA_KEY: {"schema_version": True, "embeddings": {}}}, "schema_version True"),
        ({METADATA_KEY: {"schema_version": 1, "embeddings": [GOOD]}}, "is a list"),
        (_block(**{"a b": GOOD}), "invalid standard id"),
        (_block(x=None), "entry is a NoneType"),
        (_block(x=_bad(dim=_MISSING)), "missing field 'dim'"),
        (_block(x=_bad(dim="64")), "dim is '64', expected an integer"),
        (_block(x=_bad(dim=True)), "dim is True"),
        (_block(x=_bad(dim=0)), "out of range"),
        (_block(x=_bad(dim=10**12)), "out of range"),
        (_block(x=_bad(l_to=float("nan"))), "not a cosine similarity"),
        (_block(x=_bad(l_from=5)), "not a cosine similarity"),
        (_block(x=_bad(l_to="0.9")), "expected an integer or a number"),
        (_block(x=_bad(file="model.safetensors")), "under stdembed/"),
        (_block(x=_bad(file="stdembed/../model.safetensors")), "under stdembed/"),
        (_block(x=_bad(file="stdembed/x.bin")), "under stdembed/"),
        (_block(x=_bad(sha256="A" * 64)), "not a sha256"),
        (_block(x=_bad(sha256=12)), "sha256 is 12"),
        (_block(x=_bad(standard_hash="not hex")), "not a lowercase hex hash"),
        (_block(x=_bad(model_revision=7)), "expected a string or null"),
        (_block(x=_bad(tool_version=_MISSING)), "missing field 'tool_version'"),
    ],
)
def test_malformed_entries_are_reasons_not_exceptions(card_data: Any, reason: str) -> None:
    entries, reasons = card_entries(card_data)

    assert entries == {}
    assert len(reasons) == 1 and reason in reasons[0], reasons


def test_valid_entries_survive_a_bad_neighbour() -> None:
    entries, reasons = card_entries(
        _block(**{"tiny-test": GOOD, "bad": _bad(dim=-1), "none-rev": _bad(model_revision=None)})
    )

    assert set(entries) == {"tiny-test", "none-rev"} and entries["tiny-test"] == ENTRY
    assert entries["none-rev"].model_revision is None
    assert reasons == ["bad: dim -1 is out of range [1, 16777216]"]
    assert card_entries({"license": "mit"}) == ({}, [])
