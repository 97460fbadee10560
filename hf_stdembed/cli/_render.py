"""Rendering for the CLI: data to stdout (tables or JSON), messages to stderr.

Every string shown may come from a stranger (a card, a file, an index, a listing), so the
consoles never read markup nor emoji codes: ``[link=...]`` or ``[/x]`` in a card prints as
written. Styles are applied with :class:`rich.text.Text` only.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

from .._text import shorten

if TYPE_CHECKING:
    from rich.table import Table

    from ..progress import Progress, ProgressEvent
    from ..selection import RankedModel, Ranking, Stage2Cost

WIDE = 200  # columns when stdout is not a terminal: ids are never cut in logs and pipes
NARROW = 160
"""A ranking table on a terminal narrower than this leaves the link and revision columns to
``--json``, so the rest stays readable (at 100 columns)."""


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
    JSON, each row lists its flags by name). A two-stage ranking (``ranking.stage2``) adds
    both stages' scores and which stage placed each row; the reason a shortlisted row was not
    re-ranked goes to stderr (in JSON, to the row).
    """
    from ..plausibility import FLAG_LEGEND, FLAG_MARKERS

    extra = extra or {}
    staged = ranking.stage2 is not None
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
                **(_stage_fields(r, ranking) if staged else {}),
                **{k: v[i] for k, v in extra.items()},
            }
            for i, r in enumerate(ranking.rows)
        ]
        typer.echo(json.dumps(rows, indent=2))
    else:
        out = stdout()
        narrow = out.width < NARROW
        out.print(_table(ranking, {} if narrow else extra, revisions=not narrow))
        if narrow and ranking.rows:
            stderr().print(f"(narrow terminal: {', '.join([*extra, 'revision'])} in --json)")
    err = stderr()
    flagged = sorted({f for r in ranking.rows for f in r.flags}) if not as_json else []
    for flag in flagged:  # JSON rows carry their flags by name
        err.print(warn(f"flag {FLAG_MARKERS.get(flag, '?')} ({flag}):", FLAG_LEGEND.get(flag, "")))
    for s in ranking.skipped:
        err.print(warn("skipped", f"{s.source}: {s.reason}"))
    for label, message in _not_reranked_lines(ranking.rows):
        err.print(warn(label, message))
    if ranking.stage2 is not None:
        if not as_json:
            err.print(_via_legend(ranking))
        err.print(stage2_line(ranking))


VIA = {"intersection": "I", "model-normalised": "I/|v|", "declared": "card"}
"""The stage-1 orders, abbreviated in the table (``stage`` cells, score headers)."""
_LOAD_PREFIX = re.compile(r"^(?:ModelLoadError: )?cannot load model '[^']*': ")


def _via(row: RankedModel) -> str:
    via = VIA.get(row.shortlisted_by or "", row.shortlisted_by or "")
    if row.declared and row.shortlisted_by != "declared":
        via = f"{via} (card)".strip()
    return via


def _via_legend(ranking: Ranking) -> str:
    cost = ranking.stage2
    assert cost is not None
    legend = (
        f"stage: 2 re-ranked by {cost.scorer}, 1 stage-1 order, 1* shortlisted but not "
        "re-ranked; then the order that shortlisted it (I: intersection, I/|v|: "
        "model-normalised"
    )
    if cost.declared:
        legend += f", card: its card declares {cost.dataset_id}; (card): declares it too"
    return legend + ")"


def _not_reranked_lines(rows: list[RankedModel]) -> list[tuple[str, str]]:
    """One line per reason a shortlisted row was not re-ranked: rows that share it (the
    same failure, the model spec aside: an offline Hub, no spec) share one line."""
    causes: dict[str, list[RankedModel]] = {}
    for r in rows:
        if r.not_reranked is not None:
            causes.setdefault(_LOAD_PREFIX.sub("", r.not_reranked), []).append(r)
    lines = []
    for cause, same in causes.items():
        if len(same) == 1:
            lines.append(("not re-ranked", f"{same[0].model_id}: {same[0].not_reranked}"))
        else:
            ids = shorten(", ".join(r.model_id for r in same), 160)
            lines.append((f"not re-ranked ({len(same)} models: {ids}):", cause))
    return lines


def _table(ranking: Ranking, extra: dict[str, list], *, revisions: bool) -> Table:
    """The ranking as a rich table: ``extra`` columns after the flags; revisions cut to 12
    characters (whole in JSON)."""
    from rich.table import Column, Table

    from ..plausibility import FLAG_MARKERS

    staged = ranking.stage2 is not None
    table = Table("rank", Column("model", overflow="fold", min_width=12), "score")
    first = ranking.rows[0] if staged and ranking.rows else None
    for name, _ in first.stage1_scores[1:] if first is not None else ():
        table.add_column(VIA.get(name, name))
    if staged:
        table.add_column(ranking.stage2.scorer)  # type: ignore[union-attr]
        table.add_column("stage")
    table.add_column("fidelity")
    table.add_column("flags")
    for name in extra:
        table.add_column(name, overflow="fold")
    table.add_column("source", overflow="fold")
    if revisions:
        table.add_column("revision", overflow="fold")
    for i, r in enumerate(ranking.rows):
        stages = []
        if staged:
            stages = [f"{s:.3f}" for _, s in r.stage1_scores[1:]]
            stages.append("-" if r.stage2_score is None else f"{r.stage2_score:.4f}")
            stages.append(_stage_cell(r))
        table.add_row(
            str(r.rank),
            Text(r.model_id),
            f"{r.score:.2f}",
            *stages,
            f"{r.fidelity:.4f}",
            Text("".join(FLAG_MARKERS.get(f, "?") for f in r.flags), style="bold red"),
            *(Text(str(v[i])) for v in extra.values()),
            Text(r.source),
            *([Text((r.model_revision or "-")[:12])] if revisions else []),
        )
    return table


def _stage_cell(row: RankedModel) -> str:
    """The ``stage`` cell: which stage placed the row (``1*``: shortlisted, not re-ranked),
    then the stage-1 order that shortlisted it (:data:`VIA`)."""
    stage = "2" if row.placed_by == "stage 2" else "1"
    if row.not_reranked is not None:
        stage = "1*"
    return f"{stage} {_via(row)}".strip()


def _stage_fields(row: RankedModel, ranking: Ranking) -> dict[str, object]:
    """The two-stage fields of a JSON row."""
    cost = ranking.stage2
    assert cost is not None
    return {
        "placed_by": row.placed_by,
        "stage1_scores": dict(row.stage1_scores),
        "shortlist_place": row.shortlist_place,
        "stage2_scorer": cost.scorer,
        "stage2_score": row.stage2_score,
        "not_reranked": row.not_reranked,
        "forward_samples": row.forward_samples,
        "declared": row.declared,
        "shortlisted_by": row.shortlisted_by,
    }


def stage2_line(ranking: Ranking) -> str:
    """One line on what stage 2 of a two-stage ranking did and spent."""
    cost = ranking.stage2
    assert cost is not None
    line = (
        f"stage 2: {cost.reranked} of {cost.shortlisted} shortlisted models re-ranked by "
        f"{cost.scorer} (shortlist: {cost.merge} over {', '.join(cost.stage1)}"
        f"{_declared_note(cost)}); "
        f"forward passes: the baseline (task embedding) + {cost.forward_models} model(s) over "
        f"the task's images ({cost.forward_samples} images"
    )
    if cost.cached_models:
        line += f"; {cost.cached_models} model(s) from the feature cache"
    return line + ")"


def _declared_note(cost: Stage2Cost) -> str:
    if cost.dataset_id is None:
        return "; no dataset id to match cards against: see --dataset-id"
    return f"; {cost.declared} model(s) whose card declares {cost.dataset_id}"


def quiet_libraries() -> None:
    """Silences the progress bars of datasets and huggingface_hub (for --quiet)."""
    import datasets
    from huggingface_hub.utils import disable_progress_bars

    datasets.disable_progress_bars()
    disable_progress_bars()


@contextmanager
def progress_bars(quiet: bool) -> Iterator[Progress | None]:
    """The CLI's progress display, for a library call's ``on_progress``: one tqdm bar on
    stderr per event ``desc`` (its ``item`` as the postfix), closed once ``done == total``
    and every open one at the end; None (nothing shown) with ``--quiet``.

    An optimisation's bar (unit ``step``) is gone once closed; the others stay on screen.
    """
    if quiet:
        yield None
        return
    from tqdm.auto import tqdm

    bars: dict[str, tqdm] = {}

    def on_progress(event: ProgressEvent) -> None:
        bar = bars.get(event.desc)
        if bar is None:
            bar = bars[event.desc] = tqdm(
                total=event.total,
                desc=event.desc,
                unit=event.unit,
                leave=event.unit != "step",
                file=sys.stderr,
            )
        if event.item:
            bar.set_postfix_str(event.item, refresh=True)
        bar.update(event.done - bar.n)
        if event.total is not None and event.done >= event.total:
            bars.pop(event.desc).close()

    try:
        yield on_progress
    finally:
        for bar in bars.values():
            bar.close()


def progress_lines(quiet: bool) -> Progress | None:
    """Progress as lines on stderr, one per event that names its item (for long runs whose
    log is read later: ``evaluate``); None with ``--quiet``."""
    from ..progress import item_lines

    return None if quiet else item_lines(lambda line: typer.echo(line, err=True))
