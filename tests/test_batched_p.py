"""P for several models in one batched optimisation: the same results as one call per model."""

from __future__ import annotations

import re

import pytest
import torch

from hf_stdembed.core import ModelEmbeddingConfig, embed_model
from hf_stdembed.core.batched_model_embedding import embed_models

SHORT = ModelEmbeddingConfig(steps=120, batch_size=64, lr_step=40)


def planted(n_base: int, widths: list[int], num: int, *, seed: int = 0):
    """A baseline and candidates, each an invertible map of a known subset of the baseline."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(num, n_base, generator=g, dtype=torch.float64)
    cands, truths = [], []
    for k in widths:
        subset = torch.randperm(n_base, generator=g)[:k]
        mix = torch.randn(k, k, generator=g, dtype=torch.float64)
        cands.append(
            base[:, subset] @ mix + 3.0 + 0.05 * torch.randn(num, k, generator=g, dtype=base.dtype)
        )
        truth = torch.zeros(n_base, dtype=torch.bool)
        truth[subset] = True
        truths.append(truth)
    return cands, base, truths


def test_batched_equals_separate_in_float64_for_candidates_of_different_widths():
    cands, base, truths = planted(24, [3, 6, 10], 400)
    separate = [embed_model(c, base, config=SHORT) for c in cands]
    batched = embed_models(cands, base, config=SHORT)
    assert len(batched) == 3
    for one, many in zip(separate, batched, strict=True):
        assert many.steps == one.steps == SHORT.steps
        torch.testing.assert_close(many.mask, one.mask, atol=1e-6, rtol=0)
        assert many.l_to == pytest.approx(one.l_to, abs=1e-9)
        assert many.l_from == pytest.approx(one.l_from, abs=1e-9)


def test_batched_finds_each_planted_subset():
    """test_core's bar for P alone (Jaccard >= 0.85, fidelity >= 0.9), for each candidate."""
    cands, base, truths = planted(128, [32, 24], 2000)  # test_core's planted case, twice
    config = ModelEmbeddingConfig(steps=1000, lr_step=250)
    for result, truth in zip(embed_models(cands, base, config=config), truths, strict=True):
        chosen = result.mask > 0.5
        assert (chosen & truth).sum() / (chosen | truth).sum() >= 0.85
        assert result.fidelity >= 0.9


def test_padding_of_a_narrow_candidate_changes_nothing():
    """A candidate alone and beside a much wider one: the same mask (its padding stays zero)."""
    cands, base, _ = planted(16, [2, 12], 200, seed=2)
    alone = embed_models(cands[:1], base, config=SHORT)[0]
    beside = embed_models(cands, base, config=SHORT)[0]
    torch.testing.assert_close(beside.mask, alone.mask, atol=1e-9, rtol=0)


def test_on_step_is_called_once_per_shared_step():
    cands, base, _ = planted(8, [2, 3], 50)
    seen: list[tuple[int, int]] = []
    config = ModelEmbeddingConfig(steps=5, batch_size=16)
    embed_models(cands, base, config=config, on_step=lambda i, n: seen.append((i, n)))
    assert seen == [(i, 5) for i in range(1, 6)]


@pytest.mark.parametrize(
    ("cands", "base", "message"),
    [
        ([], torch.zeros(4, 3), "no candidates"),
        ([torch.zeros(4)], torch.zeros(4, 3), "candidate 0 is (4,)"),
        ([torch.zeros(5, 2)], torch.zeros(4, 3), "candidate 0 has 5 samples but baseline has 4"),
        ([torch.full((4, 2), float("nan"))], torch.zeros(4, 3), "candidate 0 features hold NaN"),
        ([torch.zeros(4, 2)], torch.full((4, 3), float("inf")), "baseline features hold NaN"),
    ],
)
def test_refusals_name_the_bad_input(cands, base, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        embed_models(cands, base, config=SHORT)
