"""Sharing the index as a Hub dataset: ``index push`` / ``index pull`` against the FakeHub."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hub_server import FakeHub
from index_rows import DIM, H2, H, fill
from typer.testing import CliRunner

from hf_stdembed.cli import app, main
from hf_stdembed.index import EmbeddingIndex, IndexRow
from hf_stdembed.registry import INDEX_DATASET_FILE, HubRegistry

runner = CliRunner()
REPO = "tester/shared-index"


def contents(folder: Path) -> dict[str, tuple[list[IndexRow], np.ndarray]]:
    """Each standard's rows and a copy of their vectors."""
    with EmbeddingIndex.open(folder) as index:
        snapshots = {h: index.snapshot(h) for h in (H, H2)}
        return {h: (rows, np.array(vectors)) for h, (rows, vectors) in snapshots.items()}


def cli(*args: object) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    fill(folder, [(0, H), (1, H), (2, H), (3, H2), (4, H2)])
    return folder


def test_push_then_pull_round_trips(hub: FakeHub, source: Path, tmp_path: Path):
    out = cli("index", "push", REPO, "--index", source)
    head = hub.head(REPO, repo_type="dataset")
    assert f"{hub.endpoint}/datasets/{REPO}/commit/{head}" in out
    assert set(hub.files(REPO, repo_type="dataset")) >= {INDEX_DATASET_FILE, "README.md"}

    out = cli("index", "pull", REPO, "--index", tmp_path / "copy")
    assert "Imported 5 rows, 0 unchanged, 0 skipped" in out
    pulled, original = contents(tmp_path / "copy"), contents(source)
    for standard_hash in (H, H2):
        rows, vectors = pulled[standard_hash]
        source = f"pull:{REPO}@{head}"  # provenance: the dataset repo and its commit
        assert rows == [dataclasses.replace(r, source=source) for r in original[standard_hash][0]]
        assert np.array_equal(vectors, original[standard_hash][1])
    assert len(pulled[H][0]) == 3 and len(pulled[H2][0]) == 2


def test_pushing_again_makes_a_new_commit_and_pull_gets_the_latest(
    hub: FakeHub, source: Path, tmp_path: Path
):
    cli("index", "push", REPO, "--index", source)
    first = hub.head(REPO, repo_type="dataset")
    fill(source, [(5, H2)], seed=1)
    cli("index", "push", REPO, "--index", source)
    second = hub.head(REPO, repo_type="dataset")
    assert second != first

    cli("index", "pull", REPO, "--index", tmp_path / "latest")
    with EmbeddingIndex.open(tmp_path / "latest") as index:
        assert len(index.rows()) == 6
    cli("index", "pull", REPO, "--revision", first, "--index", tmp_path / "old")
    with EmbeddingIndex.open(tmp_path / "old") as index:
        assert len(index.rows()) == 5


def test_private_push_and_pull_request(hub: FakeHub, source: Path, tmp_path: Path):
    cli("index", "push", REPO, "--private", "--index", source)
    assert HubRegistry().api.dataset_info(REPO).private
    before = hub.head(REPO, repo_type="dataset")
    fill(source, [(5, H2)], seed=1)
    out = cli("index", "push", REPO, "--create-pr", "--index", source)
    assert f"/datasets/{REPO}/discussions/1" in out
    assert hub.head(REPO, repo_type="dataset") == before


def run_main(monkeypatch: pytest.MonkeyPatch, capsys, *args: object) -> str:
    monkeypatch.setattr(sys, "argv", ["hf-stdembed", *(str(a) for a in args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "Traceback" not in err
    assert err.strip().count("\n") == 0, err
    return err


def test_pull_of_a_missing_repo_is_a_one_line_error(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    err = run_main(monkeypatch, capsys, "index", "pull", "tester/nope", "--index", tmp_path / "i")
    assert "no dataset repo tester/nope" in err


def test_pull_of_a_repo_without_an_index_names_the_file(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    hub.add_repo("tester/other", {"README.md": b"# data\n"}, repo_type="dataset")
    err = run_main(monkeypatch, capsys, "index", "pull", "tester/other", "--index", tmp_path / "i")
    assert "tester/other has no data/index.parquet" in err


def test_push_to_a_directory_registry_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, source: Path
):
    err = run_main(
        monkeypatch, capsys, "index", "push", REPO, "--registry", tmp_path, "--index", source
    )
    assert "holds no dataset repos" in err


def test_the_card_and_parquet_are_readable_by_datasets(hub: FakeHub, source: Path):
    import datasets

    cli("index", "push", REPO, "--index", source)
    card = hub.files(REPO, repo_type="dataset")["README.md"].decode()
    metadata = yaml.safe_load(card.split("---")[1])
    assert "hf-stdembed" in metadata["tags"]
    assert metadata["configs"][0]["data_files"][0]["path"] == INDEX_DATASET_FILE
    assert f"`{H}` | 3 |" in card and f"`{H2}` | 2 |" in card

    local = HubRegistry().download_index_dataset(REPO)
    loaded = datasets.load_dataset("parquet", data_files=str(local), split="train")
    assert loaded.num_rows == 5
    assert len(loaded[0]["embedding"]) == DIM
    assert sorted(loaded["standard_hash"]) == sorted([H] * 3 + [H2] * 2)


def test_the_dataset_card_is_the_one_written_before_datasetcard(source: Path, tmp_path: Path):
    """``index_dataset_card`` (now through ``DatasetCard``) writes the same bytes as the YAML
    string it replaced: the metadata and the visible text are unchanged."""
    from hf_stdembed import __version__
    from hf_stdembed.registry import index_dataset_card

    with EmbeddingIndex.open(source) as index:
        parquet = index.export_parquet(tmp_path / "index.parquet")
    expected = (
        "---\ntags:\n- hf-stdembed\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: train\n    path: data/index.parquet\n---\n\n# hf-stdembed index\n\n"
        "Published standard embeddings of models, one row per (model repo, standard): the "
        "repo, the commit and file they were read from, the fidelities `l_to` / `l_from` and "
        f"the vector (`embedding`). Written by hf-stdembed {__version__} "
        "(`hf-stdembed index push`); read it into a local index with "
        "`hf-stdembed index pull REPO_ID`.\n\n5 rows:\n\n"
        "| standard | hash | rows |\n|---|---|---|\n"
        f"| standard-0123 | `{H}` | 3 |\n| standard-fedc | `{H2}` | 2 |\n"
    )
    assert index_dataset_card(parquet) == expected
