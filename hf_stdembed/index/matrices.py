"""The matrix files of an index: one float32 and one uint8 file per standard and generation.

``matrices/<hash>.<gen>.f32`` holds the vectors exactly as published, ``<hash>.<gen>.u8``
their quantised rows (what the sweep reads), both ``(count, N)`` row-major. Reading maps
them; writing appends past the committed ``count`` or fills a new generation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IndexCorruptError
from . import _checkpoint
from .sweep import BLOCK_ROWS, quantise

KINDS = {"f32": np.float32, "u8": np.uint8}
"""The two files of a generation: their suffix and dtype."""


@dataclass(frozen=True)
class Live:
    """A standard's live matrix generation, as committed."""

    standard_hash: str
    generation: int
    dim: int
    count: int  # matrix rows, live and dead
    dead: int = 0  # dead positions among them

    @property
    def rows(self) -> int:
        """Live rows."""
        return self.count - self.dead


class StaleState(Exception):
    """A matrix file of the state being read was replaced meanwhile: read again."""


def matrix_path(root: Path, standard_hash: str, generation: int, kind: str) -> Path:
    """The file of one kind (``f32`` or ``u8``) of a generation, in the index folder ``root``."""
    return root / "matrices" / f"{standard_hash}.{generation}.{kind}"


def open_matrix(root: Path, live: Live, kind: str) -> np.ndarray:
    """The read-only memory map of a live matrix (its first ``count`` rows).

    Raises:
        StaleState: if the file is gone (a writer replaced it since the state was read).
        IndexCorruptError: if the file is shorter than the state says.
    """
    dtype = KINDS[kind]
    if live.count == 0:
        return np.empty((0, live.dim), dtype=dtype)
    path = matrix_path(root, live.standard_hash, live.generation, kind)
    try:
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise StaleState() from e
    need = live.count * live.dim * np.dtype(dtype).itemsize
    if size < need:
        raise IndexCorruptError(
            f"matrix file holds {size} bytes, the index needs {need}", path=str(path)
        )
    try:
        return np.memmap(path, dtype=dtype, mode="r", shape=(live.count, live.dim))
    except FileNotFoundError as e:
        raise StaleState() from e


def without_dead(matrix: np.ndarray, dead: np.ndarray) -> np.ndarray:
    """The live rows of a matrix, in position order (so aligned with its rows): the matrix
    itself when nothing is dead, else a read-only copy without the sorted positions ``dead``."""
    if dead.shape[0] == 0:
        return matrix
    kept = np.delete(matrix, dead, axis=0)
    kept.setflags(write=False)
    return kept


def first_disagreement(vectors: np.ndarray, quantised: np.ndarray) -> int | None:
    """The first block (its first row) where the uint8 matrix is not the quantised float32
    one, or None when they agree."""
    for s in range(0, vectors.shape[0], BLOCK_ROWS):
        if not np.array_equal(quantise(vectors[s : s + BLOCK_ROWS]), quantised[s : s + BLOCK_ROWS]):
            return s
    return None


def clean_files(root: Path, live: Iterable[Live]) -> None:
    """Removes what crashed writers left (unreferenced generations, bytes past ``count``).
    Only under the write lock: a running writer's new files look the same.

    Args:
        root: the index folder.
        live: every standard's committed generation.

    Raises:
        IndexCorruptError: if a live matrix file is missing or short.
    """
    live = list(live)
    wanted = {}
    for x in live:
        for kind, dtype in KINDS.items():
            need = x.count * x.dim * np.dtype(dtype).itemsize
            wanted[matrix_path(root, x.standard_hash, x.generation, kind).name] = need
    for path in (root / "matrices").iterdir():
        if path.name not in wanted:
            path.unlink(missing_ok=True)
        elif path.stat().st_size > wanted[path.name]:
            os.truncate(path, wanted[path.name])
    for x in live:
        for kind in KINDS:
            try:
                open_matrix(root, x, kind)
            except StaleState as e:
                raise IndexCorruptError(
                    f"matrix file {x.standard_hash}.{x.generation}.{kind} is missing",
                    path=str(root),
                ) from e


class MatrixWriter:
    """Writes float32 rows and their quantised uint8 rows to a generation's two files."""

    def __init__(self, root: Path, live: Live, *, start: int, create: bool) -> None:
        """Opens the files of ``live``'s generation in the index folder ``root``, positioned
        at row ``start``; ``create``: new files (else existing ones, written past ``start``)."""
        self.paths = [matrix_path(root, live.standard_hash, live.generation, k) for k in KINDS]
        self.dim = live.dim
        self.rows = start
        self.files = [open(p, "w+b" if create else "r+b") for p in self.paths]  # noqa: SIM115
        for f, dtype in zip(self.files, KINDS.values(), strict=True):
            f.seek(start * self.dim * np.dtype(dtype).itemsize)

    def write(self, block: np.ndarray, quantised: np.ndarray | None = None) -> None:
        """Appends rows ``(r, N)`` float32, and their uint8 rows (computed if not given)."""
        if block.shape[0] == 0:
            return
        self.files[0].write(np.ascontiguousarray(block, dtype=np.float32).data)
        _checkpoint.reached("partial-matrix")
        quantised = quantise(block) if quantised is None else quantised
        self.files[1].write(np.ascontiguousarray(quantised).data)
        self.rows += block.shape[0]

    def finish(self) -> None:
        """Cuts anything past the last row written, flushes and fsyncs both files."""
        for f, dtype in zip(self.files, KINDS.values(), strict=True):
            f.truncate(self.rows * self.dim * np.dtype(dtype).itemsize)
            f.flush()
            os.fsync(f.fileno())
        self.close()

    def close(self) -> None:
        """Closes both files (again: harmless)."""
        for f in self.files:
            f.close()


def changed_block(
    old: np.ndarray, start: int, replaced: np.ndarray, new_rows: np.ndarray, dropped: np.ndarray
) -> np.ndarray:
    """Rows ``start..start+B`` of the old matrix, with the rows at the sorted positions
    ``replaced`` set to ``new_rows`` and those at the sorted positions ``dropped`` left out
    (the memory-mapped rows themselves when none of them changes)."""
    block = old[start : start + BLOCK_ROWS]
    stop = start + block.shape[0]
    r_lo, r_hi = np.searchsorted(replaced, [start, stop])
    d_lo, d_hi = np.searchsorted(dropped, [start, stop])
    if r_hi > r_lo:
        block = np.array(block)
        block[replaced[r_lo:r_hi] - start] = new_rows[r_lo:r_hi]
    if d_hi > d_lo:
        block = np.delete(block, dropped[d_lo:d_hi] - start, axis=0)
    return block
