"""The named points of an index update, where a test may stop or kill the writer.

An update calls :func:`reached` at each stage of its commit: ``"partial-matrix"`` (a block of
float32 rows written, its uint8 rows not yet), ``"matrices-synced"`` (every matrix file
written and fsynced, no SQL yet) and ``"sql-pending"`` (the SQL written, not committed).
In production it does nothing; a test replaces it (``_checkpoint.reached = ...``), in its
own process or in a writer process it starts, to interrupt, pause or kill the writer there.
"""

from __future__ import annotations


def reached(stage: str) -> None:
    """A writer reached ``stage`` of an update: nothing happens (a test's hook point)."""
