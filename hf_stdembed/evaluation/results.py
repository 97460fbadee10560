"""What an evaluation measured: per candidate, and per task split with every selector's
figures (gaps, taus, recall@K, costs) derived from the scores."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.ranking_metrics import (
    expected_random_gap,
    expected_random_recall,
    kendall_tau,
    recall_curve,
    top_k_gap,
    weighted_tau,
)
from ..core.shortlist import STAGE1_CONFIGS, Stage1Config, two_stage_scores
from ._maths import nan_safe
from .selectors import (
    CONFIG_PREFIX,
    SHORTLIST_KS,
    STAGE1_ONLY,
    TASK_BLIND_SELECTORS,
    TOP_KS,
    TWO_STAGE_KS,
    TWO_STAGE_PREFIX,
    TWO_STAGE_STAGE1,
)


@dataclass
class CandidateInfo:
    """What the evaluation learned about one candidate, independent of the tasks."""

    spec: str
    name: str
    num_features: int
    num_parameters: int | None
    # per feature transform of P ("raw", "centred", "standardised"): |v| and min(L_to, L_from)
    mask_size: dict[str, float] = field(default_factory=dict)
    fidelity: dict[str, float] = field(default_factory=dict)


@dataclass
class SelectorResult:
    """One selector on one task (over one pool)."""

    scores: list[float]
    gaps: dict[str, float]  # "top1" / "top3" / "top5" -> gap in accuracy points
    kendall_tau: float
    weighted_tau: float
    forward_models: int  # models run over the task's data to score the pool
    forward_samples: int  # sum over those models of the samples forwarded
    recall: list[float] = field(default_factory=list)  # recall@K for K = 1..m


@dataclass
class TaskResult:
    """Everything measured on one task and split; selectors are derived from ``scores``."""

    name: str
    num_train: int
    num_test: int
    num_classes: int
    accuracies: list[float]  # linear-probe test accuracy (%) per candidate, pool order
    baseline_accuracy: float
    gamma: float
    task_mask_size: float
    gamma_sweep: dict[str, list[float]]  # gammas, accuracies, mask_sizes
    scores: dict[str, list[float]]  # selector -> score per candidate (higher = pick first)
    split: int = 0  # index of the train/test split of the task
    forwards: dict[str, int] = field(default_factory=dict)  # models forwarded, where not 1

    def selectors(
        self, pool: list[int] | None = None, shortlists: tuple[str, ...] | list[str] = ()
    ) -> dict[str, SelectorResult]:
        """Gaps, taus and costs of every selector, over ``pool`` (indices; default: all);
        ``shortlists``: names of :data:`STAGE1_CONFIGS` to add as ``two-stage[<name>]@K``."""
        pool = list(range(len(self.accuracies))) if pool is None else pool
        acc = [self.accuracies[i] for i in pool]
        m = len(pool)
        out = {}
        configured = self._configured(pool, shortlists)
        for name, all_scores in {**self.scores, **self._two_stage(pool), **configured}.items():
            if name in STAGE1_ONLY:
                continue
            scores = [all_scores[i] for i in pool]
            if name == "logme":
                models, samples = m, m * self.num_train
            elif name.startswith(TWO_STAGE_PREFIX):  # stage 2 forwards the shortlist only
                models = min(int(name.removeprefix(TWO_STAGE_PREFIX)), m)
                samples = models * self.num_train
            elif name.startswith(CONFIG_PREFIX):
                models = min(int(name.rsplit("@", 1)[1]), m)
                samples = models * self.num_train
            elif name in self.forwards:
                models = self.forwards[name]
                samples = models * self.num_train
            elif name in TASK_BLIND_SELECTORS:
                models, samples = 0, 0
            else:
                models, samples = 1, self.num_train
            if name == "random":
                gaps = {f"top{k}": expected_random_gap(acc, k) for k in TOP_KS}
                taus = (0.0, 0.0)  # in expectation
                recall = expected_random_recall(acc)
            else:
                gaps = {f"top{k}": top_k_gap(scores, acc, k) for k in TOP_KS}
                taus = (nan_safe(kendall_tau, scores, acc), nan_safe(weighted_tau, scores, acc))
                recall = recall_curve(scores, acc)
            out[name] = SelectorResult(scores, gaps, taus[0], taus[1], models, samples, recall)
        return out

    def _two_stage(self, pool: list[int]) -> dict[str, list[float]]:
        """``two-stage@K`` scores over ``pool`` (indexed like ``self.scores``): the shortlist
        of K merged round-robin from :data:`TWO_STAGE_STAGE1`, ordered by LogME; empty
        without LogME or those variants."""
        config = Stage1Config(TWO_STAGE_STAGE1)
        if not has_config(self, config):
            return {}
        return {f"{TWO_STAGE_PREFIX}{k}": self._shortlisted(pool, config, k) for k in TWO_STAGE_KS}

    def _configured(self, pool: list[int], names: tuple[str, ...] | list[str]) -> dict:
        """``two-stage[<name>]@K`` scores over ``pool`` for each named configuration whose
        scores (and LogME) this result holds, K in :data:`SHORTLIST_KS`."""
        out: dict[str, list[float]] = {}
        for name in names:
            config = STAGE1_CONFIGS.get(name)  # a name a newer version dropped: left out
            if config is None or not has_config(self, config):
                continue
            for k in SHORTLIST_KS:
                out[f"{CONFIG_PREFIX}{name}]@{k}"] = self._shortlisted(pool, config, k)
        return out

    def _shortlisted(self, pool: list[int], config: Stage1Config, k: int) -> list[float]:
        """A two-stage selector's scores over ``pool`` (NaN outside it): the shortlist of K
        from ``config``'s stage-1 scores, ordered by LogME."""
        stage1 = [[self.scores[v][i] for i in pool] for v in config.scores]
        stage2 = [self.scores["logme"][i] for i in pool]
        within = two_stage_scores(stage1, stage2, k, rule=config.rule, quotas=config.quotas)
        full = [float("nan")] * len(self.accuracies)
        for j, i in enumerate(pool):
            full[i] = within[j]
        return full


def has_config(result: TaskResult, config: Stage1Config) -> bool:
    """Whether a task result holds every score of a stage-1 configuration, and LogME."""
    return "logme" in result.scores and all(s in result.scores for s in config.scores)
