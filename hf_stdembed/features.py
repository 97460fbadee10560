"""Features of a dataset under a model: batched extraction with an on-disk cache."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import datasets
import torch
from huggingface_hub import constants
from PIL import Image, UnidentifiedImageError

from hf_stdembed._cache import keyed_path, read_keyed, write_keyed
from hf_stdembed._hashing import canonical_json
from hf_stdembed.data import ImageDataset
from hf_stdembed.errors import DatasetLoadError, ModelLoadError
from hf_stdembed.extractors import FeatureExtractor
from hf_stdembed.progress import Progress, counted

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
"""Version of the feature cache layout; bumping it invalidates every cached file."""

CACHE_ENV = "HF_STDEMBED_CACHE"
"""Environment variable naming the feature cache folder."""

_TENSOR = "features"


def default_device() -> torch.device:
    """The available accelerator (CUDA, MPS, XPU...: ``torch.accelerator``), else the CPU.

    Returns:
        `torch.device`: the device (no index: the accelerator's current one).
    """
    return torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")


def default_cache_dir() -> Path:
    """The feature cache folder: ``$HF_STDEMBED_CACHE``, else ``<HF_HOME>/stdembed/features``.

    Returns:
        `Path`: the folder (not created).
    """
    return Path(os.environ.get(CACHE_ENV) or Path(constants.HF_HOME) / "stdembed" / "features")


def cache_key(extractor: FeatureExtractor, data: ImageDataset) -> dict[str, str | int | None]:
    """What identifies the features of a dataset under a model.

    Args:
        extractor (`FeatureExtractor`): the model.
        data (`ImageDataset`): the dataset.

    Returns:
        `dict`: model name, revision and preprocessing, dataset fingerprint and image column,
        and the cache format version.
    """
    return {
        "name": extractor.name,
        "revision": extractor.revision,
        "preprocessing": extractor.preprocessing,
        "dataset": data.fingerprint,
        "image_column": data.image_column,
        "version": CACHE_FORMAT_VERSION,
    }


def cache_path(
    extractor: FeatureExtractor, data: ImageDataset, *, cache_dir: str | Path | None = None
) -> Path:
    """The cache file of a dataset's features under a model.

    Args:
        extractor (`FeatureExtractor`): the model.
        data (`ImageDataset`): the dataset.
        cache_dir (`str` or `Path`, *optional*): the cache folder; defaults to
            :func:`default_cache_dir`.

    Returns:
        `Path`: ``<cache_dir>/<first 32 hex chars of sha256 of the key>.safetensors``.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return keyed_path(folder, _key_text(extractor, data), 32)


def extract_features(
    extractor: FeatureExtractor,
    data: ImageDataset,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    cache_dir: str | Path | None = None,
    num_workers: int = 0,
    on_progress: Progress | None = None,
) -> torch.Tensor:
    """Features of every row of a dataset, cached on disk.

    Args:
        extractor (`FeatureExtractor`): the model.
        data (`ImageDataset`): the dataset.
        batch_size (`int`, defaults to 64): images per forward pass.
        device (`str` or `torch.device`, *optional*): where to run the model; defaults to
            :func:`default_device` (CPU for an extractor without ``module``).
        cache_dir (`str` or `Path`, *optional*): the cache folder; defaults to
            :func:`default_cache_dir`.
        num_workers (`int`, defaults to 0): image decoding / preprocessing worker processes.
        on_progress (`Progress`, *optional*): hears ``features <model name>`` in batches
            (nothing when the features come from the cache).

    Returns:
        `torch.Tensor`: ``float32`` features ``(len(data), n)`` on CPU, in dataset order.

    Raises:
        ValueError: ``batch_size`` is below 1.
        ModelLoadError: ``forward`` does not return one feature row per image.

    Example:
        ```py
        >>> features = extract_features(load_extractor("timm:timm/resnet18.a1_in1k"), data)
        >>> features.shape
        torch.Size([1000, 512])
        ```
    """
    if batch_size < 1:
        raise ValueError(f"Invalid batch_size value: {batch_size}")
    path = cache_path(extractor, data, cache_dir=cache_dir)
    key_text = _key_text(extractor, data)
    cached = _read_cache(path, key_text=key_text, rows=len(data))
    if cached is not None:
        return cached
    batches = _batches(extractor, data, batch_size=batch_size, num_workers=num_workers)
    total = math.ceil(len(data) / batch_size)
    desc = f"features {extractor.name}"
    features = _run(
        extractor, counted(batches, on_progress, desc, total, unit="batch"), device=device
    )
    _write_cache(path, features, extractor=extractor, data=data, key_text=key_text)
    return features


def batch_features(
    extractor: FeatureExtractor,
    data: ImageDataset,
    indices: torch.Tensor,
    *,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Features of some rows of a dataset, in one forward pass and without the cache.

    Args:
        extractor (`FeatureExtractor`): the model.
        data (`ImageDataset`): the dataset.
        indices (`torch.Tensor`): 1-D row indices.
        device (`str` or `torch.device`, *optional*): as in :func:`extract_features`.

    Returns:
        `torch.Tensor`: ``float32`` features ``(len(indices), n)`` on CPU, in ``indices`` order.

    Raises:
        ModelLoadError: ``forward`` does not return one feature row per image.
    """
    rows = [int(i) for i in indices.flatten().tolist()]
    images = _decode(data.dataset.select_columns([data.image_column]), rows, data=data)
    pixels = torch.stack([extractor.transform(image) for image in images]) if rows else None
    return _run(extractor, [pixels] if pixels is not None else [], device=device)


# --- forward passes ---------------------------------------------------------------------


def _run(
    extractor: FeatureExtractor,
    batches: Iterable[torch.Tensor],
    *,
    device: str | torch.device | None,
) -> torch.Tensor:
    """Forward every batch in eval mode under inference mode; float32 rows on CPU."""
    target = _pick_device(extractor, device)
    if extractor.module is not None:
        extractor.module.to(target).eval()
    outputs: list[torch.Tensor] = []
    with torch.inference_mode(), _autocast(target):
        for pixels in batches:
            features = extractor.forward(pixels.to(target, non_blocking=True))
            if features.ndim != 2 or features.shape[0] != pixels.shape[0]:
                raise ModelLoadError(
                    f"forward returned shape {tuple(features.shape)} for {pixels.shape[0]}"
                    " images; it must return (batch, n)",
                    spec=extractor.name,
                )
            outputs.append(features.float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, 0)


def _pick_device(extractor: FeatureExtractor, device: str | torch.device | None) -> torch.device:
    """The requested device, else the default one (CPU for an extractor without a module)."""
    if device is not None:
        return torch.device(device)
    return default_device() if extractor.module is not None else torch.device("cpu")


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 (else fp16) autocast on CUDA; nothing elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _batches(
    extractor: FeatureExtractor, data: ImageDataset, *, batch_size: int, num_workers: int
) -> Iterator[torch.Tensor]:
    """Preprocessed image batches ``(B, C, H, W)`` in dataset order."""
    images = _TransformedImages(extractor, data)
    if num_workers > 0:
        loader = torch.utils.data.DataLoader(
            images, batch_size=batch_size, shuffle=False, num_workers=num_workers
        )
        yield from loader
        return
    for start in range(0, len(images), batch_size):
        stop = min(start + batch_size, len(images))
        yield torch.stack(images.slice(start, stop))


class _TransformedImages(torch.utils.data.Dataset):
    """The images of a dataset through an extractor's transform (PIL images as stored)."""

    def __init__(self, extractor: FeatureExtractor, data: ImageDataset) -> None:
        self.transform = extractor.transform
        self.data = data
        self.rows = data.dataset.select_columns([data.image_column])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(_decode(self.rows, [index], data=self.data)[0])

    def slice(self, start: int, stop: int) -> Sequence[torch.Tensor]:
        """Rows ``start:stop``, decoded in one read."""
        images = _decode(self.rows, range(start, stop), data=self.data)
        return [self.transform(image) for image in images]


def _decode(
    column: datasets.Dataset, rows: Sequence[int], *, data: ImageDataset
) -> list[Image.Image]:
    """The images of some rows of ``column`` (``data``'s image column alone), in one read.

    Raises:
        DatasetLoadError: an image cannot be decoded; the message names the first such row
            (and its file, when the dataset records one).
    """
    try:
        if isinstance(rows, range):
            return column[rows.start : rows.stop][data.image_column]
        return column[list(rows)][data.image_column]
    except Exception as e:  # PIL's errors for corrupt images are many (OSError, ValueError...)
        for row in rows:
            try:
                column[row][data.image_column]
            except Exception as row_error:
                why = (
                    "not an image format PIL reads"
                    if isinstance(row_error, UnidentifiedImageError)
                    else f"{type(row_error).__name__}: {row_error}"
                )
                raise DatasetLoadError(
                    f"row {row}{_file_of(column, data.image_column, row)}: the image cannot be"
                    f" decoded ({why}); fix or remove that row",
                    source=data.source,
                ) from row_error
        raise DatasetLoadError(
            f"the images cannot be decoded ({type(e).__name__}: {e})", source=data.source
        ) from e


def _file_of(column: datasets.Dataset, name: str, row: int) -> str:
    """`` (path)`` of a row's image file when the dataset records it, else ``""``."""
    try:
        raw = column.cast_column(name, datasets.Image(decode=False))[row][name]
    except Exception:
        return ""
    path = raw.get("path") if isinstance(raw, dict) else None
    return f" ({path})" if path else ""


# --- cache files ------------------------------------------------------------------------


def _key_text(extractor: FeatureExtractor, data: ImageDataset) -> str:
    """The cache key as canonical JSON."""
    return canonical_json(cache_key(extractor, data))


def _read_cache(path: Path, *, key_text: str, rows: int) -> torch.Tensor | None:
    """Cached features when the file exists and matches the key and row count."""
    cached = read_keyed(path, key_text, what="feature cache")
    if cached is None:
        return None
    features = cached[0].get(_TENSOR)
    if features is None or features.ndim != 2 or features.shape[0] != rows:
        logger.warning("ignoring stale feature cache %s", path)
        return None
    return features


def _write_cache(
    path: Path,
    features: torch.Tensor,
    *,
    extractor: FeatureExtractor,
    data: ImageDataset,
    key_text: str,
) -> None:
    """Write features atomically (temp file in the same folder, then rename)."""
    key = cache_key(extractor, data)
    metadata = {name: "" if value is None else str(value) for name, value in key.items()}
    metadata["rows"] = str(features.shape[0])
    write_keyed(path, key_text, {_TENSOR: features}, metadata)
