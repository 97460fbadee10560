"""The offline benchmark of issues 4 and 11: does selection pick good models, with error bars?

    python benchmarks/offline_benchmark.py --bench-dir ../shared/bench --out benchmarks/results

Pool: ``benchmarks/pool.py``'s ``POOL`` (real models, intermediate blocks of the ImageNet
models, specialists trained on the tasks' specialist pools, random distractors). Standards:
each of ``STANDARD_BASELINES`` as baseline, probe = 5,000 seeded CIFAR-10 train images.
Tasks: ``benchmarks/tasks.py`` (CIFAR-10, USPS, COIL-20, ORL, UMIST, Palm): per task an
evaluation pool (never seen by a specialist; CIFAR-10's outside the probe set) and
``--splits`` seeded stratified train/test splits of it. Features are extracted once per
evaluation pool and indexed per split; P runs once per candidate and standard; the linear
probes, LogME and Q run per split. Every figure is the mean over splits with a 95 % bootstrap
interval; recall@K for K = 1..|pool|.

Everything goes through the on-disk cache (``--cache-dir``: features, P masks, linear probes,
LogME and Q), so rerunning the same command regenerates the whole report from the caches
(``summary.md``, ``summary.json``, per-standard reports and plots, the pool table) without a
forward pass or an optimisation. The cold run can be spread over several runs
(``--extract-only``, ``--p-only``, ``--ground-truth-only``) that fill the same cache, in
parallel where cores allow. P runs at the paper's schedule
(4,000 steps; ``--p-steps`` only for smoke tests: fewer steps leave the masks at their
start). Run it from the repository root: the dataset fingerprints that key the caches
include the data file paths, so keep ``--bench-dir`` the same between runs sharing caches.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from hf_stdembed.data import ImageDataset  # noqa: E402
from hf_stdembed.evaluation import FEATURE_TRANSFORMS  # noqa: E402
from hf_stdembed.progress import item_lines  # noqa: E402

ZOO = (
    "entrypoint:hf_stdembed.zoo.mobilenet_v2:pretrained_128",
    "entrypoint:hf_stdembed.zoo.efficientnet_lite:pretrained_128",
)
DISTRACTORS = (
    "entrypoint:hf_stdembed.zoo.mobilenet_v2:random_init_128",
    "entrypoint:hf_stdembed.zoo.efficientnet_lite:random_init_128",
)


def bench_pool() -> list[str]:
    """The 13 models of the benchmark folder (issue 4's pool, with ZOO and DISTRACTORS)."""
    from benchmarks import bench_models

    return [f"entrypoint:benchmarks.bench_models:{e}" for e in bench_models.ENTRYPOINTS]


def _contract(name: str) -> Any:
    """``benchmarks.tasks`` or ``benchmarks.pool`` (the pool/protocol contract of issue 11)."""
    return importlib.import_module(f"benchmarks.{name}")


@dataclass(frozen=True)
class Sizes:
    """The probe set of both standards and the ground-truth splits."""

    probe: int = 5000  # CIFAR-10 train subset: the probe set D of both standards
    seed: int = 0  # seed of the probe draw
    splits: int = 5  # seeded stratified train/test splits per task (seeds 0..splits-1)
    test_fraction: float = 0.3


def probe_set(bench_dir: Path, sizes: Sizes) -> ImageDataset:
    """The standards' probe set, loaded as P loads it (``pipeline.load_probe``), so the
    features ``--extract-only`` caches are the ones P reads."""
    from hf_stdembed.pipeline import load_probe

    return load_probe(
        make_standard(next(iter(_contract("pool").STANDARD_BASELINES)), bench_dir, sizes)
    )


def split_tasks(bench_dir: Path, sizes: Sizes, names: list[str] | None = None) -> list[Any]:
    """One :class:`~hf_stdembed.evaluation.SplitTask` per task of ``benchmarks.tasks``: its
    evaluation pool and ``sizes.splits`` seeded stratified splits of it."""
    from hf_stdembed.evaluation import SplitTask

    tasks = _contract("tasks")
    out = []
    for name in tasks.TASKS:
        if names is not None and name not in names:
            continue
        pool, _ = tasks.task_data(bench_dir, name)
        parts = tasks.splits(pool, n=sizes.splits, test_fraction=sizes.test_fraction)
        out.append(SplitTask(name, pool, tuple(parts)))
    return out


def extract_all(pool: list[str], datasets: list[tuple[str, ImageDataset]], cache_dir: Path) -> None:
    """Warm the feature cache, dataset by dataset (so a partial run gives whole tasks)."""
    from hf_stdembed.extractors import load_extractor
    from hf_stdembed.features import extract_features

    for spec in pool:
        extractor = load_extractor(spec)
        for name, ds in datasets:
            t = time.time()
            x = extract_features(extractor, ds, cache_dir=cache_dir)
            short = spec.rsplit(":", 1)[-1]
            print(
                f"{name:14s} {short:48s} {tuple(x.shape)} {time.time() - t:6.1f}s",
                file=sys.stderr,
                flush=True,
            )


def make_standard(name: str, bench_dir: Path, sizes: Sizes, p_steps: int | None = None):
    """A standard: a baseline of ``STANDARD_BASELINES`` (128 px), probe = seeded CIFAR-10
    train subset."""
    schedule = {"steps": p_steps, "lr_step": max(p_steps // 4, 1)} if p_steps else {}
    from hf_stdembed.core import ModelEmbeddingConfig
    from hf_stdembed.standards import BaselineSpec, ProbeSpec, Standard

    return Standard(
        id=f"bench-{name}-cifar10-{sizes.probe}" + (f"-p{p_steps}" if p_steps else ""),
        description=f"Offline benchmark: {name} (128 px) over {sizes.probe} CIFAR-10 train images.",
        baseline=BaselineSpec(
            model=_contract("pool").STANDARD_BASELINES[name], revision=None, dim=1280
        ),
        probe=ProbeSpec(
            dataset="parquet",
            split="train",
            data_files=(str(bench_dir / "data" / "cifar10" / "train.parquet"),),
            num_samples=sizes.probe,
            seed=sizes.seed,
        ),
        model_embedding=replace(ModelEmbeddingConfig(), **schedule),
    )


def precompute_p(pool: list[str], standard, cache_dir: Path, variants) -> None:
    """Runs P for every candidate and feature transform into the cache, printing timings."""
    from hf_stdembed.evaluation import model_embedding
    from hf_stdembed.extractors import load_extractor
    from hf_stdembed.features import extract_features
    from hf_stdembed.pipeline import load_baseline, load_probe

    probe = load_probe(standard)
    base = extract_features(load_baseline(standard), probe, cache_dir=cache_dir)
    for spec in pool:
        extractor = load_extractor(spec)
        cand = extract_features(extractor, probe, cache_dir=cache_dir)
        for features in dict.fromkeys(v.features for v in variants):
            t = time.time()
            mask, fid = model_embedding(
                extractor, cand, base, standard, features=features, cache_dir=cache_dir
            )
            print(
                f"P {standard.id} {spec.rsplit(':', 1)[-1]:40s} {features} "
                f"|v|={float(mask.sum()):7.1f} fidelity={fid:.3f} {time.time() - t:6.1f}s",
                file=sys.stderr,
                flush=True,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-dir", type=Path, default=REPO_ROOT.parent / "shared" / "bench")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path.home() / ".cache" / "hf-stdembed-bench"
    )
    parser.add_argument("--tasks", nargs="*", default=None, help="task names (default: all)")
    parser.add_argument("--standards", nargs="*", default=None, help="default: every baseline")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default=None, help="torch device of P, Q and the probes")
    parser.add_argument("--extract-only", action="store_true", help="only warm the caches")
    parser.add_argument("--p-only", action="store_true", help="only run P into the cache")
    parser.add_argument(
        "--ground-truth-only",
        action="store_true",
        help="only run the linear probes, LogME and Q into the cache (no P)",
    )
    parser.add_argument(
        "--features",
        nargs="*",
        default=list(FEATURE_TRANSFORMS),
        choices=list(FEATURE_TRANSFORMS),
        help="only the variants whose P sees these feature transforms (one P per transform)",
    )
    parser.add_argument(
        "--probe", type=int, default=Sizes.probe, help="probe set size (CIFAR-10 train images)"
    )
    parser.add_argument(
        "--splits", type=int, default=Sizes.splits, help="train/test splits per task"
    )
    parser.add_argument(
        "--p-steps",
        type=int,
        default=None,
        help="P steps, lr/10 every steps/4 (default: the paper's 4000, lr/10 every 1000)",
    )
    parser.add_argument(
        "--research",
        nargs="*",
        default=None,
        help="issue 12's stage-1 research scores to add (default: all; the union-* ones run "
        "a new Q per split on the union of both baselines)",
    )
    parser.add_argument(
        "--research-only",
        action="store_true",
        help="only compute the closed-form research masks and scalars into the cache (no P)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ["HF_STDEMBED_BENCH_DIR"] = str(args.bench_dir.resolve())
    from hf_stdembed.core.shortlist import STAGE1_CONFIGS
    from hf_stdembed.evaluation import (
        DEFAULT_VARIANTS,
        RESEARCH_SCORES,
        UNION_SCORES,
        evaluate,
        precompute_research,
        recall_table,
    )

    pool_module = _contract("pool")
    tasks_module = _contract("tasks")
    sizes = Sizes(probe=args.probe, splits=args.splits)
    pool = [entry.spec for entry in pool_module.POOL]
    names = args.standards or list(pool_module.STANDARD_BASELINES)
    unknown = set(names) - set(pool_module.STANDARD_BASELINES)
    if unknown:
        parser.error(
            f"unknown --standards {sorted(unknown)}: {list(pool_module.STANDARD_BASELINES)}"
        )
    standards = [make_standard(name, args.bench_dir, sizes, args.p_steps) for name in names]
    variants = tuple(v for v in DEFAULT_VARIANTS if v.features in args.features)
    if args.p_only:
        for standard in standards:
            precompute_p(pool, standard, args.cache_dir, variants)
        return
    unions = {
        standard.id: [s for n, s in pool_module.STANDARD_BASELINES.items() if n != name]
        for name, standard in zip(names, standards, strict=True)
    }
    research = {
        standard.id: tuple(
            r
            for r in (RESEARCH_SCORES if args.research is None else args.research)
            if unions[standard.id] or r not in UNION_SCORES
        )
        for standard in standards
    }
    if args.research_only:
        for standard in standards:
            precompute_research(
                pool,
                standard,
                research[standard.id],
                union_baselines=unions[standard.id],
                cache_dir=args.cache_dir,
                on_progress=item_lines(_log),
            )
        return
    tasks = split_tasks(args.bench_dir, sizes, args.tasks)
    if args.ground_truth_only:
        from hf_stdembed.evaluation import precompute_ground_truth

        precompute_ground_truth(
            pool,
            standards,
            tasks,
            cache_dir=args.cache_dir,
            device=args.device,
            on_progress=item_lines(_log),
        )
        return
    if args.extract_only:
        order = [("probe", probe_set(args.bench_dir, sizes))]
        order += [(task.name, task.data) for task in tasks]
        extract_all(pool, order, args.cache_dir)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, dict[str, Any]] = {}
    for standard in standards:
        t = time.time()
        # issue 12's stage-1 research beside the faithful default: closed-form R^2 masks, the
        # beyond-baseline scalar, the union with the other standard's baseline, and every
        # named shortlist configuration (two-stage[<config>]@K; curves: two_stage_curve.py)
        report = evaluate(
            pool,
            standard,
            tasks,
            variants=variants,
            cache_dir=args.cache_dir,
            device=args.device,
            research=research[standard.id],
            union_baselines=unions[standard.id],
            shortlists=tuple(STAGE1_CONFIGS),
            declared=[entry.datasets for entry in pool_module.POOL],
            dataset_ids=tasks_module.DATASET_IDS,
            on_progress=item_lines(_say),
        )
        out = args.out / standard.id
        report.save(out, pools={"whole pool": None})
        (out / "standard.yaml").write_text(standard.to_yaml())
        summaries[standard.id] = report.summary()
        (out / "recall-at-k.md").write_text(
            "\n".join([f"# recall@K: `{standard.id}`", "", *recall_table(summaries[standard.id])])
        )
        print(f"{standard.id}: {time.time() - t:.0f}s -> {out}", file=sys.stderr, flush=True)
    command = "python benchmarks/offline_benchmark.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    (args.out / "command.txt").write_text(command + "\n")
    rows = pool_module.pool_table(pool_module.POOL)
    setup = {
        "sizes": asdict(sizes),
        "p_schedule": {
            "steps": standards[0].model_embedding.steps,
            "lr_step": standards[0].model_embedding.lr_step,
        },
        "tasks": {
            task.name: {
                "evaluation_pool": len(task.data),
                "train": [len(tr) for tr, _ in task.splits],
                "test": [len(te) for _, te in task.splits],
            }
            for task in tasks
        },
        "splits": "benchmarks/tasks.py: per task an evaluation pool (disjoint from the "
        "specialists' training images; CIFAR-10's outside the probe set), then seeded "
        "stratified train/test splits of it (seeds 0..splits-1); features extracted once "
        "per evaluation pool",
        "intervals": "mean over splits, 95 % percentile bootstrap (hf_stdembed.core.statistics)",
    }
    summary = {
        "setup": setup,
        "pool": rows,
        "standards": {k: {"whole pool": v["mean"]} for k, v in summaries.items()},
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.out / "summary.md").write_text(summary_markdown(summaries, rows, setup) + "\n")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, file=sys.stderr, flush=True)


def summary_markdown(
    summaries: dict[str, dict[str, Any]], pool_rows: list[dict], setup: dict[str, Any]
) -> str:
    """summary.md: per standard, every selector's figures with intervals and ties, the
    recall@K table, links to the plots; then the pool table and the task sizes."""
    from hf_stdembed.evaluation import interval_table, recall_table

    lines = ["# Offline benchmark: summary", ""]
    for standard, summary in summaries.items():
        lines += [
            f"## Standard `{standard}`: {len(summary['pool'])} candidates, "
            f"{summary['splits']} splits per task",
            "",
            *interval_table(summary),
            *recall_table(summary, ks=sorted({1, 2, 3, 5, 10, 15, 20, 30, len(summary["pool"])})),
            f"recall@K for every K = 1..{len(summary['pool'])}: `{standard}/recall-at-k.md`. "
            f"Plots: `{standard}/{standard}-recall-at-k-whole-pool.png` (recall@K), "
            f"`{standard}/{standard}-<task>-accuracy-vs-score.png`; every candidate's accuracy "
            f"per task: `{standard}/report.md`.",
            "",
        ]
    lines += ["## Tasks", "", "| task | evaluation pool | train (per split) | test (per split) |"]
    lines += ["| --- | ---: | --- | --- |"]
    for name, t in setup["tasks"].items():
        train = ", ".join(map(str, sorted(set(t["train"]))))
        test = ", ".join(map(str, sorted(set(t["test"]))))
        lines.append(f"| {name} | {t['evaluation_pool']} | {train} | {test} |")
    lines += ["", f"## Pool ({len(pool_rows)} candidates)", "", _pool_markdown(pool_rows)]
    return "\n".join(lines)


def _pool_markdown(rows: list[dict]) -> str:
    pool_module = _contract("pool")
    if hasattr(pool_module, "table_markdown"):
        return pool_module.table_markdown(rows)
    keys = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(keys) + " |", "| --- " * len(keys) + "|"]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
