"""P for several models in one batched optimisation (the same baseline, the same probe set).

Each of K candidates ``F_k(x) in R^{n_k}`` is embedded against the one baseline ``B(x) in R^N``
exactly as :func:`~hf_stdembed.core.model_embedding.embed_model` does, but the K problems
share every step: the same probe batch (the batch order depends only on ``config.seed``), one
``bmm`` per affine map, one optimiser step over stacked parameters. The loss is the sum of the
K losses; the parameters of different models never meet, so each gets the gradient it gets
alone, and SGD (momentum, weight decay, step schedule) is element-wise: the result equals K
separate runs up to floating-point summation order.

Candidates of different widths are zero-padded to the widest. The padded columns of the
"to" map and rows of the "from" map start at zero and their gradient is exactly zero (a zero
input, and a cosine whose two padded coordinates are both zero), so they stay zero and change
nothing. Padding does cost compute: the batched call does ``K * max(n_k)`` work where separate
calls do ``sum(n_k)``; group candidates of similar widths.

Measured on 2 CPU cores (benchmarks/batched_p.py, results in benchmarks/results/embed_many/):
four candidates of 64-512 d against a 1,280-d baseline take 1.34x the time of four separate
calls; four of 256 d take 0.53x. embed-many does not use it: it runs P per model inside each
model's task (a Ray task, or one model after another), so a crash loses only that model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ._training import StepCallback, check_positive, mean_similarities, run_sgd_steps
from .model_embedding import ModelEmbeddingConfig, ModelEmbeddingResult, draw_affine_maps


class _StackedEquivalence(torch.nn.Module):
    """K sets of P's parameters, each drawn as :class:`_Equivalence` draws it, zero-padded."""

    def __init__(
        self, widths: Sequence[int], big_n: int, config: ModelEmbeddingConfig, dtype: torch.dtype
    ):
        super().__init__()
        k, n_max = len(widths), max(widths)
        self.temperature = config.temperature
        self.mask_logit = torch.nn.Parameter(torch.full((k, big_n), float(config.mask_init)))
        to_w, to_b = torch.zeros(k, big_n, n_max), torch.zeros(k, big_n)
        from_w, from_b = torch.zeros(k, n_max, big_n), torch.zeros(k, n_max)
        for i, n in enumerate(widths):
            g = torch.Generator().manual_seed(config.seed)  # the draws of _Equivalence
            to_w[i, :, :n], to_b[i], from_w[i, :n], from_b[i, :n] = draw_affine_maps(
                n, big_n, generator=g
            )
        self.to_weight = torch.nn.Parameter(to_w)
        self.to_bias = torch.nn.Parameter(to_b)
        self.from_weight = torch.nn.Parameter(from_w)
        self.from_bias = torch.nn.Parameter(from_b)
        self.to(dtype)

    def mask(self) -> torch.Tensor:
        return torch.sigmoid(self.mask_logit / self.temperature)

    def forward(self, cand: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-model, per-sample cosines ``(to, from)``, each ``(K, b)``; ``cand`` is
        ``(K, b, n_max)`` (zero-padded), ``base`` is ``(b, N)``."""
        masked = base.unsqueeze(0) * self.mask().unsqueeze(1)  # (K, b, N)
        return stacked_cosines(self, cand, masked)


def stacked_cosines(
    maps: torch.nn.Module, cand: torch.Tensor, masked: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """P's per-sample cosines ``(to, from)``, each ``(K, b)``, for K stacked affine maps
    (``maps.to_weight (K, N, n)``, ``to_bias``, ``from_weight (K, n, N)``, ``from_bias``):
    ``cand`` is ``(K, b, n)``, ``masked`` the masked baseline ``(K, b, N)``."""
    to_out = torch.baddbmm(maps.to_bias.unsqueeze(1), cand, maps.to_weight.transpose(1, 2))
    from_out = torch.baddbmm(maps.from_bias.unsqueeze(1), masked, maps.from_weight.transpose(1, 2))
    return (
        F.cosine_similarity(to_out, masked, dim=2),
        F.cosine_similarity(cand, from_out, dim=2),
    )


def embed_models(
    candidates: Sequence[torch.Tensor],
    baseline: torch.Tensor,
    *,
    config: ModelEmbeddingConfig = ModelEmbeddingConfig(),
    device: str | torch.device | None = None,
    on_step: StepCallback | None = None,
) -> list[ModelEmbeddingResult]:
    """Runs P for every candidate against one baseline, in one batched optimisation.

    Args:
        candidates: each candidate's features of the probe set, ``(num_samples, n_k)``.
        baseline: the baseline's features of the same samples, ``(num_samples, N)``.
        config: hyper-parameters (the paper's by default), the same for every candidate.
        device: where to optimise (defaults to the baseline's device).
        on_step: progress callback, called after every (shared) step.

    Returns:
        One result per candidate, in order: what :func:`embed_model` gives for it alone (up to
        floating-point summation order).

    Raises:
        ValueError: no candidates, features that are not 2-D, disagree on the number of
            samples, or hold NaN or infinite values.

    Example:
        >>> base = torch.randn(1000, 32)
        >>> results = embed_models([base[:, :8], base[:, 8:12]], base)
        >>> [r.mask.shape for r in results]
        [torch.Size([32]), torch.Size([32])]
    """
    if not candidates:
        raise ValueError("no candidates to embed")
    for name, t in (
        ("baseline", baseline),
        *((f"candidate {i}", c) for i, c in enumerate(candidates)),
    ):
        if t.ndim != 2:
            raise ValueError(f"features must be 2-D (samples, dims); {name} is {tuple(t.shape)}")
        if t.shape[0] != baseline.shape[0]:
            raise ValueError(
                f"{name} has {t.shape[0]} samples but baseline has {baseline.shape[0]}"
            )
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} features hold NaN or infinite values")
    num_samples = baseline.shape[0]
    check_positive(num_samples=num_samples)
    dtype = baseline.dtype if baseline.is_floating_point() else torch.float32
    device = torch.device(device) if device is not None else baseline.device
    widths = [c.shape[1] for c in candidates]
    cand = torch.zeros(len(candidates), num_samples, max(widths), dtype=dtype, device=device)
    for i, c in enumerate(candidates):
        cand[i, :, : c.shape[1]] = c.to(device=device, dtype=dtype)
    base = baseline.to(device=device, dtype=dtype)
    params = _StackedEquivalence(widths, base.shape[1], config, dtype).to(device)

    def similarities(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return params(cand[:, idx], base[idx])

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        to_sim, from_sim = similarities(idx.to(device))
        return -torch.minimum(to_sim.mean(1), from_sim.mean(1)).sum()

    step = run_sgd_steps(params.parameters(), loss_of, num_samples, config, on_step=on_step)
    l_to, l_from = (
        t.tolist()
        for t in mean_similarities(
            similarities, num_samples, len(candidates), device=cand.device, chunk=4096
        )
    )
    masks = params.mask().detach().to("cpu", torch.float32)
    return [
        ModelEmbeddingResult(mask=masks[i], l_to=l_to[i], l_from=l_from[i], steps=step)
        for i in range(len(candidates))
    ]
