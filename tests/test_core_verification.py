"""The verification core: a fixed-mask refit of P and mask agreement, on planted ground truth."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from planted_data import planted_features

from hf_stdembed.core import ModelEmbeddingConfig, embed_model
from hf_stdembed.core.verification import MASK_MEASURES, mask_agreement, refit_affine

SHORT = ModelEmbeddingConfig(steps=1000, lr_step=250)


@pytest.fixture(scope="module")
def planted():
    cand, base, truth = planted_features(96, 24, 1500)
    return cand, base, truth.float()


def test_refit_reaches_high_fidelity_with_the_true_mask_only(planted):
    cand, base, truth = planted
    g = torch.Generator().manual_seed(1)
    disjoint = torch.zeros(96)
    disjoint[torch.randperm(96, generator=g)[truth.nonzero()[:, 0].numel() :][:24]] = 1.0
    disjoint[truth.bool()] = 0.0
    masks = torch.stack([truth, torch.ones(96), disjoint])
    result = refit_affine(cand, base, masks, config=SHORT)
    fid = result.fidelity.tolist()
    print(f"refit fidelity: truth {fid[0]:.3f}, all-ones {fid[1]:.3f}, disjoint {fid[2]:.3f}")
    assert fid[0] >= 0.9
    # all-ones: the 24-d model cannot produce the other 72 baseline features
    assert fid[1] <= fid[0] - 0.25
    assert fid[2] <= 0.3
    assert result.steps == SHORT.steps
    assert result.l_to.dtype == torch.float64 and result.l_to.shape == (3,)


def test_refit_of_ps_own_mask_reaches_ps_fidelity(planted):
    # the genuine case of verify: P's mask, maps refitted from scratch
    cand, base, _ = planted
    p = embed_model(cand, base, config=SHORT)
    refit = refit_affine(cand, base, p.mask, config=SHORT)
    assert abs(float(refit.fidelity[0]) - p.fidelity) <= 0.02


def test_refit_batched_equals_separate_runs():
    cand, base, truth = planted_features(32, 8, 300, seed=3)
    cand, base = cand.double(), base.double()
    masks = torch.stack(
        [truth.double(), torch.ones(32, dtype=torch.float64), torch.rand(32).double()]
    )
    config = ModelEmbeddingConfig(steps=60, lr_step=20, seed=5)
    together = refit_affine(cand, base, masks, config=config)
    for i in range(3):
        alone = refit_affine(cand, base, masks[i], config=config)
        assert math.isclose(float(together.l_to[i]), float(alone.l_to[0]), abs_tol=1e-9)
        assert math.isclose(float(together.l_from[i]), float(alone.l_from[0]), abs_tol=1e-9)


def test_refit_is_deterministic_and_seeded():
    cand, base, truth = planted_features(32, 8, 300, seed=4)
    config = ModelEmbeddingConfig(steps=50, lr_step=20)
    a = refit_affine(cand, base, truth.float(), config=config)
    b = refit_affine(cand, base, truth.float(), config=config)
    c = refit_affine(
        cand, base, truth.float(), config=ModelEmbeddingConfig(steps=50, lr_step=20, seed=1)
    )
    assert torch.equal(a.l_to, b.l_to) and torch.equal(a.l_from, b.l_from)
    assert not torch.equal(a.l_to, c.l_to)


@pytest.mark.parametrize(
    ("cand", "base", "masks", "message"),
    [
        (torch.randn(10, 4), torch.randn(9, 8), torch.ones(8), "10 samples but baseline has 9"),
        (torch.randn(10), torch.randn(10, 8), torch.ones(8), "must be 2-D"),
        (torch.randn(10, 4), torch.randn(10, 8), torch.ones(7), r"masks must be \(k, 8\)"),
        (torch.randn(10, 4), torch.randn(10, 8), torch.full((8,), 2.0), r"in \[0, 1\]"),
        (torch.randn(10, 4), torch.randn(10, 8), torch.full((8,), math.nan), "NaN"),
        (torch.full((10, 4), math.inf), torch.randn(10, 8), torch.ones(8), "NaN or infinite"),
    ],
)
def test_refit_refuses_bad_input(cand, base, masks, message):
    with pytest.raises(ValueError, match=message):
        refit_affine(cand, base, masks, config=SHORT)


def test_mask_agreement_on_hand_examples():
    a = torch.tensor([1.0, 1.0, 0.0, 0.0])
    b = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    assert mask_agreement(a, b, "weighted-jaccard").tolist() == pytest.approx([1 / 3, 1.0, 0.0])
    assert mask_agreement(a, b, "pearson").tolist() == pytest.approx([0.0, 1.0, -1.0])
    assert mask_agreement(a, b, "l1").tolist() == pytest.approx([0.0, 1.0, -1.0])
    assert mask_agreement(a, b[1]).ndim == 0


def test_mask_agreement_separates_nearly_all_on_masks_that_jaccard_cannot():
    # issue 9 #2: two models' masks both ~0.99 everywhere, differing in which few are off
    g = torch.Generator().manual_seed(0)
    model_a = 0.99 - 0.3 * (torch.rand(1000, generator=g) < 0.03).float()
    model_b = 0.99 - 0.3 * (torch.rand(1000, generator=g) < 0.03).float()
    recomputed_a = (model_a + 0.01 * torch.randn(1000, generator=g)).clamp(0, 1)
    thresholded = ((model_b > 0.5) & (recomputed_a > 0.5)).float().mean()
    assert thresholded == 1.0  # Jaccard of the thresholded masks: no information
    genuine = float(mask_agreement(model_a, recomputed_a, "pearson"))
    impostor = float(mask_agreement(model_b, recomputed_a, "pearson"))
    assert genuine >= 0.9 and impostor <= 0.2


def test_a_constant_mask_correlates_with_nothing():
    rec = torch.rand(50)
    assert float(mask_agreement(torch.ones(50), rec, "pearson")) == 0.0
    assert float(mask_agreement(torch.full((50,), 0.7), rec, "pearson")) == 0.0
    assert float(mask_agreement(rec, torch.ones(50), "pearson")) == 0.0
    # ... but two equal masks agree, constant or not
    assert float(mask_agreement(torch.ones(50), torch.ones(50), "pearson")) == 1.0


def test_mask_agreement_batched_equals_separate():
    pub, rec = torch.rand(64), torch.rand(5, 64)
    for kind in MASK_MEASURES:
        together = mask_agreement(pub, rec, kind)
        alone = torch.stack([mask_agreement(pub, r, kind) for r in rec])
        assert torch.allclose(together, alone)


@pytest.mark.parametrize(
    ("pub", "rec", "kind", "message"),
    [
        (torch.ones(4), torch.ones(4), "jaccard", "unknown mask measure 'jaccard'"),
        (torch.ones(4), torch.ones(5), "pearson", "4 features, recomputed 5"),
        (torch.ones(2, 4), torch.ones(4), "pearson", r"published \(N,\)"),
        (torch.full((4,), math.nan), torch.ones(4), "l1", "NaN"),
    ],
)
def test_mask_agreement_refuses_bad_input(pub, rec, kind, message):
    with pytest.raises(ValueError, match=message):
        mask_agreement(pub, rec, kind)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=2, max_size=40).flatmap(
        lambda a: st.tuples(st.just(a), st.lists(st.floats(0, 1), min_size=len(a), max_size=len(a)))
    )
)
def test_mask_agreement_is_bounded_and_one_on_itself(pair):
    a, b = (torch.tensor(x) for x in pair)
    wj = float(mask_agreement(a, b, "weighted-jaccard"))
    r = float(mask_agreement(a, b, "pearson"))
    l1 = float(mask_agreement(a, b, "l1"))
    assert 0.0 <= wj <= 1.0 + 1e-12
    assert -1.0 - 1e-9 <= r <= 1.0 + 1e-9
    assert l1 <= 1.0 + 1e-12 and not math.isnan(l1)
    assert math.isclose(wj, float(mask_agreement(b, a, "weighted-jaccard")), abs_tol=1e-12)
    assert float(mask_agreement(a, a, "weighted-jaccard")) == 1.0
    assert float(mask_agreement(a, a, "l1")) == 1.0
    assert math.isclose(float(mask_agreement(a, a, "pearson")), 1.0, abs_tol=1e-9)
