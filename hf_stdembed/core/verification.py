"""Checking a published model embedding: a fixed-mask refit of P, and mask agreement measures.

A published embedding claims a mask ``v`` over the baseline features and the fidelity
``min(L_to, L_from)`` P reached with it. Two checks need only the model's own probe features
``F`` and the baseline's ``B``:

1. **Fixed-mask refit** (:func:`refit_affine`). With ``v`` held fixed, fit only P's affine maps

       max_{w, b, w^, b^}  min(L_to, L_from)
       L_to   = E_x[ cos(w^T F(x) + b,  v * B(x)) ]
       L_from = E_x[ cos(F(x),          w^^T (v * B(x)) + b^) ]

   with P's optimiser and schedule (the standard's :class:`ModelEmbeddingConfig`). The
   fidelity reached is what the published mask is worth for this model: a mask that is not
   the model's, or a fidelity claimed higher than any map reaches, shows as a shortfall.
2. **Mask agreement** (:func:`mask_agreement`): a recomputed mask against the published one,
   with measures on the soft masks (see :data:`MASK_MEASURES`). P's masks are mostly on, so
   the Jaccard overlap of masks thresholded at 0.5 is close to 1 for any two models: these
   measures weigh what differs.

Departure from P: nothing; the refit is P with the mask logits frozen. The affine maps start
exactly as P's do for the same ``seed`` (same generator draws), and the batch order is P's.
Several masks are refitted at once, each with its own maps (one batched matrix product per
step); the result equals separate refits up to floating-point reassociation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._training import StepCallback, check_feature_pair, mean_similarities, run_sgd_steps
from .batched_model_embedding import stacked_cosines
from .model_embedding import ModelEmbeddingConfig, draw_affine_maps

MASK_MEASURES = ("weighted-jaccard", "pearson", "l1")
"""Similarities of two soft masks ``a`` (published) and ``b`` (recomputed), 1 when equal:

- ``weighted-jaccard``: ``sum min(a, b) / sum max(a, b)`` (Ruzicka), in [0, 1]; a monotone
  function of the L1 distance normalised by the joint mass ``sum |a - b| / (|a| + |b|)``;
- ``pearson``: Pearson correlation of the two masks, in [-1, 1]; when either is constant
  (a constant mask says nothing about which features a model has), 1 if they are equal
  and 0 otherwise;
- ``l1``: ``1 - sum |a - b| / |a|``, the L1 distance normalised by the published mask's mass
  (at most 1; below 0 when the masks differ by more than the published mass).
"""


@dataclass(frozen=True)
class RefitResult:
    """The fidelity each fixed mask reaches once P's affine maps are refitted.

    Attributes:
        l_to: ``(k,)`` float64, mean cosine similarity from the model to the masked baseline.
        l_from: ``(k,)`` float64, from the masked baseline to the model.
        steps: optimisation steps run.
    """

    l_to: torch.Tensor
    l_from: torch.Tensor
    steps: int

    @property
    def fidelity(self) -> torch.Tensor:
        """``min(L_to, L_from)`` per mask, ``(k,)``."""
        return torch.minimum(self.l_to, self.l_from)


class _AffineMaps(torch.nn.Module):
    """P's two affine maps, one pair per mask, initialised as P's for the same seed."""

    def __init__(self, k: int, n: int, big_n: int, seed: int, dtype: torch.dtype):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        # the draws of model_embedding._Equivalence, repeated for every mask
        draws = draw_affine_maps(n, big_n, generator=g)
        to_w, to_b, from_w, from_b = (d.expand(k, *d.shape).clone() for d in draws)
        self.to_weight = torch.nn.Parameter(to_w)
        self.to_bias = torch.nn.Parameter(to_b)
        self.from_weight = torch.nn.Parameter(from_w)
        self.from_bias = torch.nn.Parameter(from_b)
        self.to(dtype)

    def forward(
        self, cand: torch.Tensor, base: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-mask, per-sample cosine similarities ``(to, from)``, each ``(k, b)``."""
        k = masks.shape[0]
        masked = base.unsqueeze(0) * masks.unsqueeze(1)  # (k, b, N)
        cand_k = cand.unsqueeze(0).expand(k, *cand.shape)  # (k, b, n)
        return stacked_cosines(self, cand_k, masked)


def refit_affine(
    candidate: torch.Tensor,
    baseline: torch.Tensor,
    masks: torch.Tensor,
    *,
    config: ModelEmbeddingConfig = ModelEmbeddingConfig(),
    device: str | torch.device | None = None,
    on_step: StepCallback | None = None,
) -> RefitResult:
    """Refits P's affine maps with each mask held fixed; returns the fidelity reached.

    Args:
        candidate: the model's features of the probe set, ``(num_samples, n)``.
        baseline: the baseline's features of the same samples, ``(num_samples, N)``.
        masks: the fixed masks, ``(k, N)`` (or one ``(N,)``), values in ``[0, 1]``.
        config: P's hyper-parameters (the standard's); ``mask_init`` and ``temperature``
            are unused.
        device: where to optimise (defaults to the features' device).
        on_step: progress callback, called after every step.

    Returns:
        ``L_to`` and ``L_from`` per mask over the whole probe set.

    Raises:
        ValueError: on shapes that disagree, NaN or infinite values, or masks outside [0, 1].

    Example:
        >>> base = torch.randn(400, 16)
        >>> mask = torch.zeros(16); mask[:4] = 1
        >>> cand = base[:, :4] @ torch.randn(4, 4)
        >>> short = ModelEmbeddingConfig(steps=300, lr_step=100)
        >>> refit_affine(cand, base, mask, config=short).fidelity.shape
        torch.Size([1])
    """
    check_feature_pair(candidate, baseline)
    if candidate.shape[0] != baseline.shape[0] or candidate.shape[0] == 0:
        raise ValueError(
            f"candidate has {candidate.shape[0]} samples but baseline has {baseline.shape[0]}"
        )
    masks = masks.unsqueeze(0) if masks.ndim == 1 else masks
    if masks.ndim != 2 or masks.shape[1] != baseline.shape[1] or masks.shape[0] == 0:
        raise ValueError(
            f"masks must be (k, {baseline.shape[1]}) for {baseline.shape[1]} baseline features; "
            f"got {tuple(masks.shape)}"
        )
    for name, t in (("candidate", candidate), ("baseline", baseline), ("masks", masks)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} hold NaN or infinite values")
    if (masks < 0).any() or (masks > 1).any():
        raise ValueError("masks must lie in [0, 1]")

    dtype = candidate.dtype if candidate.is_floating_point() else torch.float32
    device = torch.device(device) if device is not None else candidate.device
    candidate, baseline, masks = (
        t.to(device=device, dtype=dtype) for t in (candidate, baseline, masks)
    )
    num = candidate.shape[0]
    maps = _AffineMaps(masks.shape[0], candidate.shape[1], baseline.shape[1], config.seed, dtype)
    maps = maps.to(device)

    def similarities(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return maps(candidate[idx], baseline[idx], masks)

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        to_sim, from_sim = similarities(idx.to(device))
        # masks are independent: the sum's gradient is each mask's own
        return -torch.minimum(to_sim.mean(dim=1), from_sim.mean(dim=1)).sum()

    step = run_sgd_steps(maps.parameters(), loss_of, num, config, on_step=on_step)
    l_to, l_from = mean_similarities(
        similarities, num, masks.shape[0], device=candidate.device, chunk=1024
    )
    return RefitResult(l_to=l_to, l_from=l_from, steps=step)


def mask_agreement(
    published: torch.Tensor, recomputed: torch.Tensor, kind: str = "pearson"
) -> torch.Tensor:
    """A similarity (see :data:`MASK_MEASURES`) of a published mask to recomputed ones.

    Args:
        published: the published mask ``a``, ``(N,)``.
        recomputed: recomputed masks ``b``, ``(m, N)`` (or one ``(N,)``).
        kind: one of :data:`MASK_MEASURES`.

    Returns:
        Similarities ``(m,)`` in float64 (0-d for a single ``(N,)`` mask); 1 when equal.

    Raises:
        ValueError: on an unknown ``kind``, disagreeing dimensions or NaN values.

    Example:
        >>> a = torch.tensor([1.0, 1.0, 0.0, 0.0])
        >>> mask_agreement(a, torch.tensor([[1.0, 0.0, 1.0, 0.0]]), "weighted-jaccard")
        tensor([0.3333], dtype=torch.float64)
    """
    if kind not in MASK_MEASURES:
        raise ValueError(f"unknown mask measure {kind!r}; choose one of {', '.join(MASK_MEASURES)}")
    if published.ndim != 1 or recomputed.ndim not in (1, 2):
        raise ValueError(
            f"need a published (N,) and recomputed (m, N) masks; "
            f"got {tuple(published.shape)} and {tuple(recomputed.shape)}"
        )
    if recomputed.shape[-1] != published.shape[0]:
        raise ValueError(
            f"published mask has {published.shape[0]} features, recomputed {recomputed.shape[-1]}"
        )
    if published.isnan().any() or recomputed.isnan().any():
        raise ValueError("masks hold NaN values")
    a = published.double().cpu()
    b = recomputed.double().cpu()
    if kind == "weighted-jaccard":
        top = torch.maximum(a, b).sum(dim=-1)
        inter = torch.minimum(a, b).sum(dim=-1)
        return torch.where(top > 0, inter / top.clamp_min(1e-300), 1.0)
    if kind == "l1":
        mass = a.sum()
        dist = (a - b).abs().sum(dim=-1)
        if mass > 0:
            return 1.0 - dist / mass
        # an empty published mask: equal to an empty one, infinitely far from anything else
        return torch.where(dist == 0, torch.ones_like(dist), torch.full_like(dist, -math.inf))
    da = a - a.mean()
    db = b - b.mean(dim=-1, keepdim=True)
    norm = da.norm() * db.norm(dim=-1)
    r = (da * db).sum(dim=-1) / norm.clamp_min(1e-300)
    # a constant mask says nothing about which features a model has: 0, unless both are equal
    return torch.where(norm > 0, r, (a == b).all(dim=-1).to(r.dtype))
