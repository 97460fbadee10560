"""Validation of an embedding vector, for numpy arrays and torch tensors alike.

A leaf module without torch (the index imports it and stays torch-free at import): it reads
only what both array types share (``dtype``, ``ndim``, ``shape``, ``min``, ``max``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["vector_problem"]

_FLOAT32 = ("float32", "torch.float32")  # str() of numpy's and torch's float32 dtypes


def vector_problem(vector: Any, dim: int | None = None) -> str | None:
    """Why ``vector`` is not an embedding (float32 ``(N,)``, ``N == dim`` when ``dim`` is
    given, no NaN, values in [0, 1]), or None.

    Args:
        vector: a numpy array or a torch tensor.
        dim: the standard's number of baseline features; None skips the length check.

    Returns:
        The first problem found, as a message naming the value found (the dtype as its array
        type prints it), or None when the vector is valid.
    """
    if str(vector.dtype) not in _FLOAT32:
        return f"embedding dtype is {vector.dtype}, expected float32"
    shape = tuple(vector.shape)
    if vector.ndim != 1 or shape[0] == 0:
        return f"embedding shape is {shape}, expected (N,)"
    if dim is not None and shape[0] != dim:
        return f"embedding has {shape[0]} values, the standard has {dim}"
    if bool((vector != vector).any()):  # NaN is the only value unequal to itself
        return "embedding holds NaN"
    low, high = float(vector.min()), float(vector.max())
    if low < 0 or high > 1:
        return f"embedding values must lie in [0, 1]; found [{low}, {high}]"
    return None
