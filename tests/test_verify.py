"""`hf-stdembed verify`: which model to check with, strangers' cards, and the verdict's output.

Fast tests on the tiny timm model (a directory registry and the fake Hub). The verdict on
real models (genuine passes, another model's embedding and an all-ones vector fail) is in
tests/test_verify_models.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hub_server import FakeHub
from model_repos import card_only_files, make_timm_dir, model_files, write_repo
from typer.testing import CliRunner

from hf_stdembed.cli import _select, app
from hf_stdembed.pipeline import compute_model_embedding
from hf_stdembed.standards import get_standard
from hf_stdembed.verify import VerifyThresholds

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_timm_dir(tmp_path_factory.mktemp("verify-model"), seed=21)


def test_cli_threshold_defaults_are_the_librarys():
    assert VerifyThresholds().max_shortfall == _select.MAX_SHORTFALL
    assert VerifyThresholds().min_agreement == _select.MIN_AGREEMENT


def test_genuine_embedding_passes_and_output_shows_both_checks(
    model_dir: Path, standard_file: Path, tmp_path: Path, verify
):
    root = tmp_path / "registry"
    embedding = compute_model_embedding(f"timm:{model_dir}", get_standard(standard_file))
    write_repo(
        root, "team/m", {**model_files(model_dir), **card_only_files(embedding, repo_id="team/m")}
    )
    done = verify("team/m", "-s", standard_file, "--registry", root, "-q")
    assert done.exit_code == 0, done.output
    assert "fidelity: claimed" in done.stdout and "reached with the published mask" in done.stdout
    assert "Pearson 1.000" in done.stdout and "weighted Jaccard 1.000" in done.stdout
    assert "verdict: pass" in done.stdout


def test_card_only_repo_without_model_spec_says_pass_model(
    model_dir: Path, standard_file: Path, tmp_path: Path, verify
):
    # issue 9 #6: was `404 ... config.json` with no hint
    root = tmp_path / "registry"
    embedding = compute_model_embedding(f"timm:{model_dir}", get_standard(standard_file))
    write_repo(root, "team/cardonly", card_only_files(embedding, repo_id="team/cardonly"))
    done = verify("team/cardonly", "-s", standard_file, "--registry", root, "-q")
    assert done.exit_code == 1
    errors = done.error_lines
    assert len(errors) == 1 and "--model" in errors[0] and "holds no model" in errors[0]
    assert "Traceback" not in done.output

    with_model = verify(
        "team/cardonly",
        "-s",
        standard_file,
        "--registry",
        root,
        "--model",
        f"timm:{model_dir}",
        "-q",
    )
    assert with_model.exit_code == 0, with_model.output
    assert "verdict: pass" in with_model.stdout


def test_card_only_repo_on_the_hub_uses_the_cards_model_spec_at_its_revision(
    hub: FakeHub, model_dir: Path, standard_file: Path, tmp_path: Path, verify
):
    hub.add_repo("tester/weights", model_files(model_dir))
    embedded = hub.head("tester/weights")
    standard = get_standard(standard_file)
    embedding = compute_model_embedding("tester/weights", standard, revision=embedded)
    assert embedding.model_revision == embedded
    hub.add_repo(
        "tester/card",
        card_only_files(embedding, repo_id="tester/card", model="timm:tester/weights"),
    )
    # the weights repo moves on: verify must check the revision the card records
    hub.commit("tester/weights", {"config.json": b"{}"})
    assert hub.head("tester/weights") != embedded

    done = verify("tester/card", "-s", standard_file, "-q")
    assert done.exit_code == 0, done.output
    assert "checked with timm:tester/weights" in done.stdout and "verdict: pass" in done.stdout


@pytest.mark.parametrize(
    "spec",
    ["os:system", "entrypoint:os:getcwd", "timm:../../etc", "timm:/tmp/x", "transformers:a b/c"],
)
def test_a_cards_model_spec_is_never_code_or_a_local_path(
    spec: str, model_dir: Path, standard_file: Path, tmp_path: Path, verify
):
    root = tmp_path / "registry"
    embedding = compute_model_embedding(f"timm:{model_dir}", get_standard(standard_file))
    write_repo(root, "team/evil", card_only_files(embedding, repo_id="team/evil", model=spec))
    done = verify("team/evil", "-s", standard_file, "--registry", root, "-q")
    assert done.exit_code == 1
    errors = done.error_lines
    assert len(errors) == 1 and "is not a Hub repo" in errors[0] and "--model" in errors[0]


@pytest.mark.parametrize(
    "front_matter",
    [
        "tags: 5\nhf_stdembed: 7\n",
        "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n",  # an alias bomb, in small
        "- a list\n- not a mapping\n",
        "key: [unclosed\n",
    ],
)
def test_a_malformed_card_gives_one_error_line(
    front_matter: str, standard_file: Path, tmp_path: Path, verify
):
    root = tmp_path / "registry"
    write_repo(root, "team/bad", {"README.md": f"---\n{front_matter}---\n# Model\n".encode()})
    done = verify("team/bad", "-s", standard_file, "--registry", root, "-q")
    assert done.exit_code == 1
    assert len(done.error_lines) == 1, done.output
    assert "Traceback" not in done.output


def test_min_jaccard_is_gone_and_new_options_show_in_help():
    done = runner.invoke(app, ["verify", "--help"], env={"COLUMNS": "200"})
    assert "--max-shortfall" in done.output and "--min-agreement" in done.output
    assert "--min-jaccard" not in done.output


def test_a_third_party_index_row_is_checked_and_a_forged_one_fails(
    model_dir: Path, standard_file: Path, tmp_path: Path, verify
):
    # issue 13 #4: `verify` rechecks a row whoever computed it (here: an imported index)
    import torch

    from hf_stdembed.index import EmbeddingIndex, IndexRow

    standard = get_standard(standard_file)
    spec = f"timm:{model_dir}"
    genuine = compute_model_embedding(spec, standard)
    folder = tmp_path / "index"
    with EmbeddingIndex.open(folder) as opened, opened.update() as tx:
        for repo, vector in (
            ("someone/genuine", genuine.vector),
            ("someone/forged", torch.ones_like(genuine.vector)),
        ):
            row = IndexRow.from_embedding(
                dataclasses.replace(genuine, vector=vector),
                repo,
                revision="0" * 40,
                file_path="stdembed/tiny-test.safetensors",
                file_sha256="1" * 64,
            )
            tx.upsert(dataclasses.replace(row, source="import:shared.parquet"), vector)
    common = ("-s", standard_file, "--from-index", "--index", folder, "--model", spec, "-q")
    done = verify("someone/genuine", *common)
    assert done.exit_code == 0, done.output
    assert "verdict: pass" in done.stdout
    forged = verify("someone/forged", *common)
    assert forged.exit_code == 1 and "verdict: FAIL" in forged.stdout
    assert len(forged.error_lines) == 1
    missing = verify("someone/absent", *common)
    assert missing.exit_code == 1 and "holds no row of someone/absent" in missing.output
    no_spec = verify("someone/genuine", "-s", standard_file, "--from-index", "--index", folder)
    assert no_spec.exit_code == 1 and "pass --model" in no_spec.output


def test_a_task_embedding_published_as_a_model_one_is_named_by_its_repo_path(
    tmp_path: Path, verify
):
    """The error names the repo and the file as published, not the local copy's path."""
    from model_repos import published_files, task_embedding_bytes

    root = tmp_path / "registry"
    write_repo(root, "team/task", published_files("team/task", 3, data=task_embedding_bytes(3)[1]))
    done = verify("team/task", "--registry", root, "--model", "timm:x/y", "-q")
    assert done.exit_code == 1
    assert done.error_lines == [
        "Error: team/task: stdembed/resnet18-in1k-val.safetensors: is a task embedding, "
        "expected a model embedding"
    ], done.output
