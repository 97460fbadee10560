"""The set-up every pass over a pool shares: the standard's baseline and probe features, and
each candidate loaded with its probe features (:func:`~hf_stdembed.evaluation.evaluate` and
:func:`~hf_stdembed.evaluation.precompute_research` alike)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import ImageDataset
from ..extractors import FeatureExtractor, load_extractor
from ..features import extract_features
from ..pipeline import load_baseline, load_probe
from ..standards import Standard
from .results import CandidateInfo


@dataclass(frozen=True)
class PoolSetup:
    """A standard's baseline, probe set and the baseline's probe features (cached)."""

    standard: Standard
    baseline: FeatureExtractor
    probe: ImageDataset
    base_probe: torch.Tensor
    cache_dir: str | Path | None
    token: str | None = None  # for the Hub downloads; None: the saved login

    @classmethod
    def load(
        cls, standard: Standard, cache_dir: str | Path | None, *, token: str | None = None
    ) -> PoolSetup:
        """Loads the baseline and probe set, and the baseline's probe features; ``token``
        is the Hub token for them and for the candidates (default: the saved login)."""
        baseline = load_baseline(standard, token=token)
        probe = load_probe(standard, token=token)
        base_probe = extract_features(baseline, probe, cache_dir=cache_dir)
        return cls(standard, baseline, probe, base_probe, cache_dir, token)

    def candidate(
        self, spec: str | FeatureExtractor, on_loaded: Callable[[str], None] | None = None
    ) -> tuple[FeatureExtractor, torch.Tensor, CandidateInfo]:
        """A candidate (loaded when given as a spec), its probe features and its
        :class:`CandidateInfo` (no P yet); ``on_loaded`` hears its name once it is loaded."""
        extractor = (
            spec if isinstance(spec, FeatureExtractor) else load_extractor(spec, token=self.token)
        )
        if on_loaded is not None:
            on_loaded(extractor.name)
        cand_probe = extract_features(extractor, self.probe, cache_dir=self.cache_dir)
        info = CandidateInfo(
            spec=spec if isinstance(spec, str) else extractor.name,
            name=extractor.name,
            num_features=int(cand_probe.shape[1]),
            num_parameters=num_parameters(extractor),
        )
        return extractor, cand_probe, info


def num_parameters(extractor: FeatureExtractor) -> int | None:
    """The model's size: its metadata's ``num_parameters``, else its module's parameter count,
    else None."""
    if "num_parameters" in extractor.metadata:
        return int(extractor.metadata["num_parameters"])
    if extractor.module is not None:
        return sum(p.numel() for p in extractor.module.parameters())
    return None
