"""P and Q as the evaluation runs them: on cached features, kept under the cache folder."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .._cache import keyed_path
from .._hashing import canonical_json
from ..core import TaskEmbeddingResult, embed_model, embed_task
from ..extractors import FeatureExtractor
from ..standards import Standard
from .memo import memo, read_entry, write_entry

if TYPE_CHECKING:
    from .ground_truth import SplitRun

__all__ = ["model_embedding", "model_embedding_key", "task_embedding", "transform_features"]


def model_embedding_key(extractor: FeatureExtractor, standard: Standard, features: str) -> str:
    """The text P's result is kept under: the model's identity, the standard's hash (which
    fixes the probe set) and the feature transform (a JSON list, json's default spelling)."""
    identity = [extractor.name, extractor.revision, extractor.preprocessing, standard.hash]
    return canonical_json([*identity, features], compact=False)


def model_embedding(
    extractor: FeatureExtractor,
    candidate: torch.Tensor,
    baseline: torch.Tensor,
    standard: Standard,
    *,
    features: str = "raw",
    cache_dir: str | Path | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, float]:
    """P of one candidate on the probe features, transformed first (``features``, one of
    :data:`~hf_stdembed.evaluation.FEATURE_TRANSFORMS`): mask and fidelity.

    ``candidate`` and ``baseline`` must be the features of the standard's probe set: with
    ``cache_dir``, the result is kept under ``cache_dir/model-embeddings`` keyed by the model's
    identity, the standard's hash (which fixes the probe set) and the centring, not by the
    tensors, so a re-run skips the optimisation.
    """
    key = model_embedding_key(extractor, standard, features)
    path = None
    if cache_dir is not None:
        path = keyed_path(Path(cache_dir) / "model-embeddings", key, 24)
        saved = read_entry(path, key)
        if saved is not None:
            tensors, scalars = saved
            return tensors["mask"], float(scalars["fidelity"])
    candidate = transform_features(candidate, features)
    baseline = transform_features(baseline, features)
    result = embed_model(candidate, baseline, config=standard.model_embedding, device=device)
    if path is not None:
        write_entry(path, key, {"mask": result.mask}, {"fidelity": result.fidelity})
    return result.mask, result.fidelity


def transform_features(x: torch.Tensor, features: str) -> torch.Tensor:
    """One of :data:`~hf_stdembed.evaluation.FEATURE_TRANSFORMS`, per feature over the rows
    (the probe set): ``raw`` as is, ``centred``, or ``standardised`` (centred, then divided by
    the standard deviation; constant features stay 0)."""
    if features == "raw":
        return x
    x = x - x.mean(dim=0, keepdim=True)
    if features == "standardised":
        x = x / x.std(dim=0, keepdim=True).clamp_min(1e-6)  # constant features stay 0
    return x


def task_embedding(
    standard: Standard,
    run: SplitRun,
    cache_dir: str | Path | None,
    device: str | torch.device | None,
) -> TaskEmbeddingResult:
    """Q on the baseline's train features of one split (memoised)."""
    return memo(
        cache_dir,
        "task-embedding",
        [standard.hash, *run.data_ident],
        embed_task,
        run.x_train,
        run.y_train,
        num_classes=run.num_classes,
        config=standard.task_embedding,
        device=device,
    )


def union_task_embedding(
    standard: Standard,
    x_train: torch.Tensor,
    run: SplitRun,
    union_keys: list,
    cache_dir: str | Path | None,
    device: str | torch.device | None,
) -> TaskEmbeddingResult:
    """Q on a union's standardised train features of one split (memoised: shared by the
    standards whose baselines form the same union)."""
    key = [asdict(standard.task_embedding), union_keys, *run.data_ident]
    return memo(
        cache_dir,
        "union-task-embedding",
        key,
        embed_task,
        x_train,
        run.y_train,
        num_classes=run.num_classes,
        config=standard.task_embedding,
        device=device,
    )
