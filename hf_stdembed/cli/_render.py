"""Rendering for the CLI: data to stdout (tables or JSON), messages to stderr."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from ..selection import Ranking

WIDE = 200  # columns when stdout is not a terminal: ids are never cut in logs and pipes


def stdout() -> Console:
    """A console on the current stdout, wide when it is not a terminal."""
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else WIDE)


def stderr() -> Console:
    """A console on the current stderr, for hints and warnings."""
    return Console(file=sys.stderr, soft_wrap=True)


def render_ranking(
    ranking: Ranking, *, as_json: bool, extra: dict[str, list] | None = None
) -> None:
    """Prints a ranking as a rich table or JSON (stdout); skipped candidates go to stderr."""
    extra = extra or {}
    if as_json:
        rows = [
            {
                "rank": r.rank,
                "model": r.model_id,
                "revision": r.model_revision,
                "score": r.score,
                "fidelity": r.fidelity,
                "source": r.source,
                **{k: v[i] for k, v in extra.items()},
            }
            for i, r in enumerate(ranking.rows)
        ]
        typer.echo(json.dumps(rows, indent=2))
    else:
        from rich.table import Column, Table

        table = Table("rank", Column("model", overflow="fold"), "score", "fidelity", *extra)
        table.add_column("revision", overflow="fold")
        for i, r in enumerate(ranking.rows):
            table.add_row(
                str(r.rank),
                r.model_id,
                f"{r.score:.2f}",
                f"{r.fidelity:.4f}",
                *(str(v[i]) for v in extra.values()),
                r.model_revision or "-",
            )
        stdout().print(table)
    for s in ranking.skipped:
        stderr().print(f"[yellow]skipped[/] {s.source}: {s.reason}")


def quiet_libraries() -> None:
    """Silences the progress bars of datasets and huggingface_hub (for --quiet)."""
    import datasets
    from huggingface_hub.utils import disable_progress_bars

    datasets.disable_progress_bars()
    disable_progress_bars()
