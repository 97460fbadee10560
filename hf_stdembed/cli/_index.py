"""``hf-stdembed index``: the local index of published embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._options import IndexOption, RegistryOption, StandardsOption
from ._render import stderr, stdout

if TYPE_CHECKING:
    from ..crawl import CrawlReport
    from ..index import EmbeddingIndex, ImportReport

app = typer.Typer(
    help="The local index of published embeddings: update, list, export, import, push, pull."
)


def run_crawl(
    registry: str | None, index: EmbeddingIndex, standards: list[str] | None, *, quiet: bool
) -> CrawlReport:
    """Crawls a registry into the index with a progress bar, and prints a summary."""
    from tqdm.auto import tqdm

    from ..crawl import crawl
    from ..registry import open_registry
    from ..standards import get_standard

    source = open_registry(registry)
    custom = [get_standard(s) for s in standards or []]
    with tqdm(desc=f"crawling {source.name}", unit="repo", disable=quiet) as bar:
        report = crawl(source, index, standards=custom, on_repo=lambda _: bar.update())
    err = stderr()
    err.print(
        f"{report.listed} repos listed, {report.unchanged} unchanged, {report.downloaded} "
        f"files downloaded, {len(report.indexed)} indexed, {len(report.removed)} removed, "
        f"{len(report.problems)} problems"
    )
    for repo, reason in report.problems:
        err.print(f"[yellow]skipped[/] {repo}: {reason}")
    return report


@app.command("update")
def update(
    registry: RegistryOption = None,
    index: IndexOption = None,
    standard: StandardsOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Crawl the registry: download embeddings of new or changed repos only."""
    from ..index import EmbeddingIndex

    with EmbeddingIndex.open(index) as opened:
        run_crawl(registry, opened, standard, quiet=quiet)


@app.command("list")
def list_rows(
    index: IndexOption = None,
    standard: Annotated[str | None, typer.Option(help="Only this standard (id or YAML).")] = None,
) -> None:
    """List the indexed model embeddings."""
    from rich.table import Table

    from ..index import EmbeddingIndex
    from ..standards import get_standard

    with EmbeddingIndex.open(index) as opened:
        rows = opened.rows(get_standard(standard).hash if standard else None)
    table = Table("repo", "standard", "fidelity", "revision", "indexed at")
    for row in rows:
        table.add_row(
            row.repo_id, row.standard_id, f"{row.fidelity:.4f}", row.revision, row.indexed_at
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
    from ..standards import get_standard

    with EmbeddingIndex.open(index) as opened:
        opened.export_parquet(out, standard_hash=get_standard(standard).hash if standard else None)
    stderr().print(f"Wrote {out}")


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="Parquet file written by `index export`.")],
    index: IndexOption = None,
) -> None:
    """Merge an exported index into the local one (every row is validated)."""
    from ..index import EmbeddingIndex

    with EmbeddingIndex.open(index) as opened:
        report = opened.import_parquet(source)
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
    from ..standards import get_standard

    hub = open_hub(registry)
    standard_hash = get_standard(standard).hash if standard else None
    with EmbeddingIndex.open(index) as opened, tempfile.TemporaryDirectory() as tmp:
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
        report = opened.import_parquet(parquet)
    print_import_report(report)


def print_import_report(report: ImportReport) -> None:
    """The counts of an import, then each skipped row with its reason."""
    err = stderr()
    err.print(
        f"Imported {report.imported} rows, {report.unchanged} unchanged, "
        f"{len(report.skipped)} skipped"
    )
    for s in report.skipped:
        err.print(f"[yellow]skipped[/] row {s.row_number} ({s.repo_id}): {s.reason}")
