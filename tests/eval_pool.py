"""The tiny evaluation pool (tests/test_evaluation*.py, test_stage1_research.py,
test_progress.py): three in-process extractors written out as an importable module, and a
guard that fails any recomputation. Plain helpers; the ``tiny_pool`` fixture built on them is
in tests/conftest.py."""

from __future__ import annotations

import pytest

_COMPUTATIONS = (
    ("embeddings", "embed_model"),
    ("embeddings", "embed_task"),
    ("ground_truth", "linear_probe"),
    ("ground_truth", "logme"),
)
"""(module of hf_stdembed.evaluation, name): what a rerun from the cache must not call."""


def refuse_computations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes P, Q, the linear probes, LogME and every forward pass fail with ``<name> was
    recomputed``: what follows must be answered from the caches."""
    from hf_stdembed import features

    def refuse(name):
        def run(*args, **kwargs):
            raise AssertionError(f"{name} was recomputed")

        return run

    for module, name in _COMPUTATIONS:
        monkeypatch.setattr(f"hf_stdembed.evaluation.{module}.{name}", refuse(name))
    monkeypatch.setattr(features, "_run", refuse("a forward pass"))


TINY_MODULE = """
import torch
import torchvision.transforms.functional as TF
from hf_stdembed.extractors import FeatureExtractor


def _transform(image):
    return TF.to_tensor(image.convert("RGB").resize((8, 8)))


def _make(name, dim, seed, noise):
    proj = torch.randn(3 * 64, dim, generator=torch.Generator().manual_seed(seed))

    def forward(pixels):
        x = torch.relu(pixels.flatten(1) @ proj)
        if noise:  # features that ignore the image: a hash of it drives the noise
            keys = (pixels.flatten(1).sum(1) * 1e4).long()
            x = torch.stack([
                torch.rand(dim, generator=torch.Generator().manual_seed(int(k))) for k in keys
            ])
        return x

    return FeatureExtractor(
        name=name, revision="0", transform=_transform, forward=forward,
        preprocessing=f"tiny-{name}", metadata={"num_parameters": str(3 * 64 * dim)},
    )


def base():
    return _make("base", 32, 0, False)


def good():
    return _make("good", 16, 1, False)


def noise():
    return _make("noise", 48, 2, True)
"""
