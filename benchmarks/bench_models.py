"""Feature-extractor entry points for the real models of the offline benchmark folder.

The weights live in the benchmark folder (never in this repository): ``$HF_STDEMBED_BENCH_DIR``
or, by default, ``../shared/bench`` relative to the repository root. The architectures are
ours. Every entry point takes no argument and returns a
:class:`~hf_stdembed.extractors.FeatureExtractor` of penultimate (pre-classifier) features:

- ``resnet20`` / ``resnet32`` / ``resnet44`` / ``resnet56``: CIFAR ResNets (He et al. 2016,
  option-A shortcuts), 64-d, 32x32 RGB with ImageNet mean/std.
- ``lenet5``: LeNet-5 trained on MNIST, 84-d (after ``fc.f6`` + ReLU), gray 32x32 in [0, 1].
- ``tflite_<stem>``: the 8 TFLite MobileNets through ``ai_edge_litert``, uint8 NHWC input at
  the model's own size; the features are the dequantised tensor that feeds the classifier.

Use them as ``entrypoint:benchmarks.bench_models:resnet20`` with the repository root on the
Python path. :func:`check_models` runs the correctness checks of issue 4.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from torchvision.transforms import InterpolationMode

from hf_stdembed.errors import ModelLoadError
from hf_stdembed.extractors import FeatureExtractor
from hf_stdembed.zoo import _common

BENCH_DIR_ENV = "HF_STDEMBED_BENCH_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent

TFLITE_MODELS = (
    "mobilenet_v1_0.25_128_quant",
    "mobilenet_v1_0.5_160_quant",
    "mobilenet_v1_0.75_192_quant",
    "mobilenet_v1_1.0_224_quant_embedding_extractor",
    "mobilenet_v2_1.0_224_quant",
    "tf2_mobilenet_v2_1.0_224_ptq",
    "mobilenet_v2_1.0_224_inat_bird_quant",
    "mobilenet_v2_1.0_224_inat_insect_quant",
)


def bench_dir() -> Path:
    """The benchmark folder: ``$HF_STDEMBED_BENCH_DIR``, else ``<repo>/../shared/bench``."""
    return Path(os.environ.get(BENCH_DIR_ENV) or REPO_ROOT.parent / "shared" / "bench")


def _model_file(*parts: str) -> Path:
    path = bench_dir().joinpath("models", *parts)
    if not path.is_file():
        raise ModelLoadError(
            f"no model file at {path}; set {BENCH_DIR_ENV} or pass --bench-dir", spec=parts[-1]
        )
    return path


# --- CIFAR ResNets ------------------------------------------------------------------------


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes - in_planes if stride != 1 or in_planes != planes else None
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.pad is not None:  # option A: subsample, zero-pad the new channels
            shortcut = x[:, :, :: self.stride, :: self.stride]
            shortcut = F.pad(shortcut, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet for CIFAR: 3 stages of 16/32/64 channels, ``n`` basic blocks each."""

    def __init__(self, n: int, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(_BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return out.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))


def _cifar_resnet(depth: int) -> FeatureExtractor:
    path = _model_file("cifar_resnet", f"resnet{depth}.safetensors")
    model = CifarResNet((depth - 2) // 6)
    model.load_state_dict(load_file(path), strict=True)
    model.eval()
    transform = _common.EvalTransform(
        crop_size=32, resize_size=32, mean=_common.IMAGENET_MEAN, std=_common.IMAGENET_STD
    )
    return _common.make_extractor(
        name=f"bench/cifar-resnet{depth}",
        revision=_common.file_revision(path),
        module=model,
        forward=model.features,
        transform=transform,
        metadata={"architecture": f"cifar_resnet{depth}", "num_features": "64"},
    )


def resnet20() -> FeatureExtractor:
    return _cifar_resnet(20)


def resnet32() -> FeatureExtractor:
    return _cifar_resnet(32)


def resnet44() -> FeatureExtractor:
    return _cifar_resnet(44)


def resnet56() -> FeatureExtractor:
    return _cifar_resnet(56)


# --- LeNet-5 ------------------------------------------------------------------------------


class LeNet5(nn.Module):
    """LeNet-5 variant with the checkpoint's module names (``convnet.c*``, ``fc.f*``)."""

    def __init__(self) -> None:
        super().__init__()
        self.convnet = nn.ModuleDict(
            {"c1": nn.Conv2d(1, 6, 5), "c3": nn.Conv2d(6, 16, 5), "c5": nn.Conv2d(16, 120, 5)}
        )
        self.fc = nn.ModuleDict({"f6": nn.Linear(120, 84), "f7": nn.Linear(84, 10)})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        c = self.convnet
        x = F.max_pool2d(F.relu(c["c1"](x)), 2)
        x = F.max_pool2d(F.relu(c["c3"](x)), 2)
        x = F.relu(c["c5"](x)).flatten(1)
        return F.relu(self.fc["f6"](x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc["f7"](self.features(x))


class GrayTransform:
    """Gray, resized to ``size`` x ``size`` (bilinear), scaled to [0, 1]: ``(1, H, W)``."""

    def __init__(self, size: int = 32) -> None:
        self.size = size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("L").resize((self.size, self.size), Image.Resampling.BILINEAR)
        return TF.to_tensor(image)

    def describe(self) -> str:
        return f"gray|resize={self.size}x{self.size}:bilinear|scale=1/255"


def lenet5() -> FeatureExtractor:
    path = _model_file("lenet5", "lenet5_mnist.safetensors")
    model = LeNet5()
    model.load_state_dict(load_file(path), strict=True)
    model.eval()
    transform = GrayTransform(32)
    return FeatureExtractor(
        name="bench/lenet5-mnist",
        revision=_common.file_revision(path),
        transform=transform,
        forward=model.features,
        preprocessing=transform.describe(),
        module=model,
        metadata={"architecture": "lenet5", "num_features": "84", "image_size": "32"},
    )


# --- TFLite MobileNets --------------------------------------------------------------------


class Uint8Transform:
    """RGB, resized to ``size`` x ``size`` (bilinear, antialiased), as uint8 ``(H, W, 3)``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        image = TF.resize(
            image, [self.size, self.size], interpolation=InterpolationMode.BILINEAR, antialias=True
        )
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())

    def describe(self) -> str:
        return f"rgb|resize={self.size}x{self.size}:bilinear:antialias|uint8-nhwc"


class TFLiteFeatures:
    """Runs a TFLite classifier image by image and returns the tensor feeding its classifier."""

    def __init__(self, path: Path, *, num_threads: int | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ModelLoadError(
                "the TFLite models need ai-edge-litert: pip install -e '.[bench]'", spec=path.name
            ) from e
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.interpreter = Interpreter(
                model_path=str(path),
                experimental_preserve_all_tensors=True,
                num_threads=num_threads or torch.get_num_threads(),
            )
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.size = int(self.input["shape"][1])
        self.feature = _pooled_tensor(self.interpreter.get_tensor_details(), spec=path.name)
        self.dim = int(self.feature["shape"][-1])
        self.num_parameters = _tflite_parameters(self.interpreter.get_tensor_details())

    def run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(features (D,), classifier output (C,))`` of one uint8 ``(H, W, 3)`` image."""
        self.interpreter.set_tensor(self.input["index"], image[None])
        self.interpreter.invoke()
        return (
            _dequantise(self.interpreter.get_tensor(self.feature["index"]), self.feature),
            _dequantise(self.interpreter.get_tensor(self.output["index"]), self.output),
        )

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        rows = [self.run(img)[0] for img in pixels.cpu().numpy()]
        return torch.from_numpy(np.stack(rows)).float()


def _pooled_tensor(details: list[dict], *, spec: str) -> dict:
    """The global-pool activation ``(1, 1, 1, D)`` (or ``(1, D)``) that feeds the classifier."""
    found = [
        d
        for d in details
        if list(d["shape"][:-1]) in ([1, 1, 1], [1])
        and d["shape"][-1] >= 128
        and any(key in d["name"] for key in ("AvgPool", "GlobalPool"))
    ]
    if not found:
        raise ModelLoadError("no global-pool tensor feeding the classifier", spec=spec)
    return found[-1]


def _tflite_parameters(details: list[dict]) -> int:
    """Sum of the sizes of constant tensors with >= 2 dims (weights): a parameter count."""
    return int(
        sum(
            int(np.prod(d["shape"]))
            for d in details
            if len(d["shape"]) >= 2
            and ("weights" in d["name"] or "Conv2D" in d["name"])
            and d["shape"][0] != 1
        )
    )


def _dequantise(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    values = values.reshape(-1).astype(np.float32)
    return (values - zero) * scale if scale else values


def tflite(stem: str) -> FeatureExtractor:
    """The TFLite model ``<stem>.tflite`` of the benchmark folder as a feature extractor."""
    path = _model_file("tflite", f"{stem}.tflite")
    runner = TFLiteFeatures(path)
    transform = Uint8Transform(runner.size)
    return FeatureExtractor(
        name=f"bench/tflite-{stem}",
        revision=_common.file_revision(path),
        transform=transform,
        forward=runner,
        preprocessing=transform.describe(),
        module=None,
        metadata={
            "runtime": "ai-edge-litert",
            "image_size": str(runner.size),
            "num_features": str(runner.dim),
            "num_parameters": str(runner.num_parameters),
        },
    )


for _stem in TFLITE_MODELS:
    _name = "tflite_" + _stem.replace(".", "_")
    globals()[_name] = functools.partial(tflite, _stem)
    globals()[_name].__name__ = _name

TFLITE_ENTRYPOINTS = tuple("tflite_" + s.replace(".", "_") for s in TFLITE_MODELS)
ENTRYPOINTS = (
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "lenet5",
    *TFLITE_ENTRYPOINTS,
)


# --- correctness checks ---------------------------------------------------------------------


def check_models(num_images: int = 300, agreement_images: int = 48) -> dict[str, float]:
    """The checks of issue 4, on CIFAR-10 test images of the benchmark folder.

    - CIFAR ResNets and LeNet-5's own heads: CIFAR-10 test accuracy of the ResNets (expect
      ~81-83% on these JPEGs); LeNet-5 is an MNIST model, so only its feature shape is checked.
    - TFLite ImageNet classifiers: top-1 agreement (%) with torchvision's MobileNetV2 (224 px)
      on CIFAR images (chance is ~0.1%; 1001-class models have "background" at index 0).

    Returns:
        ``check name -> value`` (accuracies and agreements in %).
    """
    from hf_stdembed.data import load_image_dataset, select_subset
    from hf_stdembed.zoo import mobilenet_v2

    test = load_image_dataset(
        "parquet", data_files=str(bench_dir() / "data" / "cifar10" / "test.parquet"), split="train"
    )
    data = select_subset(test, num_images, seed=0)
    images = data.dataset[data.image_column]
    labels = data.labels()
    results: dict[str, float] = {}
    for depth in (20, 32, 44, 56):
        ex = _cifar_resnet(depth)
        with torch.inference_mode():
            x = torch.stack([ex.transform(im) for im in images])
            pred = ex.module(x).argmax(1)
        results[f"resnet{depth}_cifar10_test_acc"] = 100.0 * float((pred == labels).float().mean())
    ref = mobilenet_v2.pretrained(224)
    few = images[:agreement_images]
    with torch.inference_mode():
        ref_pred = ref.module(torch.stack([ref.transform(im) for im in few])).argmax(1)
    for stem in TFLITE_MODELS:
        if "embedding_extractor" in stem or "inat" in stem:
            continue
        runner = TFLiteFeatures(_model_file("tflite", f"{stem}.tflite"))
        transform = Uint8Transform(runner.size)
        preds = []
        for im in few:
            _, out = runner.run(transform(im).numpy())
            preds.append(int(np.argmax(out)) - (1 if out.shape[0] == 1001 else 0))
        agree = float((torch.tensor(preds) == ref_pred).float().mean())
        results[f"{stem}_top1_agreement_with_torch_mnv2"] = 100.0 * agree
    return results


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) > 1:
        os.environ[BENCH_DIR_ENV] = sys.argv[1]
    print(json.dumps(check_models(), indent=1))
