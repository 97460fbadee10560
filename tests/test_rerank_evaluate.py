"""The two-stage selectors of ``hf-stdembed evaluate`` (issue 12, deliverable 5's mechanism):
the shortlist of K merged round-robin from ``faithful`` and ``normalised``, ordered by
LogME, reported beside LogME over the whole pool with K forward passes."""

from __future__ import annotations

import math

import pytest

from hf_stdembed.core.shortlist import two_stage_scores


def _report(**extra_scores):
    from hf_stdembed.evaluation import FAITHFUL, CandidateInfo, EvaluationReport, TaskResult

    # the best (m3, 80 %) is last by faithful, first by normalised; LogME knows it
    scores = {
        "faithful": [0.9, 0.8, 0.7, 0.1, 0.05],
        "normalised": [0.2, 0.1, 0.3, 0.9, 0.0],
        "logme": [0.1, 0.3, 0.2, 0.9, 0.95],
        **extra_scores,
    }
    task = TaskResult(
        name="hand",
        num_train=100,
        num_test=50,
        num_classes=2,
        accuracies=[60.0, 70.0, 65.0, 80.0, 50.0],
        baseline_accuracy=70.0,
        gamma=1e-3,
        task_mask_size=4.0,
        gamma_sweep={"gammas": [0.0], "accuracies": [90.0], "mask_sizes": [8]},
        scores=scores,
    )
    cands = [CandidateInfo(f"spec{i}", f"m{i}", 8, None) for i in range(5)]
    return EvaluationReport("std", "h", "base", 10, cands, [task], [FAITHFUL])


def test_two_stage_scores_order_the_shortlist_by_stage_2_then_the_rest_by_stage_1():
    # shortlist of 2: m0 (faithful #1), m3 (normalised #1); LogME puts m3 first
    scores = two_stage_scores([[0.9, 0.8, 0.7, 0.1], [0.2, 0.1, 0.3, 0.9]], [0.1, 0.3, 0.2, 0.9], 2)
    order = sorted(range(4), key=lambda i: -scores[i])
    assert order == [3, 0, 1, 2]
    # a NaN stage-2 score: not scored, keeps its shortlist place
    scores = two_stage_scores([[0.9, 0.8, 0.7], [0.1, 0.2, 0.9]], [math.nan, 0.3, 0.2], 2)
    assert sorted(range(3), key=lambda i: -scores[i]) == [0, 2, 1]


def test_evaluate_reports_two_stage_selectors_beside_logme_with_k_forward_passes():
    sels = _report().tasks[0].selectors()
    for k in (2, 3, 5):
        assert f"two-stage@{k}" in sels
        assert sels[f"two-stage@{k}"].forward_models == k
        assert sels[f"two-stage@{k}"].forward_samples == 100 * k
    # LogME over all picks m4 (50 %): 30 points off; the shortlist of 2 leaves m4 out
    assert sels["logme"].gaps["top1"] == pytest.approx(30.0)
    assert sels["two-stage@2"].gaps["top1"] == 0.0
    assert sels["faithful"].gaps["top1"] == pytest.approx(20.0)
    assert sels["two-stage@5"].gaps["top1"] == pytest.approx(30.0)  # the whole pool: LogME


def test_the_two_stage_selectors_reach_the_summary_and_follow_a_sub_pool():
    report = _report()
    summary = report.summary()
    assert "two-stage@3" in summary["tasks"]["hand"] and "two-stage@3" in summary["mean"]
    # without m3 the shortlist of 2 is m0 (faithful) and m2 (normalised): LogME picks m2
    sub = report.summary(["spec0", "spec1", "spec2", "spec4"])
    assert sub["tasks"]["hand"]["two-stage@2"]["gaps"]["top1"] == pytest.approx(5.0)
    # a sub-pool smaller than K forwards the pool, not K
    tiny = report.tasks[0].selectors([0, 1])
    assert tiny["two-stage@5"].forward_models == 2


def test_no_two_stage_selector_without_logme_or_its_stage_1_variants():
    report = _report()
    del report.tasks[0].scores["logme"]
    assert not any(n.startswith("two-stage@") for n in report.tasks[0].selectors())


def test_a_variant_cannot_take_a_two_stage_name():
    from hf_stdembed.evaluation import Variant, evaluate

    with pytest.raises(ValueError, match="two-stage@"):
        evaluate(["x"], None, ["t"], variants=(Variant("two-stage@2"),))  # type: ignore[arg-type]
