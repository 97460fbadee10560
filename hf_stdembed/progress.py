"""Progress: the one way the library reports how far a long operation has got.

The library never draws. A long operation takes ``on_progress`` (a :data:`Progress`; None,
the default, reports nothing) and calls it with a :class:`ProgressEvent` as work gets done;
what it has to say besides goes to :mod:`logging`. The CLI turns the events into bars on
stderr (``hf_stdembed.cli._render.progress_bars``) and ``--quiet`` turns them off.

Each event is a counter: ``desc`` names what progresses (one bar per ``desc``: ``features
timm:org/m``, ``re-rank``...), ``done`` of ``total`` units are done, and the last event of a
run has ``done == total`` (``total`` is None when unknown in advance).

This module imports nothing of the package (the core keeps its own ``(done, total)`` step
callback; :func:`step_reporter` adapts it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ProgressEvent:
    """How far one counted piece of work has got.

    Attributes:
        desc: what progresses, the bar's label (``features timm:org/m``, ``models``...).
        done: units done so far (0 at the start).
        total: units in all; None when unknown in advance.
        unit: what a unit is: ``batch``, ``step``, ``model``...
        item: what is in hand now (``load org/m``), when there is something to say.
    """

    desc: str
    done: int
    total: int | None
    unit: str = "step"
    item: str | None = None


Progress = Callable[[ProgressEvent], None]
"""A progress callback: called with each :class:`ProgressEvent`, in order."""


def report(
    on_progress: Progress | None,
    desc: str,
    done: int,
    total: int | None,
    *,
    unit: str = "step",
    item: str | None = None,
) -> None:
    """Calls ``on_progress`` (when there is one) with the event of these fields."""
    if on_progress is not None:
        on_progress(ProgressEvent(desc, done, total, unit, item))


def counted(
    items: Iterable[T],
    on_progress: Progress | None,
    desc: str,
    total: int,
    *,
    unit: str,
) -> Iterator[T]:
    """Yields ``items``, reporting ``done = 0`` first, then each item once it is handled (as
    the next one is asked for, like a tqdm bar around the loop)."""
    if on_progress is None:
        yield from items
        return
    report(on_progress, desc, 0, total, unit=unit)
    for done, item in enumerate(items, 1):
        yield item
        report(on_progress, desc, done, total, unit=unit)


def step_reporter(on_progress: Progress | None, desc: str) -> Callable[[int, int], None] | None:
    """The core's ``on_step(done, total)`` callback reporting ``desc`` in steps; None when
    there is no ``on_progress`` (the core then skips the calls)."""
    if on_progress is None:
        return None

    def on_step(done: int, total: int) -> None:
        on_progress(ProgressEvent(desc, done, total, "step"))

    return on_step


def item_lines(say: Callable[[str], None]) -> Progress:
    """A :data:`Progress` that passes what each event has in hand (its ``item``) to ``say``,
    one line each, and ignores the counts: for runs whose log is read later (``evaluate``)."""

    def on_progress(event: ProgressEvent) -> None:
        if event.item:
            say(event.item)

    return on_progress
