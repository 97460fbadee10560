"""The search kernel: quantised vectors, one blocked sweep over a uint8 matrix, and the
float32 rescoring that makes its top-k exact. Pure functions of numpy arrays (the rescoring
loads torch, through :func:`hf_stdembed.core.fuzzy_intersection`)."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

SWEEP_BLOCK_BYTES = 256 * 1024  # rows per sweep chunk: about this many uint8 bytes
BLOCK_ROWS = 65536  # rows per block where whole matrices are copied, checked or rescored
DEAD_SCORE = np.iinfo(np.int32).min  # the quantised score a dead position gets


def quantise(block: np.ndarray) -> np.ndarray:
    """``round(255 v)`` as uint8 (v in [0, 1])."""
    return np.rint(block * np.float32(255)).astype(np.uint8)


def default_threads() -> int:
    """Sweep threads when none are given: the CPU count, at most 8."""
    return min(os.cpu_count() or 1, 8)


def rank(
    quantised: np.ndarray,
    task: np.ndarray,
    dead: np.ndarray,
    k: int,
    *,
    threads: int,
    vectors: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best live rows of a matrix for a task vector, best first; ties by position.

    Args:
        quantised: the uint8 matrix ``(m, N)`` (:func:`quantise` of ``vectors``).
        task: the float32 task vector ``(N,)``.
        dead: the sorted positions no row points at (never returned).
        k: how many, at least 1 and at most the live rows.
        threads: sweep threads.
        vectors: the float32 matrix, to rescore the candidates exactly; None: the scores
            are the quantised ones (within ``N / 510`` of the float32 ones).

    Returns:
        ``(positions, scores)``.
    """
    approx = sweep(quantised, quantise(task), threads=threads)
    approx[dead] = DEAD_SCORE  # below every live score (>= 0): never a candidate
    if vectors is not None:
        return rescore(vectors, task, approx, k, dead)
    alive = live_positions(approx.shape[0], dead)
    positions, scores = best(alive, approx[alive], k)
    return positions, scores / 255.0


def sweep(matrix: np.ndarray, task: np.ndarray, *, threads: int) -> np.ndarray:
    """``sum_i min(task_i, row_i)`` of every uint8 row, as int32.

    Cache-sized chunks, ``threads`` contiguous ranges in parallel (numpy releases the GIL;
    no OpenMP region, so it degrades gracefully when other processes hold cores).
    """
    m, n = matrix.shape
    out = np.empty(m, dtype=np.int32)
    if m == 0:
        return out
    chunk = max(16, SWEEP_BLOCK_BYTES // n)

    def run(bounds: tuple[int, int]) -> None:
        start, stop = bounds
        buf = np.empty((chunk, n), dtype=np.uint8)
        for s in range(start, stop, chunk):
            e = min(s + chunk, stop)
            block = np.minimum(matrix[s:e], task, out=buf[: e - s])
            np.add.reduce(block, axis=1, dtype=np.int32, out=out[s:e])

    parts = min(threads * 4, -(-m // chunk)) if threads > 1 else 1
    step = -(-m // max(parts, 1))
    ranges = [(s, min(s + step, m)) for s in range(0, m, step)]
    if len(ranges) <= 1:
        run((0, m))
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, ranges))
    return out


def candidate_margin(dim: int) -> int:
    """Quantised-score distance (in 1/255 units) within which a row may still beat the
    k-th best in float32.

    Per coordinate ``|min(q(u), q(v)) - 255 min(u, v)| <= 1/2`` (min is 1-Lipschitz; the
    float32 product ``255 v`` adds at most 2e-5), so a row's quantised score is within
    ``N/2`` of 255 times its exact one; two rows: ``N``. Float32 summation of the exact
    scores adds at most ``N^2 2^-24`` per score.
    """
    return math.ceil(dim * (1 + 4e-5) + 2 * 255 * dim * dim * 2.0**-24) + 1


def live_positions(count: int, dead: np.ndarray) -> np.ndarray:
    """``0..count-1`` without the sorted positions ``dead``."""
    if dead.shape[0] == 0:
        return np.arange(count)
    alive = np.ones(count, dtype=bool)
    alive[dead] = False
    return np.flatnonzero(alive)


def top_candidates(approx: np.ndarray, k: int, dim: int, dead: np.ndarray) -> np.ndarray:
    """Positions of every live row that may be in the exact top-k, sorted.

    ``dead``: the sorted dead positions, whose ``approx`` is ``DEAD_SCORE``; ``k`` is at
    most the number of live rows, so the k-th best score is a live row's (>= 0).
    """
    m = approx.shape[0]
    if k >= m - dead.shape[0]:
        return live_positions(m, dead)
    kth = np.partition(approx, m - k)[m - k]
    candidates = np.flatnonzero(approx >= int(kth) - candidate_margin(dim))
    if dead.shape[0]:  # kth - margin may be negative: drop dead positions explicitly
        candidates = candidates[np.isin(candidates, dead, assume_unique=True, invert=True)]
    return candidates


def best(positions: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best ``(position, score)`` pairs, best first; ties by position."""
    if scores.shape[0] > k:
        kth = np.partition(scores, scores.shape[0] - k)[scores.shape[0] - k]
        keep = scores >= kth  # every tie of the k-th score: the order below picks among them
        positions, scores = positions[keep], scores[keep]
    order = np.lexsort((positions, -scores))[:k]
    return positions[order], scores[order]


def rescore(
    vectors: np.ndarray, task: np.ndarray, approx: np.ndarray, k: int, dead: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The exact float32 top-k among the live rows the quantised sweep cannot rule out.

    Args:
        vectors: the float32 matrix ``(m, N)``.
        task: the float32 task vector ``(N,)``.
        approx: the quantised scores of every row (:func:`sweep`), dead ones ``DEAD_SCORE``.
        k: how many, at most the live rows.
        dead: the sorted dead positions.
    """
    import torch

    from ..core import fuzzy_intersection

    dim = task.shape[0]
    candidates = top_candidates(approx, k, dim, dead)
    u = torch.from_numpy(task)
    # Usually a few dozen rows: chunks under torch's parallel grain (32768 values) run
    # inline, without waking an OpenMP team (slow when other processes hold the cores).
    chunk_rows = max(1, 32767 // dim) if candidates.shape[0] <= 4096 else 65536
    scores = np.empty(candidates.shape[0], dtype=np.float32)
    for s in range(0, candidates.shape[0], BLOCK_ROWS):
        part = candidates[s : s + BLOCK_ROWS]  # in blocks: all rows may tie
        block = torch.from_numpy(vectors[part])
        scores[s : s + part.shape[0]] = fuzzy_intersection(u, block, chunk_rows=chunk_rows)
    return best(candidates, scores, k)
