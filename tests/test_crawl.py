"""The crawler and select: through the fake Hub with the real client, and a directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hub_server import FakeHub
from model_repos import STANDARD, embedding_bytes, published_files, seed_repos, task_embedding_bytes
from typer.testing import CliRunner

from hf_stdembed.cli import app
from hf_stdembed.crawl import crawl
from hf_stdembed.index import EmbeddingIndex
from hf_stdembed.registry import DirectoryRegistry, HubRegistry

runner = CliRunner()


@pytest.fixture
def index(tmp_path: Path) -> EmbeddingIndex:
    with EmbeddingIndex.open(tmp_path / "index") as opened:
        yield opened


def test_first_crawl_downloads_everything_second_nothing(hub: FakeHub, index: EmbeddingIndex):
    repos = seed_repos(hub, 55)
    registry = HubRegistry()

    hub.clear_requests()
    first = crawl(registry, index)
    first_requests, first_downloads = len(hub.requests), hub.downloads
    assert first.listed == 55 and first.downloaded == 55 and not first.problems
    assert sorted(r.repo_id for r in index.rows(STANDARD.hash)) == sorted(repos)

    hub.clear_requests()
    downloads_before = hub.downloads
    second = crawl(registry, index)
    print(
        f"crawl of 55 repos: first {first_requests} requests / {first_downloads} downloads; "
        f"second {len(hub.requests)} requests / {hub.downloads - downloads_before} downloads"
    )
    assert second.unchanged == 55 and second.downloaded == 0
    assert hub.downloads == downloads_before
    assert all(path.startswith("/api/models") for _, path in hub.requests)  # listing only

    # an updated repo is downloaded again, pinned to its new commit
    _, newer = embedding_bytes(1000)
    new_sha = hub.commit(repos[7], published_files(repos[7], 1000, data=newer))
    third = crawl(registry, index)
    assert third.downloaded == 1 and third.indexed == [repos[7]]
    assert index.get(repos[7], STANDARD.hash).revision == new_sha


def test_hostile_repos_are_skipped_with_reasons(hub: FakeHub, index: EmbeddingIndex):
    seed_repos(hub, 3)
    _, nan = embedding_bytes(1, vector=torch.full((STANDARD.dim,), float("nan")))
    _, short = embedding_bytes(2, vector=torch.rand(100))
    hostile = {
        "bad/task-embedding": published_files(
            "bad/task-embedding", 11, data=task_embedding_bytes(11)[1]
        ),
        "bad/not-safetensors": published_files("bad/not-safetensors", 5, data=b"\x80\x04pickle"),
        "bad/nan": published_files("bad/nan", 6, data=nan),
        "bad/wrong-dim": published_files("bad/wrong-dim", 7, data=short),
        "bad/sha-mismatch": published_files(
            "bad/sha-mismatch", 8, entry_changes={"sha256": "0" * 64}
        ),
        "bad/unknown-standard": published_files(
            "bad/unknown-standard", 9, entry_changes={"standard_id": "nope"}
        ),
        "bad/missing-file": {
            "README.md": published_files("bad/missing-file", 10)["README.md"],
        },
        "bad/no-entries": {"README.md": b"---\ntags: [hf-stdembed]\n---\nhello\n"},
        "bad/junk-card": {"README.md": b"---\ntags: [hf-stdembed]\nhf_stdembed: 42\n---\n"},
    }
    for repo, files in hostile.items():
        hub.add_repo(repo, files)

    report = crawl(HubRegistry(), index)
    reasons = dict(report.problems)
    assert set(reasons) == set(hostile)
    assert "not a readable safetensors" in reasons["bad/not-safetensors"]
    assert "NaN" in reasons["bad/nan"]
    assert "100 values" in reasons["bad/wrong-dim"] or "shape" in reasons["bad/wrong-dim"]
    assert "sha256" in reasons["bad/sha-mismatch"]
    assert "unknown standard 'nope'" in reasons["bad/unknown-standard"]
    # named by the repo's path, not the local copy's
    assert reasons["bad/task-embedding"].endswith(
        "stdembed/resnet18-in1k-val.safetensors: is a task embedding, expected a model embedding"
    ), reasons["bad/task-embedding"]
    assert "/tmp" not in reasons["bad/task-embedding"]
    assert len(index.rows(STANDARD.hash)) == 3  # the good ones, nothing else
    assert index.crawl_state("bad/nan").status == "invalid"
    # an invalid repo is not downloaded again until it changes
    before = hub.downloads
    crawl(HubRegistry(), index)
    assert hub.downloads == before


def test_oversized_files_are_refused_before_download(hub: FakeHub, index: EmbeddingIndex):
    seed_repos(hub, 2)
    report = crawl(HubRegistry(), index, max_bytes=100)
    assert report.downloaded == 0 and len(report.problems) == 2
    assert hub.downloads == 0


def test_rate_limits_are_survived(hub: FakeHub, index: EmbeddingIndex, monkeypatch):
    from huggingface_hub.utils import _http

    monkeypatch.setattr(_http.time, "sleep", lambda s: None)
    seed_repos(hub, 12)
    hub.fail_next(2, status=429, path_prefix="/api/models")
    hub.fail_next(2, status=429, path_prefix="/org1")
    report = crawl(HubRegistry(), index)
    assert report.listed == 12 and len(index.rows(STANDARD.hash)) == 12


def test_untagged_repos_leave_the_index(hub: FakeHub, index: EmbeddingIndex):
    repos = seed_repos(hub, 4)
    crawl(HubRegistry(), index)
    hub.commit(repos[0], {"README.md": b"---\nlicense: mit\n---\nno longer published\n"})
    report = crawl(HubRegistry(), index)
    assert report.removed == [repos[0]]
    assert index.get(repos[0], STANDARD.hash) is None and len(index.rows()) == 3


@pytest.mark.slow
def test_kill_9_mid_crawl_loses_nothing(hub: FakeHub, tmp_path: Path):
    seed_repos(hub, 60)
    folder = tmp_path / "index"
    env = {**os.environ, "HF_STDEMBED_INDEX": str(folder)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "hf_stdembed", "index", "update", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while hub.downloads < 55 and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    with EmbeddingIndex.open(folder) as opened:
        opened.check()  # rows and matrix agree, whatever was in flight
        kept = len(opened.rows())
        report = crawl(HubRegistry(), opened)
        assert len(opened.rows(STANDARD.hash)) == 60
        assert report.unchanged == kept  # committed work is not redone


def test_directory_registry_crawl(tmp_path: Path, index: EmbeddingIndex):
    root = tmp_path / "registry"
    for i in range(3):
        (root / "team" / f"model-{i}").mkdir(parents=True)
    registry = DirectoryRegistry(root)
    for i in range(3):
        repo = f"team/model-{i}"
        registry.commit(repo, published_files(repo, i), message="publish", parent_commit=None)
    report = crawl(registry, index)
    assert report.downloaded == 3 and len(index.rows(STANDARD.hash)) == 3
    assert crawl(registry, index).unchanged == 3


def test_index_cli_update_list_export_import(hub: FakeHub, tmp_path: Path):
    seed_repos(hub, 5)
    folder, copy, parquet = tmp_path / "a", tmp_path / "b", tmp_path / "index.parquet"
    for args in (
        ["index", "update", "--index", folder, "-q"],
        ["index", "export", parquet, "--index", folder],
        ["index", "import", parquet, "--index", copy],
    ):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["index", "list", "--index", str(copy)])
    assert listed.exit_code == 0 and listed.output.count("org") >= 5
    with EmbeddingIndex.open(folder) as a, EmbeddingIndex.open(copy) as b:
        for row in a.rows():
            twin = b.get(row.repo_id, row.standard_hash)
            assert twin is not None and twin.file_sha256 == row.file_sha256


def test_rank_index_matches_the_definition(hub: FakeHub, tmp_path: Path):
    """The sweep over the index ranks exactly as the definition does."""
    from hf_stdembed.selection import rank_index

    repos = seed_repos(hub, 6)
    with EmbeddingIndex.open(tmp_path / "index") as opened:
        crawl(HubRegistry(), opened)
        task, _ = task_embedding_bytes(99)
        ranking = rank_index(task, opened, top=3)
        vectors = {
            r.repo_id: v
            for r, v in zip(opened.rows(STANDARD.hash), opened.vectors(STANDARD.hash), strict=True)
        }
    expected = sorted(
        repos, key=lambda r: -float(torch.minimum(task.vector, torch.tensor(vectors[r])).sum())
    )
    assert [r.model_id for r in ranking.rows] == expected[:3]
    assert ranking.rows[0].score >= ranking.rows[1].score >= ranking.rows[2].score
