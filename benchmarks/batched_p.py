"""Is P for several models in one batched optimisation faster than one call per model?

Random features: a baseline of ``--baseline-dim`` features and candidates of the given widths
(each a random linear map of a random subset of the baseline, plus noise). Times K separate
:func:`hf_stdembed.core.embed_model` calls against one :func:`embed_models` call on the same
features and config, in the same process, alternating the two ``--repeats`` times; prints the
median times, their ratio and the largest difference between the results.

    python benchmarks/batched_p.py --widths 64 128 256 512 --steps 300
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from hf_stdembed.core import ModelEmbeddingConfig, embed_model
from hf_stdembed.core.batched_model_embedding import embed_models


def features(
    widths: list[int], big_n: int, samples: int, seed: int
) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(samples, big_n, generator=g)
    cands = []
    for n in widths:
        subset = torch.randperm(big_n, generator=g)[: min(n, big_n)]
        mix = torch.randn(len(subset), n, generator=g) / len(subset) ** 0.5
        cands.append(base[:, subset] @ mix + 0.05 * torch.randn(samples, n, generator=g))
    return cands, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--baseline-dim", type=int, default=1280)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cands, base = features(args.widths, args.baseline_dim, args.samples, seed=0)
    config = ModelEmbeddingConfig(steps=args.steps, batch_size=args.batch_size, lr_step=100)

    separate_s, batched_s = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        separate = [embed_model(c, base, config=config) for c in cands]
        separate_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        batched = embed_models(cands, base, config=config)
        batched_s.append(time.perf_counter() - t)
    mask_diff = max(
        float((a.mask - b.mask).abs().max()) for a, b in zip(separate, batched, strict=True)
    )
    fid_diff = max(abs(a.fidelity - b.fidelity) for a, b in zip(separate, batched, strict=True))
    sep, bat = statistics.median(separate_s), statistics.median(batched_s)
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} threads"
    )
    print(
        f"candidates {args.widths} vs a {args.baseline_dim}-d baseline, {args.samples} samples, "
        f"{args.steps} steps of {args.batch_size}, {args.repeats} repeats (median)"
    )
    print(
        f"separate embed_model x{len(cands)}: {sep:.2f} s  runs {[round(s, 2) for s in separate_s]}"
    )
    print(f"one embed_models call: {bat:.2f} s   runs {[round(s, 2) for s in batched_s]}")
    print(f"batched / separate time: {bat / sep:.2f}  (< 1: batching wins)")
    print(f"max |mask difference| {mask_diff:.2e}, max |fidelity difference| {fid_diff:.2e}")
    print("fidelities: " + ", ".join(f"{r.fidelity:.4f}" for r in separate))


if __name__ == "__main__":
    main()
