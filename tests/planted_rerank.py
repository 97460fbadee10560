"""The planted two-stage select (tests/test_rerank.py, test_progress.py): an index of
hand-made embeddings whose models are tiny in-process extractors on images whose class is their
colour. ``good`` sees the colour (LogME high), ``noise`` returns per-image noise (LogME low);
stage 1 is planted to rank ``good`` low by the plain intersection and first by the
model-normalised one. Plain helpers; the ``colour_data`` fixture is in tests/conftest.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from hf_stdembed.embeddings import TaskEmbedding
from hf_stdembed.extractors import FeatureExtractor, load_extractor
from hf_stdembed.index import EmbeddingIndex, IndexRow

H = "ab" * 8
TASK = np.array([1, 1, 1, 1, 0, 0, 0, 0], np.float32)
# intersection: wide 4, mid-a 2.4, mid-b 2.4, narrow 1; I/|v|: narrow 1, mid-b .67, wide .6
PLANTED = {
    "org/wide": ([1, 1, 1, 1, 0.9, 0.9, 0.9, 0], "timm:org/wide-noise"),
    "org/mid-a": ([0.8, 0.8, 0.8, 0, 0.5, 0.5, 0.5, 0.5], "timm:org/mid-noise"),
    "org/mid-b": ([0.6, 0.6, 0.6, 0.6, 0.3, 0.3, 0.3, 0.3], "timm:org/mid-noise"),
    "org/narrow": ([1, 0, 0, 0, 0, 0, 0, 0], "timm:org/good"),
}


def _transform(image):
    import torchvision.transforms.functional as TF

    return TF.to_tensor(image.convert("RGB").resize((8, 8)))


def _extractor(name: str, *, informative: bool, dim: int = 12) -> FeatureExtractor:
    proj = torch.randn(3 * 64, dim, generator=torch.Generator().manual_seed(len(name)))

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        if informative:
            return torch.cat([pixels.mean((2, 3)), torch.relu(pixels.flatten(1) @ proj)], 1)
        keys = (pixels.flatten(1).sum(1) * 1e4).long()  # per-image noise, blind to the colour
        gens = [torch.Generator().manual_seed(int(k)) for k in keys]
        return torch.stack([torch.rand(dim + 3, generator=g) for g in gens])

    return FeatureExtractor(
        name=name, revision="0", transform=_transform, forward=forward, preprocessing=name
    )


MODELS = {
    "timm:org/good": lambda: _extractor("good", informative=True),
    "timm:org/wide-noise": lambda: _extractor("wide-noise", informative=False),
    "timm:org/mid-noise": lambda: _extractor("mid-noise", informative=False),
}


class Loader:
    """The planted models by spec; any other spec goes to the real loader (offline)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, spec: str, revision: str) -> FeatureExtractor:
        self.calls.append((spec, revision))
        if spec in MODELS:
            return MODELS[spec]()
        return load_extractor(spec, revision=revision)


def task_embedding(vector: np.ndarray = TASK, standard_hash: str = H) -> TaskEmbedding:
    """The planted task's embedding (``TASK`` under the standard ``H`` unless given)."""
    one = torch.ones(1, dtype=torch.float64)
    return TaskEmbedding(
        vector=torch.from_numpy(vector),
        standard_id="test-standard",
        standard_hash=standard_hash,
        dataset_id="colours",
        dataset_split="train",
        gamma=0.0,
        converged_accuracy=100.0,
        gammas=one,
        accuracies=one,
        mask_sizes=one,
    )


def row(repo: str, spec: str | None, *, standard_hash: str = H, **changes) -> IndexRow:
    """An index row of ``repo`` whose model loads from ``spec``; ``changes`` override fields."""
    return dataclasses.replace(
        IndexRow(
            repo_id=repo,
            revision="c" * 40,
            standard_id="test-standard",
            standard_hash=standard_hash,
            file_path="stdembed/test-standard.safetensors",
            file_sha256="0" * 64,
            model_id=repo,
            model_revision="d" * 40,
            l_to=0.5,
            l_from=0.6,
            library_version="0.1.0",
            created_at="2025-01-01T00:00:00+00:00",
            model_spec=spec,
        ),
        **changes,
    )


def planted_index(
    path: Path, extra: dict[str, tuple[list[float], str | None]] | None = None, **specs
) -> EmbeddingIndex:
    """The planted rows (``extra`` first, in matrix order); ``specs`` override model specs
    (``org_wide="..."`` for ``org/wide``)."""
    planted = {**(extra or {}), **PLANTED}
    with EmbeddingIndex.open(path).update() as tx:
        for repo, (vector, spec) in planted.items():
            spec = specs.get(repo.replace("/", "_").replace("-", "_"), spec)
            tx.upsert(row(repo, spec), np.array(vector, np.float32))
    return EmbeddingIndex.open(path)
