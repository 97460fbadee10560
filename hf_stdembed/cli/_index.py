"""``hf-stdembed index``: the local index of published embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._options import (
    DEFAULT_CRAWL_MB,
    DEFAULT_CRAWL_SECONDS,
    CrawlMegabytesOpt,
    CrawlSecondsOpt,
    CreatePrOpt,
    IndexOpt,
    OptionalStandardOpt,
    QuietOpt,
    RegistryOpt,
    RevisionOpt,
    StandardFileAliasOpt,
    StandardFileOpt,
    TokenOpt,
)
from ._render import progress_bars, stderr, stdout, warn

if TYPE_CHECKING:
    from ..crawl import CrawlReport
    from ..index import EmbeddingIndex, ImportReport
    from ..registry import HubRegistry, Registry
    from ..standards import Standard

app = typer.Typer(
    help="The local index of published embeddings: update, list, export, import, push, pull."
)


def run_crawl(
    source: Registry,
    index: EmbeddingIndex,
    standards: Sequence[Standard] = (),
    *,
    quiet: bool,
    seconds: float = DEFAULT_CRAWL_SECONDS,
    megabytes: float = DEFAULT_CRAWL_MB,
) -> CrawlReport:
    """Crawls a registry into the index with a progress bar, and prints a summary.

    ``standards``: custom standards the user gives (trusted); ``seconds`` and ``megabytes``:
    the crawl's budget (0: none).
    """
    from ..crawl import CrawlBudget, crawl

    budget = CrawlBudget(
        seconds=seconds if seconds > 0 else None,
        bytes=int(megabytes * 1e6) if megabytes > 0 else None,
    )
    with progress_bars(quiet) as on_progress:
        report = crawl(
            source, index, standards=list(standards), on_progress=on_progress, budget=budget
        )
    err = stderr()
    err.print(
        f"{report.listed} repos listed, {report.unchanged} unchanged, {report.downloaded} "
        f"files downloaded, {len(report.indexed)} indexed, {len(report.removed)} removed, "
        f"{len(report.problems)} problems, {report.pending} to read again next time"
    )
    for standard_id in report.standards:
        err.print(warn("learnt", f"standard {standard_id!r} from a repo (untrusted)"))
    for repo, reason in report.problems:
        err.print(warn("skipped", f"{repo}: {reason}"))
    if report.stopped:
        err.print(warn("stopped", report.stopped))
    return report


@app.command("update")
def update(
    registry: RegistryOpt = None,
    index: IndexOpt = None,
    standard_file: StandardFileOpt = None,
    old_standard_file: StandardFileAliasOpt = None,
    quiet: QuietOpt = False,
    crawl_seconds: CrawlSecondsOpt = DEFAULT_CRAWL_SECONDS,
    crawl_mb: CrawlMegabytesOpt = DEFAULT_CRAWL_MB,
    token: TokenOpt = None,
) -> None:
    """Crawl the registry: download embeddings of new or changed repos only."""
    from ..index import EmbeddingIndex
    from ..registry import open_registry
    from ..resolve import resolve_standard

    with EmbeddingIndex.open(index) as opened:
        source = open_registry(registry, token=token)
        files = [*(standard_file or []), *(old_standard_file or [])]
        custom = [resolve_standard(f, index=opened) for f in files]
        run_crawl(source, opened, custom, quiet=quiet, seconds=crawl_seconds, megabytes=crawl_mb)


@app.command("list")
def list_rows(
    index: IndexOpt = None,
    standard: OptionalStandardOpt = None,
) -> None:
    """List the indexed model embeddings (of one --standard if given)."""
    from rich.table import Table

    from ..index import EmbeddingIndex
    from ..plausibility import FLAG_MARKERS
    from ..resolve import resolve_standard

    with EmbeddingIndex.open(index) as opened:
        rows = opened.rows(resolve_standard(standard, index=opened).hash if standard else None)
    table = Table("repo", "standard", "fidelity", "flags", "source", "revision", "indexed at")
    for row in rows:
        marks = "".join(FLAG_MARKERS.get(f, "?") for f in row.flag_names)
        table.add_row(
            row.repo_id,
            row.standard_id,
            f"{row.fidelity:.4f}",
            marks,
            row.source,
            row.revision,
            row.indexed_at,
        )
    stdout().print(table)
    stderr().print(f"{len(rows)} embeddings")


@app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="Parquet file to write.")],
    index: IndexOpt = None,
    standard: OptionalStandardOpt = None,
) -> None:
    """Export the index (or one --standard) to parquet (push it as a Hub dataset to share it)."""
    from ..index import EmbeddingIndex
    from ..resolve import resolve_standard

    with EmbeddingIndex.open(index) as opened:
        wanted = resolve_standard(standard, index=opened).hash if standard else None
        opened.export_parquet(out, standard_hash=wanted)
    stderr().print(f"Wrote {out}")


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="Parquet file written by `index export`.")],
    index: IndexOpt = None,
) -> None:
    """Merge an exported index into the local one (every row is validated)."""
    from ..index import EmbeddingIndex

    with EmbeddingIndex.open(index) as opened:
        report = opened.import_parquet(source, source=f"import:{source}")
    print_import_report(report)


@app.command("push")
def push(
    repo_id: Annotated[str, typer.Argument(help="Hub dataset repo to push to (org/name).")],
    registry: RegistryOpt = None,
    index: IndexOpt = None,
    standard: OptionalStandardOpt = None,
    private: Annotated[
        bool, typer.Option("--private", help="Create the dataset repo private.")
    ] = False,
    create_pr: CreatePrOpt = False,
    token: TokenOpt = None,
) -> None:
    """Share the index (or one --standard) as a Hub dataset repo (parquet and a dataset card)."""
    from ..registry import open_hub

    hub = open_hub(registry, token=token)
    push_index(hub, repo_id, index=index, standard=standard, private=private, create_pr=create_pr)


def push_index(
    hub: HubRegistry,
    repo_id: str,
    *,
    index: Path | None,
    standard: str | None = None,
    private: bool = False,
    create_pr: bool = False,
) -> None:
    """``index push``: the index (or one standard's rows) as a dataset repo; prints its URL."""
    import tempfile

    from ..index import EmbeddingIndex
    from ..resolve import resolve_standard

    with EmbeddingIndex.open(index) as opened, tempfile.TemporaryDirectory() as tmp:
        standard_hash = resolve_standard(standard, index=opened).hash if standard else None
        parquet = opened.export_parquet(Path(tmp, "index.parquet"), standard_hash=standard_hash)
        result = hub.push_index_dataset(repo_id, parquet, private=private, create_pr=create_pr)
    what = "Opened a pull request on" if result.pr_url else "Pushed the index to"
    stderr().print(f"{what} {hub.url(repo_id, repo_type='dataset')}.")
    typer.echo(result.pr_url or result.commit_url or hub.url(repo_id, repo_type="dataset"))


@app.command("pull")
def pull(
    repo_id: Annotated[str, typer.Argument(help="Hub dataset repo pushed by `index push`.")],
    revision: RevisionOpt = None,
    registry: RegistryOpt = None,
    index: IndexOpt = None,
    token: TokenOpt = None,
) -> None:
    """Merge an index shared as a Hub dataset into the local one (every row is validated)."""
    from ..registry import open_hub

    pull_index(open_hub(registry, token=token), repo_id, revision=revision, index=index)


def pull_index(
    hub: HubRegistry, repo_id: str, *, revision: str | None = None, index: Path | None
) -> None:
    """``index pull``: merges a dataset repo's index into the local one; prints the counts."""
    from ..index import EmbeddingIndex

    parquet = hub.download_index_dataset(repo_id, revision=revision)
    with EmbeddingIndex.open(index) as opened:
        commit = _commit_of(parquet) or revision or "main"
        report = opened.import_parquet(parquet, source=f"pull:{repo_id}@{commit}")
    print_import_report(report)


def _commit_of(cached: Path) -> str | None:
    """The commit a file of the Hub cache was downloaded at: its snapshot folder's name
    (``.../snapshots/<commit>/data/index.parquet``), else None."""
    import re

    for parent in cached.parents:
        if parent.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", parent.name):
            return parent.name
    return None


def print_import_report(report: ImportReport) -> None:
    """The counts of an import, then each skipped row with its reason."""
    err = stderr()
    err.print(
        f"Imported {report.imported} rows, {report.unchanged} unchanged, "
        f"{len(report.skipped)} skipped"
    )
    for s in report.skipped:
        err.print(warn("skipped", f"row {s.row_number} ({s.repo_id}): {s.reason}"))
