"""``hf-stdembed select`` and ``hf-stdembed verify``: selection over published embeddings."""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._index import pull_index, run_crawl
from ._options import (
    DEFAULT_CRAWL_MB,
    DEFAULT_CRAWL_SECONDS,
    DEFAULT_STANDARD,
    CrawlMegabytesOpt,
    CrawlSecondsOpt,
    DeviceOpt,
    ImageColumnOpt,
    IndexOpt,
    JsonOpt,
    LabelColumnOpt,
    ModelOpt,
    QuietOpt,
    RegistryOpt,
    SplitOpt,
    StandardOpt,
    TokenOpt,
    TopOpt,
)
from ._render import progress_bars, quiet_libraries, render_ranking, stderr, warn

if TYPE_CHECKING:
    from ..registry import Registry

DEFAULT_RERANK_K = 13
"""rerank.DEFAULT_RERANK_K, spelled out so that importing the CLI does not import torch (a
test checks that they agree)."""
DEFAULT_RERANK_SAMPLES = 5000
"""rerank.DEFAULT_RERANK_SAMPLES, spelled out for the same reason."""
INDEX_REPOS_ENV = "HF_STDEMBED_INDEX_REPOS"
"""Shared index datasets ``select`` pulls when no ``--index-repo`` is given (space-separated)."""

# The defaults of verify.VerifyThresholds, spelled out so that importing the CLI does not
# import torch (tests check that they agree).
MAX_SHORTFALL = 0.03
MIN_AGREEMENT = 0.55


def select(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Hub dataset id or local dataset path.")
    ],
    split: SplitOpt = "train",
    standard: StandardOpt = DEFAULT_STANDARD,
    top: TopOpt = 10,
    as_json: JsonOpt = False,
    registry: RegistryOpt = None,
    index: IndexOpt = None,
    refresh: Annotated[
        bool, typer.Option(help="Crawl the registry for new or changed embeddings first.")
    ] = True,
    image_column: ImageColumnOpt = None,
    label_column: LabelColumnOpt = None,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
    crawl_seconds: CrawlSecondsOpt = DEFAULT_CRAWL_SECONDS,
    crawl_mb: CrawlMegabytesOpt = DEFAULT_CRAWL_MB,
    index_repo: Annotated[
        list[str] | None,
        typer.Option(
            "--index-repo",
            help="Shared index dataset (pushed by `index push`) to pull before the crawl "
            f"(repeatable; default: ${INDEX_REPOS_ENV}, space-separated).",
        ),
    ] = None,
    rerank: Annotated[
        int,
        typer.Option(
            "--rerank",
            min=0,
            help="Re-rank a shortlist of K models on the dataset: each is downloaded at its "
            "pinned revision, forwarded once over the --split's images (at most "
            "--rerank-samples) and ordered by LogME (K forward passes). The shortlist merges, "
            "in turn, the best by intersection, by I/|v| and the models whose card declares "
            "the dataset (see --dataset-id); the other rows keep their stage-1 order; the "
            "shortlist is shown whole whatever --top. 0: the pure O(1) ranking.",
        ),
    ] = DEFAULT_RERANK_K,
    rerank_samples: Annotated[
        int,
        typer.Option(
            "--rerank-samples",
            min=0,
            help="Images of the dataset each shortlisted model runs over (a class-stratified "
            "draw when the split holds more); 0: every image.",
        ),
    ] = DEFAULT_RERANK_SAMPLES,
    dataset_id: Annotated[
        str | None,
        typer.Option(
            "--dataset-id",
            metavar="ORG/NAME",
            help="The Hub id your local data is a copy of, to find models whose card declares "
            "it (default: --dataset when it is a Hub id).",
        ),
    ] = None,
    token: TokenOpt = None,
) -> None:
    """Rank every published model for a dataset: one task embedding, one sweep (--rerank K).

    --token: for the registry, the index datasets, the dataset, baseline and re-ranked models.
    """
    from ..data import load_image_dataset
    from ..errors import StandardNotFoundError
    from ..index import EmbeddingIndex
    from ..pipeline import compute_task_embedding
    from ..registry import open_registry
    from ..rerank import rerank_index, task_dataset_id
    from ..resolve import file_standard, resolve_standard
    from ..selection import rank_index

    if quiet:
        quiet_libraries()
    try:
        task_id = task_dataset_id(dataset, dataset_id)
    except ValueError as e:
        message = str(e).removeprefix("--dataset-id: ")
        raise typer.BadParameter(message, param_hint="'--dataset-id'") from None
    given = file_standard(standard)  # a bad file fails before the crawl
    links = open_registry(registry, token=token)
    if refresh and links.offline:
        stderr().print("HF_HUB_OFFLINE is set: ranking the local index as it is (no crawl).")
        refresh = False
    if refresh:
        _pull_shared_indexes(index_repo, links, index, hub=not links.local)
    with EmbeddingIndex.open(index) as opened:
        std = given
        if std is None:
            with suppress(StandardNotFoundError):  # the crawl may learn it from a repo
                std = resolve_standard(standard, index=opened)
        if refresh:
            custom = [given] if given else []
            run_crawl(links, opened, custom, quiet=quiet, seconds=crawl_seconds, megabytes=crawl_mb)
        if std is None:
            std = resolve_standard(standard, index=opened)
        data = load_image_dataset(
            dataset,
            split=split,
            image_column=image_column,
            label_column=label_column,
            token=token,
        )
        with progress_bars(quiet) as on_progress:
            task = compute_task_embedding(
                data, std, split=split, device=device, on_progress=on_progress, token=token
            )
        if rerank:
            with progress_bars(quiet) as on_progress:
                ranking = rerank_index(
                    task,
                    opened,
                    data,
                    k=rerank,
                    samples=rerank_samples or None,
                    top=top,
                    device=device,
                    on_progress=on_progress,
                    token=token,
                    dataset_id=task_id,
                )
        else:
            ranking = rank_index(task, opened, top=top)
    render_ranking(
        ranking, as_json=as_json, extra={"link": [links.url(r.model_id) for r in ranking.rows]}
    )
    if not ranking.rows:
        stderr().print(
            f"No published model uses standard {std.id!r} yet: nothing to rank "
            "(try --refresh, another --standard, or --registry)."
        )


def _pull_shared_indexes(
    given: list[str] | None, registry: Registry, index: Path | None, *, hub: bool
) -> None:
    """``index pull`` of each shared index dataset (given, else from the environment); one
    that cannot be pulled is a warning: the ranking goes on without it."""
    from ..errors import StdEmbedError

    repos = given if given is not None else os.environ.get(INDEX_REPOS_ENV, "").split()
    if repos and not hub:
        stderr().print(warn("not pulled", "a directory registry holds no index datasets"))
        return
    for repo in repos:
        try:
            pull_index(registry, repo, index=index)  # type: ignore[arg-type]  # hub: a Hub
        except StdEmbedError as e:
            stderr().print(warn("not pulled", f"{repo}: {e}"))


def verify(
    repo_id: Annotated[str, typer.Argument(help="The repo whose published embedding to check.")],
    standard: StandardOpt = DEFAULT_STANDARD,
    model: ModelOpt = None,
    registry: RegistryOpt = None,
    max_shortfall: Annotated[
        float,
        typer.Option(
            help="Largest shortfall of the fidelity the published mask reaches (its affine maps "
            "refitted) below the fidelity claimed."
        ),
    ] = MAX_SHORTFALL,
    min_agreement: Annotated[
        float,
        typer.Option(
            help="Least Pearson correlation of the recomputed mask with the published one."
        ),
    ] = MIN_AGREEMENT,
    device: DeviceOpt = None,
    from_index: Annotated[
        bool,
        typer.Option(
            "--from-index",
            help="Check the repo's row of the local index (any source: a pulled or imported "
            "index, embed-many) instead of the file published in the repo.",
        ),
    ] = False,
    index: IndexOpt = None,
    quiet: QuietOpt = False,
    token: TokenOpt = None,
) -> None:
    """Check a published embedding against its model: refit with its mask, recompute the mask.

    --model: default the model the repo's card records, else the repo.

    --token: for the Hub (the repo, its model, the standard's baseline and probe set).
    """
    from ..errors import StdEmbedError
    from ..index import EmbeddingIndex
    from ..registry import open_registry
    from ..resolve import resolve_standard, resolve_standard_or_indexed
    from ..verify import VerifyThresholds, verify_index_row, verify_published

    if quiet:
        quiet_libraries()
    thresholds = VerifyThresholds(max_shortfall=max_shortfall, min_agreement=min_agreement)
    with progress_bars(quiet) as on_progress:
        options = {"model": model, "thresholds": thresholds, "device": device}
        options.update(on_progress=on_progress, token=token)
        if from_index:
            with EmbeddingIndex.open(index) as opened:
                std = resolve_standard(standard, index=opened)
                result = verify_index_row(opened, repo_id, std, **options)
        else:
            std = resolve_standard_or_indexed(standard)
            result = verify_published(open_registry(registry, token=token), repo_id, std, **options)
    m = result.measures
    typer.echo(f"{repo_id} [{result.standard_id}], checked with {result.model}")
    typer.echo(f"  fidelity: {result.fidelity_summary()}")
    typer.echo(
        f"  mask: Pearson {m['pearson']:.3f} with the recomputed mask (least "
        f"{thresholds.min_agreement}); weighted Jaccard {m['weighted-jaccard']:.3f}, "
        f"Jaccard at 0.5 {m['jaccard']:.3f} (shown, not judged)"
    )
    typer.echo(
        f"  verdict: {'pass' if result.passed else 'FAIL (' + ', '.join(result.failures) + ')'}"
    )
    if not result.passed:
        raise StdEmbedError(
            f"the published embedding of {repo_id} is not its model's: "
            + "; ".join(result.reasons())
        )
