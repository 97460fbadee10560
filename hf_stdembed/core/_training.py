"""Pieces shared by the optimisations (P, its batched form and refit, Q, linear probe):
batching, P's step loop, chunked fidelity and validation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import torch

StepCallback = Callable[[int, int], None]
"""Called after each optimisation step with ``(steps_done, total_steps)``."""


class StepSchedule(Protocol):
    """What :func:`run_sgd_steps` reads of a config (P's ``ModelEmbeddingConfig``)."""

    steps: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    lr_step: int
    lr_decay: float
    seed: int


def epoch_batches(
    num_samples: int, batch_size: int, *, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """Yields the index batches of one shuffled epoch (the last batch may be smaller)."""
    order = torch.randperm(num_samples, generator=generator)
    yield from order.split(batch_size)


def step_batches(
    num_samples: int, batch_size: int, steps: int, *, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """Yields ``steps`` full index batches, reshuffling at each epoch (drop-last sampling)."""
    batch_size = min(batch_size, num_samples)
    done = 0
    while done < steps:
        order = torch.randperm(num_samples, generator=generator)
        for start in range(0, num_samples - batch_size + 1, batch_size):
            if done == steps:
                return
            yield order[start : start + batch_size]
            done += 1


def run_sgd_steps(
    parameters: Iterable[torch.nn.Parameter],
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    num_samples: int,
    config: StepSchedule,
    *,
    on_step: StepCallback | None = None,
) -> int:
    """P's optimisation: ``config.steps`` SGD steps (momentum, weight decay on every
    parameter, the lr times ``lr_decay`` every ``lr_step`` steps) on the loss of each index
    batch of :func:`step_batches` (seeded by ``config.seed``); returns the steps run."""
    optimizer = torch.optim.SGD(
        parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, gamma=config.lr_decay)
    generator = torch.Generator().manual_seed(config.seed)
    step = 0
    for step, idx in enumerate(
        step_batches(num_samples, config.batch_size, config.steps, generator=generator), 1
    ):
        loss = loss_of(idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if on_step is not None:
            on_step(step, config.steps)
    return step


@torch.no_grad()
def mean_similarities(
    similarities: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    num_samples: int,
    k: int,
    *,
    device: torch.device,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The means over all samples of ``k`` pairs of per-sample similarities, in float64:
    ``similarities(idx)`` gives ``(to, from)``, each ``(k, len(idx))``, for a chunk of indices
    (on ``device``); returns ``(to_mean, from_mean)``, each ``(k,)``."""
    to_total = torch.zeros(k, dtype=torch.float64)
    from_total = torch.zeros(k, dtype=torch.float64)
    for idx in torch.arange(num_samples, device=device).split(chunk):
        to_sim, from_sim = similarities(idx)
        to_total += to_sim.sum(dim=1).double().cpu()
        from_total += from_sim.sum(dim=1).double().cpu()
    return to_total / num_samples, from_total / num_samples


def check_feature_pair(candidate: torch.Tensor, baseline: torch.Tensor) -> None:
    """Raises ValueError unless both feature matrices are 2-D ``(samples, dims)``."""
    if candidate.ndim != 2 or baseline.ndim != 2:
        raise ValueError(
            "features must be 2-D (samples, dims); "
            f"got {tuple(candidate.shape)} and {tuple(baseline.shape)}"
        )


def check_positive(**values: float) -> None:
    """Raises ValueError naming the first value that is not > 0."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"Invalid {name} value: {value} (must be > 0)")


def check_non_negative(**values: float) -> None:
    """Raises ValueError naming the first value that is < 0."""
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"Invalid {name} value: {value} (must be >= 0)")


def uniform_init(
    shape: tuple[int, ...], fan_in: int, *, generator: torch.Generator
) -> torch.Tensor:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch.nn.Linear's default, drawn from ``generator``."""
    bound = fan_in**-0.5
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound
