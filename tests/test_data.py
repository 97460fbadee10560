"""Tests of hf_stdembed.data: loading, column detection, subsets and stratified splits."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
import torch

from hf_stdembed.data import (
    ImageDataset,
    as_image_dataset,
    load_image_dataset,
    select_subset,
    stratified_split,
)
from hf_stdembed.errors import DatasetLoadError


@pytest.fixture
def parquet_folder(tiny_parquet: Path, tmp_path: Path) -> Path:
    """A folder with ``train.parquet`` and ``test.parquet``."""
    folder = tmp_path / "parquet_folder"
    folder.mkdir()
    for split in ("train", "test"):
        (folder / f"{split}.parquet").write_bytes(tiny_parquet.read_bytes())
    return folder


@pytest.fixture
def labelled(tiny_dataset: datasets.Dataset) -> ImageDataset:
    return as_image_dataset(tiny_dataset, source="memory")


# --- loading ----------------------------------------------------------------------------


def test_parquet_file(tiny_parquet: Path) -> None:
    data = load_image_dataset(str(tiny_parquet))
    assert (data.image_column, data.label_column, data.num_classes) == ("image", "label", 3)
    assert len(data) == 24
    assert data.labels().tolist() == [i % 3 for i in range(24)]
    assert data.fingerprint == load_image_dataset(str(tiny_parquet)).fingerprint


def test_parquet_builder_with_data_files(tiny_parquet: Path) -> None:
    data = load_image_dataset("parquet", data_files=str(tiny_parquet))
    assert (len(data), data.num_classes) == (24, 3)


def test_folder_splits(parquet_folder: Path) -> None:
    train = load_image_dataset(str(parquet_folder))
    test = load_image_dataset(str(parquet_folder), split="test")
    assert len(train) == len(test) == 24
    assert train.fingerprint != test.fingerprint


def test_missing_split_lists_available(parquet_folder: Path) -> None:
    with pytest.raises(DatasetLoadError, match=r"no split 'validation'.*train.*test"):
        load_image_dataset(str(parquet_folder), split="validation")


def test_imagefolder(tiny_imagefolder: Path) -> None:
    data = load_image_dataset(str(tiny_imagefolder))
    assert (len(data), data.num_classes, data.label_column) == (9, 3, "label")
    files = sorted(str(p) for p in tiny_imagefolder.rglob("*.png"))[:4]
    picked = load_image_dataset("imagefolder", data_files=files)
    assert len(picked) == 4


def test_missing_dataset_offline() -> None:
    with pytest.raises(DatasetLoadError, match="cannot be reached and the dataset is not cached"):
        load_image_dataset("org/not-downloaded")


def test_single_file_must_be_parquet(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetLoadError, match="must be .parquet"):
        load_image_dataset(str(tmp_path / "data.csv"))


# --- column detection -------------------------------------------------------------------


def _with_label(dataset: datasets.Dataset, name: str, feature: datasets.Value, values) -> object:
    return dataset.remove_columns("label").add_column(name, values, feature=feature)


def test_integer_label_named_target(tiny_dataset: datasets.Dataset) -> None:
    values = [i % 4 for i in range(len(tiny_dataset))]
    dataset = _with_label(tiny_dataset, "target", datasets.Value("int64"), values)
    data = as_image_dataset(dataset, source="memory")
    assert (data.label_column, data.num_classes) == ("target", 4)


def test_string_label_override_is_encoded(tiny_dataset: datasets.Dataset) -> None:
    values = ["odd" if i % 2 else "even" for i in range(len(tiny_dataset))]
    dataset = _with_label(tiny_dataset, "kind", datasets.Value("string"), values)
    data = as_image_dataset(dataset, source="memory", label_column="kind")
    assert data.num_classes == 2
    assert data.labels().tolist() == [i % 2 for i in range(len(tiny_dataset))]


def test_overrides_win(tiny_dataset: datasets.Dataset) -> None:
    dataset = tiny_dataset.add_column("other", [0] * len(tiny_dataset))
    raw = tiny_dataset.cast_column("image", datasets.Image(decode=False))["image"]
    dataset = dataset.add_column("picture", list(raw), feature=datasets.Image())
    data = as_image_dataset(dataset, source="memory", image_column="picture", label_column="other")
    assert (data.image_column, data.label_column, data.num_classes) == ("picture", "other", 1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"image_column": "img"},
            r"no column 'img'; columns: image \(Image\), label \(ClassLabel\)",
        ),
        ({"label_column": "fine"}, r"no column 'fine'; columns: image \(Image\)"),
        ({"label_column": "image"}, r"column 'image' is .* not class labels"),
        ({"image_column": "label"}, r"column 'label' is .* not an image"),
    ],
)
def test_bad_overrides(tiny_parquet: Path, overrides: dict[str, str], message: str) -> None:
    with pytest.raises(DatasetLoadError, match=message):
        load_image_dataset(str(tiny_parquet), **overrides)


def test_unlabelled(tiny_dataset: datasets.Dataset) -> None:
    dataset = tiny_dataset.remove_columns("label")
    with pytest.raises(DatasetLoadError, match="no label column found.*columns: image"):
        as_image_dataset(dataset, source="memory")
    data = as_image_dataset(dataset, source="memory", require_labels=False)
    assert (data.label_column, data.num_classes) == (None, None)
    with pytest.raises(DatasetLoadError, match="no label column"):
        data.labels()


def test_negative_labels_refused(tiny_dataset: datasets.Dataset) -> None:
    values = [-1] * len(tiny_dataset)
    dataset = _with_label(tiny_dataset, "label", datasets.Value("int64"), values)
    with pytest.raises(DatasetLoadError, match="negative labels"):
        as_image_dataset(dataset, source="memory")


def test_no_image_column() -> None:
    dataset = datasets.Dataset.from_dict({"label": [0, 1]})
    with pytest.raises(DatasetLoadError, match="no image column found"):
        as_image_dataset(dataset, source="memory")


# --- subsets and splits -----------------------------------------------------------------


def test_subset_is_seeded_and_sorted(labelled: ImageDataset) -> None:
    first = select_subset(labelled, 10, seed=3)
    again = select_subset(labelled, 10, seed=3)
    other = select_subset(labelled, 10, seed=4)

    rows = first.dataset._indices.column(0).to_pylist()
    assert len(first) == 10 and rows == sorted(rows)
    assert rows == again.dataset._indices.column(0).to_pylist()
    assert first.fingerprint == again.fingerprint
    assert rows != other.dataset._indices.column(0).to_pylist()
    assert len({labelled.fingerprint, first.fingerprint, other.fingerprint}) == 3
    assert first.num_classes == labelled.num_classes


@pytest.mark.parametrize("count", [None, 24, 100])
def test_subset_keeps_all(labelled: ImageDataset, count: int | None) -> None:
    assert select_subset(labelled, count, seed=0) is labelled


def test_subset_refuses_zero(labelled: ImageDataset) -> None:
    with pytest.raises(ValueError, match="Invalid num_samples value: 0"):
        select_subset(labelled, 0, seed=0)


def test_stratified_split(labelled: ImageDataset) -> None:
    train, test = stratified_split(labelled, test_fraction=0.25, seed=0)

    assert (len(train), len(test)) == (18, 6)
    assert set(train.labels().tolist()) == set(test.labels().tolist()) == {0, 1, 2}
    assert torch.bincount(test.labels()).tolist() == [2, 2, 2]
    train_rows = train.dataset._indices.column(0).to_pylist()
    test_rows = test.dataset._indices.column(0).to_pylist()
    assert sorted(train_rows + test_rows) == list(range(24))
    assert train_rows == sorted(train_rows)
    again, _ = stratified_split(labelled, test_fraction=0.25, seed=0)
    assert again.fingerprint == train.fingerprint != test.fingerprint
    moved, _ = stratified_split(labelled, test_fraction=0.25, seed=1)
    assert moved.dataset._indices.column(0).to_pylist() != train_rows


def test_stratified_split_small_classes(tiny_dataset: datasets.Dataset) -> None:
    values = [0] * 20 + [1, 1, 2, 2]
    dataset = _with_label(tiny_dataset, "label", datasets.Value("int64"), values)
    train, test = stratified_split(as_image_dataset(dataset, source="m"), test_fraction=0.1, seed=0)
    assert set(train.labels().tolist()) == set(test.labels().tolist()) == {0, 1, 2}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5])
def test_stratified_split_bad_fraction(labelled: ImageDataset, fraction: float) -> None:
    with pytest.raises(ValueError, match="Invalid test_fraction"):
        stratified_split(labelled, test_fraction=fraction, seed=0)


def test_fingerprint_digest_text_is_pinned() -> None:
    """Fingerprints name feature caches on disk: the digest (now `_hashing.json_digest`) must
    stay the one computed before (compact sorted JSON, ASCII escapes, 32 hex digits)."""
    from hf_stdembed.data import _digest

    payload = {"parent": "abc", "tag": "subset-é", "rows": [3, 1], "n": 1.5}
    assert _digest(payload) == "7d71dac624222d79b32dfb4ce1827a44"


def test_a_copy_of_local_data_keeps_its_fingerprint(tiny_parquet: Path, tmp_path: Path) -> None:
    """Feature caches are named by the fingerprint: a re-copied dataset (new path, new
    modification time) must find them; different content must not."""
    import os
    import shutil

    copy = tmp_path / "copy" / "tiny.parquet"
    copy.parent.mkdir()
    shutil.copy(tiny_parquet, copy)
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    original = load_image_dataset(str(tiny_parquet))
    assert load_image_dataset(str(copy)).fingerprint == original.fingerprint
    assert load_image_dataset("parquet", data_files=str(copy)).fingerprint == original.fingerprint

    changed = tmp_path / "changed.parquet"
    original.dataset.select(range(len(original) - 1)).to_parquet(str(changed))
    assert load_image_dataset(str(changed)).fingerprint != original.fingerprint


def test_an_image_folder_edit_changes_its_fingerprint(tmp_path: Path) -> None:
    """An image folder's rows are paths, not bytes: its fingerprint follows the files (the
    content digest would miss an image edited in place)."""
    import os

    from PIL import Image

    root = tmp_path / "images"  # not under a folder named like a split ("test_...")
    for i in range(4):
        (root / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(root / "ab"[i % 2] / f"{i}.png")
    before = load_image_dataset(str(root)).fingerprint
    edited = root / "a" / "0.png"
    Image.new("RGB", (8, 8), (255, 255, 0)).save(edited)
    os.utime(edited, (2_000_000_000, 2_000_000_000))
    assert load_image_dataset(str(root)).fingerprint != before
