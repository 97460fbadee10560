"""``hf-stdembed index``: the local index of published embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._options import IndexOption, RegistryOption, StandardsOption
from ._render import stderr, stdout, warn

if TYPE_CHECKING:
    from ..crawl import CrawlReport
    from ..index import EmbeddingIndex, ImportReport

CrawlSecondsOption = Annotated[
    float,
    typer.Option(
        "--crawl-seconds",
        help="Time budget of the crawl, in seconds (0: none); repos not reached are crawled "
        "next time.",
    ),
]
CrawlMegabytesOption = Annotated[
    float,
    typer.Option(
        "--crawl-mb",
        help="Download budget of the crawl, in MB (0: none); repos not reached are crawled "
        "next time.",
    ),
]
DEFAULT_CRAWL_SECONDS = 1800.0  # half an hour: a first crawl of a few thousand repos
DEFAULT_CRAWL_MB = 2048.0  # 2 GB: about 500,000 embeddings of N = 512 (4 KB each)

app = typer.Typer(
    help="The local index of published embeddings: update, list, export, import, push, pull."
)


def run_crawl(
    registry: str | None,
    index: EmbeddingIndex,
    standards: list[str] | None,
    *,
    quiet: bool,
    seconds: float = DEFAULT_CRAWL_SECONDS,
    megabytes: float = DEFAULT_CRAWL_MB,
) -> CrawlReport:
    """Crawls a registry into the index with a progress bar, and prints a summary.

    ``standards``: YAML files the user gives (trusted); ``seconds`` and ``megabytes``: the
    crawl's budget (0: none).
    """
    from tqdm.auto import tqdm

    from ..crawl import CrawlBudget, crawl
    from ..registry import open_registry
    from ..resolve import resolve_standard

    source = open_registry(registry)
    custom = [resolve_standard(s, index=index) for s in standards or []]
    budget = CrawlBudget(
        seconds=seconds if seconds > 0 else None,
        bytes=int(megabytes * 1e6) if megabytes > 0 else None,
    )
    with tqdm(desc=f"crawling {source.name}", unit="repo", disable=quiet) as bar:
        report = crawl(
            source, index, standards=custom, on_repo=lambda _: bar.update(), budget=budget
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
    registry: RegistryOption = None,
    index: IndexOption = None,
    standard: StandardsOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    crawl_seconds: CrawlSecondsOption = DEFAULT_CRAWL_SECONDS,
    crawl_mb: CrawlMegabytesOption = DEFAULT_CRAWL_MB,
) -> None:
    """Crawl the registry: download embeddings of new or changed repos only."""
    from ..index import EmbeddingIndex

    with EmbeddingIndex.open(index) as opened:
        run_crawl(
            registry, opened, standard, quiet=quiet, seconds=crawl_seconds, megabytes=crawl_mb
        )


@app.command("list")
def list_rows(
    index: IndexOption = None,
    standard: Annotated[str | None, typer.Option(help="Only this standard (id or YAML).")] = None,
) -> None:
    """List the indexed model embeddings."""
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
    index: IndexOption = None,
    standard: Annotated[str | None, typer.Option(help="Only this standard (id or YAML).")] = None,
) -> None:
    """Export the index to parquet (push it as a Hub dataset to share it)."""
    from ..index import EmbeddingIndex
    from ..resolve import resolve_standard

    with EmbeddingIndex.open(index) as opened:
        wanted = resolve_standard(standard, index=opened).hash if standard else None
        opened.export_parquet(out, standard_hash=wanted)
    stderr().print(f"Wrote {out}")


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="Parquet file written by `index export`.")],
    index: IndexOption = None,
) -> None:
    """Merge an exported index into the local one (every row is validated)."""
    from ..index import EmbeddingIndex

    with EmbeddingIndex.open(index) as opened:
        report = opened.import_parquet(source, source=f"import:{source}")
    print_import_report(report)


@app.command("push")
def push(
    repo_id: Annotated[str, typer.Argument(help="Hub dataset repo to push to (org/name).")],
    registry: RegistryOption = None,
    index: IndexOption = None,
    standard: Annotated[str | None, typer.Option(help="Only this standard (id or YAML).")] = None,
    private: Annotated[
        bool, typer.Option("--private", help="Create the dataset repo private.")
    ] = False,
    create_pr: Annotated[
        bool, typer.Option("--create-pr", help="Open a pull request instead of committing.")
    ] = False,
) -> None:
    """Share the index as a Hub dataset repo (parquet and a dataset card)."""
    import tempfile

    from ..index import EmbeddingIndex
    from ..registry import open_hub
    from ..resolve import resolve_standard

    hub = open_hub(registry)
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
    revision: Annotated[
        str | None, typer.Option(help="Branch, tag or commit (default: main).")
    ] = None,
    registry: RegistryOption = None,
    index: IndexOption = None,
) -> None:
    """Merge an index shared as a Hub dataset into the local one (every row is validated)."""
    from ..index import EmbeddingIndex
    from ..registry import open_hub

    parquet = open_hub(registry).download_index_dataset(repo_id, revision=revision)
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
