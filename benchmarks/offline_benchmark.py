"""The offline benchmark of issue 4: does selection pick good models on real models and data?

    python benchmarks/offline_benchmark.py --bench-dir ../shared/bench --out benchmarks/results

Pool: the 13 real models of the benchmark folder (:mod:`bench_models`), torchvision's
MobileNetV2 and EfficientNet-Lite0 from their PyPI packages (128 px), and both randomly
initialised (known-bad distractors). Standards: each of the two zoo models as baseline, probe
= a seeded subset of CIFAR-10 train. Tasks: CIFAR-10, USPS, COIL-20, ORL, UMIST, Palm.
Every feature goes through the on-disk cache (so do P masks, linear probes, LogME and Q), so
a re-run costs no forward pass.

P runs at the paper's schedule (4,000 steps, ``--p-steps`` to cut it). The probe set is 5,000
CIFAR-10 train images (``--probe``): several times the baseline's 1,280 features, so that the
affine maps of P cannot interpolate the probe set; the tasks are seeded subsets cut to fit 2
CPU cores (:class:`Sizes`; ``benchmarks/results/README.md`` says what it costs). Run it
from the repository root: the dataset fingerprints that key the caches include the data
file paths, so keep ``--bench-dir`` the same between runs that should share caches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from hf_stdembed.data import (  # noqa: E402
    ImageDataset,
    load_image_dataset,
    select_subset,
    stratified_split,
)
from hf_stdembed.evaluation import FEATURE_TRANSFORMS  # noqa: E402

ZOO = (
    "entrypoint:hf_stdembed.zoo.mobilenet_v2:pretrained_128",
    "entrypoint:hf_stdembed.zoo.efficientnet_lite:pretrained_128",
)
DISTRACTORS = (
    "entrypoint:hf_stdembed.zoo.mobilenet_v2:random_init_128",
    "entrypoint:hf_stdembed.zoo.efficientnet_lite:random_init_128",
)


def bench_pool() -> list[str]:
    from benchmarks import bench_models

    return [f"entrypoint:benchmarks.bench_models:{e}" for e in bench_models.ENTRYPOINTS]


def imagenet_family() -> list[str]:
    from benchmarks import bench_models

    return [
        *ZOO,
        *(f"entrypoint:benchmarks.bench_models:{e}" for e in bench_models.TFLITE_ENTRYPOINTS),
    ]


@dataclass(frozen=True)
class Sizes:
    """How many images of each dataset the run uses (CPU time decides, see the README)."""

    probe: int = 5000  # CIFAR-10 train subset: the probe set D of both standards
    cifar_train: int = 500  # CIFAR-10 train subset: the CIFAR-10 task's train split
    cifar_test: int = 300  # stratified subset of CIFAR-10 test
    fractions: tuple[tuple[str, float], ...] = (
        ("usps", 0.2),
        ("coil20", 0.25),
        ("orl", 1.0),
        ("umist", 0.5),
        ("palm", 0.3),
    )
    test_fraction: float = 0.3
    seed: int = 0


def _parquet(path: Path, source: str) -> ImageDataset:
    return load_image_dataset("parquet", data_files=str(path), split="train")


def _stratified_subset(ds: ImageDataset, fraction: float, seed: int) -> ImageDataset:
    return ds if fraction >= 1.0 else stratified_split(ds, test_fraction=fraction, seed=seed)[1]


def probe_set(bench_dir: Path, sizes: Sizes) -> ImageDataset:
    train = _parquet(bench_dir / "data" / "cifar10" / "train.parquet", "cifar10-train")
    return select_subset(train, sizes.probe, seed=sizes.seed)


def cifar_train_set(bench_dir: Path, sizes: Sizes) -> ImageDataset:
    train = _parquet(bench_dir / "data" / "cifar10" / "train.parquet", "cifar10-train")
    return select_subset(train, sizes.cifar_train, seed=sizes.seed)


def task_sets(
    bench_dir: Path, sizes: Sizes, names: list[str] | None = None
) -> dict[str, tuple[ImageDataset, ImageDataset]]:
    """``name -> (train, test)`` for every task (seeded, stratified)."""
    tasks: dict[str, tuple[ImageDataset, ImageDataset]] = {}
    data = bench_dir / "data"
    if names is None or "cifar10" in names:
        test = _parquet(data / "cifar10" / "test.parquet", "cifar10-test")
        test = _stratified_subset(test, sizes.cifar_test / len(test), sizes.seed)
        tasks["cifar10"] = (cifar_train_set(bench_dir, sizes), test)
    for name, fraction in sizes.fractions:
        if names is not None and name not in names:
            continue
        ds = _stratified_subset(_parquet(data / f"{name}.parquet", name), fraction, sizes.seed)
        tasks[name] = stratified_split(ds, test_fraction=sizes.test_fraction, seed=sizes.seed)
    return tasks


def extract_all(pool: list[str], datasets: list[tuple[str, ImageDataset]], cache_dir: Path) -> None:
    """Warm the feature cache, dataset by dataset (so a partial run gives whole tasks)."""
    from hf_stdembed.extractors import load_extractor
    from hf_stdembed.features import extract_features

    extractors = {spec: load_extractor(spec) for spec in pool}
    for name, ds in datasets:
        for spec, extractor in extractors.items():
            t = time.time()
            x = extract_features(extractor, ds, cache_dir=cache_dir, progress=False)
            short = spec.rsplit(":", 1)[-1]
            print(
                f"{name:14s} {short:48s} {tuple(x.shape)} {time.time() - t:6.1f}s",
                file=sys.stderr,
                flush=True,
            )


BASELINES = {
    "mobilenetv2": ZOO[0],
    "efficientnet-lite0": ZOO[1],
}


def make_standard(name: str, bench_dir: Path, sizes: Sizes, p_steps: int | None = None):
    """A standard: a zoo baseline (128 px), probe = seeded CIFAR-10 train subset."""
    schedule = {"steps": p_steps, "lr_step": p_steps // 4} if p_steps else {}
    from hf_stdembed.core import ModelEmbeddingConfig
    from hf_stdembed.standards import BaselineSpec, ProbeSpec, Standard

    return Standard(
        id=f"bench-{name}-cifar10-{sizes.probe}" + (f"-p{p_steps}" if p_steps else ""),
        description=f"Offline benchmark: {name} (128 px) over {sizes.probe} CIFAR-10 train images.",
        baseline=BaselineSpec(model=BASELINES[name], revision=None, dim=1280),
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
    """Runs P for every candidate (raw and centred) into the cache, printing timings."""
    from hf_stdembed.evaluation import model_embedding
    from hf_stdembed.extractors import load_extractor
    from hf_stdembed.features import extract_features
    from hf_stdembed.pipeline import load_baseline, load_probe

    probe = load_probe(standard)
    base = extract_features(load_baseline(standard), probe, cache_dir=cache_dir, progress=False)
    for spec in pool:
        extractor = load_extractor(spec)
        cand = extract_features(extractor, probe, cache_dir=cache_dir, progress=False)
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
    parser.add_argument("--standards", nargs="*", default=list(BASELINES), choices=list(BASELINES))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--extract-only", action="store_true", help="only warm the caches")
    parser.add_argument("--extract-part", choices=("zoo", "bench"), default=None)
    parser.add_argument("--p-only", action="store_true", help="only run P into the cache")
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
        "--p-steps",
        type=int,
        default=None,
        help="P steps, lr/10 every steps/4 (default: the paper's 4000, lr/10 every 1000)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ["HF_STDEMBED_BENCH_DIR"] = str(args.bench_dir.resolve())
    from hf_stdembed.evaluation import DEFAULT_VARIANTS, TaskSpec, evaluate

    sizes = Sizes(probe=args.probe)
    pool = [*ZOO, *bench_pool(), *DISTRACTORS]
    standards = [
        make_standard(name, args.bench_dir, sizes, args.p_steps) for name in args.standards
    ]
    if args.p_only:
        for standard in standards:
            variants = [v for v in DEFAULT_VARIANTS if v.features in args.features]
            precompute_p(pool, standard, args.cache_dir, variants)
        return
    tasks = task_sets(args.bench_dir, sizes, args.tasks)
    if args.extract_only:
        order = [("probe", probe_set(args.bench_dir, sizes))]
        for name, (train, test) in tasks.items():
            order.append((f"{name}-train", train))
            order.append((f"{name}-test", test))
        part = {"zoo": [*ZOO, *DISTRACTORS], "bench": bench_pool()}.get(args.extract_part, pool)
        extract_all(part, order, args.cache_dir)
        return
    specs = [TaskSpec(name, train, test) for name, (train, test) in tasks.items()]
    pools = {"whole pool": None, "ImageNet family": imagenet_family()}
    args.out.mkdir(parents=True, exist_ok=True)
    summaries = {}
    for standard in standards:
        t = time.time()
        variants = tuple(v for v in DEFAULT_VARIANTS if v.features in args.features)
        report = evaluate(pool, standard, specs, variants=variants, cache_dir=args.cache_dir)
        out = args.out / standard.id
        report.save(out, pools=pools)
        (out / "standard.yaml").write_text(standard.to_yaml())
        summaries[standard.id] = {k: report.summary(v)["mean"] for k, v in pools.items()}
        print(f"{standard.id}: {time.time() - t:.0f}s -> {out}", file=sys.stderr, flush=True)
    command = "python benchmarks/offline_benchmark.py " + " ".join(argv or sys.argv[1:])
    (args.out / "command.txt").write_text(command + "\n")
    setup = {
        "sizes": asdict(sizes),
        "p_schedule": {
            "steps": standards[0].model_embedding.steps,
            "lr_step": standards[0].model_embedding.lr_step,
        },
        "tasks": {t.name: {"train": len(t.train), "test": len(t.test)} for t in specs},
        "splits": "stratified_split(test_fraction, seed) of hf_stdembed.data; CIFAR-10 train "
        "split = the first cifar_train images of the probe draw (a subset of the probe set), "
        "test split = stratified subset of CIFAR-10 test",
    }
    summary = {"setup": setup, "standards": summaries}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.out / "summary.md").write_text(summary_table(summaries) + "\n")


def summary_table(summaries: dict[str, dict[str, dict[str, dict[str, float]]]]) -> str:
    """Markdown: per standard, pool and selector, the mean and worst gaps over the tasks."""
    lines = [
        "| standard | pool | selector | top-1 | top-3 | top-5 | worst top-1 | worst top-3 "
        "| mean wτ | mean τ | models forwarded |",
        "| --- " * 11 + "|",
    ]
    for standard, pools in summaries.items():
        for pool, selectors in pools.items():
            for name, m in selectors.items():
                cells = [m["top1"], m["top3"], m["top5"], m["max_top1"], m["max_top3"]]
                cells += [m["weighted_tau"], m["kendall_tau"]]
                lines.append(
                    f"| {standard} | {pool} | {name} | "
                    + " | ".join(f"{c:.2f}" for c in cells)
                    + f" | {m['forward_models']:.0f} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
