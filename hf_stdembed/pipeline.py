"""From a model or a dataset to an embedding artefact: load, extract (cached), optimise.

This is the shell around :mod:`hf_stdembed.core`: it resolves a standard's baseline and probe
set, gets features through the on-disk cache and turns the core's results into
:class:`~hf_stdembed.embeddings.ModelEmbedding` / :class:`~hf_stdembed.embeddings.TaskEmbedding`.

Embeddings are cached too, as embedding files beside the feature cache
(``<cache_dir>/embeddings/``): keyed like the features (model name, revision and
preprocessing, dataset fingerprint) plus the standard's hash, the protocol and any gamma
override, so ``publish --dry-run`` then ``publish``, or a second ``select``, compute nothing
again. A model without a stable revision (``revision`` None) is never cached.

Union and r2 standards (:mod:`hf_stdembed.standards`): the standard's coordinates are those of
:func:`standard_features`: one baseline's raw features, or for a union every baseline's
features of the same images, each block standardised with the statistics of the PROBE set
(:func:`~hf_stdembed.core.closed_form.union_features`; blocks in the standard's order), so
a task's features live in the same coordinates as the model masks. A model embedding is P's
mask over them, or for ``method: r2`` the closed-form held-out ridge R^2 mask
(:func:`~hf_stdembed.core.closed_form.embed_model_r2`: no optimisation, deterministic). An r2
embedding's fidelities are not P's cosines but held-out R^2 in [0, 1]: ``l_to`` the mean R^2
of the standard's features predicted from the candidate (the mask's mean, checkable against
the vector), ``l_from`` the variance-weighted R^2 of the candidate's standardised features
predicted from the standard's. The task embedding is Q over the task's features in the same
coordinates, as the evaluation's ``union_task_embedding`` computes it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import torch

from ._hashing import json_digest
from .core import (
    ModelEmbeddingResult,
    TaskEmbeddingConfig,
    embed_model,
    embed_model_from_batches,
    embed_task,
)
from .core._training import StepCallback
from .core.closed_form import BlockStats, R2EmbeddingConfig, embed_model_r2, union_features
from .data import ImageDataset, load_image_dataset, select_subset
from .embeddings import Embedding, ModelEmbedding, TaskEmbedding, load_embedding, save_embedding
from .errors import StandardMismatchError, StdEmbedError
from .extractors import FeatureExtractor, load_extractor, parse_spec
from .features import batch_features, default_cache_dir, extract_features
from .progress import Progress, step_reporter
from .standards import BaselineSpec, Standard

logger = logging.getLogger(__name__)

Protocol = Literal["cached", "per-step"]
UNPINNED_REVISIONS = (None, "main")
EMBEDDING_CACHE_VERSION = 1
"""Version of the embedding cache keys; bumping it invalidates every cached embedding."""
_HUB_TARGET_RE = re.compile(r"[A-Za-z0-9][\w.-]*(?:/[\w.-]+)?")


def loadable_spec(name: str) -> str | None:
    """The spec others can load a model with, from a feature extractor's name.

    Args:
        name (`str`): :attr:`FeatureExtractor.name` (``timm:org/name``, ``timm:/abs/dir``...).

    Returns:
        `str` or `None`: the name when it names a Hub repo (``timm:org/name``,
        ``transformers:org/name``, ``org/name``); None for a local directory or an entry
        point, which others cannot load by name.
    """
    source, target = parse_spec(name)
    if source == "entrypoint" or not _HUB_TARGET_RE.fullmatch(target):
        return None
    return name


def load_baseline(standard: Standard, *, token: str | None = None) -> FeatureExtractor:
    """The standard's baseline model, checked against its pinned revision.

    ``token``: Hub token for a private or gated baseline (default: the saved login).

    Raises:
        StandardMismatchError: if the weights found are not the ones the standard pins.
    """
    return _load_pinned(standard.baseline, standard, token)


def load_baselines(standard: Standard, *, token: str | None = None) -> list[FeatureExtractor]:
    """Every baseline of the standard (one unless a union), in its order, each checked
    against its pinned revision as :func:`load_baseline` checks the first.

    Raises:
        StandardMismatchError: if any baseline's weights are not the ones the standard pins.
    """
    return [_load_pinned(spec, standard, token) for spec in standard.baselines]


def _load_pinned(spec: BaselineSpec, standard: Standard, token: str | None) -> FeatureExtractor:
    """One baseline of ``standard``, loaded at (or checked against) its pinned revision."""
    source, target = parse_spec(spec.model)
    on_hub = source != "entrypoint" and not Path(target).expanduser().is_dir()
    # Hub repos are downloaded at the pinned revision; local weights are checked against it.
    extractor = load_extractor(spec.model, revision=spec.revision if on_hub else None, token=token)
    if spec.revision not in UNPINNED_REVISIONS and extractor.revision != spec.revision:
        raise StandardMismatchError(
            f"baseline {spec.model!r} has revision {extractor.revision!r} but standard "
            f"{standard.id!r} pins {spec.revision!r}: embeddings would not be comparable"
        )
    return extractor


def load_probe(standard: Standard, *, token: str | None = None) -> ImageDataset:
    """The standard's probe set D: its dataset split and seeded choice of samples.

    ``token``: Hub token for a private or gated probe dataset (default: the saved login).
    """
    p = standard.probe
    data = load_image_dataset(
        p.dataset,
        split=p.split,
        config=p.config,
        revision=p.revision,
        data_files=list(p.data_files) if p.data_files else None,
        image_column=p.image_column,
        require_labels=False,
        token=token,
    )
    return select_subset(data, p.num_samples, seed=p.seed)


def standard_features(
    baselines: list[FeatureExtractor],
    data: ImageDataset,
    standard: Standard,
    *,
    stats: list[BlockStats] | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    cache_dir: str | Path | None = None,
    on_progress: Progress | None = None,
) -> tuple[torch.Tensor, list[BlockStats] | None]:
    """The features of ``data`` in the standard's coordinates (extractions cached).

    One baseline: its raw features, and None. A union: every baseline's features, each block
    standardised with ``stats`` (over the probe set, call it without: the probe's own are
    computed and returned; for a task, pass the probe's back), concatenated in order.

    Args:
        baselines: :func:`load_baselines`'s extractors.
        data: the images (the probe set or a task).
        standard: the standard (declares each block's dim).
        stats: a union's per-block probe statistics (ignored for one baseline).
        batch_size, device, cache_dir, on_progress: as for the feature extraction.

    Raises:
        StandardMismatchError: a baseline gives another number of features than declared.
    """
    blocks = []
    for spec, extractor in zip(standard.baselines, baselines, strict=True):
        block = extract_features(
            extractor,
            data,
            batch_size=batch_size,
            device=device,
            cache_dir=cache_dir,
            on_progress=on_progress,
        )
        _check_block(block.shape[1], spec, standard)
        blocks.append(block)
    if not standard.is_union:
        return blocks[0], None
    return union_features(blocks, stats=stats)


def embed_features(
    candidate: torch.Tensor,
    base: torch.Tensor,
    standard: Standard,
    *,
    device: str | torch.device | None = None,
    on_step: StepCallback | None = None,
) -> ModelEmbeddingResult:
    """The model embedding of a candidate's probe features against the standard's
    (:func:`standard_features`): P, or the closed-form R^2 mask for an r2 standard (no steps,
    so ``on_step`` hears nothing).

    Raises:
        StdEmbedError: an r2 mask of fewer than 4 probe rows, or of features not finite.
    """
    config = standard.model_embedding
    if isinstance(config, R2EmbeddingConfig):
        try:
            return embed_model_r2(candidate, base, config=config)
        except ValueError as e:  # too few probe rows, or features that are not finite
            raise StdEmbedError(
                f"cannot compute the r2 mask under standard {standard.id!r}: {e} (the r2 mask "
                "fits on half the probe set and scores on the other: give the probe at least "
                "4 images, and a model whose features are finite)"
            ) from None
    return embed_model(candidate, base, config=config, device=device, on_step=on_step)


def compute_model_embedding(
    model: str | FeatureExtractor,
    standard: Standard,
    *,
    revision: str | None = None,
    protocol: Protocol = "cached",
    device: str | torch.device | None = None,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    on_progress: Progress | None = None,
    cache: bool = True,
    token: str | None = None,
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
        cache_dir: feature cache folder (default: under the Hugging Face cache); embeddings
            are cached in its ``embeddings/`` subfolder.
        on_progress: hears the feature extractions (``features <name>``, in batches) and the
            optimisation (``embedding <name>``, in steps); nothing for a cached embedding.
        cache: reuse (and write) the cached embedding of the same model revision, probe set,
            standard and protocol. A model whose revision is None is never cached.
        token: Hub token for the model, the baseline and the probe set when they are private
            or gated (default: the saved login); no part of any cache key.

    Returns:
        The model embedding, with its fidelity and the spec others can load the model with
        (:func:`loadable_spec`).
    """
    extractor = (
        model
        if isinstance(model, FeatureExtractor)
        else load_extractor(model, revision=revision, token=token)
    )
    if protocol == "per-step" and not standard.is_paper_form:
        raise StdEmbedError(
            f"standard {standard.id!r} is a union or r2 standard, embedded from cached probe "
            "features only: drop --protocol per-step (per-step runs P on one baseline's batches)"
        )
    baselines = load_baselines(standard, token=token)
    baseline = baselines[0]
    probe = load_probe(standard, token=token)
    key = None
    if cache and extractor.revision is not None and all(b.revision is not None for b in baselines):
        key = {
            "kind": "model",
            **_model_key("model", extractor),
            **_model_key("baseline", baseline),
            **_union_key(baselines),
            "probe": probe.fingerprint,
            "probe_image_column": probe.image_column,
            "standard": standard.hash,
            "protocol": protocol,
        }
        cached = _read_cached(key, standard, cache_dir)
        if isinstance(cached, ModelEmbedding):
            return cached
    features = {"batch_size": batch_size, "device": device, "cache_dir": cache_dir}
    base, _ = standard_features(baselines, probe, standard, on_progress=on_progress, **features)
    on_step = step_reporter(on_progress, f"embedding {extractor.name}")
    if protocol == "cached":
        cand = extract_features(extractor, probe, on_progress=on_progress, **features)
        result = embed_features(cand, base, standard, device=device, on_step=on_step)
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
    embedding = model_embedding_of(extractor, standard, result)
    if key is not None:
        _write_cached(key, embedding, cache_dir)
    return embedding


def model_embedding_of(
    extractor: FeatureExtractor, standard: Standard, result: ModelEmbeddingResult
) -> ModelEmbedding:
    """P's ``result`` for ``extractor`` under ``standard`` as a ModelEmbedding (with the spec
    that reloads the model, when its name is one)."""
    return ModelEmbedding(
        vector=result.mask,
        standard_id=standard.id,
        standard_hash=standard.hash,
        model_id=extractor.name,
        model_revision=extractor.revision,
        l_to=result.l_to,
        l_from=result.l_from,
        model_spec=loadable_spec(extractor.name),
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
    on_progress: Progress | None = None,
    cache: bool = True,
    token: str | None = None,
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
        device, batch_size, cache_dir, on_progress, cache: as in :func:`compute_model_embedding`
            (the task embedding is cached by dataset fingerprint, standard and gammas).
        token: Hub token for the dataset and the baseline when they are private or gated
            (default: the saved login); no part of any cache key.

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
            token=token,
        )
    baselines = load_baselines(standard, token=token)
    baseline = baselines[0]
    probe = load_probe(standard, token=token) if standard.is_union else None
    key = None
    if cache and all(b.revision is not None for b in baselines):
        key = {
            "kind": "task",
            **_model_key("baseline", baseline),
            **_union_key(baselines),
            **({"probe": probe.fingerprint} if probe is not None else {}),
            "dataset": data.fingerprint,
            "source": data.source,
            "split": split,
            "image_column": data.image_column,
            "label_column": data.label_column,
            "num_classes": data.num_classes,
            "standard": standard.hash,
            "gammas": None if gammas is None else sorted(float(g) for g in gammas),
        }
        cached = _read_cached(key, standard, cache_dir)
        if isinstance(cached, TaskEmbedding):
            return cached
    options = {"batch_size": batch_size, "device": device, "cache_dir": cache_dir}
    stats = None
    if probe is not None:  # a union: the task in the probe's standardised coordinates
        _, stats = standard_features(baselines, probe, standard, on_progress=on_progress, **options)
    features, _ = standard_features(
        baselines, data, standard, stats=stats, on_progress=on_progress, **options
    )
    labels = data.labels()
    task_config: TaskEmbeddingConfig = standard.task_embedding
    if gammas is not None:
        task_config = replace(task_config, gammas=tuple(sorted(gammas)))
    result = embed_task(
        features,
        labels,
        num_classes=data.num_classes,
        config=task_config,
        device=device,
        on_step=step_reporter(on_progress, f"task embedding ({len(task_config.gammas)} gammas)"),
    )
    embedding = TaskEmbedding(
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
    if key is not None:
        _write_cached(key, embedding, cache_dir)
    return embedding


# --- the embedding cache ----------------------------------------------------------------


def _model_key(role: str, extractor: FeatureExtractor) -> dict[str, Any]:
    return {
        role: extractor.name,
        f"{role}_revision": extractor.revision,
        f"{role}_preprocessing": extractor.preprocessing,
    }


def _union_key(baselines: list[FeatureExtractor]) -> dict[str, Any]:
    """A union's other baselines, for the cache keys (nothing for one baseline: its keys are
    the ones they always were)."""
    if len(baselines) < 2:
        return {}
    return {"more_baselines": [_model_key("baseline", b) for b in baselines[1:]]}


def embedding_cache_path(key: dict[str, Any], *, cache_dir: str | Path | None = None) -> Path:
    """The cache file of an embedding: ``<cache_dir>/embeddings/<kind>-<digest>.safetensors``,
    the digest being the first 32 hex chars of the sha256 of the key's canonical JSON (with
    :data:`EMBEDDING_CACHE_VERSION`)."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = json_digest({**key, "version": EMBEDDING_CACHE_VERSION})
    return folder / "embeddings" / f"{key['kind']}-{digest}.safetensors"


def _read_cached(
    key: dict[str, Any], standard: Standard, cache_dir: str | Path | None
) -> Embedding | None:
    """The cached embedding of ``key``; None when there is none or it cannot be used."""
    path = embedding_cache_path(key, cache_dir=cache_dir)
    if not path.is_file():
        return None
    try:
        kind = ModelEmbedding if key["kind"] == "model" else TaskEmbedding
        embedding = load_embedding(path, standard=standard, kind=kind)
    except (StdEmbedError, OSError) as e:  # a torn or foreign file is recomputed, not fatal
        logger.warning("ignoring unusable embedding cache %s: %s", path, e)
        return None
    if key["kind"] == "model":
        fits = (embedding.model_id, embedding.model_revision) == (
            key["model"],
            key["model_revision"],
        )
    else:
        fits = (embedding.dataset_id, embedding.dataset_split) == (key["source"], key["split"])
    if not fits:
        logger.warning("ignoring stale embedding cache %s", path)
        return None
    logger.info("embedding read from the cache: %s", path)
    return embedding


def _write_cached(key: dict[str, Any], embedding: Embedding, cache_dir: str | Path | None) -> None:
    path = embedding_cache_path(key, cache_dir=cache_dir)
    try:
        save_embedding(embedding, path)
    except OSError as e:  # a read-only cache costs time, not the result
        logger.warning("cannot write the embedding cache %s: %s", path, e)


def _check_block(dim: int, spec: BaselineSpec, standard: Standard) -> None:
    """The features one baseline gives must be the dim its spec declares."""
    if dim == spec.dim:
        return
    if not standard.is_union:
        raise StandardMismatchError(
            f"baseline {spec.model!r} gives {dim} features but standard "
            f"{standard.id!r} declares {standard.dim}"
        )
    raise StandardMismatchError(
        f"baseline {spec.model!r} gives {dim} features but union standard {standard.id!r} "
        f"declares dim {spec.dim} for it: set that baseline's dim to {dim}"
    )
