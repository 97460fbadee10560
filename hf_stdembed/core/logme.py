"""LogME (You et al., 2021): the log marginal evidence of a Bayesian linear model on features.

For features ``F`` of shape ``(n, D)`` and one target column ``y`` of shape ``(n,)`` (a
class's one-hot indicator), the model is ``y = F w + eps`` with prior ``w ~ N(0, alpha^-1 I)``
and noise ``eps ~ N(0, beta^-1 I)``. The evidence, with ``A = alpha I + beta F^T F`` and the
posterior mean ``m = beta A^-1 F^T y``, is

    log p(y | F, alpha, beta) = n/2 log beta + D/2 log alpha - n/2 log(2 pi)
                                - beta/2 ||F m - y||^2 - alpha/2 ||m||^2 - 1/2 log |A|.

It is maximised by MacKay's fixed point: ``gamma = sum_i beta s_i / (alpha + beta s_i)``,
``alpha = gamma / ||m||^2``, ``beta = (n - gamma) / ||F m - y||^2``, where ``s_i`` are the
eigenvalues of ``F^T F``. With the thin SVD ``F = U S V^T`` (``s_i = S_ii^2``) and
``z = U^T y`` every term is a sum over the ``k = min(n, D)`` singular values:

    ||m||^2        = sum_i beta^2 s_i z_i^2 / (alpha + beta s_i)^2
    ||F m - y||^2  = sum_i (alpha z_i / (alpha + beta s_i))^2 + (||y||^2 - ||z||^2)
    log |A|        = sum_i log(alpha + beta s_i) + (D - k) log alpha

so one SVD serves every class and every iteration. LogME is the maximised evidence divided
by ``n``, averaged over the classes. Higher is better.
"""

from __future__ import annotations

import math

import torch

_TINY, _HUGE = 1e-12, 1e12


def logme(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    max_iter: int = 100,
    tol: float = 1e-5,
) -> float:
    """LogME score of features for a classification task (evidence per sample, mean over classes).

    Args:
        features: ``(n, D)`` features of the task's samples (computed in float64).
        labels: ``(n,)`` integer labels.
        num_classes: number of classes (default: the largest label + 1). Classes absent from
            ``labels`` still count, with an all-zero target.
        max_iter: maximum fixed-point iterations per class.
        tol: stop when the relative change of both ``alpha`` and ``beta`` is below this.

    Returns:
        The LogME score (a float; higher means the features fit the labels better).

    Raises:
        ValueError: on mismatched shapes, an empty set or non-finite features.

    Example:
        >>> x = torch.randn(200, 8)
        >>> y = (x[:, 0] > 0).long()
        >>> logme(x, y) > logme(torch.randn(200, 8), y)
        True
    """
    if features.ndim != 2 or labels.ndim != 1 or features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"need features (n, D) and labels (n,); got {tuple(features.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if features.shape[0] == 0:
        raise ValueError("need at least one sample")
    if not torch.isfinite(features).all():
        raise ValueError("features hold NaN or infinite values")
    x = features.detach().to("cpu", torch.float64)
    n, d = x.shape
    classes = num_classes or int(labels.max()) + 1
    targets = torch.nn.functional.one_hot(labels.long().cpu(), classes).to(torch.float64)
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    sigma = s**2
    scores = [
        _evidence(u, sigma, targets[:, c], n=n, d=d, max_iter=max_iter, tol=tol)
        for c in range(classes)
    ]
    return float(sum(scores) / len(scores))


def _evidence(
    u: torch.Tensor,
    sigma: torch.Tensor,
    y: torch.Tensor,
    *,
    n: int,
    d: int,
    max_iter: int,
    tol: float,
) -> float:
    """Maximised log evidence per sample for one target column."""
    z = u.T @ y
    z2 = z**2
    outside = max(float(y @ y - z2.sum()), 0.0)  # part of y outside the column span of F
    k = sigma.shape[0]
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        denom = alpha + beta * sigma
        gamma = float((beta * sigma / denom).sum())
        m2 = float((beta**2 * sigma * z2 / denom**2).sum())
        res2 = float(((alpha * z / denom) ** 2).sum()) + outside
        # clamped: with n <= D the fit can be exact (res2 -> 0) and alpha or beta run off
        new_alpha = min(max(gamma / max(m2, _TINY), _TINY), _HUGE)
        new_beta = min(max((n - gamma) / max(res2, _TINY), _TINY), _HUGE)
        done = abs(new_alpha - alpha) / alpha < tol and abs(new_beta - beta) / beta < tol
        alpha, beta = new_alpha, new_beta
        if done:
            break
    denom = alpha + beta * sigma
    m2 = float((beta**2 * sigma * z2 / denom**2).sum())
    res2 = float(((alpha * z / denom) ** 2).sum()) + outside
    log_det = float(torch.log(denom).sum()) + (d - k) * math.log(alpha)
    evidence = (
        n / 2 * math.log(beta)
        + d / 2 * math.log(alpha)
        - n / 2 * math.log(2 * math.pi)
        - beta / 2 * res2
        - alpha / 2 * m2
        - log_det / 2
    )
    return evidence / n
