"""publish -> select -> verify, end to end: the fake Hub (real client) and a directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import FakeHub
from model_repos import make_timm_dir, model_files, write_standard
from typer.testing import CliRunner

from hf_stdembed.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return [make_timm_dir(tmp_path_factory.mktemp(f"sel{i}"), seed=10 + i) for i in range(3)]


def cli(*args: object) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.slow
def test_publish_then_select_on_the_hub(
    hub: FakeHub, models: list[Path], standard_file: Path, tiny_parquet: Path, tmp_path: Path
):
    repos = [f"tester/sel{i}" for i in range(3)]
    for repo, folder in zip(repos, models, strict=True):
        hub.add_repo(repo, model_files(folder))
        cli("publish", repo, "-s", standard_file, "-q")

    env = {**os.environ, "HF_STDEMBED_INDEX": str(tmp_path / "index")}
    command = [sys.executable, "-m", "hf_stdembed", "select", "--dataset", str(tiny_parquet)]
    command += ["--standard", str(standard_file), "--json", "--quiet", "--rerank", "0"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert sorted(r["model"] for r in rows) == sorted(repos)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["score"] >= rows[1]["score"] >= rows[2]["score"]
    assert rows[0]["link"] == f"{hub.endpoint}/{rows[0]['model']}"
    assert rows[0]["revision"] == hub.head(rows[0]["model"])
    assert "3 repos listed" in done.stderr

    # a second select with nothing changed downloads no file
    before = hub.downloads
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout) == rows
    assert hub.downloads == before

    # verify: recomputing the published model gives the published embedding
    verified = cli("verify", repos[0], "-s", standard_file, "-q")
    assert "Jaccard 1.000" in verified


def test_select_skips_other_standards_and_says_so(
    hub: FakeHub,
    models: list[Path],
    standard_file: Path,
    tiny_parquet: Path,
    tmp_path: Path,
    tiny_timm_dir: Path,
):
    (tmp_path / "other").mkdir()
    other_file = write_standard(
        tmp_path / "other", models[0], tiny_parquet, standard_id="other-test"
    )
    hub.add_repo("tester/a", model_files(models[1]))
    hub.add_repo("tester/b", model_files(models[2]))
    cli("publish", "tester/a", "-s", standard_file, "-q")
    cli("publish", "tester/b", "-s", other_file, "-q")
    index = tmp_path / "index"
    cli("index", "update", "--index", index, "-s", other_file, "-s", standard_file, "-q")
    result = runner.invoke(
        app,
        [
            "select",
            "--dataset",
            str(tiny_parquet),
            "-s",
            str(standard_file),
            "--index",
            str(index),
            "--no-refresh",
            "--json",
            "-q",
            "--rerank",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [r["model"] for r in json.loads(result.stdout)] == ["tester/a"]
    assert "1 model(s)" in result.stderr and "another standard" in result.stderr


def test_publish_then_select_in_a_directory_registry(
    models: list[Path], standard_file: Path, tiny_parquet: Path, tmp_path: Path
):
    root = tmp_path / "registry"
    for i, folder in enumerate(models):
        shutil.copytree(folder, root / "team" / f"m{i}")
        cli("publish", f"team/m{i}", "-s", standard_file, "--registry", root, "-q")
    out = cli(
        "select",
        "--dataset",
        tiny_parquet,
        "-s",
        standard_file,
        "--registry",
        root,
        "--index",
        tmp_path / "index",
        "--json",
        "-q",
        "--rerank",
        "0",
    )
    rows = json.loads(out)
    assert sorted(r["model"] for r in rows) == ["team/m0", "team/m1", "team/m2"]
    assert rows[0]["link"].startswith("file://")
    assert "Jaccard 1.000" in cli(
        "verify", "team/m1", "-s", standard_file, "--registry", root, "-q"
    )


def test_select_offline_ranks_the_local_index_without_crawling(
    hub: FakeHub,
    models: list[Path],
    standard_file: Path,
    tiny_parquet: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    from huggingface_hub import constants

    hub.add_repo("tester/off", model_files(models[0]))
    cli("publish", "tester/off", "-s", standard_file, "-q")
    index = tmp_path / "index"
    cli("index", "update", "--index", index, "-s", standard_file, "-q")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.clear_requests()
    result = runner.invoke(
        app,
        [
            "select",
            "--dataset",
            str(tiny_parquet),
            "-s",
            str(standard_file),
            "--index",
            str(index),
            "--json",
            "-q",
            "--rerank",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [r["model"] for r in json.loads(result.stdout)] == ["tester/off"]
    assert "HF_HUB_OFFLINE" in result.stderr and hub.requests == []
