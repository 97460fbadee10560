"""hf-stdembed: scalable model selection on the Hugging Face Hub with Standardized Embedder.

Model owners embed their model once, on their own machine (:func:`compute_model_embedding`);
anyone selects among all published embeddings with one task embedding and one sweep
(:func:`compute_task_embedding`, :func:`rank_embeddings`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hf-stdembed")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
