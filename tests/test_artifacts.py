"""Standards and embedding files: round trips, hashes and refusals."""

from __future__ import annotations

import dataclasses
import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from hf_stdembed.embeddings import (
    ModelEmbedding,
    TaskEmbedding,
    load_embedding,
    save_embedding,
)
from hf_stdembed.errors import (
    InvalidEmbeddingError,
    InvalidStandardError,
    StandardMismatchError,
    StandardNotFoundError,
)
from hf_stdembed.standards import builtin_standards, get_standard, standard_from_yaml

STANDARD = get_standard("resnet18-in1k-val")


def model_embedding(**changes) -> ModelEmbedding:
    base = ModelEmbedding(
        vector=torch.rand(STANDARD.dim, generator=torch.Generator().manual_seed(0)),
        standard_id=STANDARD.id,
        standard_hash=STANDARD.hash,
        model_id="timm:org/model",
        model_revision="abc123",
        l_to=0.97,
        l_from=0.95,
    )
    return dataclasses.replace(base, **changes)


def task_embedding() -> TaskEmbedding:
    return TaskEmbedding(
        vector=torch.rand(STANDARD.dim),
        standard_id=STANDARD.id,
        standard_hash=STANDARD.hash,
        dataset_id="uoft-cs/cifar10",
        dataset_split="train",
        gamma=1e-3,
        converged_accuracy=93.5,
        gammas=torch.tensor([0.0, 1e-4, 1e-3]),
        accuracies=torch.tensor([93.5, 93.0, 90.0]),
        mask_sizes=torch.tensor([500.0, 200.0, 30.0]),
    )


# -- standards ---------------------------------------------------------------------------


def test_builtin_standards_are_the_papers_two():
    known = builtin_standards()
    assert set(known) == {"resnet18-in1k-val", "swin-t-in1k-val", "union-resnet18-swin-t-in1k-val"}
    resnet, swin = known["resnet18-in1k-val"], known["swin-t-in1k-val"]
    assert resnet.baseline.model == "timm:timm/resnet18.tv_in1k" and resnet.dim == 512
    assert swin.dim == 768
    for s in (resnet, swin):
        assert s.probe.split == "validation" and s.probe.num_samples is None
        assert s.model_embedding.mask_init == 0.05 and s.task_embedding.mask_init == 0.05
    assert resnet.hash != swin.hash


def test_standard_yaml_round_trip_keeps_the_hash(tmp_path):
    path = tmp_path / "std.yaml"
    path.write_text(STANDARD.to_yaml())
    loaded = standard_from_yaml(path)
    assert loaded == STANDARD and loaded.hash == STANDARD.hash


def test_standard_hash_covers_hyper_parameters_but_not_the_description():
    changed = dataclasses.replace(
        STANDARD, model_embedding=dataclasses.replace(STANDARD.model_embedding, steps=10000)
    )
    assert changed.hash != STANDARD.hash
    assert dataclasses.replace(STANDARD, description="other words").hash == STANDARD.hash


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("- a list", InvalidStandardError, "YAML mapping"),
        ("id: x\n", InvalidStandardError, "the field 'baseline' is missing"),
        ("id: x\nbaseline: 3\n", InvalidStandardError, "'baseline' must be a mapping of fields"),
        (
            "id: x\nbaseline: {model: m, revision: r, dim: 3}\nprobe: [1]\n",
            InvalidStandardError,
            "'probe' must be a mapping of fields, not list",
        ),
        ("{id: [", InvalidStandardError, "not valid YAML"),
    ],
)
def test_bad_standard_files_are_refused(tmp_path, text, error, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(error, match=message):
        standard_from_yaml(path)


def test_unknown_hyper_parameter_is_named(tmp_path):
    data = STANDARD.to_dict()
    data["model_embedding"]["stepz"] = 3
    path = tmp_path / "typo.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InvalidStandardError, match="stepz"):
        standard_from_yaml(path)


def test_unknown_standard_id_lists_the_known_ones():
    with pytest.raises(StandardNotFoundError, match="resnet18-in1k-val"):
        get_standard("resnet-nope")


# -- embedding files ---------------------------------------------------------------------


def test_model_embedding_round_trip(tmp_path):
    original = model_embedding()
    path = save_embedding(original, tmp_path / "sub" / "m.safetensors")
    loaded = load_embedding(path)
    assert isinstance(loaded, ModelEmbedding)
    assert torch.equal(loaded.vector, original.vector)
    for f in ("standard_id", "standard_hash", "model_id", "model_revision", "l_to", "l_from"):
        assert getattr(loaded, f) == getattr(original, f)
    assert loaded.created_at == original.created_at and loaded.library_version
    assert not list(tmp_path.glob("sub/.*.tmp"))  # atomic write leaves no temp file


def test_task_embedding_round_trip(tmp_path):
    original = task_embedding()
    loaded = load_embedding(save_embedding(original, tmp_path / "t.safetensors"))
    assert isinstance(loaded, TaskEmbedding)
    assert loaded.gamma == original.gamma and loaded.dataset_id == "uoft-cs/cifar10"
    torch.testing.assert_close(loaded.accuracies, original.accuracies.double())


def _rewrite(path, *, tensors=None, metadata=None):
    """Writes a safetensors file with chosen tensors / metadata (a forged embedding)."""
    good = model_embedding()
    from hf_stdembed.embeddings import _to_file

    t, m = _to_file(good)
    save_file(tensors if tensors is not None else t, path, metadata={**m, **(metadata or {})})
    return path


@pytest.mark.parametrize(
    ("tensors", "metadata", "message"),
    [
        ({"embedding": torch.rand(STANDARD.dim).double()}, None, "dtype is torch.float64"),
        ({"embedding": torch.rand(2, STANDARD.dim)}, None, r"shape is \(2, 512\)"),
        ({"embedding": torch.full((STANDARD.dim,), float("nan"))}, None, "NaN"),
        ({"embedding": torch.full((STANDARD.dim,), 1.5)}, None, r"\[0, 1\]"),
        ({"embedding": torch.rand(100)}, None, "100 values but standard"),
        ({"weights": torch.rand(STANDARD.dim)}, None, "no 'embedding' tensor"),
        (None, {"schema_version": "99"}, "unknown schema version '99'"),
        (None, {"format": "something/else"}, "unknown format"),
        (None, {"l_to": "nan"}, "'l_to' is not finite"),
    ],
)
def test_invalid_embedding_files_are_refused(tmp_path, tensors, metadata, message):
    path = _rewrite(tmp_path / "bad.safetensors", tensors=tensors, metadata=metadata)
    with pytest.raises(InvalidEmbeddingError, match=message):
        load_embedding(path)


def test_not_safetensors_and_oversized_files_are_refused(tmp_path):
    pickle_like = tmp_path / "model.safetensors"
    pickle_like.write_bytes(b"\x80\x04\x95" + b"x" * 100)
    with pytest.raises(InvalidEmbeddingError, match="not a readable safetensors"):
        load_embedding(pickle_like)
    huge_header = tmp_path / "huge.safetensors"
    huge_header.write_bytes(struct.pack("<Q", 10**12) + json.dumps({}).encode())
    with pytest.raises(InvalidEmbeddingError):
        load_embedding(huge_header)
    big = save_embedding(model_embedding(), tmp_path / "big.safetensors")
    with pytest.raises(InvalidEmbeddingError, match="over the 100 limit"):
        load_embedding(big, max_bytes=100)


def test_embeddings_of_another_standard_are_refused(tmp_path):
    forged = save_embedding(model_embedding(standard_hash="0" * 16), tmp_path / "f.safetensors")
    with pytest.raises(StandardMismatchError, match="does not belong"):
        load_embedding(forged)
    custom = save_embedding(model_embedding(standard_id="my-own"), tmp_path / "c.safetensors")
    with pytest.raises(StandardNotFoundError, match="--standard"):
        load_embedding(custom)
    other = dataclasses.replace(STANDARD, id="my-own")
    with pytest.raises(StandardMismatchError):
        load_embedding(custom, standard=other)  # same id, different hash


def test_public_names_resolve_lazily():
    import hf_stdembed

    for name in hf_stdembed.__all__:
        assert getattr(hf_stdembed, name) is not None
    with pytest.raises(AttributeError):
        hf_stdembed.nope  # noqa: B018
