"""Stage-1 research of issue 12: closed-form R^2 masks, the beyond-baseline scalar, union
baselines, named shortlist configurations with merge rules, and the quality-vs-K curve."""

from __future__ import annotations

import pytest
import torch

from hf_stdembed.core.closed_form import (
    beyond_baseline,
    held_out_halves,
    held_out_r2,
    r2_mask,
    union_features,
)

# --- closed-form scores on planted features ---------------------------------------------


def _baseline(n: int = 1000, dim: int = 30, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g) * torch.linspace(0.5, 3.0, dim) + 2.0


def test_r2_mask_is_one_on_the_features_a_candidate_maps_and_zero_elsewhere():
    base = _baseline()
    g = torch.Generator().manual_seed(1)
    # a candidate that IS a linear map of baseline features 0..9 (plus an offset)
    candidate = base[:, :10] @ torch.randn(10, 16, generator=g) + 5.0
    mask = r2_mask(candidate, base)
    assert mask.shape == (30,) and mask.dtype == torch.float32
    assert mask[:10].min() > 0.97
    assert mask[10:].max() < 0.05
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0


def test_r2_mask_sees_a_nonlinear_but_monotone_map_and_ignores_noise():
    base = _baseline()
    g = torch.Generator().manual_seed(2)
    partial = base[:, :5] + 0.5 * base[:, :5].std(0) * torch.randn(1000, 5, generator=g)
    mask = r2_mask(partial, base)
    assert (mask[:5] > 0.6).all() and (mask[:5] < 0.95).all()  # noisy copy: partial R^2
    noise = r2_mask(torch.randn(1000, 40, generator=g), base)
    assert noise.max() < 0.1


def test_beyond_baseline_of_a_copy_is_zero_of_noise_one_and_of_a_mix_between():
    base = _baseline()
    g = torch.Generator().manual_seed(3)
    assert beyond_baseline(base.clone(), base) < 0.02
    assert beyond_baseline(base[:, :7] * 3 - 1, base) < 0.02
    assert beyond_baseline(torch.randn(1000, 20, generator=g), base) > 0.97
    half = torch.cat([base[:, :10], torch.randn(1000, 10, generator=g)], dim=1)
    assert beyond_baseline(half, base) == pytest.approx(0.5, abs=0.05)


def test_closed_form_scores_are_deterministic_and_seeded_and_scale_free():
    base = _baseline()
    cand = base[:, :4] ** 2 + torch.randn(1000, 4, generator=torch.Generator().manual_seed(4))
    a, b = r2_mask(cand, base), r2_mask(cand, base)
    assert torch.equal(a, b)
    assert not torch.equal(a, r2_mask(cand, base, split_seed=1))
    # standardised inside: rescaling either side changes nothing
    assert torch.allclose(a, r2_mask(cand * 100 + 3, base * 0.01), atol=1e-5)
    assert beyond_baseline(cand, base) == pytest.approx(beyond_baseline(cand * 7, base * 3))


def test_wide_candidate_takes_the_dual_solve_and_matches_the_primal_one():
    g = torch.Generator().manual_seed(5)
    base = torch.randn(40, 6, generator=g)
    wide = torch.cat([base[:, :3], torch.randn(40, 30, generator=g)], dim=1)  # d > n/2
    dual, _ = held_out_r2(wide, base, ridge=1.0)
    # the primal solve of the same ridge problem, written out
    fit, held = held_out_halves(40)
    x, y = wide.double(), base.double()
    mx, sx = x[fit].mean(0), x[fit].std(0, unbiased=False)
    my, sy = y[fit].mean(0), y[fit].std(0, unbiased=False)
    xf, xh = (x[fit] - mx) / sx, (x[held] - mx) / sx
    yf, yh = (y[fit] - my) / sy, (y[held] - my) / sy
    w = torch.linalg.solve(xf.T @ xf / 20 + torch.eye(33, dtype=torch.float64), xf.T @ yf / 20)
    r2 = 1 - ((yh - xh @ w) ** 2).sum(0) / ((yh - yh.mean(0)) ** 2).sum(0)
    assert torch.allclose(dual, r2.clamp(0, 1), atol=1e-9)


def test_a_ridge_grid_keeps_the_best_held_out_fit():
    base = _baseline(n=200)
    g = torch.Generator().manual_seed(6)
    wide = torch.cat([base[:, :5], torch.randn(200, 150, generator=g)], dim=1)
    grid = held_out_r2(wide, base, ridge=(0.01, 1.0, 100.0))[0].sum()
    each = [held_out_r2(wide, base, ridge=r)[0].sum() for r in (0.01, 1.0, 100.0)]
    assert float(grid) == pytest.approx(max(map(float, each)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: r2_mask(torch.zeros(10, 2), torch.zeros(9, 2)), "same rows"),
        (lambda: r2_mask(torch.zeros(3, 2), torch.zeros(3, 2)), "at least 4"),
        (lambda: r2_mask(torch.zeros(10, 2), torch.zeros(10, 2), ridge=0.0), "Invalid ridge"),
        (lambda: union_features([]), "at least one block"),
        (lambda: union_features([torch.zeros(3, 2), torch.zeros(4, 2)]), "same rows"),
    ],
)
def test_closed_form_rejects_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_constant_features_hold_nothing_and_never_blow_up():
    base = _baseline(n=100)
    base[:, 0] = 4.0  # a dead unit of the baseline
    mask = r2_mask(base[:, 1:5], base)
    assert mask[0] == 0.0 and torch.isfinite(mask).all()
    assert beyond_baseline(torch.full((100, 3), 2.0), base) == 0.0


def test_union_features_standardise_each_block_and_reuse_the_probe_statistics():
    a, b = _baseline(n=200, dim=3), _baseline(n=200, dim=2, seed=1) * 50
    union, stats = union_features([a, b])
    assert union.shape == (200, 5)
    assert torch.allclose(union.mean(0), torch.zeros(5), atol=1e-5)
    assert torch.allclose(union.std(0, unbiased=False), torch.ones(5), atol=1e-4)
    task, _ = union_features([a[:10], b[:10]], stats=stats)  # a task: the probe's transform
    assert torch.allclose(task, union[:10])
    with pytest.raises(ValueError, match="one entry per block"):
        union_features([a], stats=stats)
