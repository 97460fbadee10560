"""Verify a published embedding against the published model.

Isolated embeddings depend on nothing but the model and the standard, so anyone with access
to the model can check one: this is the defence against a forged embedding. Two checks, both
on the model's own probe features and the baseline's (see :mod:`hf_stdembed.core.verification`):

1. **Fidelity.** With the published mask held fixed, P's affine maps are refitted; the
   fidelity reached must not fall short of the fidelity the file claims by more than
   :attr:`VerifyThresholds.max_shortfall`. A mask that is not the model's, or a claim no map
   reaches (an all-ones vector claiming 1.0), fails here.
2. **Mask.** P is recomputed under the standard; the recomputed mask must agree with the
   published one (Pearson correlation of the soft masks) at least
   :attr:`VerifyThresholds.min_agreement`. Another model's mask, or a constant one, fails here.

An r2 standard's embedding (``model_embedding: {method: r2}``, closed form, no P) is
deterministic: the mask is recomputed and must agree (check 2), and the claimed fidelities
(held-out R^2, see :mod:`hf_stdembed.pipeline`) must each lie within
:attr:`VerifyThresholds.max_shortfall` of the recomputed ones. The fixed-mask refit (check 1)
is P's and does not apply: :attr:`Agreement.refit_l_to` is None and the output says so.

The default thresholds were measured by ``benchmarks/verify_thresholds.py`` (results in
``benchmarks/results/verify/``): genuine embeddings recomputed under another thread count and
another seed, against the embeddings of other models of a pool. What a verify cannot prove is
in the README's security section.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ._text import shorten
from .card import CardEntry, read_card
from .core import MASK_MEASURES, mask_agreement, refit_affine
from .embeddings import MAX_FILE_BYTES, ModelEmbedding, load_embedding
from .errors import (
    InvalidCardError,
    InvalidEmbeddingError,
    RepoNotFoundError,
    StdEmbedError,
)
from .extractors import FeatureExtractor, load_extractor, parse_spec
from .features import extract_features
from .pipeline import embed_features, load_baselines, load_probe, standard_features
from .progress import Progress, step_reporter
from .registry import Registry
from .standards import Standard

if TYPE_CHECKING:
    from .index import EmbeddingIndex

DEFAULT_MEASURE = "pearson"
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_CARD_REPO_RE = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


@dataclass(frozen=True)
class VerifyThresholds:
    """When a published embedding counts as its model's.

    Attributes:
        max_shortfall: largest ``claimed - refitted`` fidelity accepted (an r2 embedding:
            largest ``|claimed - recomputed|`` of L_to and of L_from).
        min_agreement: least agreement of the recomputed mask with the published one.
        measure: the agreement measure (one of
            :data:`~hf_stdembed.core.verification.MASK_MEASURES`).
    """

    # measured on the demo standard: benchmarks/results/verify/thresholds.md
    max_shortfall: float = 0.03
    min_agreement: float = 0.55
    measure: str = DEFAULT_MEASURE

    def __post_init__(self) -> None:
        if self.measure not in MASK_MEASURES:
            raise ValueError(
                f"unknown mask measure {self.measure!r}; choose one of {', '.join(MASK_MEASURES)}"
            )


@dataclass(frozen=True)
class Agreement:
    """How a published embedding compares with what its model gives.

    Attributes:
        repo_id, standard_id: what was verified.
        model: the model spec the features were computed with.
        model_revision: the model revision the published file records.
        claimed_l_to, claimed_l_from: the fidelity the published file claims.
        refit_l_to, refit_l_from: the fidelity the published mask reaches once P's affine
            maps are refitted on the model's features (None for an r2 embedding: no P).
        recomputed_l_to, recomputed_l_from: the fidelity of P recomputed.
        measures: the recomputed mask's agreement with the published one, by measure
            (:data:`~hf_stdembed.core.verification.MASK_MEASURES`, and ``jaccard``: Jaccard
            of the masks thresholded at 0.5, for information only).
        thresholds: what the verdict was judged against.
        method: the standard's model embedding method (``p`` or ``r2``).
    """

    repo_id: str
    standard_id: str
    model: str
    model_revision: str | None
    claimed_l_to: float
    claimed_l_from: float
    refit_l_to: float | None
    refit_l_from: float | None
    recomputed_l_to: float
    recomputed_l_from: float
    measures: dict[str, float] = field(repr=False)
    thresholds: VerifyThresholds = VerifyThresholds()
    method: str = "p"

    @property
    def claimed_fidelity(self) -> float:
        """``min(L_to, L_from)`` the file claims."""
        return min(self.claimed_l_to, self.claimed_l_from)

    @property
    def refit_fidelity(self) -> float | None:
        """``min(L_to, L_from)`` the published mask reaches on the model's features (None
        for an r2 embedding)."""
        if self.refit_l_to is None or self.refit_l_from is None:
            return None
        return min(self.refit_l_to, self.refit_l_from)

    @property
    def recomputed_fidelity(self) -> float:
        """``min(L_to, L_from)`` of P recomputed."""
        return min(self.recomputed_l_to, self.recomputed_l_from)

    @property
    def shortfall(self) -> float | None:
        """How far the refitted fidelity falls short of the claim (negative: above it);
        None for an r2 embedding (no refit)."""
        refit = self.refit_fidelity
        return None if refit is None else self.claimed_fidelity - refit

    @property
    def fidelity_gap(self) -> float:
        """The largest ``|claimed - recomputed|`` of L_to and L_from (what an r2 embedding's
        fidelity check judges; shown only for P's, whose recomputation is stochastic)."""
        return max(
            abs(self.claimed_l_to - self.recomputed_l_to),
            abs(self.claimed_l_from - self.recomputed_l_from),
        )

    @property
    def mask_agreement(self) -> float:
        """The agreement of the masks under the thresholds' measure."""
        return self.measures[self.thresholds.measure]

    @property
    def failures(self) -> tuple[str, ...]:
        """The checks that failed: ``"fidelity"`` and/or ``"mask"``; empty when it passes."""
        failed = []
        shortfall = self.fidelity_gap if self.shortfall is None else self.shortfall
        if not shortfall <= self.thresholds.max_shortfall:
            failed.append("fidelity")
        if not self.mask_agreement >= self.thresholds.min_agreement:
            failed.append("mask")
        return tuple(failed)

    @property
    def passed(self) -> bool:
        """Whether both checks pass."""
        return not self.failures

    def reasons(self) -> list[str]:
        """One sentence per failed check, with the figures."""
        out = []
        t = self.thresholds
        if "fidelity" in self.failures and self.shortfall is None:
            out.append(
                f"the claimed fidelity (L_to {self.claimed_l_to:.4f}, L_from "
                f"{self.claimed_l_from:.4f}) is {self.fidelity_gap:.4f} away from the recomputed "
                f"(L_to {self.recomputed_l_to:.4f}, L_from {self.recomputed_l_from:.4f}; "
                f"tolerance {t.max_shortfall})"
            )
        elif "fidelity" in self.failures:
            out.append(
                f"with its mask held fixed, the model reaches fidelity {self.refit_fidelity:.4f}, "
                f"{self.shortfall:.4f} short of the {self.claimed_fidelity:.4f} claimed "
                f"(tolerance {t.max_shortfall})"
            )
        if "mask" in self.failures:
            out.append(
                f"the recomputed mask agrees {self.mask_agreement:.3f} ({t.measure}) with the "
                f"published one, below {t.min_agreement}"
            )
        return out

    def fidelity_summary(self) -> str:
        """One line on the fidelity check, for people (the CLI prints it)."""
        t = self.thresholds
        if self.shortfall is None:
            return (
                f"claimed {self.claimed_fidelity:.4f}, recomputed {self.recomputed_fidelity:.4f} "
                f"(largest L_to / L_from gap {self.fidelity_gap:.4f}, tolerance "
                f"{t.max_shortfall}); the P-refit shortfall check does not apply to an "
                f"{self.method} embedding (closed form, recomputed exactly)"
            )
        return (
            f"claimed {self.claimed_fidelity:.4f}, reached with the published mask "
            f"{self.refit_fidelity:.4f} (shortfall {self.shortfall:+.4f}, tolerance "
            f"{t.max_shortfall}); recomputed {self.recomputed_fidelity:.4f}"
        )


def compare_masks(published: torch.Tensor, recomputed: torch.Tensor) -> dict[str, float]:
    """Every agreement measure of a recomputed mask with the published one, plus ``jaccard``
    (of the masks thresholded at 0.5: uninformative for nearly all-on masks, shown only)."""
    out = {kind: float(mask_agreement(published, recomputed, kind)) for kind in MASK_MEASURES}
    a, b = published > 0.5, recomputed > 0.5
    union = int((a | b).sum())
    out["jaccard"] = 1.0 if union == 0 else int((a & b).sum()) / union
    return out


def verify_published(
    registry: Registry,
    repo_id: str,
    standard: Standard,
    *,
    model: str | None = None,
    thresholds: VerifyThresholds = VerifyThresholds(),
    device: str | torch.device | None = None,
    on_progress: Progress | None = None,
    token: str | None = None,
) -> Agreement:
    """Checks the embedding published in ``repo_id`` for ``standard`` against its model.

    Args:
        registry: where the repo is published.
        repo_id: the repo.
        standard: which of its embeddings to verify.
        model: the model spec to check with. Default: the model spec the card records, at
            the revision it records; else the repo itself when it holds the model.
        thresholds: the verdict's thresholds (the measured defaults).
        device: where to run the model and the optimisations (default: best available).
        on_progress: hears the feature extractions and both optimisations.
        token: Hub token for the model, the baseline and the probe set when they are private
            or gated (default: the saved login; the registry keeps its own token).

    Returns:
        The figures of both checks and the verdict (:attr:`Agreement.passed`).

    Raises:
        InvalidCardError: the card's front matter cannot be read.
        StdEmbedError: the repo publishes no valid embedding for this standard; no model
            to check with (pass ``model``); the model found is not the revision embedded.
    """
    head = registry.head(repo_id)
    readme = registry.read_text(repo_id, "README.md", revision=head)
    card = read_card(readme)
    if not card.readable:
        raise InvalidCardError(card.problems[0], repo_id=repo_id)
    entry = card.entries.get(standard.id)
    if entry is None:
        detail = f" ({shorten('; '.join(card.problems))})" if card.problems else ""
        raise StdEmbedError(
            f"{repo_id} publishes no embedding for standard {standard.id!r}{detail}"
        )
    path = registry.download(repo_id, entry.file, revision=head, max_bytes=MAX_FILE_BYTES)
    try:
        published = load_embedding(path, standard=standard, kind=ModelEmbedding)
    except InvalidEmbeddingError as e:  # named by its repo path, not the local copy's
        raise InvalidEmbeddingError(f"{repo_id}: {entry.file}: {e.reason}") from e

    def recorded() -> tuple[str, str | None]:
        return _model_to_check(registry, repo_id, head, entry, published)

    how = _How(model, thresholds, device, on_progress, token)
    return _check(repo_id, published, standard, how, recorded)


def verify_index_row(
    index: EmbeddingIndex,
    repo_id: str,
    standard: Standard,
    *,
    model: str | None = None,
    thresholds: VerifyThresholds = VerifyThresholds(),
    device: str | torch.device | None = None,
    on_progress: Progress | None = None,
    token: str | None = None,
) -> Agreement:
    """Checks the row of ``repo_id`` in the local index against its model: the same two
    checks as :func:`verify_published`, for a row whoever computed it (a third party's index
    pulled or imported, ``embed-many``, or the crawl).

    Args:
        index: the local index.
        repo_id: the row's repo.
        standard: the row's standard.
        model: the model spec to check with. Default: the spec the row records (a Hub repo
            only, at the revision recorded; never code or a local path).
        thresholds, device, on_progress, token: as in :func:`verify_published`.

    Raises:
        StdEmbedError: the index has no such row, or no model to check with (pass ``model``).
    """
    rows, vectors = index.snapshot(standard.hash)
    found = [i for i, row in enumerate(rows) if row.repo_id == repo_id]
    if not found:
        raise StdEmbedError(
            f"the index holds no row of {repo_id} under standard {standard.id!r}: "
            "`hf-stdembed index list` shows what it holds"
        )
    row = rows[found[0]]
    published = ModelEmbedding(
        vector=torch.from_numpy(vectors[found[0]].copy()),
        standard_id=row.standard_id,
        standard_hash=row.standard_hash,
        model_id=row.model_id,
        model_revision=row.model_revision,
        l_to=row.l_to,
        l_from=row.l_from,
        model_spec=row.model_spec,
    )

    def recorded() -> tuple[str, str | None]:
        if not row.model_spec:
            raise StdEmbedError(
                f"the index row of {repo_id} ({row.source}) does not say which model was "
                "embedded: pass --model with the model's spec (e.g. --model timm:org/name)"
            )
        prefix, target, revision = _split_hub_spec(repo_id, row.model_spec, row.model_revision)
        return prefix + target, revision

    how = _How(model, thresholds, device, on_progress, token)
    return _check(repo_id, published, standard, how, recorded)


@dataclass(frozen=True)
class _How:
    """How to verify: the options :func:`verify_published` and :func:`verify_index_row` share."""

    model: str | None  # the spec the user gave; None: the one the card or row records
    thresholds: VerifyThresholds
    device: str | torch.device | None
    on_progress: Progress | None
    token: str | None  # for the Hub downloads (model, baseline, probe set); None: saved login


def _check(
    repo_id: str,
    published: ModelEmbedding,
    standard: Standard,
    how: _How,
    recorded: Callable[[], tuple[str, str | None]],
) -> Agreement:
    """The two checks of a published embedding against its model: ``how.model`` if given,
    else ``(spec, revision)`` from ``recorded()`` (what the card or the index row records)."""
    given = how.model is not None
    spec, revision = (how.model, None) if how.model is not None else recorded()
    thresholds, device, on_progress = how.thresholds, how.device, how.on_progress
    extractor = load_extractor(spec, revision=revision, token=how.token)
    found, embedded = extractor.revision, published.model_revision
    # unpinned (a folder): its weights hash must be the one embedded, when both are hashes
    comparable = found and embedded and len(found) == len(embedded)
    if not given and revision is None and comparable and found != embedded:
        raise StdEmbedError(
            f"{repo_id}: the model found ({spec}) is revision {found}, but the embedding "
            f"was computed from {embedded}: pass --model with the model embedded"
        )

    cand, base = _probe_features(
        extractor, standard, device=device, on_progress=on_progress, token=how.token
    )
    config = standard.model_embedding
    what = "P" if standard.method == "p" else f"the {standard.method} mask"
    on_step = step_reporter(on_progress, f"recomputing {what} for {extractor.name}")
    recomputed = embed_features(cand, base, standard, device=device, on_step=on_step)
    refit_l_to = refit_l_from = None
    if standard.method == "p":
        on_step = step_reporter(on_progress, "refitting with the published mask")
        refit = refit_affine(
            cand, base, published.vector, config=config, device=device, on_step=on_step
        )
        refit_l_to, refit_l_from = float(refit.l_to[0]), float(refit.l_from[0])
    return Agreement(
        repo_id=repo_id,
        standard_id=standard.id,
        model=spec,
        model_revision=published.model_revision,
        claimed_l_to=published.l_to,
        claimed_l_from=published.l_from,
        refit_l_to=refit_l_to,
        refit_l_from=refit_l_from,
        recomputed_l_to=recomputed.l_to,
        recomputed_l_from=recomputed.l_from,
        measures=compare_masks(published.vector, recomputed.mask),
        thresholds=thresholds,
        method=standard.method,
    )


def _model_to_check(
    registry: Registry, repo_id: str, head: str, entry: CardEntry, published: ModelEmbedding
) -> tuple[str, str | None]:
    """``(spec, revision)`` of the model a published embedding claims to be from."""
    if entry.model is not None:
        return _card_model(registry, repo_id, entry.model, entry.model_revision)
    if registry.file_size(repo_id, "config.json", revision=head) is None:
        raise StdEmbedError(
            f"{repo_id} holds no model and its card does not say which model was embedded: "
            "pass --model with the model's spec (e.g. --model timm:org/name)"
        )
    source = registry.model_source(repo_id, revision=published.model_revision)
    return source.spec, source.revision


def _card_model(
    registry: Registry, repo_id: str, spec: str, revision: str | None
) -> tuple[str, str | None]:
    """The card's model spec, read as a stranger's: a Hub repo (or a repo of a directory
    registry) at the revision recorded, never code to run or a path of this machine."""
    prefix, target, pinned = _split_hub_spec(repo_id, spec, revision, local_ok=registry.local)
    if registry.local:
        try:
            source = registry.model_source(target, revision=None)
        except RepoNotFoundError:
            pass  # not a repo of this registry: the Hub's
        else:
            return prefix + source.spec, source.revision
    return prefix + target, pinned


def _split_hub_spec(
    repo_id: str, spec: str, revision: str | None, *, local_ok: bool = False
) -> tuple[str, str, str | None]:
    """``(prefix, repo, revision)`` of a stranger's model spec: a Hub repo (``timm:org/name``,
    ``transformers:org/name`` or ``org/name``), the revision kept when it is a commit; never
    code to run, nor (unless ``local_ok``) a name that exists as a path of this machine."""
    try:
        source, target = parse_spec(spec)
    except StdEmbedError:
        source, target = "", ""
    if (
        source not in (None, "timm", "transformers")
        or not _CARD_REPO_RE.fullmatch(target)
        or ".." in target
        or (not local_ok and Path(target).expanduser().exists())
    ):
        raise StdEmbedError(
            f"{repo_id}: the recorded model spec {spec!r} is not a Hub repo "
            "(timm:org/name, transformers:org/name or org/name): pass --model"
        )
    prefix = f"{source}:" if source else ""
    return prefix, target, revision if revision and _COMMIT_RE.fullmatch(revision) else None


def _probe_features(
    extractor: FeatureExtractor,
    standard: Standard,
    *,
    device: str | torch.device | None,
    on_progress: Progress | None,
    token: str | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's and the standard's features of the standard's probe set (cached; a
    union's blocks standardised as :func:`~hf_stdembed.pipeline.standard_features` does)."""
    probe = load_probe(standard, token=token)
    baselines = load_baselines(standard, token=token)
    base, _ = standard_features(baselines, probe, standard, device=device, on_progress=on_progress)
    cand = extract_features(extractor, probe, device=device, on_progress=on_progress)
    return cand, base
