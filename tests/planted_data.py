"""Planted ground truth for the core's P: a candidate that is an affine map of known baseline
features (tests/test_core.py, test_core_verification.py)."""

from __future__ import annotations

import torch


def planted_features(n_base: int, k: int, num: int, *, seed: int = 0, noise: float = 0.05):
    """Baseline B ~ N(0, I); the candidate is an invertible affine map of a known subset S."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(num, n_base, generator=g)
    subset = torch.randperm(n_base, generator=g)[:k]
    mix = torch.randn(k, k, generator=g)
    cand = base[:, subset] @ mix + 3.0 + noise * torch.randn(num, k, generator=g)
    truth = torch.zeros(n_base, dtype=torch.bool)
    truth[subset] = True
    return cand, base, truth
