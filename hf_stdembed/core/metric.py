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
