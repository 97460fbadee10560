"""``embed-many`` on a real local Ray (``ray.init(num_cpus=2)``) against the fake Hub: the same
vectors as in-process, and a killed worker loses only its model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from crash_once import crash_once
from hub_server import FakeHub

from hf_stdembed import embed_many as embed_many_module
from hf_stdembed.embed_many import STATE_FILE, ModelJob, OutcomeLog, embed_many
from hf_stdembed.index import EmbeddingIndex
from hf_stdembed.registry import HubRegistry
from hf_stdembed.standards import get_standard

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a Ray cluster and fresh workers: tens of seconds


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module; the library reuses a Ray this process is connected to."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def jobs_of(hub_models: list[str]) -> list[ModelJob]:
    hub = HubRegistry()
    return [ModelJob(repo, repo, hub.head(repo)) for repo in hub_models]


def vectors(index: Path, standard) -> dict[str, np.ndarray]:
    with EmbeddingIndex.open(index) as opened:
        rows, matrix = opened.snapshot(standard.hash)
        return {r.repo_id: np.array(matrix[i]) for i, r in enumerate(rows)}


def run(index: Path, standard, jobs: list[ModelJob], **options):
    with EmbeddingIndex.open(index) as opened:
        return embed_many(jobs, standard, opened, computed_by="ci", **options)


def test_ray_and_in_process_give_the_same_vectors(
    local_ray, hub: FakeHub, hub_models: list[str], standard_file: Path, tmp_path: Path
):
    standard, jobs = get_standard(standard_file), jobs_of(hub_models)
    seen = []
    on_ray = run(
        tmp_path / "ray",
        standard,
        jobs,
        use_ray=True,
        cache_dir=tmp_path / "c1",
        on_progress=seen.append,
    )
    assert sorted(on_ray.done) == hub_models and on_ray.executor.startswith("ray local")
    assert sorted(e.item for e in seen if e.done) == hub_models and on_ray.device_seconds["cpu"] > 0
    assert on_ray.baseline_passes_saved == 2 * 24  # two models did not run the baseline again
    local = run(tmp_path / "local", standard, jobs, use_ray=False, cache_dir=tmp_path / "c2")
    assert sorted(local.done) == hub_models and local.executor == "in-process"
    a, b = vectors(tmp_path / "ray", standard), vectors(tmp_path / "local", standard)
    assert a.keys() == b.keys()
    for repo in hub_models:
        assert np.array_equal(a[repo], b[repo]), repo
    again = run(tmp_path / "ray", standard, jobs, use_ray=True)
    assert not again.done and len(again.skipped) == 3  # a rerun does nothing


def test_a_killed_worker_loses_only_its_model_then_the_rerun_completes(
    local_ray,
    hub: FakeHub,
    hub_models: list[str],
    standard_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    standard, jobs = get_standard(standard_file), jobs_of(hub_models)
    index = tmp_path / "index"
    killer = crash_once(embed_many_module.embed_one, tmp_path / "crashed", hub_models[1])
    monkeypatch.setattr(embed_many_module, "embed_one", killer)  # Ray ships it to its workers
    first = run(index, standard, jobs, use_ray=True, max_retries=0)
    assert (tmp_path / "crashed").exists()
    assert sorted(first.done) == [hub_models[0], hub_models[2]]
    assert [repo for repo, _ in first.failed] == [hub_models[1]]
    assert first.failed[0][1].startswith("Ray: ")  # the reason, as Ray gives it
    assert OutcomeLog(index / STATE_FILE).latest(standard)[hub_models[1]]["status"] == "failed"

    rerun = run(index, standard, jobs, use_ray=True, max_retries=0)
    assert rerun.done == [hub_models[1]] and len(rerun.skipped) == 2 and not rerun.failed
    assert sorted(vectors(index, standard)) == hub_models


def test_a_worker_killed_once_is_retried_by_ray(
    local_ray,
    hub: FakeHub,
    hub_models: list[str],
    standard_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    standard = get_standard(standard_file)
    killer = crash_once(embed_many_module.embed_one, tmp_path / "crashed", hub_models[0])
    monkeypatch.setattr(embed_many_module, "embed_one", killer)  # Ray ships it to its workers
    report = run(tmp_path / "index", standard, jobs_of(hub_models[:1]), use_ray=True, max_retries=1)
    assert (tmp_path / "crashed").exists() and report.done == [hub_models[0]]
