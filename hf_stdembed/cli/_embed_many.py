"""``hf-stdembed embed-many``: embed many Hub models under one standard into the local index."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._options import (
    DEFAULT_STANDARD,
    BatchSizeOpt,
    CacheDirOpt,
    DeviceOpt,
    IndexOpt,
    QuietOpt,
    StandardOpt,
    TokenOpt,
)
from ._render import progress_bars, quiet_libraries, stderr, warn

if TYPE_CHECKING:
    from ..embed_many import EmbedManyReport, ModelJob

SortOption = Annotated[
    str,
    typer.Option(
        "--sort",
        help="Hub query order, most first: downloads, likes, trending_score, created_at, "
        "last_modified.",
    ),
]


def embed_many(
    models: Annotated[
        list[str] | None,
        typer.Argument(help="Hub model specs: org/name, timm:org/name, transformers:org/name."),
    ] = None,
    standard: StandardOpt = DEFAULT_STANDARD,
    from_file: Annotated[
        Path | None,
        typer.Option("--from-file", help="A file of model specs, one a line (# comments)."),
    ] = None,
    hub_filter: Annotated[
        list[str] | None,
        typer.Option(
            "--hub-filter", help="Embed the models of a Hub query with this tag (repeatable)."
        ),
    ] = None,
    library: Annotated[
        str | None, typer.Option(help="Hub query: only this library (timm, transformers).")
    ] = None,
    sort: SortOption = "downloads",
    limit: Annotated[int, typer.Option(help="Hub query: at most this many models.")] = 100,
    index: IndexOpt = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster: auto or ray://HOST:PORT (default: a local Ray when installed)."
        ),
    ] = None,
    use_ray: Annotated[
        bool | None,
        typer.Option("--ray/--no-ray", help="Force Ray on or off (default: Ray if installed)."),
    ] = None,
    computed_by: Annotated[
        str | None,
        typer.Option(help="Who computed the rows, recorded as embed-many:WHO (default: host)."),
    ] = None,
    push_to: Annotated[
        str | None,
        typer.Option(
            "--push-index", help="Then push the index to this Hub dataset repo (as `index push`)."
        ),
    ] = None,
    open_prs: Annotated[
        bool,
        typer.Option(
            "--open-prs", help="Then open a pull request with its embedding to each model's repo."
        ),
    ] = False,
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = 64,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    token: TokenOpt = None,
) -> None:
    """Embed many Hub models under one standard (on Ray when installed) into the local index.

    --device: the device of an in-process run.

    --token: for the Hub queries, the downloads (models, baseline, probe set), push and PRs.
    """
    from .. import embed_many as many
    from ..errors import StdEmbedError
    from ..index import EmbeddingIndex
    from ..registry import HubRegistry
    from ..resolve import resolve_standard
    from ._index import push_index

    if quiet:
        quiet_libraries()
    hub = HubRegistry(token=token)
    specs = list(models or [])
    if from_file is not None:
        specs += many.read_model_list(from_file.read_text(encoding="utf-8", errors="replace"))
    if not specs and not hub_filter and not library:
        raise StdEmbedError(
            "no model given: pass model specs, --from-file FILE, or a Hub query (--hub-filter "
            "image-classification --library timm)"
        )
    jobs, unresolved = many.resolve_specs(specs, hub)
    if hub_filter or library:
        jobs += many.hub_query(
            hub, filters=hub_filter or [], library=library, sort=sort, limit=limit
        )
    jobs = list({job.repo_id: job for job in jobs}.values())
    with EmbeddingIndex.open(index) as opened:
        std = resolve_standard(standard, index=opened)
        with progress_bars(quiet) as on_progress:
            report = many.embed_many(
                jobs,
                std,
                opened,
                computed_by=computed_by,
                use_ray=use_ray,
                ray_address=ray_address,
                device=device,
                batch_size=batch_size,
                cache_dir=cache_dir,
                unresolved=unresolved,
                on_progress=on_progress,
                token=token,
            )
        _summary(report)
        if open_prs:
            _open_prs(hub, opened, std, jobs)
    if push_to:
        push_index(hub, push_to, index=index)


def _summary(report: EmbedManyReport) -> None:
    err = stderr()
    minutes = ", ".join(
        f"{seconds / 60:.1f} {'GPU' if device == 'cuda' else device.upper()}-minutes"
        for device, seconds in sorted(report.device_seconds.items())
    )
    err.print(
        f"{len(report.done)} embedded, {len(report.skipped)} skipped, {len(report.failed)} "
        f"failed ({report.executor}; {minutes or 'no model computed'}; "
        f"{report.baseline_passes_saved} baseline forward passes saved)"
    )
    for repo, why in report.skipped:
        err.print(warn("skipped", f"{repo}: {why}"))
    for repo, reason in report.failed:
        err.print(warn("failed", f"{repo}: {reason} (run again to retry)"))


def _open_prs(hub, index, standard, jobs: list[ModelJob]) -> None:
    from ..embed_many import open_pull_requests

    err = stderr()
    for outcome in open_pull_requests(hub, index, standard, jobs):
        if outcome.url is not None:
            err.print(f"Opened a pull request on {outcome.repo_id}: {outcome.url}")
        else:
            err.print(warn("no pull request", f"{outcome.repo_id}: {outcome.reason}"))
