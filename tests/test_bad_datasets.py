"""Datasets a task cannot be learned from: corrupt images, a single class."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import datasets
import pytest
from tiny_images import TINY_CLASSES, make_images

from hf_stdembed.cli import main
from hf_stdembed.data import as_image_dataset, load_image_dataset
from hf_stdembed.errors import DatasetLoadError
from hf_stdembed.extractors import load_extractor
from hf_stdembed.features import batch_features, extract_features


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_parquet(path: Path, *, labels: list[int], broken: dict[int, bytes] | None = None):
    """Images as PNG bytes (row i replaced by ``broken[i]``), labels as a ClassLabel."""
    images = [
        {"bytes": (broken or {}).get(i, png_bytes(image)), "path": f"img{i}.png"}
        for i, image in enumerate(make_images(len(labels)))
    ]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(TINY_CLASSES))}
    )
    datasets.Dataset.from_dict({"image": images, "label": labels}, features=features).to_parquet(
        str(path)
    )
    return path


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["hf-stdembed", *map(str, args)])
    capsys.readouterr()  # what writing the test's data printed
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code, capsys.readouterr().err


LABELS = [i % 3 for i in range(12)]


@pytest.mark.parametrize(
    "bad",
    [b"not an image at all", png_bytes(make_images(1)[0])[:60]],
    ids=["garbage", "truncated-png"],
)
def test_task_on_a_corrupt_image_names_the_row(
    tmp_path: Path,
    standard_file: Path,
    monkeypatch,
    capsys,
    bad: bytes,
):
    """A corrupt image gave a PIL traceback; now one line naming the row and its file."""
    monkeypatch.chdir(tmp_path)
    data = write_parquet(tmp_path / "d.parquet", labels=LABELS, broken={7: bad})
    code, err = run_cli(
        monkeypatch, capsys, "task", data, "--standard", standard_file, "--out", "t", "-q"
    )
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"Error: cannot load dataset {str(data)!r}: row 7 (img7.png):")
    assert "cannot be decoded" in lines[0] and "fix or remove that row" in lines[0]
    assert "0x" not in lines[0]  # no <_io.BytesIO object at 0x...>


def test_corrupt_image_in_per_step_batches(tmp_path: Path, tiny_timm_dir: Path):
    data = write_parquet(tmp_path / "d.parquet", labels=LABELS, broken={2: b"junk"})
    loaded = load_image_dataset(str(data))
    extractor = load_extractor(f"timm:{tiny_timm_dir}")
    import torch

    with pytest.raises(DatasetLoadError, match=r"row 2 \(img2\.png\): the image cannot be"):
        batch_features(extractor, loaded, torch.tensor([0, 2, 5]))
    with pytest.raises(DatasetLoadError, match=r"row 2 \(img2\.png\)"):
        extract_features(extractor, loaded, batch_size=4)


def test_a_single_class_dataset_is_refused(
    tmp_path: Path,
    standard_file: Path,
    monkeypatch,
    capsys,
):
    """A single-class dataset gave a degenerate task embedding with exit 0."""
    monkeypatch.chdir(tmp_path)
    data = write_parquet(tmp_path / "one.parquet", labels=[1] * 12)
    code, err = run_cli(
        monkeypatch, capsys, "task", data, "--standard", standard_file, "--out", "t", "-q"
    )
    assert code == 1
    assert err.strip() == (
        f"Error: cannot load dataset {str(data)!r}: a task needs at least 2 classes; the labels"
        " (column 'label') hold only 'dog'"
    )
    assert not (tmp_path / "t").exists()


def test_single_class_check_counts_the_rows_not_the_class_names(tiny_dataset, tmp_path):
    # a ClassLabel with 3 names whose split holds one of them is still a single class
    rows = tiny_dataset.filter(lambda row: row["label"] == 0)
    assert as_image_dataset(rows, source="m").num_classes == 3  # as_image_dataset wraps as is
    path = tmp_path / "one-class.parquet"
    rows.to_parquet(str(path))
    with pytest.raises(DatasetLoadError, match="needs at least 2 classes.*only 'cat'"):
        load_image_dataset(str(path))
    assert len(load_image_dataset(str(path), require_labels=False)) == 8
