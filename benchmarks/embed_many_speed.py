"""embed-many's speed, each figure a ratio measured in one run on this machine.

1. Models per hour: the same pool through :func:`hf_stdembed.embed_many.embed_many` in-process
   (``--no-ray``) and on a local Ray (``ray.init(num_cpus=2)``), each from a cold feature
   cache; the two runs must give the same vectors.
2. The baseline forward passes saved by sharing the baseline's probe features.
3. The extractor's images/s (``features.extract_features``, decoding included, cold cache)
   against a bare forward of the same model on the same batches decoded beforehand.

The pool is tiny and offline: timm ``test_resnet`` models (as tests/conftest.py makes them)
put in a temporary Hub cache as ``bench/m<i>``, a random-image parquet probe; the extractor
figure uses the zoo's MobileNetV2 (random weights, 128 px) on the same probe.

    python benchmarks/embed_many_speed.py --models 4 --probe 256 --steps 200
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path


def hub_env(root: Path) -> None:
    """Every cache under ``root``, the Hub offline (before huggingface_hub is imported)."""
    home = root / "hf_home"
    os.environ.update(
        {
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(home / "hub"),
            "HF_DATASETS_CACHE": str(home / "datasets"),
            "HF_STDEMBED_CACHE": str(home / "features"),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
        }
    )


def timm_folder(folder: Path, seed: int) -> Path:
    """A timm ``test_resnet`` (32x32 input) saved in timm's Hub format."""
    import timm
    import torch
    from timm.models import save_for_hf

    torch.manual_seed(seed)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=5)
    data_config = {
        "input_size": (3, 32, 32),
        "crop_pct": 1.0,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    }
    folder.mkdir(parents=True)
    save_for_hf(model, str(folder), safe_serialization=True, data_config=data_config)
    return folder


def cached_repo(hub_cache: Path, repo_id: str, files: Path) -> str:
    """Puts a model folder in the Hub cache as ``main``; returns its (made-up) commit."""
    sha = hashlib.sha1(repo_id.encode()).hexdigest()
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(files, repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    return sha


def probe_parquet(path: Path, count: int, size: int) -> Path:
    """``count`` random RGB images of about ``size`` px, PNG-encoded, 3 classes."""
    import datasets
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (size + i % 5, size + i % 3, 3), dtype=np.uint8))
        for i in range(count)
    ]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])}
    )
    data = {"image": images, "label": [i % 3 for i in range(count)]}
    datasets.Dataset.from_dict(data, features=features).to_parquet(str(path))
    return path


def standard_file(root: Path, baseline: Path, probe: Path, steps: int) -> Path:
    import yaml

    from hf_stdembed.extractors import load_extractor

    extractor = load_extractor(f"timm:{baseline}")
    data = {
        "id": "bench-embed-many",
        "baseline": {
            "model": f"timm:{baseline}",
            "revision": extractor.revision,
            "dim": int(extractor.module.num_features),
        },
        "probe": {"dataset": "parquet", "split": "train", "data_files": [str(probe)]},
        "model_embedding": {"steps": steps, "lr_step": max(1, steps // 4), "batch_size": 64},
    }
    path = root / "standard.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_pool(root: Path, name: str, standard, jobs, **options) -> tuple[float, object, dict]:
    import numpy as np

    from hf_stdembed.embed_many import embed_many
    from hf_stdembed.index import EmbeddingIndex

    with EmbeddingIndex.open(root / f"index-{name}") as index:
        started = time.perf_counter()
        report = embed_many(
            jobs,
            standard,
            index,
            computed_by="bench",
            cache_dir=root / f"features-{name}",
            **options,
        )
        seconds = time.perf_counter() - started
        rows, matrix = index.snapshot(standard.hash)
        vectors = {r.repo_id: np.array(matrix[i]) for i, r in enumerate(rows)}
    if report.failed:
        sys.exit(f"{name}: failed {report.failed}")
    return seconds, report, vectors


def images_per_second(probe, batch_size: int, workers: list[int], root: Path) -> list[str]:
    """Extractor (decode + forward, cold cache) against a bare forward on decoded batches."""
    import torch

    from hf_stdembed.features import _batches, extract_features
    from hf_stdembed.zoo.mobilenet_v2 import random_init_128

    extractor = random_init_128()
    extractor.module.eval()
    decoded = list(_batches(extractor, probe, batch_size=batch_size, num_workers=0))
    n = len(probe)

    def bare_rate() -> tuple[float, torch.Tensor]:
        with torch.inference_mode():
            started = time.perf_counter()
            out = torch.cat([extractor.forward(pixels).float() for pixels in decoded])
            return n / (time.perf_counter() - started), out

    with torch.inference_mode():
        extractor.forward(decoded[0])  # warm-up (allocator, kernels)
    lines = []
    for num_workers in workers:
        before, bare = bare_rate()
        started = time.perf_counter()
        features = extract_features(
            extractor,
            probe,
            batch_size=batch_size,
            device="cpu",
            cache_dir=root / f"features-extractor-{num_workers}",  # cold: decode + forward
            num_workers=num_workers,
        )
        rate = n / (time.perf_counter() - started)
        after, _ = bare_rate()
        base = (before + after) / 2  # the bare forward just before and just after (load drifts)
        same = torch.allclose(features, bare, atol=1e-5)
        lines.append(
            f"extract_features, num_workers={num_workers}: {rate:.1f} images/s; bare forward on "
            f"decoded batches {before:.1f} before, {after:.1f} after; ratio {rate / base:.2f} "
            f"(target >= 0.9); same features: {same}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--probe", type=int, default=256, help="probe images")
    parser.add_argument("--image-size", type=int, default=64, help="stored image size, px")
    parser.add_argument("--steps", type=int, default=200, help="P's optimisation steps")
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="embed-many-bench-"))
    hub_env(root)
    import torch

    from hf_stdembed.embed_many import ModelJob
    from hf_stdembed.pipeline import load_probe
    from hf_stdembed.standards import get_standard

    hub_cache = Path(os.environ["HF_HUB_CACHE"])
    jobs = []
    for i in range(args.models):
        repo = f"bench/m{i}"
        sha = cached_repo(hub_cache, repo, timm_folder(root / "folders" / repo, seed=20 + i))
        jobs.append(ModelJob(repo, f"timm:{repo}", sha))
    probe_path = probe_parquet(root / "probe.parquet", args.probe, args.image_size)
    standard = get_standard(
        standard_file(root, timm_folder(root / "baseline", seed=0), probe_path, args.steps)
    )

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads in the driver")
    print(
        f"pool: {args.models} timm test_resnet models (32 px), probe {args.probe} images of "
        f"~{args.image_size} px, P {args.steps} steps of 64"
    )

    seq_s, seq, seq_vectors = run_pool(root, "seq", standard, jobs, use_ray=False, device="cpu")
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - started
    try:
        ray_s, on_ray, ray_vectors = run_pool(root, "ray", standard, jobs, use_ray=True)
    finally:
        ray.shutdown()
    same = seq_vectors.keys() == ray_vectors.keys() and all(
        (seq_vectors[k] == ray_vectors[k]).all() for k in seq_vectors
    )
    per_hour = args.models * 3600
    print(f"sequential (--no-ray): {seq_s:.1f} s, {per_hour / seq_s:.0f} models/hour")
    print(
        f"Ray ({on_ray.executor}): {ray_s:.1f} s, {per_hour / ray_s:.0f} models/hour "
        f"(+{ray_start:.1f} s to start Ray, not counted)"
    )
    print(f"Ray / sequential models per hour: {seq_s / ray_s:.2f}; same vectors: {same}")
    probe = load_probe(standard)
    shared = len(probe.dataset)
    print(
        f"baseline forward passes saved: {seq.baseline_passes_saved} images "
        f"({args.models} models x {shared} probe images run once instead of {args.models} times)"
    )
    for line in images_per_second(probe, 64, args.workers, root):
        print(line)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
