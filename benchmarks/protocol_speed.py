"""Cached P against the paper's literal per-step protocol, on the same real models.

    python benchmarks/protocol_speed.py --probe-size 500 --steps 4000 --per-step-steps 20

Both protocols optimise the same problem on the same probe images (scikit-learn digits,
written as parquet like the demo does). "cached" extracts the probe features of both models
once, then runs every step on them; "per-step" runs both models on each step's batch (two
forward passes of 128 images per step). The per-step protocol is timed over
``--per-step-steps`` steps and extrapolated linearly to ``--steps`` (its cost per step is
constant); the cached one is run in full. Timings are wall-clock, side by side in one process.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from hf_stdembed import demo
from hf_stdembed.core import ModelEmbeddingConfig, embed_model, embed_model_from_batches
from hf_stdembed.data import load_image_dataset, select_subset
from hf_stdembed.extractors import load_extractor
from hf_stdembed.features import batch_features, extract_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidate", default="hf_stdembed.zoo.efficientnet_lite:pretrained_128")
    parser.add_argument("--baseline", default="hf_stdembed.zoo.mobilenet_v2:pretrained_128")
    parser.add_argument("--probe-size", type=int, default=500)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--per-step-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    with tempfile.TemporaryDirectory() as tmp:
        files = demo.write_digits(Path(tmp))
        probe = load_image_dataset("parquet", data_files=str(files["probe"]), split="train")
        probe = select_subset(probe, args.probe_size, seed=0)
        candidate, baseline = load_extractor(args.candidate), load_extractor(args.baseline)
        config = ModelEmbeddingConfig(steps=args.steps)

        start = time.perf_counter()
        cand = extract_features(candidate, probe, cache_dir=Path(tmp) / "cache")
        base = extract_features(baseline, probe, cache_dir=Path(tmp) / "cache")
        extracted = time.perf_counter()
        embed_model(cand, base, config=config)
        cached = time.perf_counter() - start
        print(
            f"cached:   {cached:8.1f} s for {args.steps} steps "
            f"(features {extracted - start:.1f} s, optimisation {cached - extracted + start:.1f} s;"
            f" {2 * len(probe)} image forward passes)"
        )

        def fetch(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return batch_features(candidate, probe, idx), batch_features(baseline, probe, idx)

        short = dataclasses.replace(config, steps=args.per_step_steps)
        start = time.perf_counter()
        embed_model_from_batches(fetch, len(probe), config=short)
        per_step = (time.perf_counter() - start) / args.per_step_steps * args.steps
        forwards = 2 * config.batch_size * args.steps
        print(
            f"per-step: {per_step:8.1f} s for {args.steps} steps (extrapolated from "
            f"{args.per_step_steps}; {forwards} image forward passes)"
        )
        print(f"cached is {per_step / cached:.1f}x faster")


if __name__ == "__main__":
    main()
