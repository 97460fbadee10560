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

More candidates of the pool of issue 11 (``benchmarks/pool.py``):

- ``resnet20_stage2`` / ``resnet56_stage2`` (32-d) and ``lenet5_c5`` (120-d): pooled outputs
  of intermediate blocks of the same real weights;
- ``specialist_<task>_w8`` / ``_w16`` (64-d / 128-d): :class:`SpecialistCNN` trained by
  ``benchmarks/train_specialists.py`` on a task's specialist pool, weights committed under
  ``benchmarks/specialists/`` (with ``manifest.json``); gray 32x32 in [0, 1];
- ``resnet20_random``, ``lenet5_random``, ``specialist_random``: seeded random weights.

Use them as ``entrypoint:benchmarks.bench_models:resnet20`` with the repository root on the
Python path. :func:`check_models` runs the correctness checks of issue 4.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
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

    def stage2_features(self, x: torch.Tensor) -> torch.Tensor:
        """The output of the second stage (32 channels, 16x16), global average pooled."""
        out = F.relu(self.bn1(self.conv1(x)))
        return self.layer2(self.layer1(out)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))


_CIFAR_TRANSFORM = _common.EvalTransform(
    crop_size=32, resize_size=32, mean=_common.IMAGENET_MEAN, std=_common.IMAGENET_STD
)


def _cifar_resnet(depth: int, *, stage: int = 3) -> FeatureExtractor:
    """CIFAR ResNet-``depth``: pooled output of ``stage`` 3 (64-d, penultimate) or 2 (32-d)."""
    path = _model_file("cifar_resnet", f"resnet{depth}.safetensors")
    model = CifarResNet((depth - 2) // 6)
    model.load_state_dict(load_file(path), strict=True)
    model.eval()
    suffix, forward, dim = "", model.features, 64
    if stage == 2:
        suffix, forward, dim = "-stage2", model.stage2_features, 32
    return _common.make_extractor(
        name=f"bench/cifar-resnet{depth}{suffix}",
        revision=_common.file_revision(path),
        module=model,
        forward=forward,
        transform=_CIFAR_TRANSFORM,
        metadata={"architecture": f"cifar_resnet{depth}", "num_features": str(dim)},
    )


def resnet20() -> FeatureExtractor:
    return _cifar_resnet(20)


def resnet32() -> FeatureExtractor:
    return _cifar_resnet(32)


def resnet44() -> FeatureExtractor:
    return _cifar_resnet(44)


def resnet56() -> FeatureExtractor:
    return _cifar_resnet(56)


def resnet20_stage2() -> FeatureExtractor:
    """ResNet-20's second stage, pooled (32-d): an intermediate block of a real model."""
    return _cifar_resnet(20, stage=2)


def resnet56_stage2() -> FeatureExtractor:
    """ResNet-56's second stage, pooled (32-d): an intermediate block of a real model."""
    return _cifar_resnet(56, stage=2)


def resnet20_random() -> FeatureExtractor:
    """ResNet-20 with seeded random weights (BN stats fitted to noise): a distractor."""
    model = _common.random_model(lambda: CifarResNet(3), seed=0, image_size=32)
    return _common.make_extractor(
        name="bench/cifar-resnet20.random-seed0",
        revision="random-seed0",
        module=model,
        forward=model.features,
        transform=_CIFAR_TRANSFORM,
        metadata={"architecture": "cifar_resnet20", "num_features": "64", "weights": "random"},
    )


# --- LeNet-5 ------------------------------------------------------------------------------


class LeNet5(nn.Module):
    """LeNet-5 variant with the checkpoint's module names (``convnet.c*``, ``fc.f*``)."""

    def __init__(self) -> None:
        super().__init__()
        self.convnet = nn.ModuleDict(
            {"c1": nn.Conv2d(1, 6, 5), "c3": nn.Conv2d(6, 16, 5), "c5": nn.Conv2d(16, 120, 5)}
        )
        self.fc = nn.ModuleDict({"f6": nn.Linear(120, 84), "f7": nn.Linear(84, 10)})

    def c5_features(self, x: torch.Tensor) -> torch.Tensor:
        """The output of the last convolution (120-d, after ReLU): an intermediate block."""
        c = self.convnet
        x = F.max_pool2d(F.relu(c["c1"](x)), 2)
        x = F.max_pool2d(F.relu(c["c3"](x)), 2)
        return F.relu(c["c5"](x)).flatten(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc["f6"](self.c5_features(x)))

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


def _gray_extractor(
    model: nn.Module,
    *,
    name: str,
    revision: str,
    forward: Callable[[torch.Tensor], torch.Tensor],
    metadata: dict[str, str],
) -> FeatureExtractor:
    transform = GrayTransform(32)
    return FeatureExtractor(
        name=name,
        revision=revision,
        transform=transform,
        forward=forward,
        preprocessing=transform.describe(),
        module=model.eval(),
        metadata={"image_size": "32", **metadata},
    )


def _lenet5(*, c5: bool = False) -> FeatureExtractor:
    path = _model_file("lenet5", "lenet5_mnist.safetensors")
    model = LeNet5()
    model.load_state_dict(load_file(path), strict=True)
    return _gray_extractor(
        model,
        name="bench/lenet5-mnist" + ("-c5" if c5 else ""),
        revision=_common.file_revision(path),
        forward=model.c5_features if c5 else model.features,
        metadata={"architecture": "lenet5", "num_features": "120" if c5 else "84"},
    )


def lenet5() -> FeatureExtractor:
    return _lenet5()


def lenet5_c5() -> FeatureExtractor:
    """LeNet-5's last convolution (120-d): an intermediate block of a real model."""
    return _lenet5(c5=True)


def lenet5_random() -> FeatureExtractor:
    """LeNet-5 with seeded random weights (PyTorch's default init): a distractor."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LeNet5()
    return _gray_extractor(
        model,
        name="bench/lenet5.random-seed0",
        revision="random-seed0",
        forward=model.features,
        metadata={"architecture": "lenet5", "num_features": "84", "weights": "random"},
    )


# --- specialists: small CNNs trained here on a task's specialist pool -----------------------


SPECIALIST_DIR = REPO_ROOT / "benchmarks" / "specialists"
SPECIALIST_TASKS = ("usps", "coil20", "orl", "umist", "palm")
SPECIALIST_WIDTHS = (8, 16)


class SpecialistCNN(nn.Module):
    """4 x (3x3 conv, BN, ReLU, 2x2 max-pool) of ``w, 2w, 4w, 4w`` channels on 32x32 gray,
    flattened (``4w * 2 * 2``), a ``dim``-d ReLU layer (the features), a linear classifier."""

    def __init__(self, num_classes: int, *, width: int = 16, dim: int = 128) -> None:
        super().__init__()
        channels = (1, width, 2 * width, 4 * width, 4 * width)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.body = nn.Sequential(*layers)
        self.embed = nn.Linear(4 * width * 4, dim)
        self.head = nn.Linear(dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.embed(self.body(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def specialist_name(task: str, width: int) -> str:
    """``specialist_<task>_w<width>``: entry point and weight file stem of one specialist."""
    return f"specialist_{task}_w{width}"


def specialist_manifest() -> dict[str, dict]:
    """``benchmarks/specialists/manifest.json``: how each specialist was trained."""
    path = SPECIALIST_DIR / "manifest.json"
    if not path.is_file():
        raise ModelLoadError(
            f"no specialist manifest at {path}; run benchmarks/train_specialists.py",
            spec="specialists",
        )
    return json.loads(path.read_text())


def specialist(task: str, width: int) -> FeatureExtractor:
    """The specialist CNN of ``task`` (committed weights) as a feature extractor."""
    name = specialist_name(task, width)
    entry = specialist_manifest().get(name)
    path = SPECIALIST_DIR / f"{name}.safetensors"
    if entry is None or not path.is_file():
        raise ModelLoadError(
            f"no trained specialist {name} in {SPECIALIST_DIR}; run"
            " benchmarks/train_specialists.py",
            spec=name,
        )
    model = SpecialistCNN(entry["num_classes"], width=entry["width"], dim=entry["dim"])
    model.load_state_dict(load_file(path), strict=True)
    return _gray_extractor(
        model,
        name=f"bench/{name}",
        revision=_common.file_revision(path),
        forward=model.features,
        metadata={
            "architecture": f"specialist_cnn_w{width}",
            "num_features": str(entry["dim"]),
            "trained_on": f"{task} specialist pool (benchmarks/tasks.py)",
        },
    )


def specialist_random() -> FeatureExtractor:
    """A SpecialistCNN (width 16, 128-d) with seeded random weights: a distractor.

    As :func:`hf_stdembed.zoo._common.random_model`, its BatchNorm statistics are those of
    one seeded batch of noise images (uniform in [0, 1], the gray input range).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SpecialistCNN(10, width=16, dim=128)
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, the batch statistics
            m.train()
        with torch.no_grad():
            model.body(torch.rand(16, 1, 32, 32))
    return _gray_extractor(
        model,
        name="bench/specialist-cnn-w16.random-seed0",
        revision="random-seed0",
        forward=model.features,
        metadata={"architecture": "specialist_cnn_w16", "num_features": "128", "weights": "random"},
    )


for _task in SPECIALIST_TASKS:
    for _width in SPECIALIST_WIDTHS:
        _name = specialist_name(_task, _width)
        globals()[_name] = functools.partial(specialist, _task, _width)
        globals()[_name].__name__ = _name

SPECIALIST_ENTRYPOINTS = tuple(
    specialist_name(t, w) for t in SPECIALIST_TASKS for w in SPECIALIST_WIDTHS
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
