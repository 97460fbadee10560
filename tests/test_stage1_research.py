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


def test_r2_mask_is_partial_on_a_noisy_copy_and_zero_on_noise():
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


# --- shortlist merge rules and configurations ---------------------------------------------


def test_quotas_are_taken_interleaved_then_round_robin():
    from hf_stdembed.core.shortlist import merge_shortlist

    a, b, c = [0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [2, 0, 5, 1, 4, 3]
    # 2 from A, 2 from B, 1 from C: A B C A B, then round-robin A B C ...
    assert merge_shortlist([a, b, c], 5, rule="quotas", quotas=(2, 2, 1)) == [0, 5, 2, 1, 4]
    assert merge_shortlist([a, b, c], 6, rule="quotas", quotas=(2, 2, 1)) == [0, 5, 2, 1, 4, 3]
    # a quota of 0 leaves a score to the round-robin; a shortlist of K is the first K of K + 1
    assert merge_shortlist([a, b], 3, rule="quotas", quotas=(0, 2)) == [5, 4, 0]
    full = merge_shortlist([a, b, c], 6, rule="quotas", quotas=(3, 0, 1))
    for k in range(7):
        assert merge_shortlist([a, b, c], k, rule="quotas", quotas=(3, 0, 1)) == full[:k]
    # a quota larger than what an order has left moves on
    assert merge_shortlist([[0, 1], [1, 0]], 2, rule="quotas", quotas=(5, 5)) == [0, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rule": "quotas"}, "Invalid quotas value"),
        ({"rule": "quotas", "quotas": (1, -1)}, "Invalid quotas value"),
        ({"rule": "round-robin", "quotas": (1, 1)}, "only go with"),
        ({"rule": "best"}, "unknown merge rule"),
    ],
)
def test_merge_rules_refuse_quotas_that_do_not_fit(kwargs, message):
    from hf_stdembed.core.shortlist import Stage1Config, merge_shortlist

    with pytest.raises(ValueError, match=message):
        merge_shortlist([[0, 1], [1, 0]], 2, **kwargs)
    with pytest.raises(ValueError, match=message):
        Stage1Config(("a", "b"), **kwargs)


def test_every_named_configuration_is_valid_and_the_required_ones_exist():
    from hf_stdembed.core.shortlist import STAGE1_CONFIGS

    assert STAGE1_CONFIGS["faithful+normalised"].scores == ("faithful", "normalised")
    assert STAGE1_CONFIGS["r2+r2-normalised+beyond-baseline"].scores[-1] == "beyond-baseline"
    for name in (
        "centred+centred-normalised",
        "faithful+normalised+centred+centred-normalised",
        "r2+r2-normalised",
    ):
        assert name in STAGE1_CONFIGS
    assert any(c.rule == "quotas" for c in STAGE1_CONFIGS.values())
    assert any(c.rule == "first-score" for c in STAGE1_CONFIGS.values())


# --- the quality-vs-K curve on a hand-built report ------------------------------------------


def _hand_report(shortlists=()):
    from hf_stdembed.evaluation import FAITHFUL, CandidateInfo, EvaluationReport, TaskResult

    def task(name, accuracies, split=0):
        return TaskResult(
            name=name,
            num_train=100,
            num_test=50,
            num_classes=2,
            accuracies=accuracies,
            baseline_accuracy=70.0,
            gamma=1e-3,
            task_mask_size=4.0,
            gamma_sweep={"gammas": [0.0], "accuracies": [90.0], "mask_sizes": [8]},
            # faithful: 0 1 2 3 4; normalised: 3 2 0 1 4; merged round-robin: 0 3 1 2 4
            scores={
                "faithful": [0.9, 0.8, 0.7, 0.1, 0.05],
                "normalised": [0.2, 0.1, 0.3, 0.9, 0.0],
                "logme": [0.1, 0.3, 0.2, 0.9, 0.95],
            },
            split=split,
        )

    tasks = [task("a", [60.0, 70.0, 65.0, 80.0, 50.0]), task("b", [80.0, 70.0, 65.0, 60.0, 50.0])]
    cands = [CandidateInfo(f"spec{i}", f"m{i}", 8, None) for i in range(5)]
    settings = {"shortlists": list(shortlists)} if shortlists else {}
    return EvaluationReport("std", "h", "base", 10, cands, tasks, [FAITHFUL], settings)


def test_two_stage_curve_by_hand():
    from hf_stdembed.evaluation import logme_over_all, two_stage_curve

    report = _hand_report()
    curve = two_stage_curve(report, "faithful+normalised")
    assert curve["ks"] == curve["forward_models"] == [1, 2, 3, 4, 5]
    # K=1: {m0}: a misses by 20, b hits. K=2: {m0, m3}, LogME picks m3: a hits, b misses by 20.
    # K=5: the whole pool: LogME picks m4 (50 %) on both
    assert curve["mean"]["top1"] == [10.0, 10.0, 10.0, 10.0, 30.0]
    assert curve["mean"]["max_top1"] == [20.0, 20.0, 20.0, 20.0, 30.0]
    assert curve["mean"]["stage1_recall"] == [0.5, 1.0, 1.0, 1.0, 1.0]
    assert curve["mean"]["recall1"] == [0.5, 0.5, 0.5, 0.5, 0.0]
    assert curve["intervals"]["top1"][0] == [10.0, 10.0]  # one split: a point
    logme = logme_over_all(report)
    assert logme["forward_models"] == 5
    assert logme["mean"]["top1"] == 30.0 and logme["mean"]["stage1_recall"] == 1.0
    assert logme["mean"]["weighted_tau"] == pytest.approx(curve["mean"]["weighted_tau"][-1])
    # a configuration whose scores the report lacks has no curve
    assert two_stage_curve(report, "r2+r2-normalised") is None
    # a sub-pool without m3: shortlist of 2 is m0, m2
    sub = two_stage_curve(report, "faithful+normalised", specs=["spec0", "spec1", "spec2"])
    assert sub["ks"] == [1, 2, 3]


def test_named_configurations_reach_the_summary_only_when_asked():
    plain = _hand_report().summary()["mean"]
    assert not any(n.startswith("two-stage[") for n in plain)
    asked = _hand_report(("faithful+normalised", "r2+r2-normalised"))
    summary = asked.summary()["mean"]
    assert "two-stage[faithful+normalised]@5" in summary
    assert summary["two-stage[faithful+normalised]@5"]["forward_models"] == 5
    assert not any(n.startswith("two-stage[r2") for n in summary)  # no r2 scores
    asked.settings["shortlists"].append("a name a newer version dropped")
    assert set(asked.summary()["mean"]) == set(summary)
    sels = asked.tasks[0].selectors(None, ("faithful+normalised",))
    # shortlist of 5 = the whole pool: the same as LogME over all
    assert sels["two-stage[faithful+normalised]@5"].gaps == sels["logme"].gaps
    assert "two-stage@2" in sels  # today's selectors stay


def test_a_saved_report_loads_back_old_layouts_too(tmp_path):
    import json

    from hf_stdembed.evaluation import load_report

    report = _hand_report(("faithful+normalised",))
    report.tasks[0].forwards["faithful"] = 3
    report.save(tmp_path / "r", plots=False)
    back = load_report(tmp_path / "r")
    assert back.to_dict() == report.to_dict()
    assert back.tasks[0].selectors()["faithful"].forward_models == 3
    # a report written before splits, forwards and settings existed
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    for t in data["tasks"]:
        del t["split"], t["forwards"]
    del data["settings"]
    data["tasks"][0]["future_field"] = 1
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = load_report(tmp_path / "old.json")
    assert [t.split for t in old.tasks] == [0, 0] and old.settings == {}
    (tmp_path / "bad.json").write_text('{"tasks": []}')
    with pytest.raises(ValueError, match="not a saved evaluation report"):
        load_report(tmp_path / "bad.json")


def test_two_stage_curve_script_on_a_saved_report(tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import two_stage_curve as script

    _hand_report().save(tmp_path / "std", plots=False)
    out = tmp_path / "out"
    assert script.main([str(tmp_path / "std"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "std  faithful+normalised: recall>=0.9 at K=2/5" in printed
    assert "mean gap -20.00" in printed  # 10 at K=2 against LogME's 30
    text = (out / "two_stage_curve.md").read_text()
    assert "| LogME over all | 5 |" in text and "### `faithful+normalised`" in text
    assert "r2+r2-normalised" not in text  # absent scores: no configuration
    assert (out / "two_stage_curve.json").is_file()
    assert (out / "std-two-stage-curve.png").stat().st_size > 0
    # a folder without a report: one line, exit 1
    assert script.main([str(tmp_path / "nothing"), "--out", str(out)]) == 1
    assert capsys.readouterr().err.startswith("Error: cannot read a report")


# --- evaluate with research scores on the tiny entry-point models ------------------------


def test_evaluate_research_scores_are_memoised_named_and_off_by_default(
    tiny_pool,
    tmp_path,
    monkeypatch,
):
    from hf_stdembed.data import load_image_dataset
    from hf_stdembed.evaluation import (
        FAITHFUL,
        RESEARCH_SCORES,
        SplitTask,
        Variant,
        evaluate,
        repeated_splits,
    )

    standard, specs, task_file, probe_config = tiny_pool
    data = load_image_dataset("parquet", data_files=str(task_file), split="train")
    tasks = [SplitTask("colours", data, repeated_splits(data, n=2))]
    kwargs = {
        "variants": (FAITHFUL, Variant("normalised", metric="model-normalised")),
        "probe_config": probe_config,
        "cache_dir": tmp_path / "cache",
    }
    research = {
        "research": RESEARCH_SCORES,
        "union_baselines": ["entrypoint:tiny_eval_models:good"],
        "shortlists": ("faithful+normalised", "r2+r2-normalised+beyond-baseline"),
    }
    report = evaluate(specs, standard, tasks, **kwargs, **research)
    first = report.tasks[0]
    assert set(RESEARCH_SCORES) <= set(first.scores)
    base, good, noise = report.candidates
    # the baseline predicts itself (60 probe rows: 30 to fit 32 features, so not all of
    # them), the noise model nothing; nothing of the baseline is beyond it, all of the noise
    assert base.mask_size["r2"] > 0.6 * 32 and noise.mask_size["r2"] < 1.0
    assert good.mask_size["r2"] < base.mask_size["r2"]
    beyond = first.scores["beyond-baseline"]
    assert beyond[0] < 0.05 and beyond[2] > 0.9
    # the union is the baseline's 32 features and good's 16: good now predicts its own block
    assert good.mask_size["union-r2"] > 0.8 * 16 > good.mask_size["r2"]
    assert base.mask_size["union-r2"] >= base.mask_size["r2"] - 1e-5
    sels = first.selectors(None, report.settings["shortlists"])
    assert sels["union-r2"].forward_models == 2  # the task goes through both baselines
    assert sels["r2"].forward_models == 1 and sels["beyond-baseline"].forward_models == 0
    assert sels["two-stage[r2+r2-normalised+beyond-baseline]@5"].forward_models == 3
    assert "two-stage[faithful+normalised]@10" in report.summary()["mean"]
    assert report.settings["research"]["union_baselines"] == ["good"]
    kinds = {p.name for p in (tmp_path / "cache" / "evaluation").iterdir()}
    assert {"r2-mask", "beyond-baseline", "union-r2-mask", "union-task-embedding"} <= kinds

    # a rerun is free: nothing closed-form, no Q, no P is computed again
    def fail(*args, **kw):
        raise AssertionError("recomputed")

    for module, name in (
        ("research", "r2_mask"),
        ("research", "beyond_baseline"),
        ("embeddings", "embed_task"),
        ("embeddings", "embed_model"),
    ):
        monkeypatch.setattr(f"hf_stdembed.evaluation.{module}.{name}", fail)
    again = evaluate(specs, standard, tasks, **kwargs, **research)
    assert again.tasks[1].scores == report.tasks[1].scores
    # off by default: the report of today, from the same cache
    plain = evaluate(specs, standard, tasks, **kwargs)
    assert not set(RESEARCH_SCORES) & set(plain.tasks[0].scores)
    assert "research" not in plain.settings and "shortlists" not in plain.settings
    assert plain.tasks[0].forwards == {}
    assert set(plain.candidates[0].mask_size) == {"raw"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"research": ("r3",)}, "unknown research score"),
        ({"research": ("union-r2",)}, "need union_baselines"),
        ({"shortlists": ("nope",)}, "unknown shortlist"),
        ({"research": ("r2",), "variants": ("r2",)}, "variant names must be unique, not one"),
        ({"variants": ("two-stage[faithful+normalised]@5",)}, "two-stage\\["),
    ],
)
def test_evaluate_refuses_unknown_research_options(kwargs, message):
    from hf_stdembed.evaluation import Variant, evaluate

    kwargs["variants"] = tuple(Variant(n) for n in kwargs.get("variants", ("faithful",)))
    with pytest.raises(ValueError, match=message):
        evaluate(["x"], None, ["t"], **kwargs)  # type: ignore[arg-type]


def test_two_standards_forming_the_same_union_share_its_q_and_masks(tiny_pool, tmp_path):
    from dataclasses import replace

    from hf_stdembed.data import load_image_dataset
    from hf_stdembed.evaluation import FAITHFUL, SplitTask, evaluate, repeated_splits
    from hf_stdembed.standards import BaselineSpec

    standard, specs, task_file, probe_config = tiny_pool
    data = load_image_dataset("parquet", data_files=str(task_file), split="train")
    tasks = [SplitTask("colours", data, repeated_splits(data, n=2))]
    other = replace(
        standard,
        id="tiny-eval-good",
        baseline=BaselineSpec(model=specs[1], revision="0", dim=16),
    )
    cache = tmp_path / "cache"
    common = {"variants": (FAITHFUL,), "probe_config": probe_config, "cache_dir": cache}
    union = ("union-r2", "union-r2+normalised")
    a = evaluate(specs, standard, tasks, research=union, union_baselines=[specs[1]], **common)
    kinds = ("union-task-embedding", "union-r2-mask")
    files = {k: sorted((cache / "evaluation" / k).iterdir()) for k in kinds}
    assert [len(files[k]) for k in kinds] == [2, 3]  # one Q per split, one mask per candidate
    b = evaluate(specs, other, tasks, research=union, union_baselines=[specs[0]], **common)
    assert {k: sorted((cache / "evaluation" / k).iterdir()) for k in kinds} == files
    assert a.tasks[0].scores["union-r2"] == b.tasks[0].scores["union-r2"]
    assert a.candidates[2].mask_size["union-r2"] == b.candidates[2].mask_size["union-r2"]


# --- the declared stage-1 order (a card's datasets: naming the task's dataset) ------------


def test_a_partial_order_leaves_out_nan_and_breaks_ties_by_the_first_score():
    from hf_stdembed.core.shortlist import stage1_orders, two_stage_scores

    nan = float("nan")
    first = [0.2, 0.9, 0.5, 0.1]
    declared = [1.0, nan, 1.0, 1.0]  # three candidates declare the task's data
    assert stage1_orders([first, declared]) == [[1, 2, 0, 3], [2, 0, 3]]
    # round-robin: first's best (1), declared's best (2), first's next (0), declared's next (3)
    scores = two_stage_scores([first, declared], [0.0, 0.0, 0.0, 0.0], 2)
    ranked = sorted(range(4), key=lambda i: -scores[i])
    assert set(ranked[:2]) == {1, 2}
    # the tail keeps the first score's order, never the partial one's
    assert ranked[2:] == [0, 3]
    # an empty partial order changes nothing
    alone = two_stage_scores([first], [0.3, 0.1, 0.2, 0.0], 2)
    assert two_stage_scores([first, [nan] * 4], [0.3, 0.1, 0.2, 0.0], 2) == alone


def test_a_declared_model_every_similarity_ranks_last_reaches_the_shortlist():
    from hf_stdembed.core.shortlist import shortlist_curve

    nan = float("nan")
    faithful = [0.9, 0.8, 0.7, 0.6, 0.1]  # the fine-tuned model (4) is last by both
    normalised = [0.5, 0.9, 0.8, 0.7, 0.2]
    logme = [0.1, 0.2, 0.3, 0.4, 0.9]
    accuracies = [60.0, 61.0, 62.0, 63.0, 90.0]
    without = shortlist_curve([faithful, normalised], logme, accuracies)
    with_it = shortlist_curve([faithful, normalised, [nan, nan, nan, nan, 1.0]], logme, accuracies)
    assert [c["stage1_recall"] for c in without[:3]] == [0.0, 0.0, 0.0]
    assert [c["stage1_recall"] for c in with_it[:3]] == [0.0, 0.0, 1.0]  # third pick
    assert with_it[2]["top1"] == 0.0 and without[2]["top1"] == 28.0  # {0, 1, 2}: m2


def test_add_declared_gives_a_stage1_order_not_a_selector():
    import math

    from hf_stdembed.evaluation import add_declared, two_stage_curve

    report = _hand_report(("faithful+normalised+declared",))
    declared = [(), ("org/a",), (), (), ("a", "b")]
    with pytest.raises(ValueError, match="declared datasets for 2 candidates; the pool has 5"):
        add_declared(report.tasks, declared[:2], {"a": "a"})
    add_declared(report.tasks, declared, {"a": "elsewhere/a"})  # task b: no dataset id
    a, b = report.tasks
    assert [s == 1.0 for s in a.scores["declared"]] == [False, True, False, False, True]
    assert math.isnan(a.scores["declared"][0]) and "declared" not in b.scores
    # only task a has the order: the configuration's curve needs it on every task
    assert two_stage_curve(report, "faithful+normalised+declared") is None
    add_declared(report.tasks, declared, {"a": "a", "b": "b"})
    curve = two_stage_curve(report, "faithful+normalised+declared")
    # K=3 on a: faithful 0, normalised 3, declared 1 (m1 before m4 by faithful)
    assert curve["mean"]["stage1_recall"][2] == 1.0
    summary = report.summary()["mean"]
    assert "declared" not in summary  # not a selector of its own
    assert "two-stage[faithful+normalised+declared]@5" in summary


def test_the_curve_script_adds_the_pools_declared_datasets_to_an_old_report():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import pool, tasks
    from benchmarks.two_stage_curve import with_declared

    report = _hand_report()
    specs = {e.name: e.spec for e in pool.POOL}
    for info, name in zip(
        report.candidates,
        ["cifar-resnet20", "mobilenetv2", "specialist-usps-w8", "lenet5", "mobilenetv2-random"],
        strict=True,
    ):
        info.spec = specs[name]
    for t, name in zip(report.tasks, ["cifar10", "usps"], strict=True):
        t.name = name
    with_declared(report)
    cifar, usps = report.tasks
    assert [s == 1.0 for s in cifar.scores["declared"]] == [True, False, False, False, False]
    assert [s == 1.0 for s in usps.scores["declared"]] == [False, False, True, False, False]
    assert tasks.DATASET_IDS["cifar10"] == "uoft-cs/cifar10"
