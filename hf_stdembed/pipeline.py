"""From a model or a dataset to an embedding artefact: load, extract (cached), optimise.

This is the shell around :mod:`hf_stdembed.core`: it resolves a standard's baseline and probe
set, gets features through the on-disk cache and turns the core's results into
:class:`~hf_stdembed.embeddings.ModelEmbedding` / :class:`~hf_stdembed.embeddings.TaskEmbedding`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from .core import (
    TaskEmbeddingConfig,
    embed_model,
    embed_model_from_batches,
    embed_task,
)
from .data import ImageDataset, load_image_dataset, select_subset
from .embeddings import ModelEmbedding, TaskEmbedding
from .errors import StandardMismatchError
from .extractors import FeatureExtractor, load_extractor, parse_spec
from .features import batch_features, extract_features
from .standards import Standard

Protocol = Literal["cached", "per-step"]
UNPINNED_REVISIONS = (None, "main")


def load_baseline(standard: Standard) -> FeatureExtractor:
    """The standard's baseline model, checked against its pinned revision.

    Raises:
        StandardMismatchError: if the weights found are not the ones the standard pins.
    """
    spec = standard.baseline
    source, target = parse_spec(spec.model)
    on_hub = source != "entrypoint" and not Path(target).expanduser().is_dir()
    # Hub repos are downloaded at the pinned revision; local weights are checked against it.
    extractor = load_extractor(spec.model, revision=spec.revision if on_hub else None)
    if spec.revision not in UNPINNED_REVISIONS and extractor.revision != spec.revision:
        raise StandardMismatchError(
            f"baseline {spec.model!r} has revision {extractor.revision!r} but standard "
            f"{standard.id!r} pins {spec.revision!r}: embeddings would not be comparable"
        )
    return extractor


def load_probe(standard: Standard) -> ImageDataset:
    """The standard's probe set D: its dataset split and seeded choice of samples."""
    p = standard.probe
    data = load_image_dataset(
        p.dataset,
        split=p.split,
        config=p.config,
        revision=p.revision,
        data_files=list(p.data_files) if p.data_files else None,
        image_column=p.image_column,
        require_labels=False,
    )
    return select_subset(data, p.num_samples, seed=p.seed)


def compute_model_embedding(
    model: str | FeatureExtractor,
    standard: Standard,
    *,
    revision: str | None = None,
    protocol: Protocol = "cached",
    device: str | torch.device | None = None,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> ModelEmbedding:
    """Embeds one model under a standard (P): an O(1) update, run by the model's owner.

    Args:
        model: a model spec (see :func:`~hf_stdembed.extractors.load_extractor`) or a loaded
            feature extractor.
        standard: the standard to embed under.
        revision: the model revision to load (a spec string only).
        protocol: ``"cached"`` extracts the probe features once and optimises on them;
            ``"per-step"`` runs both models on every batch (the paper's literal protocol,
            same result, one forward pass per step).
        device: where to run models and optimisation (default: best available).
        batch_size: forward-pass batch size.
        cache_dir: feature cache folder (default: under the Hugging Face cache).
        progress: show progress bars on stderr.

    Returns:
        The model embedding, with its fidelity.
    """
    extractor = (
        model if isinstance(model, FeatureExtractor) else load_extractor(model, revision=revision)
    )
    baseline = load_baseline(standard)
    probe = load_probe(standard)
    features = {"batch_size": batch_size, "device": device, "cache_dir": cache_dir}
    base = extract_features(baseline, probe, progress=progress, **features)
    _check_dim(base.shape[1], standard)
    with _progress_bar(f"embedding {extractor.name}", progress) as on_step:
        if protocol == "cached":
            cand = extract_features(extractor, probe, progress=progress, **features)
            result = embed_model(
                cand, base, config=standard.model_embedding, device=device, on_step=on_step
            )
        elif protocol == "per-step":

            def fetch(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return (
                    batch_features(extractor, probe, idx, device=device),
                    batch_features(baseline, probe, idx, device=device),
                )

            result = embed_model_from_batches(
                fetch, len(probe.dataset), config=standard.model_embedding, on_step=on_step
            )
        else:
            raise ValueError(f"Invalid protocol value: {protocol!r} (cached or per-step)")
    return ModelEmbedding(
        vector=result.mask,
        standard_id=standard.id,
        standard_hash=standard.hash,
        model_id=extractor.name,
        model_revision=extractor.revision,
        l_to=result.l_to,
        l_from=result.l_from,
    )


def compute_task_embedding(
    dataset: str | ImageDataset,
    standard: Standard,
    *,
    split: str = "train",
    config: str | None = None,
    revision: str | None = None,
    data_files: str | list[str] | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    gammas: tuple[float, ...] | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> TaskEmbedding:
    """Embeds a labelled downstream dataset under a standard (Q): O(1) model operations.

    Args:
        dataset: a Hub dataset id, a local path ``datasets.load_dataset`` understands, or a
            loaded :class:`~hf_stdembed.data.ImageDataset`.
        standard: the standard to embed under.
        split, config, revision, data_files: passed to ``datasets.load_dataset``.
        image_column, label_column: override the detected columns.
        gammas: override the standard's gamma grid (the standard's hash is unaffected: task
            embeddings of any gamma compare with the same model embeddings).
        device, batch_size, cache_dir, progress: as in :func:`compute_model_embedding`.

    Returns:
        The task embedding at the gamma chosen by the 3-point rule, with the sweep.
    """
    if isinstance(dataset, ImageDataset):
        data = dataset
    else:
        data = load_image_dataset(
            dataset,
            split=split,
            config=config,
            revision=revision,
            data_files=data_files,
            image_column=image_column,
            label_column=label_column,
        )
    baseline = load_baseline(standard)
    features = extract_features(
        baseline, data, batch_size=batch_size, device=device, cache_dir=cache_dir, progress=progress
    )
    _check_dim(features.shape[1], standard)
    labels = data.labels()
    task_config: TaskEmbeddingConfig = standard.task_embedding
    if gammas is not None:
        task_config = replace(task_config, gammas=tuple(sorted(gammas)))
    with _progress_bar(f"task embedding ({len(task_config.gammas)} gammas)", progress) as on_step:
        result = embed_task(
            features,
            labels,
            num_classes=data.num_classes,
            config=task_config,
            device=device,
            on_step=on_step,
        )
    return TaskEmbedding(
        vector=result.mask,
        standard_id=standard.id,
        standard_hash=standard.hash,
        dataset_id=data.source,
        dataset_split=split,
        gamma=result.gamma,
        converged_accuracy=result.converged_accuracy,
        gammas=result.gammas,
        accuracies=result.accuracies,
        mask_sizes=result.mask_sizes,
    )


def _check_dim(dim: int, standard: Standard) -> None:
    if dim != standard.dim:
        raise StandardMismatchError(
            f"baseline {standard.baseline.model!r} gives {dim} features but standard "
            f"{standard.id!r} declares {standard.dim}"
        )


class _progress_bar:
    """A tqdm bar on stderr driven by the core's ``on_step(done, total)`` callback."""

    def __init__(self, description: str, enabled: bool) -> None:
        self.description = description
        self.enabled = enabled
        self.bar: tqdm | None = None

    def __enter__(self) -> Callable[[int, int], None] | None:
        if not self.enabled:
            return None

        def on_step(done: int, total: int) -> None:
            if self.bar is None:
                self.bar = tqdm(total=total, desc=self.description, unit="step", leave=False)
            self.bar.update(done - self.bar.n)

        return on_step

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
