"""Model and task embeddings are cached on disk: a second publish or select computes nothing
(issue 9 #8)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
from pathlib import Path

import pytest
import torch
from hub_server import FakeHub
from model_repos import FOREIGN_README, make_timm_dir, model_files, write_standard
from typer.testing import CliRunner

from hf_stdembed import pipeline
from hf_stdembed.cli import app
from hf_stdembed.extractors import FeatureExtractor, load_extractor
from hf_stdembed.pipeline import compute_model_embedding, compute_task_embedding
from hf_stdembed.standards import Standard, get_standard

runner = CliRunner()


def fail(*args, **kwargs):
    raise AssertionError("the embedding was computed again")


@pytest.fixture
def no_core(monkeypatch: pytest.MonkeyPatch):
    """Calling it makes every core optimisation (P and Q) fail."""

    def patch() -> None:
        for name in ("embed_model", "embed_model_from_batches", "embed_task"):
            monkeypatch.setattr(pipeline, name, fail)

    return patch


@pytest.fixture
def standard(tmp_path: Path, tiny_timm_dir: Path, tiny_parquet: Path) -> Standard:
    return get_standard(write_standard(tmp_path, tiny_timm_dir, tiny_parquet, standard_id="tiny"))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return make_timm_dir(tmp_path / "model", seed=3)


def same(a, b) -> None:
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y, field.name


def test_a_second_model_embedding_runs_no_optimisation(
    standard: Standard, model_dir: Path, no_core
) -> None:
    first = compute_model_embedding(f"timm:{model_dir}", standard)
    no_core()

    second = compute_model_embedding(f"timm:{model_dir}", standard)

    same(first, second)
    assert list((pipeline.default_cache_dir() / "embeddings").glob("model-*.safetensors"))


@pytest.mark.parametrize("change", ["standard", "model revision", "protocol"])
def test_a_changed_standard_model_or_protocol_recomputes(
    standard: Standard, model_dir: Path, no_core, tmp_path: Path, change: str
) -> None:
    compute_model_embedding(f"timm:{model_dir}", standard)
    no_core()
    protocol = "cached"
    if change == "standard":
        config = dataclasses.replace(standard.model_embedding, steps=41)
        standard = dataclasses.replace(standard, model_embedding=config)
    elif change == "model revision":
        make_timm_dir(tmp_path / "other", seed=4)
        shutil.copy(tmp_path / "other" / "model.safetensors", model_dir / "model.safetensors")
    else:
        protocol = "per-step"

    with pytest.raises(AssertionError, match="computed again"):
        compute_model_embedding(f"timm:{model_dir}", standard, protocol=protocol)


def test_a_model_without_a_revision_is_never_cached(
    standard: Standard, model_dir: Path, no_core
) -> None:
    extractor = dataclasses.replace(load_extractor(f"timm:{model_dir}"), revision=None)
    assert isinstance(extractor, FeatureExtractor)
    compute_model_embedding(extractor, standard)
    compute_model_embedding(f"timm:{model_dir}", standard)  # cached
    no_core()

    with pytest.raises(AssertionError, match="computed again"):
        compute_model_embedding(extractor, standard)
    with pytest.raises(AssertionError, match="computed again"):  # the cache turned off
        compute_model_embedding(f"timm:{model_dir}", standard, cache=False)


def test_a_second_task_embedding_runs_no_optimisation(
    standard: Standard, tiny_parquet: Path, no_core, tmp_path: Path
) -> None:
    def task(**kwargs):
        return compute_task_embedding("parquet", standard, data_files=str(tiny_parquet), **kwargs)

    first = task()
    with_gammas = task(gammas=(0.0, 1e-3))
    no_core()

    same(first, task())
    same(with_gammas, task(gammas=(1e-3, 0.0)))
    with pytest.raises(AssertionError, match="computed again"):
        task(gammas=(0.0, 1e-2))  # another gamma override
    with pytest.raises(AssertionError, match="computed again"):
        task(cache_dir=tmp_path / "elsewhere")


def test_a_corrupt_cache_file_is_recomputed(standard: Standard, model_dir: Path) -> None:
    first = compute_model_embedding(f"timm:{model_dir}", standard)
    (path,) = (pipeline.default_cache_dir() / "embeddings").glob("model-*.safetensors")
    path.write_bytes(b"torn")

    second = compute_model_embedding(f"timm:{model_dir}", standard)

    assert torch.equal(first.vector, second.vector)
    assert path.stat().st_size > 4  # written again


def test_publish_after_a_dry_run_computes_nothing(
    hub: FakeHub, standard: Standard, tmp_path: Path, tiny_timm_dir: Path, tiny_parquet: Path,
    model_dir: Path, no_core,
) -> None:  # fmt: skip
    hub.add_repo("tester/m", model_files(model_dir, FOREIGN_README))
    standard_file = write_standard(tmp_path, tiny_timm_dir, tiny_parquet, standard_id="tiny")
    args = ["publish", "tester/m", "-s", str(standard_file), "-q"]

    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    no_core()
    done = runner.invoke(app, args)

    assert done.exit_code == 0, done.output
    published = hub.files("tester/m")["stdembed/tiny.safetensors"]
    digest = hashlib.sha256(published).hexdigest()
    assert re.search(rf"stdembed/tiny\.safetensors  \d+ bytes  sha256 {digest}", dry.stdout)


def test_embedding_cache_file_name_is_pinned() -> None:
    """The cache file name (now from `_hashing.json_digest`) is the one computed before."""
    key = {"kind": "model", "model": "zoo:é", "model_revision": "r1", "x": [1, 2]}
    path = pipeline.embedding_cache_path(key, cache_dir="/c")
    assert path == Path("/c/embeddings/model-f9f1250d1b1d2940ccfeba3ea85a5fd1.safetensors")
