"""Closed-form stage-1 scores: held-out ridge R^2 between feature sets (issue 12, research).

P (Section 4.2) learns a relaxed mask ``v in [0, 1]^N`` over the baseline's features by
optimisation. These scores ask the same question in closed form, from the probe features of a
candidate ``C`` (``n x d``) and of the baseline ``B`` (``n x N``):

- :func:`r2_mask`: per baseline feature ``i``, how well a ridge map from ``C`` predicts
  ``B_i`` on probe rows the fit never saw. The probe rows are split in two seeded halves; both
  sides are standardised with the fit half's mean and deviation, ``W`` solves

      (C_f^T C_f / n_f + ridge * I) W = C_f^T B_f / n_f        (one d x d system)

  (solved through one eigendecomposition, so a small grid of ridges costs little more: the
  ridge with the best total held-out fit is kept; the dual n_f x n_f system when d > n_f)

  and ``v_i = clip(1 - ||B_h,i - C_h W_i||^2 / ||B_h,i - mean(B_h,i)||^2, 0, 1)`` on the
  held-out half ``h``: a mask like P's, ``v_i ~ 1`` where the candidate carries feature ``i``.
- :func:`beyond_baseline`: the reverse direction, one scalar: the share of the candidate's
  own standardised feature variance that the baseline FAILS to explain on the held-out half,
  ``1 - sum_j w_j R^2_j / sum_j w_j`` (``R^2_j`` clipped to [0, 1], ``w_j`` the held-out
  variance of standardised candidate feature ``j``). Near 1: the candidate knows things the
  baseline does not (a specialist, a richer model, or noise); near 0: it is a function of the
  baseline's features.
- :func:`union_features`: several baselines' features, each block standardised over the
  probe set, side by side: the "baseline" of a union standard (statistics returned, so the
  task's features get the same transform).

Departures from P: linear (ridge) maps, not P's affine maps through a mask; no optimiser,
no schedule; the ridge is scale-free (features are standardised, so ``ridge`` is a share of
each feature's unit variance). Everything runs in float64 and is deterministic for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .model_embedding import ModelEmbeddingResult

DEFAULT_RIDGE = (0.01, 0.1, 1.0, 10.0)
"""Ridge grid of the closed-form maps, relative to standardised features' unit variance: the
best held-out fit is kept (a narrow candidate fits best with little ridge, a wide one, 1,280
features from 2,500 probe rows, needs more)."""
DEFAULT_SPLIT_SEED = 0
"""Seed of the fit / held-out halves of the probe rows."""
_MIN_STD = 1e-8
_MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed overflows past 2**64 - 1


@dataclass(frozen=True)
class BlockStats:
    """Per-feature mean and deviation of one block of features (a constant feature: 1)."""

    mean: torch.Tensor
    std: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` in float64."""
        return (x.to(torch.float64) - self.mean) / self.std


def block_stats(x: torch.Tensor) -> BlockStats:
    """Mean and standard deviation per feature over the rows of ``x`` (float64); a constant
    feature keeps deviation 1, so it is centred, never blown up."""
    x = x.to(torch.float64)
    std = x.std(dim=0, unbiased=False)
    return BlockStats(x.mean(dim=0), torch.where(std > _MIN_STD, std, torch.ones_like(std)))


def held_out_halves(n: int, *, split_seed: int = DEFAULT_SPLIT_SEED) -> tuple[torch.Tensor, ...]:
    """A seeded split of ``range(n)`` into a fit half (``n // 2`` rows) and a held-out half.

    Raises:
        ValueError: fewer than 4 rows.

    Example:
        >>> fit, held = held_out_halves(6)
        >>> sorted(fit.tolist() + held.tolist())
        [0, 1, 2, 3, 4, 5]
    """
    if n < 4:
        raise ValueError(f"need at least 4 probe rows for held-out R^2, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    return order[: n // 2].sort().values, order[n // 2 :].sort().values


def held_out_r2(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    ridge: float | Sequence[float] = DEFAULT_RIDGE,
    split_seed: int = DEFAULT_SPLIT_SEED,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per target column, the held-out R^2 of a ridge map from ``inputs``, clipped to [0, 1].

    Args:
        inputs: ``(n, d)`` features the map reads.
        targets: ``(n, t)`` features it predicts (the same rows).
        ridge: the ridge, relative to the standardised inputs' unit variance (> 0); a grid of
            them: the one with the largest total clipped held-out R^2 is kept (one ridge for
            every target; the choice reads the held-out half, a mild optimism that a grid of a
            few values over thousands of held-out rows keeps small).
        split_seed: seed of the fit / held-out halves.

    Returns:
        ``(r2, weight)``: ``(t,)`` float64 each: the clipped R^2 and the held-out variance of
        each standardised target (0 for a target constant on the held-out half, whose R^2 is 0).

    Raises:
        ValueError: mismatched rows, too few rows or a non-positive ridge.
    """
    if inputs.ndim != 2 or targets.ndim != 2 or inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"need inputs (n, d) and targets (n, t) on the same rows; got "
            f"{tuple(inputs.shape)} and {tuple(targets.shape)}"
        )
    ridges = (float(ridge),) if isinstance(ridge, int | float) else tuple(map(float, ridge))
    if not ridges or not all(r > 0 for r in ridges):
        raise ValueError(f"Invalid ridge value: {ridge} (must be > 0)")
    fit, held = held_out_halves(inputs.shape[0], split_seed=split_seed)
    x, y = inputs.to(torch.float64), targets.to(torch.float64)
    x_stats, y_stats = block_stats(x[fit]), block_stats(y[fit])
    xf, xh = x_stats.apply(x[fit]), x_stats.apply(x[held])
    yf, yh = y_stats.apply(y[fit]), y_stats.apply(y[held])
    n_fit, d = xf.shape
    # prediction = P diag(1 / (s + ridge)) B, from one symmetric eigendecomposition
    if d <= n_fit:  # primal: the d x d Gram matrix
        s, v = torch.linalg.eigh(xf.T @ xf / n_fit)
        p, b = xh @ v, v.T @ (xf.T @ yf / n_fit)
    else:  # dual, the same map: the n_fit x n_fit kernel
        s, v = torch.linalg.eigh(xf @ xf.T / n_fit)
        p, b = (xh @ xf.T / n_fit) @ v, v.T @ yf
    s = s.clamp_min(0.0)
    sst = ((yh - yh.mean(dim=0)) ** 2).sum(dim=0)
    varying = sst > _MIN_STD * yh.shape[0]
    best = None
    for r in ridges:
        sse = ((yh - (p / (s + r)) @ b) ** 2).sum(dim=0)
        r2 = torch.where(varying, 1.0 - sse / sst.clamp_min(_MIN_STD), torch.zeros_like(sst))
        r2 = r2.clamp(0.0, 1.0)
        if best is None or float(r2.sum()) > float(best.sum()):
            best = r2
    weight = torch.where(varying, sst / yh.shape[0], torch.zeros_like(sst))
    return best, weight


def r2_mask(
    candidate: torch.Tensor,
    baseline: torch.Tensor,
    *,
    ridge: float | Sequence[float] = DEFAULT_RIDGE,
    split_seed: int = DEFAULT_SPLIT_SEED,
) -> torch.Tensor:
    """A relaxed mask over the baseline's features, in closed form: per baseline feature,
    the held-out R^2 of predicting it from the candidate's probe features (see the module).

    Args:
        candidate: the candidate's probe features, ``(n, d)``.
        baseline: the baseline's features of the same probe rows, ``(n, N)``.
        ridge: the ridge (relative to unit variance), or a grid (the best fit is kept).
        split_seed: seed of the fit / held-out halves.

    Returns:
        ``(N,)`` float32 in [0, 1].

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> base = torch.randn(400, 3, generator=g)
        >>> mask = r2_mask(base[:, :1] * 2 + 1, base)  # the candidate IS feature 0
        >>> [round(v, 1) for v in mask.tolist()]
        [1.0, 0.0, 0.0]
    """
    r2, _ = held_out_r2(candidate, baseline, ridge=ridge, split_seed=split_seed)
    return r2.to(torch.float32)


def beyond_baseline(
    candidate: torch.Tensor,
    baseline: torch.Tensor,
    *,
    ridge: float | Sequence[float] = DEFAULT_RIDGE,
    split_seed: int = DEFAULT_SPLIT_SEED,
) -> float:
    """The share of the candidate's own standardised feature variance that the baseline's
    features fail to explain on held-out probe rows, in [0, 1] (see the module).

    Args:
        candidate: the candidate's probe features, ``(n, d)``.
        baseline: the baseline's features of the same probe rows, ``(n, N)``.
        ridge: the ridge (relative to unit variance), or a grid (the best fit is kept).
        split_seed: seed of the fit / held-out halves.

    Returns:
        ``1 - variance-weighted held-out R^2``; 0.0 for a candidate whose every feature is
        constant (it holds nothing at all).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> base = torch.randn(400, 4, generator=g)
        >>> round(beyond_baseline(base @ torch.randn(4, 3, generator=g), base), 2)
        0.0
        >>> round(beyond_baseline(torch.randn(400, 3, generator=g), base), 1)
        1.0
    """
    r2, weight = held_out_r2(baseline, candidate, ridge=ridge, split_seed=split_seed)
    total = float(weight.sum())
    if total <= 0.0:
        return 0.0
    return float(min(max(1.0 - float((r2 * weight).sum()) / total, 0.0), 1.0))


def union_features(
    blocks: Sequence[torch.Tensor], *, stats: Sequence[BlockStats] | None = None
) -> tuple[torch.Tensor, list[BlockStats]]:
    """Several baselines' features side by side, each block standardised (float32 out).

    Over the probe set, call it without ``stats``: each block's own statistics are computed
    and returned. For a task's features, pass the probe's ``stats`` back: the same transform.

    Args:
        blocks: per baseline, its features of the same rows, ``(n, N_b)``.
        stats: per block, the statistics to apply (default: the blocks' own).

    Returns:
        ``(n, sum_b N_b)`` features and the statistics used.

    Raises:
        ValueError: no block, blocks over different rows, or ``stats`` of another layout.

    Example:
        >>> x, stats = union_features([torch.tensor([[0.0], [2.0]]), torch.tensor([[5.0], [5.0]])])
        >>> x.tolist()
        [[-1.0, 0.0], [1.0, 0.0]]
        >>> union_features([torch.tensor([[4.0]]), torch.tensor([[6.0]])], stats=stats)[0].tolist()
        [[3.0, 1.0]]
    """
    if not blocks:
        raise ValueError("need at least one block of features")
    if any(b.ndim != 2 or b.shape[0] != blocks[0].shape[0] for b in blocks):
        raise ValueError(f"blocks must be (n, N_b) over the same rows: {[b.shape for b in blocks]}")
    if stats is None:
        stats = [block_stats(b) for b in blocks]
    if len(stats) != len(blocks) or any(
        s.mean.shape[0] != b.shape[1] for s, b in zip(stats, blocks, strict=True)
    ):
        raise ValueError("stats must hold one entry per block, of the block's width")
    out = torch.cat([s.apply(b) for s, b in zip(stats, blocks, strict=True)], dim=1)
    return out.to(torch.float32), list(stats)


R2_METHOD = "r2"
"""``model_embedding.method`` of a standard whose model embedding is :func:`r2_mask`."""


@dataclass(frozen=True)
class R2EmbeddingConfig:
    """A standard's model embedding in closed form (``model_embedding: {method: r2}``): the
    held-out ridge R^2 mask of :func:`r2_mask` with this ridge grid and split seed, no P.

    Example:
        >>> R2EmbeddingConfig(ridge=(0.1, 1.0)).ridge
        (0.1, 1.0)
    """

    method: str = R2_METHOD
    ridge: tuple[float, ...] = DEFAULT_RIDGE
    split_seed: int = DEFAULT_SPLIT_SEED

    def __post_init__(self) -> None:
        if self.method != R2_METHOD:
            raise ValueError(f"Invalid method value: {self.method!r} (an R2EmbeddingConfig is r2)")
        if not self.ridge or not all(
            isinstance(r, int | float) and not isinstance(r, bool) and 0 < r < math.inf
            for r in self.ridge
        ):
            raise ValueError(
                f"Invalid ridge value: {list(self.ridge)} (a non-empty list of numbers > 0, finite)"
            )
        seed = self.split_seed
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
            raise ValueError(f"Invalid split_seed value: {seed!r} (an integer from 0 to 2**63 - 1)")


def embed_model_r2(
    candidate: torch.Tensor, baseline: torch.Tensor, *, config: R2EmbeddingConfig
) -> ModelEmbeddingResult:
    """A model embedding in closed form: the :func:`r2_mask` of the candidate over the
    baseline's (or a union's) probe features, with honest fidelities in [0, 1]:

    - ``l_to``: the mean held-out R^2 of the baseline's features predicted from the candidate,
      which is the mask's mean (so anyone can check it against the vector);
    - ``l_from``: the variance-weighted held-out R^2 of the candidate's standardised features
      predicted from the baseline's, ``1 - beyond_baseline`` (0 for a constant candidate).

    Both are clipped R^2 (a map that explains nothing scores 0), not P's cosines; ``steps``
    is 0 (nothing is optimised). Deterministic for a config.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> base = torch.randn(400, 4, generator=g)
        >>> out = embed_model_r2(base[:, :2] @ torch.randn(2, 3, generator=g), base,
        ...                      config=R2EmbeddingConfig())
        >>> [round(v, 1) for v in out.mask.tolist()], round(out.l_to, 2), round(out.l_from, 2)
        ([1.0, 1.0, 0.0, 0.0], 0.5, 1.0)
    """
    for name, t in (("candidate", candidate), ("baseline", baseline)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} features hold NaN or infinite values")
    mask = r2_mask(candidate, baseline, ridge=config.ridge, split_seed=config.split_seed)
    r2, weight = held_out_r2(baseline, candidate, ridge=config.ridge, split_seed=config.split_seed)
    total = float(weight.sum())
    l_from = float((r2 * weight).sum()) / total if total > 0.0 else 0.0  # constant: holds nothing
    return ModelEmbeddingResult(
        mask=mask,
        l_to=float(mask.to(torch.float64).mean()),
        l_from=min(max(l_from, 0.0), 1.0),
        steps=0,
    )
