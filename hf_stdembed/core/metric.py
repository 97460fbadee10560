"""The selection metric: cardinality of the standard fuzzy intersection (Section 4.3)."""

from __future__ import annotations

import torch


def fuzzy_intersection(
    task: torch.Tensor, models: torch.Tensor, *, chunk_rows: int = 4096
) -> torch.Tensor:
    """``I(u, v) = sum_i min(u_i, v_i)`` of a task embedding against every model embedding.

    One sweep over the ``(m, N)`` matrix, in row chunks so that the temporary stays small
    whatever ``m`` is.

    Args:
        task: the task embedding ``u``, ``(N,)``.
        models: model embeddings, ``(m, N)`` (or one ``(N,)`` vector).
        chunk_rows: rows per chunk of the sweep.

    Returns:
        Scores ``(m,)`` (a 0-d tensor for a single model), in ``models``' dtype.

    Raises:
        ValueError: if the dimensions disagree.

    Example:
        >>> fuzzy_intersection(torch.tensor([1.0, 0.5, 0.0]), torch.tensor([[0.2, 1.0, 1.0]]))
        tensor([0.7000])
    """
    if task.ndim != 1 or models.shape[-1] != task.shape[0] or models.ndim not in (1, 2):
        raise ValueError(
            f"need a task (N,) and models (m, N); got {tuple(task.shape)} and {tuple(models.shape)}"
        )
    if models.ndim == 1:
        return torch.minimum(models, task.to(models.dtype)).sum()
    task = task.to(device=models.device, dtype=models.dtype)
    out = torch.empty(models.shape[0], dtype=models.dtype, device=models.device)
    for start in range(0, models.shape[0], chunk_rows):
        block = models[start : start + chunk_rows]
        out[start : start + block.shape[0]] = torch.minimum(block, task).sum(dim=1)
    return out


SIMILARITIES = ("intersection", "model-normalised", "cosine", "jaccard")
"""Named scores over fuzzy sets, from ``I = sum_i min(u_i, v_i)``, ``|u|`` and ``|v|``:

- ``intersection``: ``I`` (the paper's metric);
- ``model-normalised``: ``I / |v|``, the share of the model's features the task needs;
- ``cosine``: ``I / sqrt(|u| |v|)`` (Ochiai), between the two above in how it weighs ``|v|``;
- ``jaccard``: ``I / (|u| + |v| - I)``, intersection over union.

For one task ``|u|`` is a constant, so ``intersection`` ranks like ``I / |u|``: only the
treatment of the model's own mask size ``|v|`` tells them apart.
"""


def fuzzy_similarity(
    task: torch.Tensor, models: torch.Tensor, kind: str = "intersection"
) -> torch.Tensor:
    """A named similarity (see :data:`SIMILARITIES`) of a task embedding to every model embedding.

    Args:
        task: the task embedding ``u``, ``(N,)``.
        models: model embeddings, ``(m, N)``.
        kind: one of :data:`SIMILARITIES`.

    Returns:
        Scores ``(m,)``; an empty mask scores 0.

    Raises:
        ValueError: on an unknown ``kind`` or disagreeing dimensions.

    Example:
        >>> u, v = torch.tensor([1.0, 1.0, 0.0]), torch.tensor([[1.0, 0.0, 1.0]])
        >>> fuzzy_similarity(u, v, "jaccard")
        tensor([0.3333])
    """
    if kind not in SIMILARITIES:
        raise ValueError(f"unknown similarity {kind!r}; choose one of {', '.join(SIMILARITIES)}")
    inter = fuzzy_intersection(task, models)
    if kind == "intersection":
        return inter
    model_sizes = models.sum(dim=-1)
    task_size = task.to(models.dtype).sum()
    if kind == "model-normalised":
        denominator = model_sizes
    elif kind == "cosine":
        denominator = (task_size * model_sizes).sqrt()
    else:
        denominator = task_size + model_sizes - inter
    return torch.where(denominator > 0, inter / denominator.clamp_min(1e-12), 0.0)
