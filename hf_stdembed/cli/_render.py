"""Rendering for the CLI: data to stdout (tables or JSON), messages to stderr.

Every string shown may come from a stranger (a card, a file, an index, a listing), so the
consoles never read markup nor emoji codes: ``[link=...]`` or ``[/x]`` in a card prints as
written. Styles are applied with :class:`rich.text.Text` only.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from ..selection import Ranking

WIDE = 200  # columns when stdout is not a terminal: ids are never cut in logs and pipes


def stdout() -> Console:
    """A console on the current stdout, wide when it is not a terminal; no markup."""
    return Console(
        file=sys.stdout, width=None if sys.stdout.isatty() else WIDE, markup=False, emoji=False
    )


def stderr() -> Console:
    """A console on the current stderr, for hints and warnings; no markup."""
    return Console(file=sys.stderr, soft_wrap=True, markup=False, emoji=False)


def warn(label: str, message: str) -> Text:
    """``label`` in yellow, then ``message`` as plain text (never markup)."""
    return Text.assemble((label, "yellow"), " ", message)


def render_ranking(
    ranking: Ranking, *, as_json: bool, extra: dict[str, list] | None = None
) -> None:
    """Prints a ranking as a rich table or JSON (stdout); skipped candidates go to stderr.

    Flagged rows get a short marker in the ``flags`` column and the legend on stderr (in
    JSON, each row lists its flags by name).
    """
    from ..plausibility import FLAG_LEGEND, FLAG_MARKERS

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
                "flags": list(r.flags),
                **{k: v[i] for k, v in extra.items()},
            }
            for i, r in enumerate(ranking.rows)
        ]
        typer.echo(json.dumps(rows, indent=2))
    else:
        from rich.table import Column, Table

        table = Table("rank", Column("model", overflow="fold"), "score", "fidelity", "flags")
        for name in extra:
            table.add_column(name, overflow="fold")
        table.add_column("source", overflow="fold")
        table.add_column("revision", overflow="fold")
        for i, r in enumerate(ranking.rows):
            table.add_row(
                str(r.rank),
                Text(r.model_id),
                f"{r.score:.2f}",
                f"{r.fidelity:.4f}",
                Text("".join(FLAG_MARKERS.get(f, "?") for f in r.flags), style="bold red"),
                *(Text(str(v[i])) for v in extra.values()),
                Text(r.source),
                Text(r.model_revision or "-"),
            )
        stdout().print(table)
    err = stderr()
    flagged = sorted({f for r in ranking.rows for f in r.flags}) if not as_json else []
    for flag in flagged:  # JSON rows carry their flags by name
        err.print(warn(f"flag {FLAG_MARKERS.get(flag, '?')} ({flag}):", FLAG_LEGEND.get(flag, "")))
    for s in ranking.skipped:
        err.print(warn("skipped", f"{s.source}: {s.reason}"))


def quiet_libraries() -> None:
    """Silences the progress bars of datasets and huggingface_hub (for --quiet)."""
    import datasets
    from huggingface_hub.utils import disable_progress_bars

    datasets.disable_progress_bars()
    disable_progress_bars()
