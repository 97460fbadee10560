"""Tests of hf_stdembed.extractors: specs, timm / transformers / entry point loading, errors."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import Mock

import pytest
import timm
import torch
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors.torch import load_file, save_file
from torchvision.transforms import functional as TF
from transformers import ResNetModel

from hf_stdembed import extractors
from hf_stdembed.errors import ModelLoadError
from hf_stdembed.extractors import (
    FeatureExtractor,
    _transformers_forward,
    load_extractor,
    parse_spec,
    weights_hash,
)

SHA = "0123456789abcdef0123456789abcdef01234567"

ENTRYPOINT_MODULE = """
import torch
from hf_stdembed.extractors import FeatureExtractor

def good():
    return FeatureExtractor(
        name="entrypoint:ep_module:good",
        revision="v1",
        transform=lambda image: torch.zeros(3, 2, 2),
        forward=lambda pixels: pixels.flatten(1),
        preprocessing="zeros",
    )

def wrong_type():
    return 42

def broken():
    raise KeyError("no weights")

not_callable = 3
"""


@pytest.fixture
def entrypoint_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module ``ep_module`` with entry points good and bad."""
    (tmp_path / "ep_module.py").write_text(ENTRYPOINT_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "ep_module"
    sys.modules.pop("ep_module", None)


def _copy(folder: Path, destination: Path) -> Path:
    return Path(shutil.copytree(folder, destination))


# --- specs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("timm:org/name", ("timm", "org/name")),
        ("transformers:./model", ("transformers", "./model")),
        ("entrypoint:pkg.mod:func", ("entrypoint", "pkg.mod:func")),
        ("pkg.mod:func", ("entrypoint", "pkg.mod:func")),
        ("org/name", (None, "org/name")),
        ("/abs/dir", (None, "/abs/dir")),
    ],
)
def test_parse_spec(spec: str, expected: tuple[str | None, str]) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty model spec"),
        ("timm:", "nothing after the 'timm:' prefix"),
        ("not a/valid/spec!", "not a model directory nor a Hub repo id"),
        ("entrypoint:no_colon", "entrypoint:package.module:function"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_extractor(spec)


# --- timm -------------------------------------------------------------------------------


def test_timm_dir_matches_manual_forward(tiny_timm_dir: Path, tiny_dataset) -> None:
    extractor = load_extractor(f"timm:{tiny_timm_dir}")

    assert extractor.name == f"timm:{tiny_timm_dir.resolve()}"
    assert extractor.revision == weights_hash(tiny_timm_dir)
    assert len(extractor.revision) == 16
    assert extractor.metadata["library"] == "timm"
    assert json.loads(extractor.preprocessing)["input_size"] == [3, 32, 32]
    # the transform is the saved config's: resize, center crop 32, ImageNet normalisation
    image = tiny_dataset[0]["image"]
    resized = TF.center_crop(TF.resize(image, 32), [32, 32])
    expected = TF.normalize(TF.to_tensor(resized), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    pixels = extractor.transform(image)
    torch.testing.assert_close(pixels, expected, atol=1e-5, rtol=0)
    # forward gives the pooled pre-logits features of the saved weights
    reference = timm.create_model("test_resnet", pretrained=False, num_classes=5)
    reference.load_state_dict(load_file(tiny_timm_dir / "model.safetensors"))
    reference.eval()
    batch = torch.stack([pixels, extractor.transform(tiny_dataset[1]["image"])])
    with torch.no_grad():
        manual = reference.forward_head(reference.forward_features(batch), pre_logits=True)
        features = extractor.forward(batch)
    assert features.dtype == torch.float32
    assert features.shape == (2, reference.num_features)
    torch.testing.assert_close(features, manual)


def test_forward_runs_in_eval_mode(tiny_timm_dir: Path) -> None:
    extractor = load_extractor(str(tiny_timm_dir))
    extractor.module.train()
    batch = torch.randn(2, 3, 32, 32)
    first = extractor.forward(batch)
    assert not extractor.module.training
    torch.testing.assert_close(extractor.forward(batch), first)  # batch norm stats untouched


def test_timm_grayscale_image_is_converted(tiny_timm_dir: Path, tiny_gray_dataset) -> None:
    extractor = load_extractor(f"timm:{tiny_timm_dir}")
    assert extractor.transform(tiny_gray_dataset[0]["image"]).shape == (3, 32, 32)


def test_weights_hash_changes_with_weights(tiny_timm_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_timm_dir, tmp_path / "model")
    before = load_extractor(str(folder)).revision
    weights = load_file(folder / "model.safetensors")
    weights["conv1.0.weight"] += 1.0
    save_file(weights, folder / "model.safetensors")
    assert load_extractor(str(folder)).revision != before


def test_unknown_timm_architecture(tiny_timm_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_timm_dir, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["architecture"] = "resnet_from_the_future"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="no architecture 'resnet_from_the_future'.*upgrade"):
        load_extractor(f"timm:{folder}")


def test_timm_hub_repo_resolves_commit(tiny_timm_dir: Path, fake_hub) -> None:
    fake_hub("org/tiny-timm", tiny_timm_dir, sha=SHA)
    for spec in ("timm:org/tiny-timm", "org/tiny-timm"):
        extractor = load_extractor(spec)
        assert extractor.name == "timm:org/tiny-timm"
        assert extractor.revision == SHA
        assert extractor.forward(torch.randn(1, 3, 32, 32)).shape == (1, 96)


# --- transformers -----------------------------------------------------------------------


def test_transformers_dir_matches_manual_forward(tiny_transformers_dir: Path, tiny_dataset) -> None:
    from transformers import AutoImageProcessor

    extractor = load_extractor(f"transformers:{tiny_transformers_dir}")

    assert extractor.revision == weights_hash(tiny_transformers_dir)
    assert extractor.metadata["library"] == "transformers"
    processor = AutoImageProcessor.from_pretrained(tiny_transformers_dir)
    assert json.loads(extractor.preprocessing) == json.loads(processor.to_json_string())
    images = [tiny_dataset[i]["image"] for i in range(3)]
    pixels = torch.stack([extractor.transform(image) for image in images])
    torch.testing.assert_close(
        pixels, processor(images=images, return_tensors="pt")["pixel_values"]
    )
    reference = ResNetModel.from_pretrained(tiny_transformers_dir).eval()
    with torch.no_grad():
        manual = reference(pixel_values=pixels).pooler_output.flatten(1)
        features = extractor.forward(pixels)
    assert features.shape == (3, 16)
    torch.testing.assert_close(features, manual)


def test_transformers_grayscale_image_is_converted(tiny_transformers_dir: Path, tiny_gray_dataset):
    extractor = load_extractor(f"transformers:{tiny_transformers_dir}")
    assert extractor.transform(tiny_gray_dataset[0]["image"]).shape == (3, 32, 32)


def test_transformers_hub_repo_resolves_commit(tiny_transformers_dir: Path, fake_hub) -> None:
    fake_hub("org/tiny-resnet", tiny_transformers_dir, sha=SHA)
    extractor = load_extractor("org/tiny-resnet")
    assert extractor.name == "transformers:org/tiny-resnet"
    assert extractor.revision == SHA
    assert extractor.metadata["library"] == "transformers"


def test_transformers_untrained_pooler_is_not_used(tmp_path: Path) -> None:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=32,
        patch_size=8,
    )
    ViTModel(config, add_pooling_layer=False).save_pretrained(tmp_path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)

    extractor = load_extractor(str(tmp_path))
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        hidden = extractor.module(pixel_values=pixels).last_hidden_state
        torch.testing.assert_close(extractor.forward(pixels), hidden.mean(1))
    assert extractor.metadata["pooling"] == "mean"


def test_transformers_incomplete_checkpoint(tiny_transformers_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_transformers_dir, tmp_path / "model")
    weights = load_file(folder / "model.safetensors")
    dropped = sorted(key for key in weights if "encoder" in key)[0]
    del weights[dropped]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=f"lacks 1 weights of ResNetModel \\({dropped}"):
        load_extractor(str(folder))


@pytest.mark.parametrize(
    ("hidden", "expected"),
    [
        (torch.arange(24.0).reshape(2, 3, 4), torch.arange(24.0).reshape(2, 3, 4).mean(1)),
        (torch.ones(2, 5, 3, 3), torch.ones(2, 5)),
    ],
)
def test_transformers_forward_mean_pools_without_pooler(hidden, expected) -> None:
    class NoPooler(torch.nn.Module):
        def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
            return SimpleNamespace(last_hidden_state=hidden, pooler_output=None)

    torch.testing.assert_close(_transformers_forward(NoPooler(), torch.zeros(2, 3, 4, 4)), expected)


# --- local directory errors -------------------------------------------------------------


def test_unknown_directory_format(tiny_timm_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_timm_dir, tmp_path / "model")
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ModelLoadError, match="prefix the spec with 'timm:' or 'transformers:'"):
        load_extractor(str(folder))


def test_prefix_must_match_directory(tiny_timm_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="describes a timm model; use the 'timm:' prefix"):
        load_extractor(f"transformers:{tiny_timm_dir}")
    folder = _copy(tiny_timm_dir, tmp_path / "model")
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ModelLoadError, match="it is not a timm model directory"):
        load_extractor(f"timm:{folder}")


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_extractor(str(tmp_path))


def test_directory_without_weights(tiny_timm_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_timm_dir, tmp_path / "model")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no weight file"):
        load_extractor(str(folder))


def test_revision_refused_for_directory(tiny_timm_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="revisions apply to Hub repos"):
        load_extractor(str(tiny_timm_dir), revision="main")


def test_missing_hub_repo_offline() -> None:
    with pytest.raises(ModelLoadError, match="not in the local Hub cache") as info:
        load_extractor("timm:org/not-downloaded")
    assert info.value.spec == "timm:org/not-downloaded"
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (GatedRepoError("gated", response=Mock()), "the repo is gated: accept its conditions"),
        (RepositoryNotFoundError("404", response=Mock()), "no such Hub repo .*pass a token"),
        (RevisionNotFoundError("404", response=Mock()), "revision not found"),
        (EntryNotFoundError("404"), "a file is missing from the repo"),
        (HfHubHTTPError("500", response=Mock()), "Hub request failed: 500"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_hub_errors_say_how_to_fix(
    monkeypatch: pytest.MonkeyPatch, error: Exception, message: str
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(extractors, "hf_hub_download", fail)
    with pytest.raises(ModelLoadError, match=message) as info:
        load_extractor("org/name")
    assert info.value.__cause__ is error


# --- entry points -----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["entrypoint:", ""])
def test_entrypoint_returns_extractor(entrypoint_module: str, prefix: str) -> None:
    extractor = load_extractor(f"{prefix}{entrypoint_module}:good")
    assert isinstance(extractor, FeatureExtractor)
    assert extractor.revision == "v1"


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("wrong_type", "entry point returned int, expected a"),
        ("broken", "entry point raised KeyError"),
        ("missing", "has no function 'missing'"),
        ("not_callable", "has no function 'not_callable'"),
    ],
)
def test_entrypoint_errors(entrypoint_module: str, function: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_extractor(f"entrypoint:{entrypoint_module}:{function}")


def test_entrypoint_missing_module() -> None:
    with pytest.raises(
        ModelLoadError, match="cannot import module 'no_such_module_xyz.sub'"
    ) as info:
        load_extractor("no_such_module_xyz.sub:make")
    assert isinstance(info.value.__cause__, ImportError)
