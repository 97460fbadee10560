"""Issue 12's stage-1 research scores: closed-form masks and scalars of
:mod:`hf_stdembed.core.closed_form` beside P's, and Q's mask against them per task split."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._hashing import canonical_json
from ..core import TaskEmbeddingResult, fuzzy_similarity
from ..core.closed_form import (
    DEFAULT_RIDGE,
    DEFAULT_SPLIT_SEED,
    beyond_baseline,
    r2_mask,
    union_features,
)
from ..data import ImageDataset
from ..extractors import FeatureExtractor, load_extractor
from ..features import cache_key, extract_features
from ..progress import Progress, report
from ..standards import Standard
from .embeddings import union_task_embedding
from .ground_truth import SplitRun, train_features
from .memo import memo, memo_tensor
from .pool import PoolSetup
from .results import CandidateInfo
from .selectors import BEYOND_BASELINE, UNION_SCORES, check_research
from .tasks import SplitTask, TaskSpec

logger = logging.getLogger(__name__)


@dataclass
class ClosedForm:
    """The research scores of one :func:`~hf_stdembed.evaluation.evaluate` run: closed-form
    masks and scalars per candidate (memoised under new memo kinds, keyed by the feature
    caches' identities), and per task split the scores Q's mask gets against them.

    The union's blocks are put in a canonical order (by feature identity), so two standards
    whose baselines form the same union (A's with B, B's with A) share its Q and R^2 masks."""

    research: tuple[str, ...]
    cache_dir: str | Path | None
    probe: ImageDataset
    base_key: dict[str, Any]
    base_probe: torch.Tensor
    union: list[FeatureExtractor | None]  # the union's blocks, canonical order; None: baseline
    union_keys: list[dict[str, Any]]  # their feature identities, same order
    union_probe: torch.Tensor | None
    union_stats: list[Any]
    r2: list[torch.Tensor] = field(default_factory=list)
    union_r2: list[torch.Tensor] = field(default_factory=list)
    beyond: list[float] = field(default_factory=list)

    @classmethod
    def start(cls, research: tuple[str, ...], union_baselines: Any, setup: PoolSetup) -> ClosedForm:
        """Ready for the candidates: the union's blocks loaded and standardised when a
        ``union-*`` score is asked for."""
        baseline, probe, cache_dir = setup.baseline, setup.probe, setup.cache_dir
        union: list[FeatureExtractor | None] = []
        union_keys: list[dict[str, Any]] = []
        union_probe, stats = None, []
        if any(r in UNION_SCORES for r in research):
            members: list[FeatureExtractor | None] = [None]
            members += [load_extractor(spec, token=setup.token) for spec in union_baselines]
            keyed = [(cache_key(baseline if u is None else u, probe), u) for u in members]
            keyed.sort(key=lambda pair: canonical_json(pair[0], compact=False))
            union_keys, union = [k for k, _ in keyed], [u for _, u in keyed]
            blocks = [
                setup.base_probe if u is None else extract_features(u, probe, cache_dir=cache_dir)
                for u in union
            ]
            union_probe, stats = union_features(blocks)
        return cls(
            research=tuple(research),
            cache_dir=cache_dir,
            probe=probe,
            base_key=cache_key(baseline, probe),
            base_probe=setup.base_probe,
            union=union,
            union_keys=union_keys,
            union_probe=union_probe,
            union_stats=stats,
        )

    def _key(self, candidate: FeatureExtractor, targets: list[Any]) -> list[Any]:
        return [cache_key(candidate, self.probe), targets, list(DEFAULT_RIDGE), DEFAULT_SPLIT_SEED]

    def add_candidate(
        self, extractor: FeatureExtractor, cand_probe: torch.Tensor, info: CandidateInfo
    ) -> None:
        """The candidate's R^2 masks and beyond-baseline scalar (what ``research`` needs)."""
        if {"r2", "r2+normalised"} & set(self.research):
            key = self._key(extractor, [self.base_key])
            mask = memo_tensor(self.cache_dir, "r2-mask", key, r2_mask, cand_probe, self.base_probe)
            self.r2.append(mask)
            info.mask_size["r2"] = float(mask.sum())
        if BEYOND_BASELINE in self.research:
            key = self._key(extractor, [self.base_key])
            value = memo(
                self.cache_dir, "beyond-baseline", key, beyond_baseline, cand_probe, self.base_probe
            )
            self.beyond.append(float(value))
        if self.union_probe is not None:
            key = self._key(extractor, self.union_keys)
            mask = memo_tensor(
                self.cache_dir, "union-r2-mask", key, r2_mask, cand_probe, self.union_probe
            )
            self.union_r2.append(mask)
            info.mask_size["union-r2"] = float(mask.sum())

    def scores(
        self,
        scores: dict[str, list[float]],
        q: TaskEmbeddingResult,
        standard: Standard,
        task: TaskSpec | SplitTask,
        split: int,
        run: SplitRun,
        device: str | torch.device | None,
    ) -> dict[str, int]:
        """Adds the research scores of one task split to ``scores``; returns the models each
        forwards over the task where that is not one (the union's baselines)."""
        forwards: dict[str, int] = {}
        metrics = {"r2": "intersection", "r2+normalised": "model-normalised"}
        for name, metric in metrics.items():
            if name in self.research:
                scores[name] = fuzzy_similarity(q.mask, torch.stack(self.r2), metric).tolist()
        if BEYOND_BASELINE in self.research:
            scores[BEYOND_BASELINE] = list(self.beyond)
        if self.union_probe is not None:
            blocks = [
                run.x_train if u is None else train_features(u, task, split, self.cache_dir)
                for u in self.union
            ]
            x_train, _ = union_features(blocks, stats=self.union_stats)
            q_union = union_task_embedding(
                standard, x_train, run, self.union_keys, self.cache_dir, device
            )
            stacked = torch.stack(self.union_r2)
            for name, metric in zip(UNION_SCORES, metrics.values(), strict=True):
                if name in self.research:
                    scores[name] = fuzzy_similarity(q_union.mask, stacked, metric).tolist()
                    forwards[name] = len(self.union)
        return forwards

    def settings(self) -> dict[str, Any]:
        """What the report records of the research scores (nothing when none were asked)."""
        if not self.research:
            return {}
        return {
            "research": {
                "scores": list(self.research),
                "union_baselines": [u.name for u in self.union if u is not None],
                "ridge": list(DEFAULT_RIDGE),
                "split_seed": DEFAULT_SPLIT_SEED,
            }
        }


def precompute_research(
    candidates: list[str],
    standard: Standard,
    research: tuple[str, ...],
    *,
    union_baselines: tuple[str, ...] | list[str] = (),
    cache_dir: str | Path,
    on_progress: Progress | None = None,
) -> None:
    """Fills ``cache_dir`` with the closed-form research masks and scalars of every candidate
    under ``standard`` (what :func:`~hf_stdembed.evaluation.evaluate` with ``research`` reads
    back), without P. ``on_progress`` hears ``research``: each candidate (``item``:
    ``research <id> <name>``) as it is done.

    Raises:
        ValueError: an unknown research score, or ``union-*`` scores without
            ``union_baselines``.
    """
    check_research(research, union_baselines, ())
    setup = PoolSetup.load(standard, cache_dir)
    closed = ClosedForm.start(research, union_baselines, setup)
    for done, spec in enumerate(candidates, 1):
        extractor, cand_probe, info = setup.candidate(spec)
        closed.add_candidate(extractor, cand_probe, info)
        item = f"research {standard.id} {extractor.name}"
        logger.info("%s", item)
        report(on_progress, "research", done, len(candidates), item=item)
