"""hf-stdembed: scalable model selection on the Hugging Face Hub with Standardized Embedder.

Model owners embed their model once, on their own machine (:func:`compute_model_embedding`);
anyone selects among all published embeddings with one task embedding and one sweep
(:func:`compute_task_embedding`, :func:`rank_embeddings`, :func:`rank_index`).

Public names are imported lazily (as huggingface_hub does), so that ``import hf_stdembed``
and ``hf-stdembed --help`` stay fast.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("hf-stdembed")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

_LAZY = {
    "Standard": "standards",
    "get_standard": "standards",
    "builtin_standards": "standards",
    "ModelEmbedding": "embeddings",
    "TaskEmbedding": "embeddings",
    "load_embedding": "embeddings",
    "save_embedding": "embeddings",
    "FeatureExtractor": "extractors",
    "load_extractor": "extractors",
    "load_image_dataset": "data",
    "extract_features": "features",
    "compute_model_embedding": "pipeline",
    "compute_task_embedding": "pipeline",
    "rank_embeddings": "selection",
    "rank_index": "selection",
    "EmbeddingIndex": "index",
    "open_registry": "registry",
    "StdEmbedError": "errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
