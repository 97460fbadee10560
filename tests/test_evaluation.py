"""LogME, rank-agreement metrics, and the evaluation harness (issue 4)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from eval_pool import refuse_computations

from hf_stdembed.core.logme import _evidence, logme
from hf_stdembed.core.ranking_metrics import (
    expected_random_gap,
    kendall_tau,
    top_k_gap,
    weighted_tau,
)


def _direct_evidence(x: torch.Tensor, y: torch.Tensor, alpha: float, beta: float) -> float:
    """The evidence from its definition with explicit matrices (no SVD)."""
    n, d = x.shape
    a = alpha * torch.eye(d, dtype=x.dtype) + beta * x.T @ x
    m = beta * torch.linalg.solve(a, x.T @ y)
    return (
        float(
            n / 2 * math.log(beta)
            + d / 2 * math.log(alpha)
            - n / 2 * math.log(2 * math.pi)
            - beta / 2 * ((x @ m - y) ** 2).sum()
            - alpha / 2 * (m @ m)
            - torch.logdet(a) / 2
        )
        / n
    )


@pytest.mark.parametrize("shape", [(60, 8), (8, 20)])  # n > D and n < D
def test_logme_evidence_matches_definition_at_its_fixed_point(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    y = (torch.rand(shape[0], generator=g) > 0.5).double()
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    got = _evidence(u, s**2, y, n=shape[0], d=shape[1], max_iter=1000, tol=1e-12)
    # the fixed point maximises the evidence: the direct formula over a grid never beats it
    best = max(
        _direct_evidence(x, y, a, b)
        for a in torch.logspace(-3, 3, 25)
        for b in torch.logspace(-3, 3, 25)
    )
    assert got >= best - 1e-6
    assert got == pytest.approx(best, abs=0.05)


def test_logme_ranks_informative_features_above_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 16, generator=g)
    labels = (x[:, :4] @ torch.randn(4, 5, generator=g)).argmax(dim=1)
    informative = logme(x, labels)
    noisy = logme(x + 3 * torch.randn(x.shape, generator=g), labels)
    noise = logme(torch.randn(400, 16, generator=g), labels)
    assert informative > noisy > noise


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (torch.zeros(3), torch.zeros(3), "need features"),
        (torch.zeros(3, 2), torch.zeros(4), "need features"),
        (torch.full((3, 2), float("nan")), torch.zeros(3), "NaN"),
    ],
)
def test_logme_rejects_bad_input(features, labels, message):
    with pytest.raises(ValueError, match=message):
        logme(features, labels.long())


def test_tau_on_known_permutations():
    acc = [10.0, 20.0, 30.0, 40.0]
    assert kendall_tau([1, 2, 3, 4], acc) == pytest.approx(1.0)
    assert kendall_tau([4, 3, 2, 1], acc) == pytest.approx(-1.0)
    # one adjacent swap among 4: (5 concordant - 1 discordant) / 6
    assert kendall_tau([2, 1, 3, 4], acc) == pytest.approx(4 / 6)
    assert weighted_tau([1, 2, 3, 4], acc) == pytest.approx(1.0)
    # a swap at the top costs the weighted tau more than the same swap at the bottom
    top_swap = weighted_tau([1, 2, 4, 3], acc)
    bottom_swap = weighted_tau([2, 1, 3, 4], acc)
    assert top_swap < bottom_swap < 1.0


def test_top_k_gap_on_a_hand_example():
    scores = [0.9, 0.8, 0.7, 0.1]
    acc = [60.0, 70.0, 65.0, 80.0]  # the best candidate is ranked last
    assert top_k_gap(scores, acc, 1) == pytest.approx(20.0)
    assert top_k_gap(scores, acc, 3) == pytest.approx(10.0)
    assert top_k_gap(scores, acc, 4) == 0.0
    with pytest.raises(ValueError, match="Invalid k"):
        top_k_gap(scores, acc, 0)


def test_expected_random_gap():
    acc = [60.0, 70.0, 65.0, 80.0]
    assert expected_random_gap(acc, 1) == pytest.approx(80.0 - 68.75)
    # best of 2 of 4: P(best=80)=3/6, P(70)=2/6, P(65)=1/6
    assert expected_random_gap(acc, 2) == pytest.approx(80 - (80 * 3 + 70 * 2 + 65) / 6)
    assert expected_random_gap(acc, 4) == 0.0


# --- the evaluation harness on tiny synthetic models and data ------------------------------


@pytest.mark.slow
def test_evaluate_reports_every_selector_and_writes_outputs(tiny_pool, tmp_path):
    from hf_stdembed.data import load_image_dataset, stratified_split
    from hf_stdembed.evaluation import DEFAULT_VARIANTS, TaskSpec, evaluate

    standard, specs, task_file, probe_config = tiny_pool
    data = load_image_dataset("parquet", data_files=str(task_file), split="train")
    train, test = stratified_split(data, test_fraction=0.3, seed=0)
    report = evaluate(
        specs,
        standard,
        [TaskSpec("colours", train, test)],
        probe_config=probe_config,
    )
    (task,) = report.tasks
    references = {"logme", "largest", "random", "fidelity", "centred fidelity"}
    references.add("standardised fidelity")
    assert set(task.scores) == {v.name for v in DEFAULT_VARIANTS} | references
    assert task.scores["centred fidelity"] == [c.fidelity["centred"] for c in report.candidates]
    assert set(report.candidates[0].mask_size) == {"raw", "centred", "standardised"}
    # the noise model is the worst candidate and LogME knows it
    assert task.accuracies[2] < min(task.accuracies[:2])
    assert task.scores["logme"][2] < min(task.scores["logme"][:2])
    sels = task.selectors()
    assert sels["faithful"].forward_models == 1 and sels["logme"].forward_models == 3
    assert sels["fidelity"].forward_models == 0
    assert sels["random"].gaps["top3"] == 0.0  # 3 of 3 always holds the best
    sub = report.summary(specs[1:])
    assert sub["pool"] == specs[1:]
    written = report.save(tmp_path / "out", pools={"all": None, "sub": specs[1:]})
    names = {p.name for p in written}
    assert {"report.md", "report.json"} <= names
    assert any(n.endswith("gamma-sweep.png") for n in names)
    assert "| colours |" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow
def test_evaluate_rerun_from_cache_spends_no_forward_pass_and_no_optimisation(
    tiny_pool, tmp_path, monkeypatch
):
    from hf_stdembed.data import load_image_dataset, stratified_split
    from hf_stdembed.evaluation import FAITHFUL, TaskSpec, Variant, evaluate

    standard, specs, task_file, probe_config = tiny_pool
    data = load_image_dataset("parquet", data_files=str(task_file), split="train")
    tasks = [TaskSpec("colours", *stratified_split(data, test_fraction=0.3, seed=0))]
    variants = (FAITHFUL, Variant("centred+jaccard", features="centred", metric="jaccard"))
    kwargs = {"variants": variants, "probe_config": probe_config}
    first = evaluate(specs, standard, tasks, cache_dir=tmp_path / "cache", **kwargs)
    cached = sorted((tmp_path / "cache").rglob("*.safetensors"))
    assert not list((tmp_path / "cache").rglob("*.pt"))  # no pickle on disk
    # a torn cache file is recomputed, not fatal
    torn = next(p for p in cached if "linear-probe" in p.parts)
    torn.write_bytes(torn.read_bytes()[:20])
    again = evaluate(specs, standard, tasks, cache_dir=tmp_path / "cache", **kwargs)
    assert again.to_dict() == first.to_dict()

    refuse_computations(monkeypatch)
    third = evaluate(specs, standard, tasks, cache_dir=tmp_path / "cache", **kwargs)
    assert third.to_dict() == first.to_dict()
    # a new standard (other P schedule) is never answered from the old cache: P runs first
    other = replace(standard, model_embedding=replace(standard.model_embedding, steps=41))
    with pytest.raises(AssertionError, match="embed_model was recomputed"):
        evaluate(specs, other, tasks, cache_dir=tmp_path / "cache", **kwargs)


@pytest.mark.parametrize("name", ["logme", "centred fidelity", "faithful"])
def test_evaluate_refuses_reserved_or_repeated_variant_names(tiny_pool, name):
    from hf_stdembed.evaluation import FAITHFUL, Variant, evaluate

    standard, specs, _, _ = tiny_pool
    with pytest.raises(ValueError, match="variant names must be unique"):
        evaluate(specs, standard, [object()], variants=(FAITHFUL, Variant(name)))


def test_variant_refuses_an_unknown_metric():
    from hf_stdembed.evaluation import Variant

    with pytest.raises(ValueError, match="unknown metric 'dice'.*jaccard"):
        Variant("x", metric="dice")
    with pytest.raises(ValueError, match="unknown features 'whitened'.*standardised"):
        Variant("x", features="whitened")


def _hand_report():
    from hf_stdembed.evaluation import FAITHFUL, CandidateInfo, EvaluationReport, TaskResult

    task = TaskResult(
        name="hand",
        num_train=100,
        num_test=50,
        num_classes=2,
        accuracies=[60.0, 70.0, 65.0, 80.0],
        baseline_accuracy=70.0,
        gamma=1e-3,
        task_mask_size=4.0,
        gamma_sweep={"gammas": [0.0, 1e-3], "accuracies": [90.0, 86.0], "mask_sizes": [8, 4]},
        scores={
            "faithful": [0.9, 0.8, 0.7, 0.1],
            "logme": [0.1, 0.3, 0.2, 0.9],
            "largest": [4.0, 3.0, 2.0, 1.0],
            "random": [0.0] * 4,
        },
    )
    cands = [CandidateInfo(f"spec{i}", f"m{i}", 8, None) for i in range(4)]
    return EvaluationReport("std", "h", "base", 10, cands, [task], [FAITHFUL])


def test_selectors_gaps_taus_and_costs_on_a_hand_report():
    report = _hand_report()
    sels = report.tasks[0].selectors()
    assert sels["faithful"].gaps == {"top1": 20.0, "top3": 10.0, "top5": 0.0}
    assert sels["logme"].gaps["top1"] == 0.0 and sels["logme"].weighted_tau == pytest.approx(1.0)
    assert sels["faithful"].forward_models == 1 and sels["logme"].forward_models == 4
    assert sels["logme"].forward_samples == 400
    assert sels["random"].gaps["top1"] == pytest.approx(11.25)
    # a sub-pool without the best candidate: faithful's top-1 (m0) is 10 below m1
    sub = report.summary(["spec0", "spec1", "spec2"])
    assert sub["tasks"]["hand"]["faithful"]["gaps"]["top1"] == pytest.approx(10.0)
    text = report.to_markdown({"all": None, "sub": ["spec0", "spec1", "spec2"]})
    assert "| hand | 20.00 / 10.00 / 0.00" in text and "### Pool: sub (3 candidates)" in text


@pytest.mark.slow
def test_cli_evaluate_writes_a_report(tiny_pool, tmp_path):
    from typer.testing import CliRunner

    from hf_stdembed.cli import app
    from hf_stdembed.errors import StdEmbedError

    standard, specs, task_file, _ = tiny_pool
    std_file = tmp_path / "std.yaml"
    std_file.write_text(standard.to_yaml())
    args = ["evaluate", "--standard", str(std_file), "--out", str(tmp_path / "cli-out"), "-q"]
    for spec in specs[:2]:
        args += ["--candidate", spec]
    args += ["--task", f"colours={task_file}", "--no-plots", "--no-logme"]
    result = CliRunner().invoke(app, [*args, "--variant", "faithful", "--variant", "cosine"])
    assert result.exit_code == 0, result.output
    assert "| colours |" in result.output
    assert "| task | faithful | cosine | fidelity | largest | random |" in result.output
    result = CliRunner().invoke(app, [*args, "--variant", "dice"])
    assert isinstance(result.exception, StdEmbedError)  # main() prints it as one Error: line
    assert "unknown --variant dice; choose among faithful, normalised" in str(result.exception)
    assert (tmp_path / "cli-out" / "report.json").is_file()


def test_logme_is_finite_on_degenerate_features():
    g = torch.Generator().manual_seed(0)
    wide = torch.relu(torch.randn(40, 200, generator=g))  # n < D: an exact fit exists
    labels = torch.arange(40) % 8
    for x in (wide, torch.zeros(40, 5), wide[:, :1].repeat(1, 30)):
        assert math.isfinite(logme(x, labels))


@pytest.mark.slow
def test_bench_models_cifar_resnet_and_lenet_load_and_classify():
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    from benchmarks import bench_models

    bench = bench_models.bench_dir()
    if not (bench / "models" / "cifar_resnet" / "resnet20.safetensors").is_file():
        pytest.skip(f"no benchmark folder at {bench}")
    from hf_stdembed.data import load_image_dataset, select_subset

    test = load_image_dataset(
        "parquet", data_files=str(bench / "data" / "cifar10" / "test.parquet"), split="train"
    )
    data = select_subset(test, 64, seed=0)
    images = data.dataset[data.image_column]
    resnet = bench_models.resnet20()
    with torch.inference_mode():
        x = torch.stack([resnet.transform(im) for im in images])
        assert resnet.forward(x).shape == (64, 64)
        accuracy = (resnet.module(x).argmax(1) == data.labels()).float().mean()
    assert accuracy > 0.65  # ~82 % on these JPEGs
    lenet = bench_models.lenet5()
    with torch.inference_mode():
        assert lenet.forward(torch.stack([lenet.transform(im) for im in images])).shape == (64, 84)
