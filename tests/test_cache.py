"""The keyed safetensors cache: file names and key texts pinned to what is on disk today.

The literals below were computed by the code before the structure step (features.py's and
evaluation.py's own hashing): a changed spelling would silently recompute every cache (1.6 GB
of the benchmark's), so these must never be edited to make a test pass.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import torch

from hf_stdembed._cache import KEY, keyed_path, read_keyed, write_keyed
from hf_stdembed.evaluation.embeddings import model_embedding_key
from hf_stdembed.evaluation.memo import memo, memo_path, memo_tensor
from hf_stdembed.features import _key_text, cache_path

EXTRACTOR = SimpleNamespace(
    name="timm/resnet18.a1_in1k",
    revision="abc123",
    preprocessing='{"crop_pct": 0.875, "input_size": [3, 224, 224]}',
)
DATA = SimpleNamespace(fingerprint="f00d", image_column="image")


def test_feature_cache_key_text_and_file_name_are_pinned() -> None:
    assert _key_text(EXTRACTOR, DATA) == (
        '{"dataset":"f00d","image_column":"image","name":"timm/resnet18.a1_in1k",'
        '"preprocessing":"{\\"crop_pct\\": 0.875, \\"input_size\\": [3, 224, 224]}",'
        '"revision":"abc123","version":1}'
    )
    path = cache_path(EXTRACTOR, DATA, cache_dir="/c")
    assert path == Path("/c/f299660328e742acb8429600cbd5f9ad.safetensors")


def test_evaluation_memo_key_text_and_file_name_are_pinned() -> None:
    key = ["m", None, "p", "f00d", {"lr": 0.1, "epochs": 3}]
    path, text = memo_path("/c", "linear-probe", key)
    assert text == '[2, ["m", null, "p", "f00d", {"epochs": 3, "lr": 0.1}]]'
    assert path == Path("/c/evaluation/linear-probe/46d91e8b80ffb22c99de5956.safetensors")
    # what JSON cannot hold is written as its str, tuples as lists
    path, text = memo_path("/c", "task-embedding", ["5ca1ab1e", "f00d", (1, 2), Path("/x/y")])
    assert text == '[2, ["5ca1ab1e", "f00d", [1, 2], "/x/y"]]'
    assert path.name == "a5073a10c2646f8112e01f44.safetensors"


def test_model_embedding_key_text_is_pinned() -> None:
    key = model_embedding_key(EXTRACTOR, SimpleNamespace(hash="5ca1ab1e"), "centred")
    assert key == (
        '["timm/resnet18.a1_in1k", "abc123", '
        '"{\\"crop_pct\\": 0.875, \\"input_size\\": [3, 224, 224]}", "5ca1ab1e", "centred"]'
    )
    assert keyed_path("/c/model-embeddings", key, 24).name == (
        "d4294510bef2b95e6aa78d30.safetensors"
    )


def test_keyed_file_round_trip_and_rejections(tmp_path: Path, caplog) -> None:
    path = keyed_path(tmp_path / "kind", "the key", 24)
    assert read_keyed(path, "the key") is None  # absent
    tensors = {"value": torch.arange(6.0).reshape(2, 3)[:, 1:]}  # not contiguous
    write_keyed(path, "the key", tensors, {"rows": "2"})
    got, metadata = read_keyed(path, "the key")
    torch.testing.assert_close(got["value"], tensors["value"])
    assert metadata == {"rows": "2", KEY: "the key"}
    assert read_keyed(path, "another key") is None
    path.write_bytes(path.read_bytes()[:20])  # torn
    with caplog.at_level(logging.WARNING, logger="hf_stdembed._cache"):
        assert read_keyed(path, "the key", what="test cache") is None
    assert "ignoring unreadable test cache" in caplog.text
    assert not list(path.parent.glob(".*.tmp"))


def test_memo_keeps_floats_and_tensors_and_recomputes_a_foreign_file(tmp_path: Path) -> None:
    calls = []

    def value(x: float) -> float:
        calls.append(x)
        return x * 2

    assert memo(tmp_path, "double", ["k"], value, 2.0) == 4.0
    assert memo(tmp_path, "double", ["k"], value, 2.0) == 4.0
    assert calls == [2.0]
    mask = memo_tensor(tmp_path, "mask", ["k"], torch.ones, 3)
    torch.testing.assert_close(memo_tensor(tmp_path, "mask", ["k"], torch.zeros, 3), mask)
    # a file under the right name and key but without the memo's scalars: recomputed
    path, text = memo_path(tmp_path, "double", ["k"])
    write_keyed(path, text, {}, {})
    assert memo(tmp_path, "double", ["k"], value, 2.0) == 4.0
    assert calls == [2.0, 2.0]
    assert memo(None, "double", ["k"], value, 1.0) == 2.0  # no folder: nothing is kept
