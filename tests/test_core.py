"""The method's pure core: planted ground truth, the paper's rules, refusals."""

from __future__ import annotations

import math
import re

import pytest
import torch
from planted_data import planted_features

from hf_stdembed.core import (
    SIMILARITIES,
    LinearProbeConfig,
    ModelEmbeddingConfig,
    TaskEmbeddingConfig,
    choose_gamma,
    embed_model,
    embed_model_from_batches,
    embed_task,
    fuzzy_intersection,
    fuzzy_similarity,
    linear_probe,
)

SHORT = ModelEmbeddingConfig(steps=1000, lr_step=250)


def jaccard(mask: torch.Tensor, truth: torch.Tensor) -> float:
    found = mask > 0.5
    return float((found & truth).sum() / (found | truth).sum())


def test_model_embedding_recovers_planted_subset():
    cand, base, truth = planted_features(128, 32, 2000)
    result = embed_model(cand, base, config=SHORT)
    assert result.mask.shape == (128,)
    assert result.mask.dtype == torch.float32
    assert ((result.mask >= 0) & (result.mask <= 1)).all()
    score = jaccard(result.mask, truth)
    print(f"planted P: Jaccard {score:.3f}, L_to {result.l_to:.3f}, L_from {result.l_from:.3f}")
    assert score >= 0.85
    assert result.fidelity >= 0.9


def test_all_on_initialisation_is_what_makes_recovery_work():
    # The recorded choice (v' = 0.05: every feature on) against v' = 0 (v = 0.5), which
    # saturates the mask while the affine maps are still random.
    cand, base, truth = planted_features(128, 32, 2000)
    chosen = embed_model(cand, base, config=SHORT)
    from_half = embed_model(
        cand, base, config=ModelEmbeddingConfig(steps=1000, lr_step=250, mask_init=0.0)
    )
    assert jaccard(chosen.mask, truth) > jaccard(from_half.mask, truth) + 0.3
    assert ModelEmbeddingConfig().mask_init == 0.05


def test_model_equal_to_baseline_embeds_to_all_ones():
    _, base, _ = planted_features(128, 32, 2000)
    result = embed_model(base.clone(), base, config=SHORT)
    assert (result.mask > 0.5).float().mean() >= 0.95
    assert result.fidelity >= 0.98


def test_model_embedding_is_deterministic_and_fetch_equivalent():
    cand, base, _ = planted_features(64, 16, 500)
    config = ModelEmbeddingConfig(steps=200, lr_step=50)
    a = embed_model(cand, base, config=config)
    b = embed_model_from_batches(lambda idx: (cand[idx], base[idx]), 500, config=config)
    assert torch.equal(a.mask, b.mask)
    assert a.l_to == b.l_to and a.l_from == b.l_from


def test_model_embedding_default_hyper_parameters_are_the_papers():
    c = ModelEmbeddingConfig()
    assert (c.steps, c.batch_size, c.lr, c.momentum, c.weight_decay) == (4000, 128, 0.1, 0.9, 5e-4)
    assert (c.lr_step, c.lr_decay, c.temperature) == (1000, 0.1, 0.01)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1}, "Invalid lr value: -1"),
        ({"momentum": -0.5}, "Invalid momentum value: -0.5"),
        ({"temperature": 0}, "Invalid temperature value: 0"),
        ({"steps": 0}, "Invalid steps value: 0"),
    ],
)
def test_model_embedding_config_names_the_bad_value(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ModelEmbeddingConfig(**kwargs)


@pytest.mark.parametrize(
    ("cand", "base", "message"),
    [
        (torch.randn(10, 4), torch.randn(9, 8), "10 samples but baseline has 9"),
        (torch.randn(10), torch.randn(10, 8), "must be 2-D"),
        (torch.full((10, 4), float("nan")), torch.randn(10, 8), "NaN"),
    ],
)
def test_model_embedding_refuses_bad_features(cand, base, message):
    with pytest.raises(ValueError, match=message):
        embed_model(cand, base, config=SHORT)


def planted_task(n_base: int, k: int, num: int, classes: int, *, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num, n_base, generator=g)
    subset = torch.randperm(n_base, generator=g)[:k]
    labels = (x[:, subset] @ torch.randn(k, classes, generator=g)).argmax(dim=1)
    truth = torch.zeros(n_base, dtype=torch.bool)
    truth[subset] = True
    return x, labels, truth


def test_task_embedding_concentrates_on_the_features_the_labels_use():
    x, y, truth = planted_task(128, 8, 2000, 4)
    gammas = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    result = embed_task(x, y, config=TaskEmbeddingConfig(gammas=gammas))
    found = result.mask > 0.5
    precision = float((found & truth).sum() / found.sum().clamp_min(1))
    recall = float((found & truth).sum() / truth.sum())
    print(f"planted Q: gamma {result.gamma}, precision {precision:.2f}, recall {recall:.2f}")
    chance = truth.float().mean().item()  # 8 / 128
    assert result.drop_reached
    assert precision >= 0.8 > 10 * chance
    assert recall >= 0.4 > 5 * chance
    # the sweep: masks shrink as gamma grows, and the rule's accuracy drop holds
    assert result.mask_sizes[0] > 5 * result.mask_sizes[-1]
    chosen = result.gammas.tolist().index(result.gamma)
    assert result.accuracies[chosen] <= result.converged_accuracy - 3.0
    assert all(a > result.converged_accuracy - 3.0 for a in result.accuracies[:chosen])


def test_task_embedding_sweep_equals_separate_runs():
    # One batched optimisation over the grid == one training per gamma.
    x, y, _ = planted_task(32, 4, 300, 3)
    config = TaskEmbeddingConfig(epochs=3, lr_step_epochs=1, gammas=(0.0, 1e-3, 1e-2))
    together = embed_task(x.double(), y, config=config)
    for i, gamma in enumerate(config.gammas):
        alone = embed_task(
            x.double(), y, config=TaskEmbeddingConfig(epochs=3, lr_step_epochs=1, gammas=(gamma,))
        )
        torch.testing.assert_close(alone.masks[0], together.masks[i], atol=1e-5, rtol=0)


def test_task_head_norm_constraint_holds():
    from hf_stdembed.core.task_embedding import _MaskedHeads

    heads = _MaskedHeads(3, 16, 4, TaskEmbeddingConfig())

    def norms() -> torch.Tensor:
        return heads.weight.abs().sum(dim=2).amax(dim=1)

    torch.testing.assert_close(norms(), torch.ones(3))  # from the start
    with torch.no_grad():
        heads.weight.mul_(torch.rand(3, 16, 4) * 10)
    heads.project_()
    torch.testing.assert_close(norms(), torch.ones(3))


def test_task_head_fits_what_a_linear_probe_fits():
    # At gamma = 0 the constrained head should fit about as well as an unconstrained probe,
    # also on features of large magnitude (post-ReLU, sum |x| in the hundreds).
    x, y, _ = planted_task(256, 16, 1000, 5)
    x = (x * 2).relu()
    probe = linear_probe(x, y, x, y, config=LinearProbeConfig(epochs=20, lr_step_epochs=5))
    task = embed_task(x, y, config=TaskEmbeddingConfig(epochs=20, lr_step_epochs=5, gammas=(0.0,)))
    # measured: probe 87.7%, projected head 70.8%, the reparameterised head it replaced 30.6%
    assert float(task.accuracies[0]) >= probe.train_accuracy - 20


@pytest.mark.parametrize(
    ("accuracies", "expected"),
    [
        ([95.0, 95.0, 94.0, 91.9, 80.0], (3, True)),  # first one >= 3 points below
        ([95.0, 92.0, 50.0], (1, True)),  # exactly 3 points counts
        ([95.0, 94.0, 93.0], (2, False)),  # never reached: the largest gamma, flagged
    ],
)
def test_choose_gamma_follows_the_three_point_rule(accuracies, expected):
    gammas = torch.logspace(-5, -1, len(accuracies))
    assert choose_gamma(gammas, torch.tensor(accuracies)) == expected


def test_task_config_refuses_unsorted_gammas():
    with pytest.raises(ValueError, match="ascending"):
        TaskEmbeddingConfig(gammas=(1e-2, 1e-3))


def test_fuzzy_intersection_matches_definition_and_chunks():
    g = torch.Generator().manual_seed(0)
    task = torch.rand(50, generator=g)
    models = torch.rand(1000, 50, generator=g)
    expected = torch.tensor(
        [sum(min(a, b) for a, b in zip(task.tolist(), row, strict=True)) for row in models.tolist()]
    )
    torch.testing.assert_close(fuzzy_intersection(task, models, chunk_rows=7), expected)
    assert fuzzy_intersection(task, models[0]).ndim == 0
    with pytest.raises(ValueError, match="need a task"):
        fuzzy_intersection(task, torch.rand(3, 49))


def test_fuzzy_similarities_on_a_hand_example():
    u = torch.tensor([1.0, 1.0, 0.5, 0.0])
    models = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.5, 0.0]])
    # I = 1.5 / 0 / 2.5; |u| = 2.5; |v| = 3 / 0 / 2.5
    expected = {
        "intersection": [1.5, 0.0, 2.5],
        "model-normalised": [0.5, 0.0, 1.0],
        "cosine": [1.5 / math.sqrt(2.5 * 3), 0.0, 1.0],
        "jaccard": [1.5 / (2.5 + 3 - 1.5), 0.0, 1.0],
    }
    assert set(expected) == set(SIMILARITIES)
    for kind, values in expected.items():
        torch.testing.assert_close(fuzzy_similarity(u, models, kind), torch.tensor(values))
    with pytest.raises(ValueError, match="unknown similarity 'dice'"):
        fuzzy_similarity(u, models, "dice")


def test_linear_probe_separates_what_is_separable():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(5, 20, generator=g) * 3
    y = torch.randint(0, 5, (600,), generator=g)
    x = centers[y] + torch.randn(600, 20, generator=g)
    result = linear_probe(
        x[:400], y[:400], x[400:], y[400:], config=LinearProbeConfig(epochs=10, lr_step_epochs=5)
    )
    assert result.accuracy > 95
    noise = linear_probe(
        torch.randn(400, 20),
        y[:400],
        torch.randn(200, 20),
        y[400:],
        config=LinearProbeConfig(epochs=10, lr_step_epochs=5),
    )
    assert noise.accuracy < 40


def test_task_embedding_starts_with_every_feature_on():
    # Q's recorded initialisation: v' = 0.05, so v = sigmoid(5) ~ 0.993 for every feature.
    from hf_stdembed.core.task_embedding import _MaskedHeads

    assert TaskEmbeddingConfig().mask_init == 0.05
    heads = _MaskedHeads(2, 64, 3, TaskEmbeddingConfig())
    assert bool((heads.mask() > 0.99).all())
