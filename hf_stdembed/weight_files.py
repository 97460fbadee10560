"""A model folder's weight files: their hash (a local model's revision) and a check that
they are whole before a library loads them."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from .errors import ModelLoadError

__all__ = ["WEIGHT_SUFFIXES", "check_weight_files", "weights_hash"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
"""The files that hold a model's weights (what timm and transformers load)."""


def weights_hash(model_dir: str | Path) -> str | None:
    """Hash the weight files of a local model directory.

    Args:
        model_dir (`str` or `Path`): the directory.

    Returns:
        `str` or `None`: the first 16 hex chars of a sha256 over the names and bytes of its
        weight files (``*.safetensors``, ``*.bin``, ``*.pth``, ``*.pt``) in name order, or
        ``None`` when it holds none.
    """
    files = sorted(
        p for p in Path(model_dir).iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file()
    )
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


_MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit


def check_weight_files(model_dir: str | Path, *, spec: str | None = None) -> None:
    """Check that a model folder's weight files are whole before a library loads them.

    An empty, truncated or tensor-less file must never turn into randomly initialised
    weights: each ``*.safetensors`` file's header must parse, name at least one tensor and
    describe exactly the file's size; other weight files must not be empty.

    Args:
        model_dir (`str` or `Path`): the model folder.
        spec (`str`, *optional*): the model spec, named in the error.

    Raises:
        ModelLoadError: a weight file is empty, truncated, not safetensors or holds no
            tensors (the message says to re-download or re-save it).
    """
    for file in sorted(Path(model_dir).iterdir()):
        if file.suffix not in WEIGHT_SUFFIXES or not file.is_file():
            continue
        problem = _weight_file_problem(file)
        if problem is not None:
            raise ModelLoadError(
                f"{file.name} {problem}: the download or save was cut short or the file was"
                " replaced; re-download or re-save the model",
                spec=spec,
            )


def _weight_file_problem(file: Path) -> str | None:
    """What is wrong with a weight file, or None (only safetensors headers are read)."""
    size = file.stat().st_size
    if size == 0:
        return "is empty (0 bytes)"
    if file.suffix != ".safetensors":
        return None
    with file.open("rb") as f:
        prefix = f.read(8)
        length = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else None
        if length is None or length > min(size - 8, _MAX_HEADER_BYTES):
            return f"is truncated or not a safetensors file ({size} bytes)"
        header_bytes = f.read(length)
    try:
        header = json.loads(header_bytes)
        ends = [
            int(entry["data_offsets"][1])
            for name, entry in header.items()
            if name != "__metadata__"
        ]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "is not a safetensors file (its header is not valid)"
    if not ends:
        return "holds no tensors"
    expected = 8 + length + max(ends)
    if size < expected:
        return f"is truncated: {size} bytes, its header describes {expected}"
    if size > expected:
        return f"has {size} bytes, its header describes {expected}"
    return None
