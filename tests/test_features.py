"""Tests of hf_stdembed.features: extraction, caching, per-step batches."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import datasets
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from hf_stdembed import _cache
from hf_stdembed.data import ImageDataset, as_image_dataset, select_subset
from hf_stdembed.errors import ModelLoadError
from hf_stdembed.extractors import FeatureExtractor, load_extractor
from hf_stdembed.features import (
    batch_features,
    cache_path,
    default_cache_dir,
    default_device,
    extract_features,
)


def counting(extractor: FeatureExtractor) -> tuple[FeatureExtractor, list[int]]:
    """The extractor with a forward that records each batch size."""
    calls: list[int] = []

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        calls.append(pixels.shape[0])
        return extractor.forward(pixels)

    return dataclasses.replace(extractor, forward=forward), calls


@pytest.fixture
def data(tiny_dataset: datasets.Dataset) -> ImageDataset:
    return as_image_dataset(tiny_dataset, source="memory")


@pytest.fixture
def extractor(tiny_timm_dir: Path) -> FeatureExtractor:
    return load_extractor(f"timm:{tiny_timm_dir}")


def manual_features(extractor: FeatureExtractor, data: ImageDataset) -> torch.Tensor:
    """One image at a time, in eval mode."""
    extractor.module.eval()
    with torch.no_grad():
        rows = [extractor.forward(extractor.transform(row["image"])[None]) for row in data.dataset]
    return torch.cat(rows)


def test_default_device_and_cache_dir(offline_caches: Path) -> None:
    assert default_device() == torch.device("cpu")  # no accelerator in the test environment
    assert default_cache_dir() == offline_caches / "stdembed" / "features"


def test_features_match_manual_forward(extractor: FeatureExtractor, data: ImageDataset) -> None:
    extractor, calls = counting(extractor)
    features = extract_features(extractor, data, batch_size=10)

    assert features.dtype == torch.float32
    assert features.device.type == "cpu"
    assert not torch.is_inference(features)  # usable as input to a trained probe
    assert features.shape == (24, 96)
    assert calls == [10, 10, 4]
    torch.testing.assert_close(features, manual_features(extractor, data), atol=1e-5, rtol=1e-4)


def test_cache_hit_does_no_forward(extractor: FeatureExtractor, data: ImageDataset) -> None:
    first = extract_features(extractor, data)
    path = cache_path(extractor, data)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    assert load_file(path)["features"].shape == (24, 96)

    counted, calls = counting(extractor)
    second = extract_features(counted, data)
    assert calls == []
    assert torch.equal(second, first)


def test_cache_dir_argument(extractor: FeatureExtractor, data: ImageDataset, tmp_path: Path):
    extract_features(extractor, data, cache_dir=tmp_path / "here")
    assert cache_path(extractor, data, cache_dir=tmp_path / "here").is_file()
    assert not default_cache_dir().exists()


def test_cache_invalidates_when_weights_change(
    tiny_timm_dir: Path, data: ImageDataset, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(tiny_timm_dir, tmp_path / "model"))
    before = extract_features(load_extractor(str(folder)), data)
    weights = load_file(folder / "model.safetensors")
    weights["conv1.0.weight"] *= -1.0
    save_file(weights, folder / "model.safetensors")

    changed, calls = counting(load_extractor(str(folder)))
    after = extract_features(changed, data, batch_size=64)
    assert calls == [24]
    assert not torch.allclose(after, before)


@pytest.mark.parametrize(
    "change",
    [
        lambda e, d: (dataclasses.replace(e, preprocessing=e.preprocessing + " "), d),
        lambda e, d: (dataclasses.replace(e, revision="other"), d),
        lambda e, d: (dataclasses.replace(e, name="timm:other"), d),
        lambda e, d: (e, dataclasses.replace(d, fingerprint="other")),
    ],
    ids=["preprocessing", "revision", "name", "dataset"],
)
def test_cache_key_fields(extractor: FeatureExtractor, data: ImageDataset, change) -> None:
    assert cache_path(*change(extractor, data)) != cache_path(extractor, data)


def test_subset_is_cached_apart(extractor: FeatureExtractor, data: ImageDataset) -> None:
    full = extract_features(extractor, data)
    subset = select_subset(data, 5, seed=0)
    rows = subset.dataset._indices.column(0).to_pylist()
    torch.testing.assert_close(extract_features(extractor, subset), full[rows])


def load_file_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file."""
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_corrupt_or_stale_cache_is_recomputed(
    extractor: FeatureExtractor, data: ImageDataset
) -> None:
    expected = extract_features(extractor, data)
    path = cache_path(extractor, data)
    path.write_bytes(b"not a safetensors file")
    counted, calls = counting(extractor)
    torch.testing.assert_close(extract_features(counted, data), expected)
    assert calls
    # a file with the right name but a foreign key or the wrong row count is not trusted
    save_file({"features": expected[:3]}, path, metadata={"key": "{}"})
    calls.clear()
    torch.testing.assert_close(extract_features(counted, data), expected)
    assert calls
    # the right key over the wrong row count is stale too
    key_text = load_file_metadata(path)["key"]
    save_file({"features": expected[:3]}, path, metadata={"key": key_text})
    calls.clear()
    torch.testing.assert_close(extract_features(counted, data), expected)
    assert calls


def test_failed_write_leaves_no_file(
    extractor: FeatureExtractor, data: ImageDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(_cache, "save_file", crash)  # the keyed cache's writer
    with pytest.raises(OSError, match="disk full"):
        extract_features(extractor, data)
    folder = cache_path(extractor, data).parent
    assert list(folder.iterdir()) == []


def test_workers_give_the_same_features(
    extractor: FeatureExtractor, data: ImageDataset, tmp_path: Path
) -> None:
    plain = extract_features(extractor, data, batch_size=7)
    workers = extract_features(
        extractor, data, batch_size=7, num_workers=1, cache_dir=tmp_path / "other"
    )
    torch.testing.assert_close(workers, plain)


def test_grayscale_images_pass_as_stored(extractor: FeatureExtractor, tiny_gray_dataset) -> None:
    seen: list[str] = []
    transform = extractor.transform
    extractor = dataclasses.replace(
        extractor, transform=lambda image: seen.append(image.mode) or transform(image)
    )
    gray = as_image_dataset(tiny_gray_dataset, source="gray")
    assert extract_features(extractor, gray).shape == (12, 96)
    assert set(seen) == {"L"}


def test_batch_features(extractor: FeatureExtractor, data: ImageDataset) -> None:
    full = extract_features(extractor, data)
    counted, calls = counting(extractor)
    indices = torch.tensor([5, 0, 17])
    rows = batch_features(counted, data, indices)
    torch.testing.assert_close(rows, full[indices])
    assert calls == [3]
    assert not torch.is_inference(rows)


def test_forward_with_wrong_shape(extractor: FeatureExtractor, data: ImageDataset) -> None:
    flat = dataclasses.replace(extractor, forward=lambda pixels: pixels.sum(dim=(1, 2, 3)))
    with pytest.raises(ModelLoadError, match=r"forward returned shape \(24,\) for 24 images"):
        extract_features(flat, data)


def test_progress_names_the_model_in_batches_and_the_cli_draws_it(
    extractor: FeatureExtractor,
    data: ImageDataset,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from hf_stdembed.cli._render import progress_bars

    events = []
    extract_features(extractor, data, batch_size=10, cache_dir=tmp_path, on_progress=events.append)
    assert [(e.desc, e.done, e.total, e.unit) for e in events] == [
        (f"features {extractor.name}", done, 3, "batch") for done in range(4)
    ]
    assert capsys.readouterr() == ("", "")  # the library draws nothing
    with progress_bars(quiet=False) as on_progress:
        extract_features(extractor, data, cache_dir=tmp_path / "b", on_progress=on_progress)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"features {extractor.name}" in captured.err
