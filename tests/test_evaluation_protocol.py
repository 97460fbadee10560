"""The trusted protocol (issue 11): repeated splits, bootstrap intervals and ties, recall@K,
the leave-one-task-out reference, and a cached rerun of `hf-stdembed evaluate`."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from eval_pool import refuse_computations
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_images import colour_images

from hf_stdembed.core.ranking_metrics import (
    expected_random_recall,
    first_hit_rank,
    recall_curve,
)
from hf_stdembed.core.statistics import (
    Interval,
    bootstrap_mean,
    paired_difference,
    tied_with_best,
)

# --- the bootstrap on planted values ------------------------------------------------------


def test_bootstrap_of_constant_or_single_values_is_a_point():
    assert bootstrap_mean([3.0] * 5) == Interval(3.0, 3.0, 3.0, 5)
    assert bootstrap_mean([7.5]) == Interval(7.5, 7.5, 7.5, 1)
    empty = bootstrap_mean([math.nan, math.nan])
    assert empty.n == 0 and math.isnan(empty.mean) and not empty.contains(0.0)


def test_bootstrap_of_two_values_has_the_exact_percentiles():
    # resampled means of (0, 10) are 0, 5, 10 with chances 1/4, 1/2, 1/4: the 2.5 % and
    # 97.5 % quantiles are the extremes
    got = bootstrap_mean([0.0, 10.0], seed=3)
    assert (got.mean, got.low, got.high, got.n) == (5.0, 0.0, 10.0, 2)
    # 3 values at 90 %: the 5 % quantile of the means is above the minimum (P(all 0) = 1/27)
    narrow = bootstrap_mean([0.0, 0.0, 9.0], confidence=0.90)
    assert 0.0 <= narrow.low < narrow.mean < narrow.high <= 9.0


def test_bootstrap_leaves_nan_out_and_is_seeded():
    assert bootstrap_mean([1.0, math.nan, 3.0]).n == 2
    values = [0.1, 0.7, 0.3, 0.9, 0.4]
    assert bootstrap_mean(values, seed=1) == bootstrap_mean(values, seed=1)
    few = {"resamples": 20}  # with many resamples the quantiles of 5 values barely move
    assert bootstrap_mean(values, seed=1, **few) != bootstrap_mean(values, seed=2, **few)


def test_bootstrap_interval_matches_the_normal_theory_on_a_large_sample():
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 2.0, 400)
    got = bootstrap_mean(x.tolist(), resamples=4000)
    half = 1.96 * x.std() / math.sqrt(len(x))
    assert got.mean == pytest.approx(float(x.mean()))
    assert got.high - got.low == pytest.approx(2 * half, rel=0.15)
    assert got.contains(10.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"confidence": 1.0}, "Invalid confidence value: 1.0"), ({"resamples": 0}, "resamples")],
)
def test_bootstrap_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_mean([1.0, 2.0], **kwargs)


def test_paired_difference_and_ties_on_planted_values():
    base = [2.0, 8.0, 4.0, 6.0, 5.0]  # large split-to-split spread
    shifted = [v + 1.0 for v in base]  # always exactly 1 worse: not a tie despite the spread
    noisy = [v + d for v, d in zip(base, [0.5, -0.5, 0.4, -0.4, 0.1], strict=True)]
    assert paired_difference(shifted, base) == Interval(1.0, 1.0, 1.0, 5)
    assert paired_difference(noisy, base).contains(0.0)
    ties = tied_with_best({"best": base, "shifted": shifted, "noisy": noisy})
    assert ties == {"best": True, "shifted": False, "noisy": True}
    # higher is better (taus, recall): the best is the largest mean
    up = tied_with_best({"a": base, "b": shifted}, lower_is_better=False)
    assert up == {"a": False, "b": True}
    with pytest.raises(ValueError, match="same splits"):
        paired_difference([1.0], [1.0, 2.0])


# --- recall@K on planted rankings ---------------------------------------------------------


def test_recall_on_planted_rankings():
    acc = [70.0, 79.5, 80.0, 60.0]
    # the best (80) is ranked third, but 79.5 is within 1 point and ranked second
    assert first_hit_rank([0.9, 0.8, 0.7, 0.1], acc) == 2
    assert recall_curve([0.9, 0.8, 0.7, 0.1], acc) == [0.0, 1.0, 1.0, 1.0]
    assert recall_curve([0.9, 0.8, 0.7, 0.1], acc, tolerance=0.0) == [0.0, 0.0, 1.0, 1.0]
    assert recall_curve([0.0, 0.0, 1.0, 0.0], acc) == [1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="tolerance"):
        first_hit_rank([1.0], [1.0], tolerance=-1)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([60.0, 70.0, 79.5, 80.0, 80.5]), min_size=1, max_size=6))
def test_expected_random_recall_is_the_mean_over_every_draw(acc):
    m = len(acc)
    best = max(acc)
    expected = expected_random_recall(acc)
    for k in range(1, m + 1):
        draws = list(itertools.combinations(range(m), k))
        hits = sum(any(acc[i] >= best - 1.0 for i in d) for d in draws)
        assert expected[k - 1] == pytest.approx(hits / len(draws))


# --- splits, the LOTO reference and summaries on hand-made results -------------------------


def test_split_indices_match_stratified_split_and_repeated_splits_are_disjoint():
    import datasets

    from hf_stdembed.data import as_image_dataset, stratified_split
    from hf_stdembed.evaluation import SplitTask, repeated_splits, split_indices

    raw = colour_images(31, seed=0).add_column("row", list(range(31)))
    data = as_image_dataset(raw, source="memory")
    for seed in range(3):
        train, test = stratified_split(data, test_fraction=0.3, seed=seed)
        tr, te = split_indices(data.labels(), test_fraction=0.3, seed=seed)
        assert tr.tolist() == train.dataset["row"] and te.tolist() == test.dataset["row"]
    splits = repeated_splits(data, n=4, test_fraction=0.3, seed=10)
    assert len(splits) == 4 and len({tuple(te.tolist()) for _, te in splits}) == 4
    labels = data.labels()
    for tr, te in splits:
        assert sorted(tr.tolist() + te.tolist()) == list(range(31))
        assert torch.bincount(labels[te]).tolist() == [3, 3, 3]  # 30 % of 11/10/10, per class
    assert isinstance(raw.features["label"], datasets.ClassLabel)
    bad = [
        ((), "has no split"),
        (((torch.tensor([0, 1]), torch.tensor([1])),), "in train and test"),
        (((torch.tensor([0]), torch.tensor([99])),), "outside 0..30"),
        (((torch.tensor([], dtype=torch.long), torch.tensor([1])),), "empty train"),
    ]
    for parts, message in bad:
        with pytest.raises(ValueError, match=message):
            SplitTask("t", data, parts)
    with pytest.raises(ValueError, match="Invalid splits value: 0"):
        repeated_splits(data, n=0)


def _result(name, split, accuracies, scores):
    from hf_stdembed.evaluation import TaskResult

    return TaskResult(
        name=name,
        num_train=10,
        num_test=5,
        num_classes=2,
        accuracies=list(accuracies),
        baseline_accuracy=50.0,
        gamma=0.0,
        task_mask_size=1.0,
        gamma_sweep={"gammas": [0.0], "accuracies": [1.0], "mask_sizes": [1.0]},
        scores={k: list(v) for k, v in scores.items()},
        split=split,
    )


def test_loto_is_the_mean_accuracy_on_the_other_tasks_at_the_same_split():
    from hf_stdembed.evaluation import LOTO, add_loto

    blank = {"faithful": [0.0, 0.0]}
    results = [
        _result("a", 0, [10.0, 20.0], blank),
        _result("a", 1, [11.0, 21.0], blank),
        _result("b", 0, [30.0, 40.0], blank),
        _result("b", 1, [31.0, 41.0], blank),
        _result("c", 0, [50.0, 0.0], blank),
        _result("c", 1, [51.0, 1.0], blank),
    ]
    add_loto(results)
    got = {(r.name, r.split): r.scores[LOTO] for r in results}
    assert got[("a", 0)] == [40.0, 20.0]  # mean of b and c at split 0, never a's own
    assert got[("a", 1)] == [41.0, 21.0]
    assert got[("c", 1)] == [21.0, 31.0]
    alone = [_result("a", 0, [1.0, 2.0], blank), _result("a", 1, [1.0, 2.0], blank)]
    add_loto(alone)  # one task: nothing to leave out, no reference
    assert LOTO not in alone[0].scores


def _planted_report():
    """Two tasks x three splits, four candidates. ``ours`` ranks the best first on task a
    (split 0, 1) and misses by 10 points on split 2; ``other`` always picks candidate 0."""
    from hf_stdembed.evaluation import FAITHFUL, CandidateInfo, EvaluationReport

    results = []
    for split in range(3):
        acc_a = [60.0, 70.0 + split, 65.0, 80.0]
        ours_a = [0.1, 0.2, 0.3, 0.9] if split < 2 else [0.1, 0.9, 0.3, 0.2]
        results.append(
            _result("a", split, acc_a, {"ours": ours_a, "other": [1, 0, 0, 0], "random": [0] * 4})
        )
        acc_b = [90.0, 50.0, 40.0 + split, 30.0]
        results.append(
            _result(
                "b",
                split,
                acc_b,
                {"ours": [0.9, 0.1, 0.2, 0.3], "other": [1, 0, 0, 0], "random": [0] * 4},
            )
        )
    cands = [CandidateInfo(f"spec{i}", f"m{i}", 8, None) for i in range(4)]
    return EvaluationReport("std", "h", "base", 10, cands, results, [FAITHFUL])


def test_summary_reports_means_intervals_recall_and_ties_over_splits():
    report = _planted_report()
    summary = report.summary()
    assert summary["splits"] == 3
    ours_a = summary["tasks"]["a"]["ours"]
    # split 2 misses the best (80) by picking 72: gaps 0, 0, 8 -> mean 8/3
    assert ours_a["gaps"]["top1"] == pytest.approx(8 / 3)
    assert ours_a["intervals"]["top1"][0] == 0.0 and ours_a["intervals"]["top1"][1] == 8.0
    # split 2 orders m1 (72), m2 (65), m3 (80): the best is third
    assert ours_a["recall"] == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0])
    mean = summary["mean"]
    # per split: mean over tasks of top-1 gaps: ours (0+0)/2, (0+0)/2, (8+0)/2
    assert mean["ours"]["per_split"]["top1"] == [0.0, 0.0, 4.0]
    assert mean["ours"]["per_split"]["max_top1"] == [0.0, 0.0, 8.0]
    assert mean["ours"]["top1"] == pytest.approx(4 / 3)
    # other: task a 20 every split, task b 0 -> 10 on every split: a point interval
    assert mean["other"]["top1"] == 10.0 and mean["other"]["intervals"]["top1"] == [10.0, 10.0]
    # recall@1: ours hits on a at splits 0 and 1 and on b always: (1, 1, 0.5)
    assert mean["ours"]["per_split"] and mean["ours"]["recall"][0] == pytest.approx(5 / 6)
    assert mean["other"]["recall"][0] == 0.5
    assert mean["random"]["recall"][3] == 1.0
    assert mean["ours"]["tied_best"]["top1"] is True  # the best
    assert mean["other"]["tied_best"]["top1"] is False  # 10 - {0, 0, 4}: never 0
    text = report.to_markdown()
    assert "over 3 split(s)" in text
    assert "| ours | **1.33 [0.00, 4.00]**" in text
    assert "| 1 | 0.83 [0.50, 1.00] | 0.50 |" in text  # recall@1 row: ours, other
    # per-task candidate table: accuracy with its interval over the three splits
    assert "| m1 | 8 | 71.00 [70.00, 72.00] |" in text


def test_a_tie_is_marked_in_the_gap_table():
    from hf_stdembed.evaluation import interval_table

    report = _planted_report()
    summary = report.summary()
    # plant a selector within noise of the best: gaps per split 1, 0, 3 vs ours 0, 0, 4
    summary["mean"]["close"] = json.loads(json.dumps(summary["mean"]["ours"]))
    summary["mean"]["close"]["tied_best"]["top1"] = tied_with_best(
        {"ours": [0.0, 0.0, 4.0], "close": [1.0, 0.0, 3.0]}
    )["close"]
    assert summary["mean"]["close"]["tied_best"]["top1"] is True
    lines = [ln for ln in interval_table(summary) if ln.startswith("| close |")]
    assert lines and lines[0].split(" | ")[1].endswith("≈")


# --- the evaluation on a tiny pool: splits are indexed, the CLI reruns from its cache -------


@pytest.mark.slow
def test_split_task_indexes_features_once_and_matches_separate_splits(tiny_pool, monkeypatch):
    from hf_stdembed import features
    from hf_stdembed.data import load_image_dataset, stratified_split
    from hf_stdembed.evaluation import FAITHFUL, SplitTask, TaskSpec, evaluate, repeated_splits

    standard, specs, task_file, probe_config = tiny_pool
    data = load_image_dataset("parquet", data_files=str(task_file), split="train")
    kwargs = {"variants": (FAITHFUL,), "probe_config": probe_config}
    calls = []
    real = features.extract_features

    def counting(extractor, ds, **kw):
        calls.append((extractor.name, ds.fingerprint))
        return real(extractor, ds, **kw)

    for module in ("pool", "ground_truth"):  # the probe set's features, the task's
        monkeypatch.setattr(f"hf_stdembed.evaluation.{module}.extract_features", counting)
    task = SplitTask("colours", data, repeated_splits(data, n=3, test_fraction=0.3, seed=0))
    report = evaluate(specs[:2], standard, [task], **kwargs)
    assert [(t.name, t.split) for t in report.tasks] == [("colours", s) for s in range(3)]
    on_task = [c for c in calls if c[1] == data.fingerprint]
    # once per model over the whole task (base, good, then the baseline, which is base):
    # no split is extracted on its own
    assert [name for name, _ in on_task] == ["base", "good", "base"]
    assert len({fp for _, fp in calls}) == 2  # the probe set and the task's data
    for split in (0, 2):
        train, test = stratified_split(data, test_fraction=0.3, seed=split)
        single = evaluate(specs[:2], standard, [TaskSpec("colours", train, test)], **kwargs)
        (one,) = single.tasks
        got = report.tasks[split]
        assert got.num_train == one.num_train and got.num_test == one.num_test
        assert got.accuracies == pytest.approx(one.accuracies, abs=1e-6)
        assert got.scores["faithful"] == pytest.approx(one.scores["faithful"], abs=1e-5)
        assert got.scores["logme"] == pytest.approx(one.scores["logme"], rel=1e-4)


@pytest.mark.slow
def test_cli_evaluate_rerun_with_cache_dir_runs_no_optimisation(tiny_pool, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hf_stdembed.cli import app

    standard, specs, task_file, _ = tiny_pool
    std_file = tmp_path / "std.yaml"
    std_file.write_text(standard.to_yaml())
    base = ["evaluate", "--standard", str(std_file), "-q", "--no-plots", "--variant", "faithful"]
    for spec in specs:
        base += ["--candidate", spec]
    base += ["--task", f"red={task_file}", "--task", f"again={task_file}"]
    args = [*base, "--cache-dir", str(tmp_path / "cache"), "--splits", "2"]
    first = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "one")])
    assert first.exit_code == 0, first.output
    assert "≈" in first.output or "**" in first.output
    assert "| loto |" in first.output  # two tasks: the leave-one-task-out reference

    refuse_computations(monkeypatch)
    again = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "two")])
    assert again.exit_code == 0, again.exception
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    two = json.loads((tmp_path / "two" / "report.json").read_text())
    assert one == two
    assert len(one["tasks"]) == 4 and {t["split"] for t in one["tasks"]} == {0, 1}
    # without the cache folder the same rerun optimises again
    cold = CliRunner().invoke(app, [*base, "--splits", "1", "--out", str(tmp_path / "x")])
    assert isinstance(cold.exception, AssertionError)


def test_cli_evaluate_refuses_zero_splits_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from hf_stdembed.cli import app
    from hf_stdembed.errors import StdEmbedError

    args = ["evaluate", "-c", "x", "-t", f"a={tmp_path / 'none.parquet'}", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--splits", "0"])
    assert isinstance(result.exception, StdEmbedError)
    assert "--splits 0: need at least 1" in str(result.exception)


# --- the library loads tasks and reports progress; the CLI renders it -------------------


def test_load_split_task_subsamples_then_splits_as_the_cli_did(tiny_pool):
    from hf_stdembed.data import load_image_dataset, stratified_split
    from hf_stdembed.evaluation import load_split_task, repeated_splits

    _, _, task_file, _ = tiny_pool
    task = load_split_task("colours", str(task_file), splits=2, max_samples=60, seed=3)
    data = load_image_dataset("parquet", data_files=str(task_file), split="train")
    sub = stratified_split(data, test_fraction=60 / 90, seed=3)[1]
    assert task.name == "colours" and task.data.fingerprint == sub.fingerprint
    expected = repeated_splits(sub, n=2, test_fraction=0.3, seed=3)
    for got, want in zip(task.splits, expected, strict=True):
        assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    whole = load_split_task("colours", str(task_file), splits=1, max_samples=500)
    assert whole.data.fingerprint == data.fingerprint  # fewer rows than asked: no subsample
    with pytest.raises(ValueError, match="splits"):
        load_split_task("colours", str(task_file), splits=0)


def test_evaluate_progress_goes_to_the_callback_and_to_logging(tiny_pool, tmp_path, caplog):
    import logging

    from hf_stdembed.evaluation import FAITHFUL, evaluate, load_split_task

    standard, specs, task_file, probe_config = tiny_pool
    task = load_split_task("colours", str(task_file), splits=1)
    kwargs = {
        "variants": (FAITHFUL,),
        "probe_config": probe_config,
        "cache_dir": tmp_path / "cache",
        "with_logme": False,
    }
    events = []
    with caplog.at_level(logging.INFO, logger="hf_stdembed.evaluation"):
        evaluate(specs[:2], standard, [task], on_progress=events.append, **kwargs)
    lines = ["candidate base", "candidate good", "task colours"]
    assert [(e.desc, e.done, e.total, e.item) for e in events] == [
        ("evaluate", 0, 3, lines[0]),
        ("evaluate", 1, 3, lines[1]),
        ("evaluate", 2, 3, lines[2]),
        ("evaluate", 3, 3, None),
    ]
    assert [r.getMessage() for r in caplog.records] == lines


def test_plots_without_matplotlib_are_a_logged_warning_not_a_print(
    tmp_path, monkeypatch, caplog, capsys
):
    import logging
    import sys

    from hf_stdembed.evaluation import plot_report

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    with caplog.at_level(logging.WARNING, logger="hf_stdembed.evaluation"):
        assert plot_report(None, tmp_path) == []  # the report is not read without matplotlib
    assert "matplotlib is missing: no plots" in caplog.text
    assert capsys.readouterr().err == ""


def test_cli_evaluate_refuses_a_bad_shortlist_research_or_declared_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from hf_stdembed.cli import app
    from hf_stdembed.errors import StdEmbedError

    args = ["evaluate", "-c", "x", "-t", f"a={tmp_path / 'none.parquet'}", "--out", str(tmp_path)]
    for extra, message in [
        (["--shortlist", "nope"], "unknown shortlist(s) ['nope']"),
        (["--research", "union-r2"], "need union_baselines"),
        (["--declared", "y=cifar10"], "--declared 'y' is not a --candidate"),
        (["--declared", "x="], "bad --declared 'x='"),
    ]:
        result = CliRunner().invoke(app, [*args, *extra])
        assert isinstance(result.exception, StdEmbedError), (extra, result.output)
        assert message in str(result.exception)


def test_task_source_and_declared_options_parse():
    from hf_stdembed.cli._evaluate import parse_declared, task_source

    assert task_source("c=uoft-cs/cifar10:test") == "uoft-cs/cifar10"
    assert task_source("c=./data/cifar10.parquet") == "./data/cifar10.parquet"
    got = parse_declared(["b=org/x, y", "a=z", "b=w"], ["a", "b", "c"])
    assert got == [("z",), ("org/x", "y", "w"), ()]
    assert parse_declared([], ["a"]) is None


def test_cli_evaluate_writes_the_two_stage_curve_with_the_declared_order(tiny_pool, tmp_path):
    from typer.testing import CliRunner

    from hf_stdembed.cli import app

    standard, specs, task_file, _ = tiny_pool
    std_file = tmp_path / "std.yaml"
    std_file.write_text(standard.to_yaml())
    args = ["evaluate", "--standard", str(std_file), "-q", "--no-plots", "--variant", "faithful"]
    args += ["--variant", "normalised", "--splits", "1", "--out", str(tmp_path / "r")]
    for spec in specs:
        args += ["--candidate", spec]
    args += ["--task", f"red={task_file}", "--declared", f"{specs[2]}=elsewhere/task.parquet"]
    args += ["--shortlist", "faithful+normalised+declared", "--shortlist", "r2+r2-normalised"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    declared = report["tasks"][0]["scores"]["declared"]
    assert declared[2] == 1.0 and all(d != d for d in declared[:2])  # NaN: not declared
    per_task = (tmp_path / "r" / "report.md").read_text()
    assert "| declared |" in per_task and "| yes |" in per_task and "| nan |" not in per_task
    curve = (tmp_path / "r" / "two-stage-curve.md").read_text()
    assert "| LogME over all | 3 |" in curve
    assert "## `faithful+normalised+declared`" in curve and "| 3 | " in curve
    assert "## `r2+r2-normalised`\n\nNot measured" in curve
