"""Image datasets: loading, column detection, seeded subsets and stratified splits."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from hf_stdembed.errors import DatasetLoadError

from ._files import file_sha256
from ._hashing import json_digest

LABEL_COLUMN_NAMES = ("label", "labels", "target", "fine_label", "coarse_label")
"""Column names taken as labels, in this order, when no column is a ``ClassLabel``."""


@dataclass
class ImageDataset:
    """A split of an image dataset with its image and label columns resolved.

    Attributes:
        dataset: the rows.
        image_column: name of the ``datasets.Image`` column.
        label_column: name of the integer label column, or ``None`` when unlabelled.
        num_classes: number of classes (``ClassLabel`` size, else largest label + 1), or
            ``None`` when unlabelled.
        source: where the rows came from (as given to :func:`load_image_dataset`).
        fingerprint: a stable id of the content, split and selection (part of cache keys).
    """

    dataset: datasets.Dataset
    image_column: str
    label_column: str | None
    num_classes: int | None
    source: str
    fingerprint: str

    def __len__(self) -> int:
        return len(self.dataset)

    def labels(self) -> torch.Tensor:
        """The labels as an ``int64`` tensor of shape ``(len,)``.

        Raises:
            DatasetLoadError: the dataset has no label column.
        """
        if self.label_column is None:
            raise DatasetLoadError("the dataset has no label column", source=self.source)
        return torch.as_tensor(_column_values(self.dataset, self.label_column), dtype=torch.int64)


def load_image_dataset(
    source: str,
    *,
    split: str = "train",
    config: str | None = None,
    revision: str | None = None,
    data_files: str | list[str] | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    require_labels: bool = True,
    token: str | None = None,
) -> ImageDataset:
    """Load one split of an image dataset.

    Args:
        source (`str`): a Hub dataset id, a builder name (``parquet``, ``imagefolder``) used
            with ``data_files``, a local ``.parquet`` file, or a local directory (image folder
            or parquet files).
        split (`str`, defaults to ``"train"``): the split, slicing allowed (``"train[:10%]"``).
        config (`str`, *optional*): the dataset configuration name.
        revision (`str`, *optional*): Hub branch, tag or commit.
        data_files (`str` or `list[str]`, *optional*): files for a builder name.
        image_column (`str`, *optional*): the image column; defaults to the first
            ``datasets.Image`` column.
        label_column (`str`, *optional*): the label column; defaults to the first
            ``ClassLabel`` column, else the first integer column named as in
            :data:`LABEL_COLUMN_NAMES`. A string column is encoded as class ids.
        require_labels (`bool`, defaults to `True`): the split is a classification task: fail
            when no label column is found or the labels hold fewer than 2 classes.
        token (`str`, *optional*): Hub token for a private or gated dataset (default: the
            saved login, or ``HF_TOKEN``).

    Returns:
        `ImageDataset`: the split, its columns, class count and fingerprint.

    Raises:
        DatasetLoadError: the dataset or split cannot be loaded (the message lists the
            available splits), a named column is missing or has the wrong type (the message
            lists the columns), or labels are required and none are found, or they hold a
            single class.

    Example:
        ```py
        >>> data = load_image_dataset("uoft-cs/cifar10", split="test", image_column="img")
        >>> data.num_classes
        10
        ```
    """
    path, files = _builder_args(source, data_files)
    try:
        loaded = datasets.load_dataset(
            path, config, data_files=files, split=split, revision=revision, token=token
        )
    except ValueError as e:
        # datasets has no error type for an unknown split: a plain ValueError, "Unknown split
        # ..." (arrow_reader) or "Bad split: ..." (builder), as of datasets 5.2; its message
        # is all that tells it from the other ValueErrors of load_dataset.
        if "split" not in str(e).lower():
            raise DatasetLoadError(str(e), source=source) from e
        splits = _split_names(path, config, files, revision, token)
        listing = f"available splits: {', '.join(splits)}" if splits else str(e)
        raise DatasetLoadError(f"no split {split!r}; {listing}", source=source) from e
    except ConnectionError as e:
        raise DatasetLoadError(
            f"the Hub cannot be reached and the dataset is not cached ({e}); connect (and unset"
            " HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) or give a local copy",
            source=source,
        ) from e
    except Exception as e:
        if type(e).__name__ == "EmptyDatasetError" and Path(source).expanduser().is_dir():
            raise DatasetLoadError(
                f"folder {source} holds no data files: give parquet files or an image folder"
                " (one sub-folder of images per class)",
                source=source,
            ) from e
        raise DatasetLoadError(f"{type(e).__name__}: {e}", source=source) from e
    if not isinstance(loaded, datasets.Dataset):
        raise DatasetLoadError(f"expected one split, got {type(loaded).__name__}", source=source)
    content = _local_content_id(loaded) if _is_local(source, path, files) else None
    origin = {"split": split, "config": config}
    origin.update({"data": loaded._fingerprint} if content is None else {"content": content})
    data = as_image_dataset(
        loaded,
        source=source,
        image_column=image_column,
        label_column=label_column,
        require_labels=require_labels,
        fingerprint=_digest(origin),
    )
    if require_labels:
        _require_two_classes(data)
    return data


def as_image_dataset(
    dataset: datasets.Dataset,
    *,
    source: str,
    image_column: str | None = None,
    label_column: str | None = None,
    require_labels: bool = True,
    fingerprint: str | None = None,
) -> ImageDataset:
    """Resolve the image and label columns of an already loaded ``datasets.Dataset``.

    Args:
        dataset (`datasets.Dataset`): the rows.
        source (`str`): where they came from (recorded, and named in errors).
        image_column (`str`, *optional*): as in :func:`load_image_dataset`.
        label_column (`str`, *optional*): as in :func:`load_image_dataset`.
        require_labels (`bool`, defaults to `True`): fail when no label column is found.
        fingerprint (`str`, *optional*): a stable id of the rows; defaults to one derived from
            ``dataset._fingerprint``.

    Returns:
        `ImageDataset`: the wrapped dataset.

    Raises:
        DatasetLoadError: a named column is missing or has the wrong type, or labels are
            required and none are found.
    """
    image_column = _image_column(dataset, image_column, source)
    if isinstance(dataset.features[image_column], datasets.Value):
        dataset = dataset.cast_column(image_column, datasets.Image())
    label_column = _label_column(dataset, label_column, source)
    if label_column is None and require_labels:
        raise DatasetLoadError(
            f"no label column found (no ClassLabel, no integer column named"
            f" {'/'.join(LABEL_COLUMN_NAMES)}); name it with label_column, columns:"
            f" {_describe_columns(dataset)}",
            source=source,
        )
    num_classes = None
    if label_column is not None:
        if isinstance(dataset.features[label_column], datasets.Value) and _is_string(
            dataset.features[label_column]
        ):
            dataset = dataset.class_encode_column(label_column)
        num_classes = _num_classes(dataset, label_column, source)
    if fingerprint is None:
        fingerprint = _digest({"data": dataset._fingerprint})
    return ImageDataset(dataset, image_column, label_column, num_classes, source, fingerprint)


def select_subset(ds: ImageDataset, num_samples: int | None, *, seed: int) -> ImageDataset:
    """A seeded random subset of the rows, kept in dataset order.

    Args:
        ds (`ImageDataset`): the dataset.
        num_samples (`int`, *optional*): how many rows to keep; ``None`` or at least
            ``len(ds)`` keeps them all.
        seed (`int`): seed of the draw.

    Returns:
        `ImageDataset`: the subset, with a fingerprint derived from the parent's and the rows.

    Raises:
        ValueError: ``num_samples`` is below 1.
    """
    if num_samples is None or num_samples >= len(ds):
        return ds
    if num_samples < 1:
        raise ValueError(f"Invalid num_samples value: {num_samples}")
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(ds), generator=generator)[:num_samples]
    return take_rows(ds, indices, tag="subset")


def stratified_subset(ds: ImageDataset, num_samples: int | None, *, seed: int) -> ImageDataset:
    """About ``num_samples`` rows drawn class by class (each class keeps its share, at least
    one row of every class with two or more), kept in dataset order; the whole dataset when
    ``num_samples`` is ``None`` or at least ``len(ds)``.

    Raises:
        ValueError: ``num_samples`` is below 1.
        DatasetLoadError: the dataset has no label column.
    """
    if num_samples is None or num_samples >= len(ds):
        return ds
    if num_samples < 1:
        raise ValueError(f"Invalid num_samples value: {num_samples}")
    _, rows = stratified_indices(ds.labels(), test_fraction=num_samples / len(ds), seed=seed)
    return take_rows(ds, rows, tag=f"stratified-{num_samples}-{seed}")


def stratified_split(
    ds: ImageDataset, *, test_fraction: float, seed: int
) -> tuple[ImageDataset, ImageDataset]:
    """Split the rows into train and test parts, class by class, with a seeded draw.

    Each class with at least two rows gets at least one row in each part; a class with a
    single row goes to the train part.

    Args:
        ds (`ImageDataset`): a labelled dataset.
        test_fraction (`float`): share of each class drawn into the test part, in ``(0, 1)``.
        seed (`int`): seed of the draw.

    Returns:
        `tuple[ImageDataset, ImageDataset]`: the train and test parts, each in dataset order.

    Raises:
        ValueError: ``test_fraction`` is not in ``(0, 1)``.
        DatasetLoadError: the dataset has no label column.
    """
    train_rows, test_rows = stratified_indices(ds.labels(), test_fraction=test_fraction, seed=seed)
    train = take_rows(ds, train_rows, tag=f"train-{test_fraction}-{seed}")
    test = take_rows(ds, test_rows, tag=f"test-{test_fraction}-{seed}")
    return train, test


def stratified_indices(
    labels: torch.Tensor, *, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted ``(train, test)`` row positions of a seeded stratified split: the draw of
    :func:`stratified_split` (the same rows for the same labels, ``test_fraction`` and ``seed``).

    Each class with at least two rows gets at least one row in each part; a class with a
    single row goes to the train part.

    Raises:
        ValueError: ``test_fraction`` is not in ``(0, 1)``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"Invalid test_fraction value: {test_fraction} (must be in (0, 1))")
    generator = torch.Generator().manual_seed(seed)
    train_parts, test_parts = [], []
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_test = round(len(members) * test_fraction)
        n_test = min(max(n_test, 1), len(members) - 1) if len(members) > 1 else 0
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    return torch.sort(torch.cat(train_parts)).values, torch.sort(torch.cat(test_parts)).values


# --- helpers ----------------------------------------------------------------------------


def _builder_args(
    source: str, data_files: str | list[str] | None
) -> tuple[str, str | list[str] | None]:
    """``load_dataset``'s path and data files for a source (a parquet file needs a builder).

    Raises:
        DatasetLoadError: the source names a local file or folder that does not exist (or a
            file that is not parquet), or a builder's local data file is missing.
    """
    path = Path(source).expanduser()
    if data_files is None and path.is_file():
        if path.suffix != ".parquet":
            raise DatasetLoadError(
                "a single file must be .parquet; for other files give a builder name"
                " (e.g. 'imagefolder') with data_files",
                source=source,
            )
        return "parquet", str(path)
    if data_files is None and not path.exists():
        problem = _not_a_dataset_id(source)
        if problem is not None:
            raise DatasetLoadError(problem, source=source)
    if data_files is not None and source in _local_builders():
        for file in [data_files] if isinstance(data_files, str) else data_files:
            if not any(c in file for c in "*?[") and not Path(file).expanduser().exists():
                raise DatasetLoadError(
                    f"no file {file} (a data file of the {source!r} builder)", source=file
                )
    return source, data_files


_DATA_SUFFIXES = (".parquet", ".arrow", ".csv", ".json", ".jsonl", ".zip", ".tar", ".gz")


def _not_a_dataset_id(source: str) -> str | None:
    """Why ``source`` (no file or folder of that name exists) is not a Hub dataset id
    either, or None when it may be one."""
    if source.startswith((".", "/", "~")) or "\\" in source or source.endswith(_DATA_SUFFIXES):
        return f"no file or folder {source}; for a Hub dataset write org/name"
    if source.count("/") > 1:
        return f"no file or folder {source}, and a Hub dataset id has one '/' (org/name)"
    try:
        validate_repo_id(source)
    except HFValidationError:
        return (
            f"no file or folder {source!r}, and a Hub dataset id holds only letters, digits,"
            " '-', '_' and '.' (org/name)"
        )
    return None


def _local_builders() -> frozenset[str]:
    """The builder names of ``datasets`` that read local files (``parquet``, ``imagefolder``...)."""
    try:
        from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES
    except ImportError:  # a private name: fall back to the ones the docs show
        return frozenset({"parquet", "imagefolder", "arrow", "csv", "json", "webdataset"})
    return frozenset(_PACKAGED_DATASETS_MODULES)


def _split_names(
    path: str,
    config: str | None,
    files: str | list[str] | None,
    revision: str | None,
    token: str | None,
) -> list[str]:
    """The split names of a dataset, or an empty list when they cannot be listed."""
    try:
        return list(
            datasets.get_dataset_split_names(
                path, config, data_files=files, revision=revision, token=token
            )
        )
    except Exception:
        return []


def _named_column(
    dataset: datasets.Dataset, name: str, source: str, *, accepts: Callable[[Any], bool], what: str
) -> str:
    """``name`` when the dataset has that column and ``accepts`` its feature type; else a
    DatasetLoadError saying it is not ``what``."""
    _require_column(dataset, name, source)
    feature = dataset.features[name]
    if not accepts(feature):
        raise DatasetLoadError(
            f"column {name!r} is {feature}, not {what}; columns: {_describe_columns(dataset)}",
            source=source,
        )
    return name


def _image_column(dataset: datasets.Dataset, name: str | None, source: str) -> str:
    """The named image column (checked), else the first ``datasets.Image`` column."""
    features = dataset.features
    if name is not None:
        return _named_column(
            dataset,
            name,
            source,
            accepts=lambda f: isinstance(f, datasets.Image) or _is_string(f),
            what="an image",
        )
    for column, feature in features.items():
        if isinstance(feature, datasets.Image):
            return column
    raise DatasetLoadError(
        f"no image column found; name it with image_column, columns: {_describe_columns(dataset)}",
        source=source,
    )


def _label_column(dataset: datasets.Dataset, name: str | None, source: str) -> str | None:
    """The named label column (checked), else a ``ClassLabel``, else a conventional name."""
    features = dataset.features
    if name is not None:
        return _named_column(
            dataset,
            name,
            source,
            accepts=lambda f: (
                isinstance(f, datasets.ClassLabel)
                or (isinstance(f, datasets.Value) and (_is_integer(f) or _is_string(f)))
            ),
            what="class labels (ClassLabel, integers or strings)",
        )
    for column, feature in features.items():
        if isinstance(feature, datasets.ClassLabel):
            return column
    for column in LABEL_COLUMN_NAMES:
        feature = features.get(column)
        if isinstance(feature, datasets.Value) and _is_integer(feature):
            return column
    return None


def _num_classes(dataset: datasets.Dataset, column: str, source: str) -> int:
    """The class count of a label column; negative (missing) labels are refused."""
    feature = dataset.features[column]
    values = _column_values(dataset, column)
    if len(values) and values.min() < 0:
        raise DatasetLoadError(
            f"label column {column!r} holds negative labels (unlabelled rows?); pick a labelled"
            " split",
            source=source,
        )
    if isinstance(feature, datasets.ClassLabel):
        return feature.num_classes
    return int(values.max()) + 1 if len(values) else 0


def _require_two_classes(ds: ImageDataset) -> None:
    """Fail unless the rows' labels hold at least two classes (a task separates classes)."""
    present = np.unique(_column_values(ds.dataset, ds.label_column))
    if len(present) >= 2:
        return
    feature = ds.dataset.features[ds.label_column]
    names = [
        repr(feature.int2str(int(v)) if isinstance(feature, datasets.ClassLabel) else v.item())
        for v in present
    ]
    raise DatasetLoadError(
        f"a task needs at least 2 classes; the labels (column {ds.label_column!r}) hold"
        f" {'only ' + names[0] if names else 'no rows'}",
        source=ds.source,
    )


def take_rows(ds: ImageDataset, indices: torch.Tensor, *, tag: str) -> ImageDataset:
    """The rows at ``indices`` (sorted), with a fingerprint derived from them."""
    rows = torch.sort(indices).values.tolist()
    digest = hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest()
    fingerprint = _digest({"parent": ds.fingerprint, "tag": tag, "rows": digest})
    subset = ds.dataset.select(rows, new_fingerprint=fingerprint)
    return replace(ds, dataset=subset, fingerprint=fingerprint)


def _column_values(dataset: datasets.Dataset, column: str) -> np.ndarray:
    """One column as a numpy array."""
    return np.asarray(dataset.select_columns([column]).with_format("numpy")[column])


def _require_column(dataset: datasets.Dataset, name: str, source: str) -> None:
    """Fail with the list of columns when ``name`` is not one."""
    if name not in dataset.column_names:
        raise DatasetLoadError(
            f"no column {name!r}; columns: {_describe_columns(dataset)}", source=source
        )


def _describe_columns(dataset: datasets.Dataset) -> str:
    """``name (type), ...`` for every column."""
    return ", ".join(f"{name} ({_feature_type(f)})" for name, f in dataset.features.items())


def _feature_type(feature: Any) -> str:
    """A short type name for a feature (``Image``, ``ClassLabel``, ``int64``...)."""
    if isinstance(feature, datasets.Value):
        return feature.dtype
    return type(feature).__name__


def _is_integer(feature: datasets.Value) -> bool:
    """Whether a ``Value`` feature holds integers."""
    return isinstance(feature, datasets.Value) and "int" in feature.dtype


def _is_string(feature: Any) -> bool:
    """Whether a feature holds strings."""
    return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")


def _is_local(source: str, path: str, files: str | list[str] | None) -> bool:
    """Whether ``load_dataset(path, data_files=files)`` for ``source`` reads local files."""
    return Path(source).expanduser().exists() or (files is not None and path in _local_builders())


def _local_content_id(dataset: datasets.Dataset) -> str | None:
    """A digest of the Arrow files ``datasets`` made from local data files, or None.

    ``datasets`` fingerprints local files by path and modification time, so a copy of the same
    data (a re-downloaded or re-copied folder) would name new feature caches and lose every
    cached feature. The Arrow files it writes are byte-identical for the same data, so their
    digest names the content itself. None (use ``datasets``' own fingerprint) when the rows
    only point at files (an image folder stores paths, not bytes: an edited image must not
    keep its stale cache) or when nothing is on disk.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    files = [entry["filename"] for entry in dataset.cache_files]
    if not files:
        return None
    for column in dataset.data.table.itercolumns():
        holds_bytes = pa.types.is_struct(column.type) and column.type.get_field_index("bytes") >= 0
        if holds_bytes and pc.struct_field(column, "bytes").null_count:
            return None
    return json_digest([file_sha256(name) for name in files], 64)


def _digest(payload: dict[str, Any]) -> str:
    """The first 32 hex chars of the sha256 of a JSON payload."""
    return json_digest(payload)
