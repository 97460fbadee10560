"""Linear probe (Section 5.1): ground-truth downstream accuracy of a set of features."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._training import check_non_negative, check_positive, epoch_batches, uniform_init


@dataclass(frozen=True)
class LinearProbeConfig:
    """Hyper-parameters of the linear probe. Defaults are the paper's (Section 5.1)."""

    epochs: int = 60
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_step_epochs: int = 15
    lr_decay: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            lr_step_epochs=self.lr_step_epochs,
            lr_decay=self.lr_decay,
        )
        check_non_negative(momentum=self.momentum, weight_decay=self.weight_decay)


@dataclass(frozen=True)
class LinearProbeResult:
    """Accuracies (in %) of the trained linear head, and the head itself."""

    accuracy: float
    train_accuracy: float
    weight: torch.Tensor
    bias: torch.Tensor


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    config: LinearProbeConfig = LinearProbeConfig(),
    device: str | torch.device | None = None,
) -> LinearProbeResult:
    """Trains a linear head on the training features and scores it on the test features.

    Args:
        train_features: ``(n_train, d)``.
        train_labels: ``(n_train,)`` integer labels.
        test_features: ``(n_test, d)``.
        test_labels: ``(n_test,)``.
        num_classes: number of classes (default: the largest label + 1).
        config: hyper-parameters (the paper's by default).
        device: where to train (defaults to the features' device).

    Returns:
        Test and training accuracy in %, and the head.

    Raises:
        ValueError: on mismatched shapes or non-finite features.
    """
    for name, x, y in (
        ("train", train_features, train_labels),
        ("test", test_features, test_labels),
    ):
        if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(
                f"{name}: need features (n, d) and labels (n,) with n > 0; "
                f"got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} features hold NaN or infinite values")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError("train and test features have different dimensions")
    device = torch.device(device) if device is not None else train_features.device
    classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    dim = train_features.shape[1]
    generator = torch.Generator().manual_seed(config.seed)
    weight = uniform_init((classes, dim), dim, generator=generator).to(device).requires_grad_()
    bias = uniform_init((classes,), dim, generator=generator).to(device).requires_grad_()
    optimizer = torch.optim.SGD(
        [weight, bias], lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.StepLR(
        optimizer, config.lr_step_epochs, gamma=config.lr_decay
    )
    x_train, y_train = train_features.float(), train_labels.long()
    for _ in range(config.epochs):
        for idx in epoch_batches(x_train.shape[0], config.batch_size, generator=generator):
            logits = F.linear(x_train[idx].to(device), weight, bias)
            loss = F.cross_entropy(logits, y_train[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
    weight, bias = weight.detach().cpu(), bias.detach().cpu()
    return LinearProbeResult(
        accuracy=_accuracy(test_features, test_labels, weight, bias),
        train_accuracy=_accuracy(train_features, train_labels, weight, bias),
        weight=weight,
        bias=bias,
    )


@torch.no_grad()
def _accuracy(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> float:
    predictions = F.linear(x.float().cpu(), weight, bias).argmax(dim=1)
    return 100.0 * float((predictions == y.long().cpu()).double().mean())
