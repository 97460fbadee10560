"""``embed-many``: many Hub models under one standard into the local index, in-process (these
tests) and on Ray (tests/test_embed_many_ray.py), against the fake Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hub_server import FakeHub
from hypothesis import given, settings
from model_repos import model_files
from typer.testing import CliRunner

from hf_stdembed.cli import app
from hf_stdembed.embed_many import STATE_FILE, OutcomeLog, read_model_list
from hf_stdembed.errors import ModelLoadError
from hf_stdembed.index import EmbeddingIndex
from hf_stdembed.pipeline import compute_model_embedding
from hf_stdembed.standards import get_standard

runner = CliRunner()
REPOS = [f"tester/em{i}" for i in range(3)]


def run(*args: object, ok: bool = True):
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def embed_many(index: Path, standard_file: Path, *args: object, ok: bool = True):
    common = ["embed-many", "-s", standard_file, "--index", index, "--no-ray", "-q"]
    return run(*common, "--computed-by", "test-box", *args, ok=ok)


def rows_by_repo(index: Path, standard_file: Path) -> dict[str, tuple]:
    standard = get_standard(standard_file)
    with EmbeddingIndex.open(index) as opened:
        rows, vectors = opened.snapshot(standard.hash)
        return {r.repo_id: (r, np.array(vectors[i])) for i, r in enumerate(rows)}


# =========================================================================================
# In-process
# =========================================================================================


def test_a_full_run_then_a_rerun_that_does_nothing(
    hub_models: list[str], standard_file: Path, tmp_path: Path
):
    index = tmp_path / "index"
    first = embed_many(index, standard_file, *hub_models)
    assert "3 embedded, 0 skipped, 0 failed (in-process" in first.stderr
    assert "baseline forward passes saved" in first.stderr
    found = rows_by_repo(index, standard_file)
    assert sorted(found) == hub_models
    standard = get_standard(standard_file)
    for repo, (row, vector) in found.items():
        assert row.source == "embed-many:test-box" and not row.crawled
        # the same vector as `hf-stdembed embed` of the model alone (baseline shared or not)
        alone = compute_model_embedding(repo, standard, cache=False)
        assert row.model_revision == alone.model_revision
        assert np.array_equal(vector, alone.vector.numpy())

    again = embed_many(index, standard_file, *hub_models)
    assert "0 embedded, 3 skipped, 0 failed" in again.stderr
    assert "embedded already at this revision (embed-many:test-box)" in again.stderr
    assert rows_by_repo(index, standard_file).keys() == found.keys()


def test_a_new_commit_is_embedded_again(
    hub: FakeHub,
    hub_models: list[str],
    hub_model_dirs: list[Path],
    standard_file: Path,
    tmp_path: Path,
):
    index = tmp_path / "index"
    embed_many(index, standard_file, *hub_models)
    new = hub.commit(hub_models[1], model_files(hub_model_dirs[0]), message="new weights")
    out = embed_many(index, standard_file, *hub_models)
    assert "1 embedded, 2 skipped, 0 failed" in out.stderr
    assert rows_by_repo(index, standard_file)[hub_models[1]][0].model_revision == new


def test_a_hub_query_embeds_the_most_downloaded(
    hub_models: list[str], standard_file: Path, tmp_path: Path, hub: FakeHub
):
    hub.add_repo("tester/not-an-image-model", {"README.md": b"hello"}, downloads=99)
    index = tmp_path / "index"
    args = ["--hub-filter", "image-classification", "--library", "timm", "--sort", "downloads"]
    out = embed_many(index, standard_file, *args, "--limit", 2)
    assert "2 embedded" in out.stderr
    assert sorted(rows_by_repo(index, standard_file)) == hub_models[:2]


def test_failures_are_recorded_with_their_reason_and_retried(
    hub: FakeHub,
    hub_models: list[str],
    hub_model_dirs: list[Path],
    standard_file: Path,
    tmp_path: Path,
):
    hub.add_repo("tester/broken", {"README.md": b"no weights yet"})
    listing = tmp_path / "models.txt"
    listing.write_text(f"# models\n{hub_models[0]}\n\ntester/broken  # later\ntester/missing\n")
    index = tmp_path / "index"
    out = embed_many(index, standard_file, "--from-file", listing)
    assert "1 embedded, 0 skipped, 2 failed" in out.stderr
    assert "tester/missing" in out.stderr and "run again to retry" in out.stderr
    latest = OutcomeLog(index / STATE_FILE).latest(get_standard(standard_file))
    assert latest["tester/broken"]["status"] == "failed" and latest["tester/broken"]["reason"]
    assert latest["tester/missing"]["status"] == "failed"

    hub.commit("tester/broken", model_files(hub_model_dirs[2]), message="weights")
    again = embed_many(index, standard_file, "--from-file", listing)
    assert "1 embedded, 1 skipped, 1 failed" in again.stderr
    latest = OutcomeLog(index / STATE_FILE).latest(get_standard(standard_file))
    assert latest["tester/broken"]["status"] == "done"
    assert sorted(rows_by_repo(index, standard_file)) == sorted([hub_models[0], "tester/broken"])


def test_a_row_the_owner_published_wins(
    hub: FakeHub, hub_models: list[str], standard_file: Path, tmp_path: Path
):
    run("publish", hub_models[0], "-s", standard_file, "-q")
    index = tmp_path / "index"
    run("index", "update", "--index", index, "-s", standard_file, "-q")
    out = embed_many(index, standard_file, *hub_models)
    assert "2 embedded, 1 skipped" in out.stderr and "its owner publishes" in out.stderr
    sources = {repo: row.source for repo, (row, _) in rows_by_repo(index, standard_file).items()}
    assert sources == {hub_models[0]: "crawl", hub_models[1]: "embed-many:test-box",
                       hub_models[2]: "embed-many:test-box"}  # fmt: skip
    # and a later crawl keeps the third-party rows of repos that publish nothing
    run("index", "update", "--index", index, "-s", standard_file, "-q")
    assert len(rows_by_repo(index, standard_file)) == 3


def test_local_folders_and_entry_points_are_refused(
    standard_file: Path, tmp_path: Path, tiny_timm_dir: Path
):
    for spec in (str(tiny_timm_dir), "os.path:join"):
        result = embed_many(tmp_path / "index", standard_file, spec, ok=False)
        assert result.exit_code == 1 and isinstance(result.exception, ModelLoadError)
        assert "give the model's Hub repo id" in str(result.exception)


def test_no_model_given_is_one_line(standard_file: Path, tmp_path: Path):
    result = embed_many(tmp_path / "index", standard_file, ok=False)
    assert result.exit_code == 1 and "no model given" in str(result.exception)


@pytest.mark.slow
def test_killing_the_driver_loses_only_the_model_in_flight(
    hub_models: list[str], standard_file: Path, tmp_path: Path
):
    index, marker = tmp_path / "index", tmp_path / "crashed"
    crash = str(Path(__file__).with_name("crash_once.py"))  # the CLI, hub_models[1] killing it once
    command = [sys.executable, crash, str(marker), hub_models[1], "embed-many", *hub_models]
    command += ["-s", str(standard_file), "--index", str(index), "--no-ray", "-q"]
    killed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9 and marker.exists()
    assert sorted(rows_by_repo(index, standard_file)) == [hub_models[0]]  # done before the crash
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 embedded, 1 skipped, 0 failed" in resumed.stderr
    assert sorted(rows_by_repo(index, standard_file)) == hub_models


# =========================================================================================
# Outputs: --push-index, then select --index-repo on a clean index; --open-prs
# =========================================================================================


def test_push_index_then_select_from_it_on_a_clean_index(
    hub: FakeHub, hub_models: list[str], standard_file: Path, tmp_path: Path, tiny_parquet: Path
):
    shared = "tester/shared-index"
    embed_many(tmp_path / "index", standard_file, *hub_models, "--push-index", shared)
    head = hub.head(shared, repo_type="dataset")
    select = ["select", "--dataset", tiny_parquet, "-s", standard_file, "--json", "-q"]
    select += ["--rerank", "0"]
    out = run(*select, "--index", tmp_path / "clean", "--index-repo", shared)
    rows = json.loads(out.stdout)
    assert sorted(r["model"] for r in rows) == hub_models
    assert {r["source"] for r in rows} == {f"pull:{shared}@{head}"}
    assert "Imported 3 rows" in out.stderr

    # the default comes from the environment
    os.environ["HF_STDEMBED_INDEX_REPOS"] = shared
    try:
        out = run(*select, "--index", tmp_path / "clean2")
    finally:
        del os.environ["HF_STDEMBED_INDEX_REPOS"]
    assert sorted(r["model"] for r in json.loads(out.stdout)) == hub_models

    # an index repo that cannot be pulled is a warning, not the end of the ranking
    out = run(*select, "--index", tmp_path / "clean3", "--index-repo", "tester/nothing-here")
    assert "not pulled" in out.stderr and json.loads(out.stdout) == []


def test_open_prs_once_per_model_revision(
    hub: FakeHub, hub_models: list[str], standard_file: Path, tmp_path: Path
):
    index = tmp_path / "index"
    out = embed_many(index, standard_file, *hub_models, "--open-prs")
    assert out.stderr.count("Opened a pull request") == 3
    standard = get_standard(standard_file)
    for repo in hub_models:
        files = hub.files(repo, "refs/pr/1")
        assert (
            "stdembed/tiny-test.safetensors" in files and "tiny-test" in files["README.md"].decode()
        )
        assert hub.head(repo) != hub.head(repo, "refs/pr/1")  # main is untouched
    row, vector = rows_by_repo(index, standard_file)[hub_models[0]]
    import hashlib

    data = hub.files(hub_models[0], "refs/pr/1")["stdembed/tiny-test.safetensors"]
    assert hashlib.sha256(data).hexdigest() == row.file_sha256  # the row names the PR's file
    assert standard.hash in data.decode("latin-1")
    again = embed_many(index, standard_file, *hub_models, "--open-prs")
    assert "Opened a pull request" not in again.stderr


# =========================================================================================
# Parsing a file of model specs (a stranger's file)
# =========================================================================================


def test_read_model_list():
    text = "# pool\ntimm/a\n\n  timm/b  # the second\ntimm/a\n#timm/c\n"
    assert read_model_list(text) == ["timm/a", "timm/b"]


@settings(max_examples=40, deadline=None)
@given(st.text())
def test_read_model_list_of_any_text(text: str):
    specs = read_model_list(text)
    assert len(specs) == len(set(specs))
    for spec in specs:
        assert spec and spec == spec.strip() and "#" not in spec and "\n" not in spec


def test_the_tensor_handed_over_is_the_baseline_features(
    hub_models: list[str], standard_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The baseline's probe features are extracted once per run, not once per model."""
    import hf_stdembed.embed_many as many
    import hf_stdembed.features as features
    import hf_stdembed.pipeline as pipeline

    calls: list[str] = []
    real = features.extract_features

    def counting(extractor, data, **kwargs):
        calls.append(extractor.name)
        return real(extractor, data, **kwargs)

    monkeypatch.setattr(features, "extract_features", counting)
    monkeypatch.setattr(pipeline, "extract_features", counting)  # the baseline's, once
    seen: list[torch.Tensor] = []
    real_one = many.embed_one

    def recording(job, standard, base, **kwargs):
        seen.append(base)
        return real_one(job, standard, base, **kwargs)

    monkeypatch.setattr(many, "embed_one", recording)
    embed_many(tmp_path / "index", standard_file, *hub_models)
    standard = get_standard(standard_file)
    assert calls.count(standard.baseline.model) == 1  # the baseline: once for 3 models
    assert len(seen) == 3 and all(t is seen[0] for t in seen)


def test_without_ray_installed_it_runs_in_process_unless_ray_is_asked_for(
    hub_models: list[str], standard_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    base = ["embed-many", hub_models[0], "-s", standard_file, "--index", tmp_path / "index", "-q"]
    asked = run(*base, "--ray-address", "auto", ok=False)
    assert asked.exit_code == 1 and 'pip install "hf-stdembed[ray]"' in str(asked.exception)
    both = run(*base, "--no-ray", "--ray-address", "auto", ok=False)
    assert "drop one of them" in str(both.exception)
    assert "1 embedded, 0 skipped, 0 failed (in-process" in run(*base).stderr
