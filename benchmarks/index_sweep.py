"""Sweep speed of the local embedding index against simpler ways to rank the same vectors.

    python benchmarks/index_sweep.py                       # m = 10^6, N = 512
    python benchmarks/index_sweep.py --rows 10000000       # the real target (about 31 GB)

Builds a synthetic index (uniform random vectors: the worst case for uint8 rounding) in
transactions of ``--batch`` rows, so the build streams; an index already at ``--path`` with
the right size is reused. Then times, for one random task vector:

- ``EmbeddingIndex.search`` (uint8 sweep + exact float32 rescoring of the candidates);
- ``fuzzy_intersection`` over the float32 matrix as one torch tensor (memory-mapped);
- the naive loop, one ``torch.minimum(u, v).sum()`` per row (on ``--naive-rows`` rows,
  extrapolated);

and reports each one's rows/s, GB/s of matrix read, ratio to ``search`` and extrapolated time
for 10^7 rows. A dtype study on the first ``--study-rows`` rows (in RAM) gives the sweep time
and the max score error against float32 of float16 and uint8 storage.

``--replace K`` then times K transactions that each replace the vector of one random row
(and the matrix bytes each writes), and one search afterwards. It changes the index (the
replaced rows move to the end of the matrix): a ``--path`` index is not reused after it.

    python benchmarks/index_sweep.py --rows 100000 --replace 5 --study-rows 1000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from hf_stdembed.core import fuzzy_intersection
from hf_stdembed.index import EmbeddingIndex, IndexRow, default_threads
from hf_stdembed.index.sweep import quantise as _quantise
from hf_stdembed.index.sweep import sweep as _sweep

STANDARD_HASH = "00000000b3c4a7e1"
TARGET_ROWS = 10**7
T = TypeVar("T")


def make_row(i: int) -> IndexRow:
    return IndexRow(
        repo_id=f"org{i % 1000}/model-{i}",
        revision=f"{i:040x}",
        standard_id="bench",
        standard_hash=STANDARD_HASH,
        file_path="stdembed/bench.safetensors",
        file_sha256=f"{i:064x}",
        model_id=f"org{i % 1000}/model-{i}",
        model_revision=None,
        l_to=0.9,
        l_from=0.8,
        library_version="0.1.0",
        created_at="2025-01-01T00:00:00+00:00",
    )


def build(index: EmbeddingIndex, rows: int, dim: int, batch: int, seed: int) -> None:
    """Adds rows ``count..rows`` in transactions of ``batch`` rows (only one batch in RAM)."""
    have = index.stats().standards.get(STANDARD_HASH)
    start = have.rows if have else 0
    if have and have.dim != dim:
        sys.exit(f"{index.root} holds N = {have.dim}, not {dim}: pass another --path")
    if have and (have.dead or have.generation != 1):
        sys.exit(f"{index.root} was changed by --replace (rows moved): pass another --path")
    rng = np.random.default_rng(seed + start)
    began = time.perf_counter()
    for s in range(start, rows, batch):
        block = rng.random((min(batch, rows - s), dim), dtype=np.float32)
        with index.update() as tx:
            for i, vector in enumerate(block, s):
                tx.upsert(make_row(i), vector)
        done = s + block.shape[0]
        rate = (done - start) / (time.perf_counter() - began)
        print(f"\rbuilt {done:,}/{rows:,} rows ({rate:,.0f} rows/s)", end="", file=sys.stderr)
    if rows > start:
        print(file=sys.stderr)
        seconds = time.perf_counter() - began
        print(
            f"build: {rows - start:,} rows in {seconds:.1f} s "
            f"({(rows - start) / seconds:,.0f} rows/s)"
        )


def timed(repeats: int, fn: Callable[[], T]) -> tuple[T, float, float]:
    """``fn``'s result, its first wall time and its best over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, times[0], min(times)


def report(name: str, seconds: float, rows: int, nbytes: int, reference: float) -> None:
    print(
        f"{name:<34} {seconds:9.3f} s  {rows / seconds / 1e6:8.2f} M rows/s  "
        f"{nbytes / seconds / 1e9:6.2f} GB/s  x{seconds / reference:7.1f}  "
        f"10^7 rows: {seconds * TARGET_ROWS / rows:8.2f} s"
    )


def float32_sweep(matrix: np.ndarray, task: np.ndarray, threads: int) -> np.ndarray:
    """The index's sweep kernel (cache-sized chunks, threads) on float32 rows: what keeping
    float32 for the sweep would cost."""
    m, n = matrix.shape
    out = np.empty(m, dtype=np.float32)
    chunk = max(16, 256 * 1024 // (4 * n))

    def part(bounds: tuple[int, int]) -> None:
        buf = np.empty((chunk, n), dtype=np.float32)
        for s in range(bounds[0], bounds[1], chunk):
            e = min(s + chunk, bounds[1])
            np.add.reduce(np.minimum(matrix[s:e], task, out=buf[: e - s]), axis=1, out=out[s:e])

    step = -(-m // (threads * 4))
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(part, [(s, min(s + step, m)) for s in range(0, m, step)]))
    return out


def dtype_study(matrix: np.ndarray, task: np.ndarray, threads: int) -> None:
    """Sweep time (in RAM) and max score error vs float32 of float16 and uint8 storage."""
    f32 = np.array(matrix)
    m, n = f32.shape
    u = torch.from_numpy(task)
    exact = fuzzy_intersection(u, torch.from_numpy(f32)).double()
    f16 = torch.from_numpy(f32).half()
    q8, qu = _quantise(f32), _quantise(task)

    def half_sweep() -> torch.Tensor:
        out = torch.empty(m, dtype=torch.float32)
        uh = u.half()
        for s in range(0, m, 4096):
            out[s : s + 4096] = torch.minimum(f16[s : s + 4096], uh).sum(1, dtype=torch.float32)
        return out

    results = {
        "float32 (fuzzy_intersection)": (lambda: fuzzy_intersection(u, torch.from_numpy(f32)), 4),
        "float32 (index kernel)": (lambda: float32_sweep(f32, task, threads), 4),
        "float16 (torch, float32 sums)": (half_sweep, 2),
        "uint8 round(255 v) (index sweep)": (lambda: _sweep(q8, qu, threads=threads), 1),
    }
    top = torch.topk(exact, 10).indices
    print(f"\ndtype study on {m:,} rows x N = {n} in RAM (best of 3):")
    for name, (fn, itemsize) in results.items():
        scores, _, seconds = timed(3, fn)
        scores = torch.as_tensor(scores).double()
        if name.startswith("uint8"):
            scores = scores / 255
        error = float((scores - exact).abs().max())
        same = torch.equal(torch.topk(scores, 10).indices, top)
        print(
            f"  {name:<34} {seconds:7.3f} s  {m * n * itemsize / seconds / 1e9:6.2f} GB/s  "
            f"max |score - float32| {error:.2e} (scores ~{float(exact.mean()):.0f}, bound "
            f"{n / 510:.2f} for uint8)  top-10 same order: {same}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10**6, help="m, indexed embeddings")
    parser.add_argument("--dim", type=int, default=512, help="N, embedding length")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--path", type=Path, help="index folder (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp index")
    parser.add_argument("--batch", type=int, default=100_000, help="rows per transaction")
    parser.add_argument("--threads", type=int, default=None, help="sweep threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-rows", type=int, default=20_000)
    parser.add_argument("--study-rows", type=int, default=10**6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--replace", type=int, default=0, metavar="K", help="then time K one-row replacements"
    )
    args = parser.parse_args()

    temp = args.path is None
    path = args.path or Path(tempfile.mkdtemp(prefix="stdembed-index-bench-"))
    try:
        with EmbeddingIndex.open(path) as index:
            build(index, args.rows, args.dim, args.batch, args.seed)
            run(index, args)
            if args.replace:
                replacements(index, args)
    finally:
        if temp and not args.keep:
            shutil.rmtree(path, ignore_errors=True)
        elif temp:
            print(f"index kept at {path}", file=sys.stderr)


def run(index: EmbeddingIndex, args: argparse.Namespace) -> None:
    stats = index.stats().standards[STANDARD_HASH]
    m, n = stats.rows, stats.dim
    print(
        f"index: {m:,} rows x N = {n}; float32 {stats.vector_bytes / 1e9:.2f} GB, uint8 sweep "
        f"{stats.sweep_bytes / 1e9:.2f} GB; sweep threads {args.threads or default_threads()}, "
        f"torch threads {torch.get_num_threads()}"
    )
    task = np.random.default_rng(args.seed + 1).random(n, dtype=np.float32)
    u = torch.from_numpy(task)
    with warnings.catch_warnings():  # torch warns that the read-only memory map is read-only
        warnings.simplefilter("ignore")
        f32 = torch.from_numpy(index.vectors(STANDARD_HASH))
    q8 = np.memmap(
        index.root / "matrices" / f"{STANDARD_HASH}.{stats.generation}.u8",
        np.uint8,
        "r",
        shape=(m, n),
    )
    threads = args.threads or default_threads()

    found, first, search_s = timed(
        args.repeats, lambda: index.search(task, STANDARD_HASH, top=args.top, threads=threads)
    )
    _, _, sweep_s = timed(args.repeats, lambda: _sweep(q8, _quantise(task), threads=threads))
    _, _, f32_kernel_s = timed(args.repeats, lambda: float32_sweep(f32.numpy(), task, threads))
    scores, f32_first, f32_s = timed(args.repeats, lambda: fuzzy_intersection(u, f32))
    sample = min(args.naive_rows, m)

    def naive() -> None:
        for i in range(sample):
            torch.minimum(u, f32[i]).sum()

    naive_s = timed(1, naive)[2] * m / sample

    print(f"\nsearch top-{args.top}; first runs: search {first:.3f} s, float32 {f32_first:.3f} s")
    report("EmbeddingIndex.search", search_s, m, m * n, search_s)
    report("  of which the uint8 sweep", sweep_s, m, m * n, search_s)
    report("float32 matrix, same sweep kernel", f32_kernel_s, m, 4 * m * n, search_s)
    report("fuzzy_intersection, float32 tensor", f32_s, m, 4 * m * n, search_s)
    report(f"naive per-row loop (on {sample:,} rows)", naive_s, m, 4 * m * n, search_s)

    expected = torch.argsort(scores, descending=True, stable=True)[: args.top].tolist()
    got = [int(row.repo_id.rsplit("-", 1)[1]) for row, _ in found]  # row i is at position i
    error = max(abs(s - float(scores[i])) for (_, s), i in zip(found, got, strict=True))
    print(f"search top-{args.top} == float32 ranking: {got == expected} (max diff {error:.1e})")
    dtype_study(index.vectors(STANDARD_HASH)[: args.study_rows], task, threads)


def replacements(index: EmbeddingIndex, args: argparse.Namespace) -> None:
    """Times ``args.replace`` transactions that each give one random row a new vector."""
    rng = np.random.default_rng(args.seed + 2)
    m = index.stats().standards[STANDARD_HASH].rows
    print(f"\nreplace 1 row of {m:,} (changed vector), {args.replace} transactions:")
    times = []
    for _ in range(args.replace):
        i = int(rng.integers(m))
        vector = rng.random(args.dim, dtype=np.float32)
        before = {p.name: p.stat().st_size for p in (index.root / "matrices").iterdir()}
        start = time.perf_counter()
        with index.update() as tx:
            tx.upsert(make_row(i), vector)
        times.append(time.perf_counter() - start)
        after = {p.name: p.stat().st_size for p in (index.root / "matrices").iterdir()}
        new = sum(size for name, size in after.items() if name not in before)
        grown = sum(after[name] - size for name, size in before.items() if name in after)
        stats = index.stats().standards[STANDARD_HASH]
        print(
            f"  row {i:>10,}: {times[-1]:7.3f} s; new files {new:,} B, files grown {grown:,} B; "
            f"generation {stats.generation}, dead {stats.dead}"
        )
    print(f"replace 1 row: best {min(times):.3f} s, median {float(np.median(times)):.3f} s")
    task = np.random.default_rng(args.seed + 1).random(args.dim, dtype=np.float32)
    threads = args.threads or default_threads()
    _, _, search_s = timed(
        args.repeats, lambda: index.search(task, STANDARD_HASH, top=args.top, threads=threads)
    )
    print(f"search after the replacements: {search_s:.3f} s")


if __name__ == "__main__":
    main()
