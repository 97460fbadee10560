"""Model embedding P (Section 4.2): the subset of baseline features equivalent to a model's.

Given a candidate's features ``F(x) in R^n`` and the baseline's ``B(x) in R^N`` over a probe
distribution D, solve

    max_{v, w, b, w^, b^}  min(L_to, L_from)
    L_to   = E_x[ cos(w^T F(x) + b,        v * B(x)) ]
    L_from = E_x[ cos(F(x),                w^^T (v * B(x)) + b^) ]
    v = sigmoid(v' / tau),  v' free

with SGD. The result is ``v in [0, 1]^N`` plus the final ``L_to`` and ``L_from`` measured over
the whole probe set (the embedding's fidelity).

Departure from the paper: the paper does not state how ``v'`` starts. We start every feature
switched on (``v' = mask_init = 0.05``, so ``v = sigmoid(5) ~ 0.993``). From ``v' = 0``
(``v = 0.5``) the ``1/tau = 100`` gradient scale saturates the mask during the first steps,
while the affine maps are still random, and the optimisation stalls on a wrong subset.
The affine maps start as ``torch.nn.Linear`` does, drawn from a generator seeded by ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._training import (
    StepCallback,
    check_feature_pair,
    check_non_negative,
    check_positive,
    run_sgd_steps,
    uniform_init,
)

FetchFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""Maps a 1-D tensor of probe-sample indices to ``(candidate (b, n), baseline (b, N))``."""


@dataclass(frozen=True)
class ModelEmbeddingConfig:
    """Hyper-parameters of P. Defaults are the paper's (Section 5.1, 4k-step setting)."""

    # optimiser: SGD with momentum and weight decay on every parameter
    steps: int = 4000
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # schedule: lr is multiplied by lr_decay every lr_step steps
    lr_step: int = 1000
    lr_decay: float = 0.1
    # relaxation v = sigmoid(v' / temperature), v' starts at mask_init for every feature
    temperature: float = 0.01
    mask_init: float = 0.05
    # seeds the affine maps' initialisation and the batch order
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive(
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            lr_step=self.lr_step,
            lr_decay=self.lr_decay,
            temperature=self.temperature,
        )
        check_non_negative(momentum=self.momentum, weight_decay=self.weight_decay)


@dataclass(frozen=True)
class ModelEmbeddingResult:
    """The outcome of P.

    Attributes:
        mask: ``v``, float32 ``(N,)`` in ``[0, 1]``, on the CPU.
        l_to: mean cosine similarity from the model's features to the masked baseline.
        l_from: mean cosine similarity from the masked baseline to the model's features.
        steps: optimisation steps run.
    """

    mask: torch.Tensor
    l_to: float
    l_from: float
    steps: int

    @property
    def fidelity(self) -> float:
        """``min(L_to, L_from)``: the objective P maximises, 1 for exact equivalence."""
        return min(self.l_to, self.l_from)


def draw_affine_maps(
    n: int, big_n: int, *, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """P's two affine maps as they start, drawn in this order from ``generator`` (as
    ``torch.nn.Linear`` draws them): ``(to_weight (N, n), to_bias (N,), from_weight (n, N),
    from_bias (n,))``. The batched P and the refit draw the same, so they start where P does."""
    return (
        uniform_init((big_n, n), n, generator=generator),
        uniform_init((big_n,), n, generator=generator),
        uniform_init((n, big_n), big_n, generator=generator),
        uniform_init((n,), big_n, generator=generator),
    )


class _Equivalence(torch.nn.Module):
    """The parameters of P: mask logits and the two affine maps."""

    def __init__(self, n: int, big_n: int, config: ModelEmbeddingConfig, dtype: torch.dtype):
        super().__init__()
        g = torch.Generator().manual_seed(config.seed)
        self.temperature = config.temperature
        self.mask_logit = torch.nn.Parameter(torch.full((big_n,), float(config.mask_init)))
        to_w, to_b, from_w, from_b = draw_affine_maps(n, big_n, generator=g)
        self.to_weight = torch.nn.Parameter(to_w)
        self.to_bias = torch.nn.Parameter(to_b)
        self.from_weight = torch.nn.Parameter(from_w)
        self.from_bias = torch.nn.Parameter(from_b)
        self.to(dtype)

    def mask(self) -> torch.Tensor:
        return torch.sigmoid(self.mask_logit / self.temperature)

    def forward(self, cand: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample cosine similarities ``(to, from)`` for one batch."""
        masked = base * self.mask()
        to_sim = F.cosine_similarity(F.linear(cand, self.to_weight, self.to_bias), masked, dim=1)
        from_sim = F.cosine_similarity(
            cand, F.linear(masked, self.from_weight, self.from_bias), dim=1
        )
        return to_sim, from_sim


def embed_model_from_batches(
    fetch: FetchFn,
    num_samples: int,
    *,
    config: ModelEmbeddingConfig = ModelEmbeddingConfig(),
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    on_step: StepCallback | None = None,
) -> ModelEmbeddingResult:
    """Runs P, drawing each batch of features through ``fetch``.

    ``fetch`` may slice precomputed features (see :func:`embed_model`) or run both models on
    the batch's images: the paper's literal protocol, one forward pass per step.

    Args:
        fetch: maps probe-sample indices to ``(candidate, baseline)`` feature batches.
        num_samples: size of the probe set.
        config: hyper-parameters (the paper's by default).
        device: where to optimise (defaults to the device ``fetch`` returns).
        dtype: floating dtype of the optimisation.
        on_step: progress callback, called after every step.

    Returns:
        The mask and its fidelity.

    Raises:
        ValueError: on an empty probe set or feature batches of inconsistent shapes.
    """
    check_positive(num_samples=num_samples)
    probe_cand, probe_base = fetch(torch.arange(min(2, num_samples)))
    check_feature_pair(probe_cand, probe_base)
    device = torch.device(device) if device is not None else probe_cand.device
    params = _Equivalence(probe_cand.shape[1], probe_base.shape[1], config, dtype).to(device)

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        cand, base = (t.to(device=device, dtype=dtype) for t in fetch(idx))
        to_sim, from_sim = params(cand, base)
        return -torch.minimum(to_sim.mean(), from_sim.mean())

    step = run_sgd_steps(params.parameters(), loss_of, num_samples, config, on_step=on_step)
    l_to, l_from = _fidelity(params, fetch, num_samples, device=device, dtype=dtype)
    mask = params.mask().detach().to("cpu", torch.float32)
    return ModelEmbeddingResult(mask=mask, l_to=l_to, l_from=l_from, steps=step)


def embed_model(
    candidate: torch.Tensor,
    baseline: torch.Tensor,
    *,
    config: ModelEmbeddingConfig = ModelEmbeddingConfig(),
    device: str | torch.device | None = None,
    on_step: StepCallback | None = None,
) -> ModelEmbeddingResult:
    """Runs P on precomputed features of the probe set.

    With no data augmentation (the paper uses none) this is the paper's protocol: each step
    sees exactly the features a forward pass would give, at a fraction of the model operations.

    Args:
        candidate: the candidate's features, ``(num_samples, n)``.
        baseline: the baseline's features of the same samples, ``(num_samples, N)``.
        config: hyper-parameters (the paper's by default).
        device: where to optimise (defaults to the features' device).
        on_step: progress callback, called after every step.

    Returns:
        The mask ``v`` over the N baseline features, with ``L_to`` and ``L_from``.

    Raises:
        ValueError: if the two feature matrices disagree on the number of samples, or
            hold NaN or infinite values.

    Example:
        >>> base = torch.randn(1000, 32)
        >>> result = embed_model(base[:, :8] @ torch.randn(8, 8), base)
        >>> result.mask.shape
        torch.Size([32])
    """
    check_feature_pair(candidate, baseline)
    if candidate.shape[0] != baseline.shape[0]:
        raise ValueError(
            f"candidate has {candidate.shape[0]} samples but baseline has {baseline.shape[0]}"
        )
    for name, t in (("candidate", candidate), ("baseline", baseline)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} features hold NaN or infinite values")
    dtype = candidate.dtype if candidate.is_floating_point() else torch.float32
    return embed_model_from_batches(
        lambda idx: (candidate[idx], baseline[idx]),
        candidate.shape[0],
        config=config,
        device=device if device is not None else candidate.device,
        dtype=dtype,
        on_step=on_step,
    )


@torch.no_grad()
def _fidelity(
    params: _Equivalence,
    fetch: FetchFn,
    num_samples: int,
    *,
    device: torch.device,
    dtype: torch.dtype,
    chunk: int = 4096,
) -> tuple[float, float]:
    to_total = from_total = 0.0
    for idx in torch.arange(num_samples).split(chunk):
        cand, base = (t.to(device=device, dtype=dtype) for t in fetch(idx))
        to_sim, from_sim = params(cand, base)
        to_total += float(to_sim.sum())
        from_total += float(from_sim.sum())
    return to_total / num_samples, from_total / num_samples
