"""Pieces shared by the three optimisations (P, Q, linear probe): batching and validation."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

StepCallback = Callable[[int, int], None]
"""Called after each optimisation step with ``(steps_done, total_steps)``."""


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
