"""Whether a model card's ``datasets:`` declares a task's dataset (a stage-1 signal).

A model fine-tuned for a task is what a mask over a baseline's features cannot see; its card
usually says what it was trained on. The match is deliberately loose (a shortlist place is
all it earns; stage 2 measures the model on the task's data): lower-cased, an entry matches
the task's Hub id when it equals it or when their last path components are equal, so
``uoft-cs/cifar10`` matches the legacy canonical ``cifar10``.
"""

from __future__ import annotations

from collections.abc import Iterable

DECLARED = "declared"
"""The name of the stage-1 order of the candidates whose card declares the task's dataset
(in ``select``'s ``shortlisted_by`` and the evaluation's stage-1 configurations)."""


def _name(dataset_id: str) -> str:
    return dataset_id.strip().strip("/").lower().rsplit("/", 1)[-1]


def declares(datasets: Iterable[str], dataset_id: str | None) -> bool:
    """Whether one of ``datasets`` (a card's declared training data) names ``dataset_id``.

    Example:
        >>> declares(["uoft-cs/cifar10"], "cifar10"), declares(["cifar100"], "cifar10")
        (True, False)
    """
    if not dataset_id or not _name(dataset_id):
        return False
    wanted = _name(dataset_id)
    return any(isinstance(d, str) and _name(d) == wanted for d in datasets)
