"""Planted ground truth for P and Q at the paper's hyper-parameters, with wall times.

    python benchmarks/planted.py --dim 512 --subset 128

P: the candidate's features are an invertible affine map (plus noise) of a known subset S of
synthetic baseline features; reports the Jaccard index of the learned mask with S, |v|,
L_to / L_from and wall time, for the recorded initialisation (v' = 0.05, every feature on)
and for v' = 0 side by side, plus a candidate equal to the baseline (ideal: all ones).
Q: labels depend on a known subset; reports precision / recall at the chosen gamma.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from hf_stdembed.core import ModelEmbeddingConfig, TaskEmbeddingConfig, embed_model, embed_task


def planted_model(dim: int, subset: int, samples: int, noise: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(samples, dim, generator=g)
    chosen = torch.randperm(dim, generator=g)[:subset]
    cand = base[:, chosen] @ torch.randn(subset, subset, generator=g) + 3.0
    cand += noise * torch.randn(samples, subset, generator=g)
    truth = torch.zeros(dim, dtype=torch.bool)
    truth[chosen] = True
    return cand, base, truth


def report_p(name: str, cand, base, truth, config: ModelEmbeddingConfig) -> None:
    start = time.perf_counter()
    result = embed_model(cand, base, config=config)
    seconds = time.perf_counter() - start
    found = result.mask > 0.5
    jaccard = float((found & truth).sum() / (found | truth).sum())
    print(
        f"{name:<28} |v>0.5| {int(found.sum()):>4}/{truth.numel()}  "
        f"hits {int((found & truth).sum()):>4}/{int(truth.sum())}  Jaccard {jaccard:.3f}  "
        f"L_to {result.l_to:.4f}  L_from {result.l_from:.4f}  {seconds:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=512, help="N, baseline features")
    parser.add_argument("--subset", type=int, default=128, help="|S|, planted subset size")
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--skip-p", action="store_true", help="only the Q part")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    if not args.skip_p:
        cand, base, truth = planted_model(
            args.dim, args.subset, args.samples, args.noise, args.seed
        )
        paper = ModelEmbeddingConfig()
        print(f"P, N = {args.dim}, |S| = {args.subset}, {args.samples} samples, paper's schedule:")
        report_p("init v' = 0.05 (recorded)", cand, base, truth, paper)
        report_p("init v' = 0", cand, base, truth, dataclasses.replace(paper, mask_init=0.0))
        all_on = torch.ones(args.dim, dtype=torch.bool)
        report_p("candidate = baseline", base.clone(), base, all_on, paper)

    g = torch.Generator().manual_seed(args.seed)
    k, classes = max(args.subset // 8, 4), 10
    x = torch.randn(args.samples, args.dim, generator=g)
    chosen = torch.randperm(args.dim, generator=g)[:k]
    y = (x[:, chosen] @ torch.randn(k, classes, generator=g)).argmax(dim=1)
    truth = torch.zeros(args.dim, dtype=torch.bool)
    truth[chosen] = True
    start = time.perf_counter()
    result = embed_task(x, y, config=TaskEmbeddingConfig())
    seconds = time.perf_counter() - start
    found = result.mask > 0.5
    hits = int((found & truth).sum())
    print(
        f"Q, N = {args.dim}, |S| = {k}, {classes} classes, {len(result.gammas)} gammas in one "
        f"sweep: gamma {result.gamma:.3g}, |v>0.5| {int(found.sum())}, precision "
        f"{hits / max(int(found.sum()), 1):.2f}, recall {hits / k:.2f} "
        f"(chance {k / args.dim:.3f}), converged accuracy "
        f"{result.converged_accuracy:.1f}%, {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
