"""The method as pure functions on tensors: no files, no network, no printing.

- :func:`embed_model` (P, Section 4.2): a candidate's features -> a mask over baseline features.
- :func:`embed_task` (Q, Section 4.3): a labelled task's baseline features -> a sparse mask.
- :func:`fuzzy_intersection` (the selection metric): one sweep over m model embeddings;
  :func:`fuzzy_similarity` adds the normalised variants the evaluation compares.
- :func:`linear_probe` (Section 5.1's evaluation protocol): ground-truth accuracy.
- :func:`refit_affine` and :func:`mask_agreement`: checking a published model embedding
  (P's affine maps refitted with the mask fixed; soft-mask agreement measures).
"""

from .linear_probe import LinearProbeConfig, LinearProbeResult, linear_probe
from .metric import SIMILARITIES, fuzzy_intersection, fuzzy_similarity
from .model_embedding import (
    ModelEmbeddingConfig,
    ModelEmbeddingResult,
    embed_model,
    embed_model_from_batches,
)
from .task_embedding import TaskEmbeddingConfig, TaskEmbeddingResult, choose_gamma, embed_task
from .verification import MASK_MEASURES, RefitResult, mask_agreement, refit_affine

__all__ = [
    "MASK_MEASURES",
    "SIMILARITIES",
    "LinearProbeConfig",
    "LinearProbeResult",
    "ModelEmbeddingConfig",
    "ModelEmbeddingResult",
    "RefitResult",
    "TaskEmbeddingConfig",
    "TaskEmbeddingResult",
    "choose_gamma",
    "embed_model",
    "embed_model_from_batches",
    "embed_task",
    "fuzzy_intersection",
    "fuzzy_similarity",
    "linear_probe",
    "mask_agreement",
    "refit_affine",
]
