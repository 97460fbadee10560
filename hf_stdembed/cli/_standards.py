"""``hf-stdembed standards``: list and show the standards embeddings are computed under."""

from __future__ import annotations

from typing import Annotated

import typer

from ._render import stdout

app = typer.Typer(help="List and show standards (baseline + probe set + hyper-parameters).")


@app.command("list")
def list_standards() -> None:
    """List the built-in standards."""
    from rich.table import Table

    from ..standards import builtin_standards

    table = Table("id", "hash", "baseline", "N", "probe set")
    for standard in builtin_standards().values():
        probe = standard.probe
        count = "all" if probe.num_samples is None else str(probe.num_samples)
        table.add_row(
            standard.id,
            standard.hash,
            " + ".join(spec.model for spec in standard.baselines),
            str(standard.dim),
            f"{probe.dataset} [{probe.split}] ({count})",
        )
    stdout().print(table)


@app.command("show")
def show(
    standard: Annotated[str, typer.Argument(help="Built-in standard id or a YAML file.")],
) -> None:
    """Print a standard as YAML, with its hash."""
    from ..resolve import resolve_standard_or_indexed

    found = resolve_standard_or_indexed(standard)
    typer.echo(f"# hash: {found.hash}")
    typer.echo(found.to_yaml(), nl=False)
