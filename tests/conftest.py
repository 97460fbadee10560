"""Shared pytest fixtures. Plain helpers (no fixtures) are modules beside it: tiny_images.py,
model_repos.py, index_rows.py, planted_data.py, planted_rerank.py, eval_pool.py, hub_server.py;
test files import these, not each other (tests/test_structure.py checks it)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import datasets
import pytest
from tiny_images import TINY_CLASSES, colour_images, make_image_dataset, make_images

# =========================================================================================
# Models, datasets and features (tests/test_extractors.py, test_data.py, test_features.py):
# offline caches, tiny real models saved as local directories, tiny image datasets.
# =========================================================================================


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread() -> Iterator[None]:
    """Run torch on one CPU thread: tiny models are faster so, and OpenMP's multi-thread
    parallel regions slow down by orders of magnitude when another process holds a core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def offline_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every cache at a temp folder and forbid network access to the Hub."""
    import datasets.config
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    hub_cache = home / "hub"
    env = {
        "HF_HOME": home,
        "HF_HUB_CACHE": hub_cache,
        "HF_DATASETS_CACHE": home / "datasets",
        "HF_STDEMBED_CACHE": home / "stdembed" / "features",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    # the libraries read these once, at import time
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    return home


@pytest.fixture(scope="session")
def tiny_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-row labelled image dataset saved as one parquet file."""
    path = tmp_path_factory.mktemp("parquet") / "tiny.parquet"
    make_image_dataset().to_parquet(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_imagefolder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image folder: ``<class>/<n>.png``, 3 classes of 3 images."""
    root = tmp_path_factory.mktemp("imagefolder")
    for i, image in enumerate(make_images(9, seed=1)):
        folder = root / TINY_CLASSES[i % 3]
        folder.mkdir(exist_ok=True)
        image.save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def tiny_timm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A timm ``test_resnet`` (5 classes, 32x32 input, seed 0) saved in timm's Hub format."""
    from model_repos import make_timm_dir

    return make_timm_dir(tmp_path_factory.mktemp("timm_model"), seed=0)


@pytest.fixture(scope="session")
def tiny_transformers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny transformers ``ResNetModel`` and its image processor (32x32)."""
    import torch
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetModel

    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
    folder = tmp_path_factory.mktemp("transformers_model")
    ResNetModel(config).save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_dataset() -> datasets.Dataset:
    """24 labelled RGB images (3 classes), in memory."""
    return make_image_dataset()


@pytest.fixture
def tiny_gray_dataset() -> datasets.Dataset:
    """12 labelled grayscale (mode ``L``) images, in memory."""
    return make_image_dataset(12, seed=2, mode="L")


@pytest.fixture
def fake_hub(offline_caches: Path) -> Callable[..., None]:
    """``fake_hub(repo_id, folder, sha=...)`` puts a folder in the Hub cache as ``main``."""
    return partial(_fake_hub_repo, offline_caches / "hub")


def _fake_hub_repo(hub_cache: Path, repo_id: str, files: Path, *, sha: str) -> None:
    """Put a model folder in the Hub cache layout as the ``main`` revision ``sha``."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True)
    for file in files.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)


# =========================================================================================
# Colour images: the evaluation pool (tests/eval_pool.py) and the planted two-stage select.
# =========================================================================================


@pytest.fixture
def colour_data():
    """45 colour images (tiny_images.colour_images) as the library's ImageDataset: the task of
    the planted two-stage select (tests/planted_rerank.py)."""
    from hf_stdembed.data import as_image_dataset

    return as_image_dataset(colour_images(45, seed=0), source="colours", fingerprint="colours-45")


@pytest.fixture
def tiny_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The tiny evaluation pool (tests/eval_pool.py) importable as ``tiny_eval_models``, and
    ``(standard, specs, task_file, probe_config)``: a 60-image probe set, a 90-image task."""
    from dataclasses import replace

    from eval_pool import TINY_MODULE

    from hf_stdembed.core import LinearProbeConfig, ModelEmbeddingConfig, TaskEmbeddingConfig
    from hf_stdembed.standards import BaselineSpec, ProbeSpec, Standard

    (tmp_path / "tiny_eval_models.py").write_text(TINY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    probe_file = tmp_path / "probe.parquet"
    colour_images(60, seed=0).to_parquet(str(probe_file))
    task_file = tmp_path / "task.parquet"
    colour_images(90, seed=1).to_parquet(str(task_file))
    standard = Standard(
        id="tiny-eval",
        baseline=BaselineSpec(model="entrypoint:tiny_eval_models:base", revision="0", dim=32),
        probe=ProbeSpec(dataset="parquet", split="train", data_files=(str(probe_file),)),
        model_embedding=replace(ModelEmbeddingConfig(), steps=40, lr_step=20, batch_size=32),
        task_embedding=replace(
            TaskEmbeddingConfig(), epochs=4, lr_step_epochs=2, gammas=(0.0, 1e-3, 1e-1)
        ),
    )
    specs = [f"entrypoint:tiny_eval_models:{n}" for n in ("base", "good", "noise")]
    probe_config = LinearProbeConfig(epochs=6, lr_step_epochs=3)
    return standard, specs, task_file, probe_config


# =========================================================================================
# The local Hub-compatible server (tests/hub_server.py) for publish / crawl / select tests.
# =========================================================================================


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    """A fresh FakeHub on 127.0.0.1 that the real huggingface_hub client talks to."""
    from hub_server import TOKEN, FakeHub, use_endpoint

    with FakeHub() as server:
        use_endpoint(monkeypatch, server.endpoint, token=TOKEN)
        yield server
    assert not server.server_errors, server.server_errors


# =========================================================================================
# The tiny standard and tiny models on the fake Hub (publish / select / verify / embed-many).
# =========================================================================================


@pytest.fixture
def standard_file(tmp_path: Path, tiny_timm_dir: Path, tiny_parquet: Path) -> Path:
    """``tiny-test.yaml``: the tiny timm model as the baseline, tiny_parquet as the probe set."""
    from model_repos import write_standard

    return write_standard(tmp_path, tiny_timm_dir, tiny_parquet, standard_id="tiny-test")


HUB_MODELS = [f"tester/em{i}" for i in range(3)]


@pytest.fixture(scope="module")
def hub_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three tiny timm models (seeds 20..22) as local folders."""
    from model_repos import make_timm_dir

    return [make_timm_dir(tmp_path_factory.mktemp(f"em{i}"), seed=20 + i) for i in range(3)]


@pytest.fixture
def hub_models(hub, hub_model_dirs: list[Path]) -> list[str]:
    """hub_model_dirs on the fake Hub as tester/em0..2, tagged as a Hub query finds them
    (downloads 30..10)."""
    from model_repos import model_files

    for i, (repo, folder) in enumerate(zip(HUB_MODELS, hub_model_dirs, strict=True)):
        tags = ["image-classification", "timm"]
        hub.add_repo(repo, model_files(folder), tags=tags, downloads=30 - 10 * i)
    return HUB_MODELS


# =========================================================================================
# The console entry point (its error boundary), run in-process.
# =========================================================================================


@dataclasses.dataclass
class Run:
    """What one run of the console entry point gave."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def error_lines(self) -> list[str]:
        """The output's lines that start with ``Error:``."""
        return [line for line in self.output.splitlines() if line.startswith("Error:")]


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """``console(*args)`` runs `hf-stdembed ARGS` through the console entry point (where the
    `Error:` lines are printed), in-process."""
    from hf_stdembed.cli import main

    def run(*args: object) -> Run:
        monkeypatch.setattr(sys, "argv", ["hf-stdembed", *(str(a) for a in args)])
        capsys.readouterr()
        code = 0
        try:
            main()
        except SystemExit as e:
            code = int(e.code or 0)
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


@pytest.fixture
def verify(console):
    """``verify(*args)`` runs `hf-stdembed verify ...` through the console entry point."""
    return lambda *args: console("verify", *args)
