"""Publishing edits a stranger's card surgically: only ``tags``, the ``hf_stdembed`` block and
the marked section change; every other byte of the front matter and every word of the body
survive (issue 10 #4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from hf_stdembed.card import (
    CARD_TAG,
    METADATA_KEY,
    SECTION_END,
    SECTION_START,
    CardEntry,
    card_entries,
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
    model="timm:org/tiny",
)

# A real-looking timm card: comments, `~` / `null`, quoting styles, a folded scalar, anchors
# of no kind (aliases are refused), keys in the owner's order.
TIMM_FRONT = """\
# Model card metadata: https://huggingface.co/docs/hub/model-cards
license: apache-2.0   # same as the paper's code
library_name: timm
tags:
  - image-classification   # the task
  - 'timm'
  - "mobilenet"
pipeline_tag: image-classification
base_model: ~
widget: null
datasets:
- imagenet-1k
# the card's own evaluation
model-index:
- name: "mobilenetv2_100.ra_in1k"
  results:
  - task: {type: image-classification}
    dataset: {name: ImageNet-1k, type: imagenet-1k}
    metrics:
    - type: accuracy
      value: 72.970
extra_gated_prompt: >-
  You agree to
  not misuse it.
thumbnail: 'https://example.org/x.png'
"""
TIMM_BODY = """
# Model card for mobilenetv2_100.ra_in1k

A MobileNet-v2 image classification model. Trained on ImageNet-1k by Ross Wightman.

## Model Details
- **Params (M):** 3.5
- **Image size:** 224 x 224
"""
TIMM_CARD = f"---\n{TIMM_FRONT}---\n{TIMM_BODY}"


def front_of(text: str) -> str:
    assert text.startswith("---\n"), text[:40]
    return text[4:].split("\n---\n", 1)[0] + "\n"


def test_foreign_yaml_survives_byte_for_byte() -> None:
    text = update_card(TIMM_CARD, [ENTRY], repo_id="me/model")

    front = front_of(text)
    # every line of the owner's front matter is still there, in order: tags only gained ours
    expected = TIMM_FRONT.replace('  - "mobilenet"\n', f'  - "mobilenet"\n  - {CARD_TAG}\n')
    assert front.startswith(expected), front
    assert front[len(expected) :].startswith(f"{METADATA_KEY}:\n")
    data = read_front_matter(text)
    assert data["base_model"] is None and "widget" in data and data["widget"] is None
    assert data["tags"] == ["image-classification", "timm", "mobilenet", CARD_TAG]
    assert card_entries(data) == ({"tiny-test": ENTRY}, [])
    assert text.endswith(TIMM_BODY.rstrip() + f"\n\n{SECTION_START}\n" + text.split(
        SECTION_START + "\n", 1)[1])  # fmt: skip


def test_markers_in_prose_keep_the_text_between_them() -> None:
    readme = (
        "# Notes\n\n"
        f"The tool writes its section between `{SECTION_START}` and\n"
        f"`{SECTION_END}`: THIS SENTENCE MUST SURVIVE.\n\n"
        "```markdown\n"
        f"{SECTION_START}\nexample in a code block, also kept\n{SECTION_END}\n"
        "```\n\n"
        "The end.\n"
    )

    text = update_card(readme, [ENTRY], repo_id="me/model")

    body = ModelCard(text).text
    assert body.startswith(readme.rstrip())  # nothing of the owner's text is lost
    assert "THIS SENTENCE MUST SURVIVE" in text and "also kept" in text
    assert text.count("## Standardized embedding") == 1
    assert update_card(text, [ENTRY], repo_id="me/model") == text


def test_a_lone_start_marker_never_swallows_text_on_the_next_publish() -> None:
    readme = f"# T\n\n{SECTION_START}\n\nA paragraph the owner wrote after a stray marker.\n"

    first = update_card(readme, [ENTRY], repo_id="me/model")
    second = update_card(first, [ENTRY], repo_id="me/model")

    assert "A paragraph the owner wrote" in second and second == first


def test_bom_readme_keeps_its_front_matter() -> None:
    keys = [f"key_{i}: value {i}" for i in range(14)]
    readme = "\ufeff---\n" + "\n".join(keys) + "\n---\n# Title\n\nBody.\n"

    text = update_card(readme, [ENTRY], repo_id="me/model")

    card = ModelCard(text)  # the Hub's own parser finds the front matter
    assert not text.startswith("\ufeff")
    for i in range(14):
        assert card.data[f"key_{i}"] == f"value {i}"
    assert card.data.tags == [CARD_TAG]
    assert card.text.startswith("# Title\n\nBody.\n") and "key_0" not in card.text
    assert front_of(text).startswith("\n".join(keys) + "\n")
    assert update_card(text, [ENTRY], repo_id="me/model") == text


def test_crlf_card_keeps_its_line_endings() -> None:
    readme = TIMM_CARD.replace("\n", "\r\n")

    text = update_card(readme, [ENTRY], repo_id="me/model")

    assert "\n" not in text.replace("\r\n", "")
    assert card_entries(read_front_matter(text))[0] == {"tiny-test": ENTRY}
    assert update_card(text, [ENTRY], repo_id="me/model") == text


@pytest.mark.parametrize(
    "readme",
    [
        TIMM_CARD,
        "\ufeff" + TIMM_CARD,
        TIMM_CARD.replace("\n", "\r\n"),
        "---\n---\n# Empty front matter\n",
        "---\n# only a comment\n---\nbody\n",
        "---\ntags: [a, b]  # flow\nlicense: mit\n---\nx\n",
        "---\ntags:\nlicense: mit\n---\nx\n",
        "---\n{license: mit, tags: [a]}\n---\nflow mapping\n",
        "---\nlicense: mit\ntags: a\ntags: [b]\n---\nduplicate key\n",
        "# No front matter\n\n```\nunclosed fence\n",
        None,
    ],
)
def test_publishing_twice_gives_the_same_readme(readme: str | None) -> None:
    first = update_card(readme, [ENTRY], repo_id="me/model")
    second = update_card(first, [ENTRY], repo_id="me/model")

    assert second == first
    data = read_front_matter(first)
    assert card_entries(data) == ({"tiny-test": ENTRY}, [])
    assert CARD_TAG in data["tags"] and first.count(SECTION_START) == 1
    if readme:
        before = read_front_matter(readme)
        for key, value in before.items():
            if key != "tags":
                assert data[key] == value, key


def test_a_card_with_an_alias_is_refused_with_the_fix() -> None:
    with pytest.raises(InvalidCardError, match="alias.*publish again") as caught:
        update_card("---\na: &x 1\nb: *x\n---\n", [ENTRY], repo_id="me/model")
    assert caught.value.repo_id == "me/model"


def test_publish_twice_through_a_directory_registry_gives_the_same_readme(
    tmp_path: Path,
) -> None:
    from hf_stdembed.registry import DirectoryRegistry

    repo = tmp_path / "org" / "m"
    repo.mkdir(parents=True)
    (repo / "README.md").write_bytes(("\ufeff" + TIMM_CARD).encode())
    registry = DirectoryRegistry(tmp_path)
    files = {"README.md": update_card(registry.read_text("org/m", "README.md", revision=None),
                                      [ENTRY], repo_id="org/m").encode()}  # fmt: skip
    registry.commit("org/m", files, message="m", parent_commit=registry.head("org/m"))
    again = update_card(registry.read_text("org/m", "README.md", revision=None), [ENTRY],
                        repo_id="org/m")  # fmt: skip

    assert again.encode() == (repo / "README.md").read_bytes()
