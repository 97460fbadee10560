"""Verify a published embedding by recomputing it from the published model.

Isolated embeddings depend on nothing but the model and the standard, so anyone with access
to the model can recompute one: this is the defence against a forged embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .card import card_entries
from .embeddings import ModelEmbedding, load_embedding
from .errors import StdEmbedError
from .pipeline import compute_model_embedding
from .registry import DirectoryRegistry, Registry
from .standards import Standard


@dataclass(frozen=True)
class Agreement:
    """How a published embedding compares with a recomputed one."""

    repo_id: str
    standard_id: str
    model_revision: str | None
    jaccard: float  # of the masks thresholded at 0.5
    max_abs_diff: float
    published_fidelity: float
    recomputed_fidelity: float

    def agrees(self, min_jaccard: float) -> bool:
        """Whether the thresholded masks overlap at least ``min_jaccard``."""
        return self.jaccard >= min_jaccard


def compare_embeddings(published: torch.Tensor, recomputed: torch.Tensor) -> tuple[float, float]:
    """``(Jaccard of the masks thresholded at 0.5, max |difference|)`` of two embeddings."""
    a, b = published > 0.5, recomputed > 0.5
    union = int((a | b).sum())
    jaccard = 1.0 if union == 0 else int((a & b).sum()) / union
    return jaccard, float((published - recomputed).abs().max())


def verify_published(
    registry: Registry,
    repo_id: str,
    standard: Standard,
    *,
    model: str | None = None,
    progress: bool = True,
) -> Agreement:
    """Recomputes the embedding published in ``repo_id`` for ``standard`` and compares.

    Args:
        registry: where the repo is published.
        repo_id: the repo.
        standard: which of its embeddings to verify.
        model: the model spec to recompute with (default: the repo itself at the model
            revision the card records).
        progress: show progress bars.

    Raises:
        StdEmbedError: if the repo publishes no valid embedding for this standard.
    """
    head = registry.head(repo_id)
    readme = registry.read_text(repo_id, "README.md", revision=head)
    from huggingface_hub import ModelCard

    data = ModelCard(readme).data.to_dict() if readme else {}
    entries, problems = card_entries(data)
    entry = entries.get(standard.id)
    if entry is None:
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise StdEmbedError(
            f"{repo_id} publishes no embedding for standard {standard.id!r}{detail}"
        )
    path = registry.download(repo_id, entry.file, revision=head, max_bytes=64 * 1024 * 1024)
    published = load_embedding(path, standard=standard)
    if not isinstance(published, ModelEmbedding):
        raise StdEmbedError(f"{repo_id}: {entry.file} is not a model embedding")
    if model is None:
        if isinstance(registry, DirectoryRegistry):
            model, revision = str(registry.root / repo_id), None
        else:
            model, revision = repo_id, published.model_revision
    else:
        revision = None
    recomputed = compute_model_embedding(model, standard, revision=revision, progress=progress)
    jaccard, max_diff = compare_embeddings(published.vector, recomputed.vector)
    return Agreement(
        repo_id=repo_id,
        standard_id=standard.id,
        model_revision=published.model_revision,
        jaccard=jaccard,
        max_abs_diff=max_diff,
        published_fidelity=published.fidelity,
        recomputed_fidelity=recomputed.fidelity,
    )
