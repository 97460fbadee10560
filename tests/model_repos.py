"""Model repos as the tests build them: tiny real timm models, their files, the tiny standard,
and repos that hold a published embedding (what `publish` writes) for the fake Hub or a
directory registry. Plain functions; the fixtures built on them are in tests/conftest.py."""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from pathlib import Path

import torch
import yaml
from hub_server import FakeHub
from safetensors.torch import save as save_bytes

from hf_stdembed.card import CardEntry, update_card
from hf_stdembed.embeddings import ModelEmbedding, TaskEmbedding, _to_file, save_embedding
from hf_stdembed.standards import Standard, get_standard

STANDARD = get_standard("resnet18-in1k-val")  # the standard of the published_files repos
FOREIGN_README = b"""---
license: apache-2.0
library_name: timm
custom_key:
  nested: [1, 2]
---
# A tiny model

Text the owner wrote.
"""


def make_timm_dir(folder: Path, seed: int) -> Path:
    """A timm ``test_resnet`` (32x32 input) saved in timm's Hub format."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(seed)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=5)
    data_config = {
        "input_size": (3, 32, 32),
        "crop_pct": 1.0,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    }
    save_for_hf(model, str(folder), safe_serialization=True, data_config=data_config)
    return folder


def model_files(folder: Path, readme: bytes | None = None) -> dict[str, bytes]:
    """A model folder's files by name (for ``FakeHub.add_repo``), with ``readme`` as README.md."""
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    if readme is not None:
        files["README.md"] = readme
    return files


def write_standard(folder: Path, baseline: Path, probe: Path, *, standard_id: str) -> Path:
    """``folder/<standard_id>.yaml``: the timm model ``baseline`` and the parquet ``probe`` set,
    with a short model-embedding schedule."""
    from hf_stdembed.extractors import load_extractor

    extractor = load_extractor(f"timm:{baseline}")
    data = {
        "id": standard_id,
        "baseline": {
            "model": f"timm:{baseline}",
            "revision": extractor.revision,
            "dim": int(extractor.module.num_features),
        },
        "probe": {"dataset": "parquet", "split": "train", "data_files": [str(probe)]},
        "model_embedding": {"steps": 40, "lr_step": 10, "batch_size": 8},
    }
    path = folder / f"{standard_id}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def embedding_bytes(
    seed: int, *, standard: Standard = STANDARD, vector: torch.Tensor | None = None, **changes
) -> tuple[ModelEmbedding, bytes]:
    """An embedding under ``standard`` (a random ``vector`` drawn from ``seed`` unless given;
    other fields overridden by ``changes``) and its file's bytes."""
    if vector is None:
        vector = torch.rand(standard.dim, generator=torch.Generator().manual_seed(seed))
    embedding = ModelEmbedding(
        vector=vector,
        standard_id=standard.id,
        standard_hash=standard.hash,
        model_id=f"model-{seed}",
        model_revision=f"{seed:040x}",
        l_to=0.95,
        l_from=0.9,
    )
    embedding = dataclasses.replace(embedding, **changes)
    tensors, metadata = _to_file(embedding)
    return embedding, save_bytes(tensors, metadata=metadata)


def task_embedding_bytes(
    seed: int, *, standard: Standard = STANDARD
) -> tuple[TaskEmbedding, bytes]:
    """A task embedding under ``standard`` (a random mask drawn from ``seed``) and its file's
    bytes, as :func:`embedding_bytes` gives a model embedding."""
    task = TaskEmbedding(
        vector=torch.rand(standard.dim, generator=torch.Generator().manual_seed(seed)),
        standard_id=standard.id,
        standard_hash=standard.hash,
        dataset_id="tiny",
        dataset_split="test",
        gamma=0.1,
        converged_accuracy=90.0,
        gammas=torch.tensor([0.1], dtype=torch.float64),
        accuracies=torch.tensor([90.0], dtype=torch.float64),
        mask_sizes=torch.tensor([3.0], dtype=torch.float64),
    )
    tensors, metadata = _to_file(task)
    return task, save_bytes(tensors, metadata=metadata)


def published_files(
    repo_id: str, seed: int, *, data: bytes | None = None, entry_changes: dict | None = None
) -> dict[str, bytes]:
    """A repo's files as `publish` writes them: the embedding and a README that declares it."""
    embedding, good = embedding_bytes(seed)
    data = good if data is None else data
    entry = CardEntry.from_embedding(embedding, data, sha256=hashlib.sha256(data).hexdigest())
    entry = dataclasses.replace(entry, **(entry_changes or {}))
    readme = update_card(None, [entry], repo_id=repo_id)
    return {entry.file: data, "README.md": readme.encode()}


def seed_repos(hub: FakeHub, count: int) -> list[str]:
    """``count`` repos with a published embedding each, spread over three owners."""
    repos = [f"org{i % 3}/model-{i:03d}" for i in range(count)]
    for i, repo in enumerate(repos):
        hub.add_repo(repo, published_files(repo, i))
    return repos


def card_only_files(
    embedding: ModelEmbedding, *, repo_id: str, model: str | None = None
) -> dict[str, bytes]:
    """README.md + the embedding file of a repo that holds no model."""
    with tempfile.TemporaryDirectory() as folder:
        data = save_embedding(embedding, Path(folder) / "e.safetensors").read_bytes()
    entry = CardEntry.from_embedding(embedding, data, sha256=hashlib.sha256(data).hexdigest())
    entry = dataclasses.replace(entry, model=model)
    readme = update_card(None, [entry], repo_id=repo_id)
    return {"README.md": readme.encode(), entry.file: data}


def write_repo(root: Path, repo_id: str, files: dict[str, bytes]) -> None:
    """Put ``files`` under ``root/repo_id`` (a directory registry's repo)."""
    for name, data in files.items():
        path = root / repo_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
