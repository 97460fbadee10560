"""Tiny random images and labelled image datasets, made in memory (tests/conftest.py's
dataset fixtures, the colour images of the rerank and evaluation tests, and tests that build
their own files)."""

from __future__ import annotations

import datasets
import numpy as np
from PIL import Image

TINY_CLASSES = ("cat", "dog", "fox")


def make_images(count: int, *, seed: int = 0, mode: str = "RGB") -> list[Image.Image]:
    """Small random images of varied sizes."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        shape = (20 + i % 5, 24 + i % 3) + ((3,) if mode == "RGB" else ())
        images.append(Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode))
    return images


def make_image_dataset(count: int = 24, *, seed: int = 0, mode: str = "RGB") -> datasets.Dataset:
    """An in-memory dataset: ``image`` (Image) and ``label`` (ClassLabel, 3 classes)."""
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(TINY_CLASSES))}
    )
    data = {
        "image": make_images(count, seed=seed, mode=mode),
        "label": [i % 3 for i in range(count)],
    }
    return datasets.Dataset.from_dict(data, features=features)


def colour_images(count: int, *, seed: int) -> datasets.Dataset:
    """8x8 images whose class (``r``, ``g``, ``b``) is their colour, under heavy noise."""
    rng = np.random.default_rng(seed)
    colours = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]])
    images, labels = [], []
    for i in range(count):
        pixels = colours[i % 3] + rng.normal(0, 60, (8, 8, 3))
        images.append(Image.fromarray(pixels.clip(0, 255).astype(np.uint8)))
        labels.append(i % 3)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["r", "g", "b"])}
    )
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
