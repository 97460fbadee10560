"""What a publish records for its readers: the model embedded (issue 9 #6) and a custom
standard's YAML (issue 9 #5, card side)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from hub_server import FakeHub
from huggingface_hub import ModelCard
from model_repos import FOREIGN_README, make_timm_dir, model_files
from typer.testing import CliRunner

from hf_stdembed.card import card_entries
from hf_stdembed.cli import app
from hf_stdembed.embeddings import ModelEmbedding, load_embedding, save_embedding
from hf_stdembed.pipeline import loadable_spec
from hf_stdembed.publish import plan_publish
from hf_stdembed.registry import HubRegistry
from hf_stdembed.standards import Standard, get_standard, standard_from_text

runner = CliRunner()
EMBEDDING = "stdembed/tiny-test.safetensors"
STANDARD_YAML = "stdembed/tiny-test.yaml"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_timm_dir(tmp_path_factory.mktemp("model"), seed=1)


def entry_of(hub: FakeHub, repo_id: str):
    card = ModelCard(hub.files(repo_id)["README.md"].decode())
    entries, problems = card_entries(card.data.to_dict())
    assert problems == []
    return entries["tiny-test"], card


def test_the_card_and_the_file_record_the_repos_model(
    hub: FakeHub, model_dir: Path, standard_file: Path
) -> None:
    sha = hub.add_repo("tester/m", model_files(model_dir, FOREIGN_README))

    done = runner.invoke(app, ["publish", "tester/m", "-s", str(standard_file), "-q"])

    assert done.exit_code == 0, done.output
    entry, card = entry_of(hub, "tester/m")
    assert entry.model == "timm:tester/m" and entry.model_revision == sha
    assert "`timm:tester/m`" in card.text
    path = HubRegistry().download("tester/m", EMBEDDING, revision=None, max_bytes=10**6)
    embedding = load_embedding(path, standard=get_standard(standard_file))
    assert isinstance(embedding, ModelEmbedding)
    assert (embedding.model_spec, embedding.model_revision) == ("timm:tester/m", sha)


def test_a_model_from_a_local_directory_records_no_spec_and_the_card_says_so(
    hub: FakeHub, model_dir: Path, standard_file: Path
) -> None:
    hub.add_repo("tester/card-only", {"README.md": FOREIGN_README})

    done = runner.invoke(
        app,
        ["publish", "tester/card-only", "--model", f"timm:{model_dir}", "-s", str(standard_file)],
    )

    assert done.exit_code == 0, done.output
    entry, card = entry_of(hub, "tester/card-only")
    assert entry.model is None and entry.model_revision  # the weights hash
    assert "records no model spec" in card.text and "--model" in card.text
    assert str(model_dir) not in hub.files("tester/card-only")["README.md"].decode()


def test_another_hub_model_is_recorded_by_its_spec(
    hub: FakeHub, model_dir: Path, standard: Standard
) -> None:
    other = hub.add_repo("tester/weights", model_files(model_dir))
    hub.add_repo("tester/card-only", {"README.md": FOREIGN_README})

    plan = plan_publish(
        HubRegistry(),
        "tester/card-only",
        standards=[standard],
        model="timm:tester/weights",
    )

    (entry,) = plan.entries
    assert (entry.model, entry.model_revision) == ("timm:tester/weights", other)


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("timm:org/name", "timm:org/name"),
        ("transformers:org/name", "transformers:org/name"),
        ("timm:/home/me/private-model", None),
        ("entrypoint:pkg.mod:make", None),
        ("transformers:C:\\models\\x", None),
    ],
)
def test_loadable_spec(name: str, spec: str | None) -> None:
    assert loadable_spec(name) == spec


@pytest.fixture
def standard(standard_file: Path) -> Standard:
    return get_standard(standard_file)


def test_a_custom_standard_is_published_beside_the_embedding(
    hub: FakeHub, model_dir: Path, standard_file: Path
) -> None:
    hub.add_repo("tester/m", model_files(model_dir, FOREIGN_README))

    dry = runner.invoke(app, ["publish", "tester/m", "-s", str(standard_file), "--dry-run", "-q"])
    done = runner.invoke(app, ["publish", "tester/m", "-s", str(standard_file), "-q"])

    assert dry.exit_code == 0 and done.exit_code == 0, dry.output + done.output
    assert f"{STANDARD_YAML}  " in dry.stdout  # the dry run lists the file
    files = hub.files("tester/m")
    published = standard_from_text(files[STANDARD_YAML].decode(), trusted=False)
    assert published == get_standard(standard_file)
    assert published.hash == get_standard(standard_file).hash
    entry, card = entry_of(hub, "tester/m")
    assert entry.standard_file == STANDARD_YAML
    assert f"hf download tester/m {STANDARD_YAML} --local-dir ." in card.text
    assert f"--standard {STANDARD_YAML}" in card.text
    assert "--standard tiny-test\n" not in card.text  # the id alone resolves nowhere


def test_a_builtin_standard_publishes_no_yaml(hub: FakeHub, tmp_path: Path) -> None:
    builtin = get_standard("resnet18-in1k-val")
    hub.add_repo("tester/m", {"README.md": FOREIGN_README})
    path = save_embedding(
        ModelEmbedding(
            vector=torch.rand(builtin.dim),
            standard_id=builtin.id,
            standard_hash=builtin.hash,
            model_id="timm:tester/m",
            model_revision="1" * 40,
            l_to=0.9,
            l_from=0.8,
            model_spec="timm:tester/m",
        ),
        tmp_path / "e.safetensors",
    )

    plan = plan_publish(HubRegistry(), "tester/m", standards=[builtin], embeddings=[path])

    assert set(plan.files) == {"stdembed/resnet18-in1k-val.safetensors"}
    (entry,) = plan.entries
    assert entry.standard_file is None and entry.model == "timm:tester/m"
    assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "--standard resnet18-in1k-val\n" in plan.readme_after
