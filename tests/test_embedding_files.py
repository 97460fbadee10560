"""Embedding files from strangers: fidelities in range, the standard named and hashed, bounded
metadata and headers (issue 10 #5), the model spec recorded (issue 9 #6), and property-based
tests over safetensors headers (issue 10 deliverable 4)."""

from __future__ import annotations

import dataclasses
import json
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as save_bytes

from hf_stdembed.embeddings import (
    MAX_HEADER_BYTES,
    MAX_METADATA_CHARS,
    ModelEmbedding,
    TaskEmbedding,
    _to_file,
    embedding_bytes,
    load_embedding,
    save_embedding,
    vector_problem,
)
from hf_stdembed.errors import InvalidEmbeddingError, StandardMismatchError, StdEmbedError
from hf_stdembed.standards import get_standard

STANDARD = get_standard("resnet18-in1k-val")
SWIN = get_standard("swin-t-in1k-val")


def embedding(**changes) -> ModelEmbedding:
    base = ModelEmbedding(
        vector=torch.rand(STANDARD.dim, generator=torch.Generator().manual_seed(0)),
        standard_id=STANDARD.id,
        standard_hash=STANDARD.hash,
        model_id="timm:org/model",
        model_revision="abc123",
        l_to=0.97,
        l_from=0.95,
        model_spec="timm:org/model",
    )
    return dataclasses.replace(base, **changes)


def forged(path: Path, **metadata: str) -> Path:
    tensors, meta = _to_file(embedding())
    path.write_bytes(save_bytes(tensors, metadata={**meta, **metadata}))
    return path


@pytest.mark.parametrize("value", ["1e308", "1.5", "-2", "1.01"])
@pytest.mark.parametrize("key", ["l_to", "l_from"])
def test_fidelities_outside_the_cosine_range_are_refused(
    tmp_path: Path, key: str, value: str
) -> None:
    path = forged(tmp_path / "f.safetensors", **{key: value})

    with pytest.raises(InvalidEmbeddingError, match=f"'{key}'.*cosine similarity"):
        load_embedding(path, standard=STANDARD)


def test_rounding_above_one_is_accepted(tmp_path: Path) -> None:
    path = forged(tmp_path / "f.safetensors", l_to="1.0000001", l_from="-1.0000002")
    assert load_embedding(path, standard=STANDARD).l_to == pytest.approx(1.0)


def test_a_file_naming_another_standard_is_not_filed_under_the_requested_one(
    tmp_path: Path,
) -> None:
    # the right hash, but the file says it is a swin-t-in1k-val embedding
    path = forged(tmp_path / "f.safetensors", standard_id=SWIN.id)

    with pytest.raises(StandardMismatchError, match="swin-t-in1k-val.*resnet18-in1k-val"):
        load_embedding(path, standard=STANDARD)


def test_long_metadata_strings_are_refused(tmp_path: Path) -> None:
    path = forged(tmp_path / "f.safetensors", model_id="x" * (MAX_METADATA_CHARS + 1))

    with pytest.raises(InvalidEmbeddingError, match="'model_id' is .* characters"):
        load_embedding(path, standard=STANDARD)


def test_an_oversized_header_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = json.dumps({"__metadata__": {"pad": "x" * MAX_HEADER_BYTES}}).encode()
    path = tmp_path / "big-header.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    monkeypatch.setattr(json, "loads", lambda *a, **k: pytest.fail("the header was parsed"))

    with pytest.raises(InvalidEmbeddingError, match="header of .* bytes"):
        load_embedding(path)


def test_the_model_spec_is_recorded_and_old_files_still_load(tmp_path: Path) -> None:
    path = save_embedding(embedding(), tmp_path / "new.safetensors")
    assert load_embedding(path).model_spec == "timm:org/model"
    private = save_embedding(embedding(model_spec=None), tmp_path / "private.safetensors")
    assert load_embedding(private).model_spec is None

    tensors, meta = _to_file(embedding())
    del meta["model_spec"]  # written before the field existed
    old = tmp_path / "old.safetensors"
    old.write_bytes(save_bytes(tensors, metadata=meta))
    loaded = load_embedding(old)
    assert loaded.model_spec is None and loaded.model_id == "timm:org/model"


def test_the_same_embedding_always_gives_the_same_bytes(tmp_path: Path) -> None:
    original = embedding()
    files = [save_embedding(original, tmp_path / f"{i}.safetensors") for i in range(6)]

    assert len({f.read_bytes() for f in files}) == 1
    assert torch.equal(load_embedding(files[0]).vector, original.vector)


# -- property-based: any header is a reason, never a crash -------------------------------

_GOOD_TENSORS, _GOOD_META = _to_file(embedding())
_GOOD = save_bytes(_GOOD_TENSORS, metadata=_GOOD_META)
_HEADER_LEN = struct.unpack("<Q", _GOOD[:8])[0]
_GOOD_HEADER = json.loads(_GOOD[8 : 8 + _HEADER_LEN])
_DATA = _GOOD[8 + _HEADER_LEN :]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
dtypes = st.sampled_from(
    ["F32", "F64", "F16", "BF16", "I64", "I32", "I8", "U8", "U16", "U32", "U64", "BOOL",
     "F8_E4M3", "F8_E5M2", "C64", "X", ""]
)  # fmt: skip
big_ints = st.integers(min_value=-(2**70), max_value=2**70)


@st.composite
def mutated_headers(draw) -> bytes:
    """The good file's header with one part changed: a dtype, a shape, offsets, metadata, or
    a random JSON value; the length prefix sometimes lies."""
    header = json.loads(json.dumps(_GOOD_HEADER))
    tensor = header["embedding"]
    choice = draw(st.integers(0, 6))
    if choice == 0:
        tensor["dtype"] = draw(dtypes)
    elif choice == 1:
        tensor["shape"] = draw(st.lists(big_ints, max_size=4))
    elif choice == 2:
        tensor["data_offsets"] = draw(st.lists(big_ints, max_size=3))
    elif choice == 3:
        header["__metadata__"][draw(st.sampled_from(sorted(_GOOD_META)))] = draw(json_values)
    elif choice == 4:
        header = draw(json_values)
    elif choice == 5:
        header[draw(st.text(max_size=10))] = draw(json_values)
    else:
        header["__metadata__"] = draw(json_values)
    text = json.dumps(header).encode()
    length = len(text) + draw(st.sampled_from([0, 0, 0, 1, -1, 2**40, -len(text)]))
    body = draw(st.sampled_from([_DATA, _DATA[:-4], b"", _DATA + b"\0" * 8]))
    return struct.pack("<Q", max(length, 0) % 2**64) + text + body


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=mutated_headers())
def test_mutated_headers_are_refused_with_a_reason(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)

    tracemalloc.start()
    try:
        load_embedding(path, standard=STANDARD)
    except StdEmbedError:
        pass  # InvalidEmbeddingError, or a standard mismatch for a well-formed file
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=256), prefix=st.sampled_from([b"", b"\x10\0\0\0\0\0\0\0"]))
def test_random_bytes_are_refused_with_a_reason(tmp_path: Path, data: bytes, prefix: bytes) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(prefix + data)

    with pytest.raises(InvalidEmbeddingError):
        load_embedding(path, standard=STANDARD)


def test_standard_hashes_and_file_bytes_are_pinned() -> None:
    """Standard hashes and embedding file bytes (now from `_hashing`) are those computed
    before: published files and caches name them."""
    import hashlib

    from hf_stdembed.standards import builtin_standards

    hashes = {k: s.hash for k, s in builtin_standards().items()}
    assert hashes == {
        "resnet18-in1k-val": "2d7cbc85a586adae",
        "swin-t-in1k-val": "ca0d44df0875ffe8",
        "union-resnet18-swin-t-in1k-val": "f25a07ad20c1256b",
    }
    std = builtin_standards()["resnet18-in1k-val"]
    embedding = ModelEmbedding(
        vector=torch.linspace(0, 1, std.dim),
        standard_id=std.id,
        standard_hash=std.hash,
        model_id="entrypoint:pkg.mod:fn-é",  # non-ASCII metadata is written as UTF-8
        model_revision="rév",
        l_to=0.5,
        l_from=0.25,
        library_version="0.1.0",
        created_at="2024-01-01T00:00:00+00:00",
    )
    digest = hashlib.sha256(embedding_bytes(embedding)).hexdigest()
    assert digest == "ba48ce03d3ee16ad41f043c88a5daa67a9744a3f54cf7c84381a41e504606647"


def task_embedding() -> TaskEmbedding:
    sweep = torch.tensor([0.0, 1e-3], dtype=torch.float64)
    return TaskEmbedding(
        vector=torch.full((STANDARD.dim,), 0.5),
        standard_id=STANDARD.id,
        standard_hash=STANDARD.hash,
        dataset_id="org/data",
        dataset_split="train",
        gamma=1e-3,
        converged_accuracy=90.0,
        gammas=sweep,
        accuracies=torch.tensor([90.0, 89.0], dtype=torch.float64),
        mask_sizes=torch.tensor([10.0, 5.0], dtype=torch.float64),
    )


def test_load_embedding_of_a_kind_refuses_the_other_kind(tmp_path: Path) -> None:
    model = save_embedding(embedding(), tmp_path / "model.safetensors")
    task = save_embedding(task_embedding(), tmp_path / "task.safetensors")

    assert isinstance(load_embedding(model, standard=STANDARD, kind=ModelEmbedding), ModelEmbedding)
    assert isinstance(load_embedding(task, kind=TaskEmbedding), TaskEmbedding)
    with pytest.raises(InvalidEmbeddingError) as e:
        load_embedding(task, standard=STANDARD, kind=ModelEmbedding)
    assert str(e.value) == f"{task}: is a task embedding, expected a model embedding"
    with pytest.raises(InvalidEmbeddingError) as e:
        load_embedding(model, kind=TaskEmbedding)
    assert str(e.value) == f"{model}: is a model embedding, expected a task embedding"
    # the standard is checked first: a file of another standard is that, whatever its kind
    with pytest.raises(StandardMismatchError):
        load_embedding(task, standard=SWIN, kind=ModelEmbedding)


@pytest.mark.parametrize("array", [np.asarray, torch.as_tensor])
@pytest.mark.parametrize(
    ("values", "dim", "problem"),
    [
        ([0.0, 0.5, 1.0], None, None),
        ([0.0, 0.5, 1.0], 3, None),
        ([0.0, 0.5, 1.0], 4, "embedding has 3 values, the standard has 4"),
        ([[0.5, 0.5]], None, "embedding shape is (1, 2), expected (N,)"),
        ([], None, "embedding shape is (0,), expected (N,)"),
        ([0.5, float("nan")], None, "embedding holds NaN"),
        ([-0.5, 1.0], None, "embedding values must lie in [0, 1]; found [-0.5, 1.0]"),
        ([0.0, float("inf")], None, "embedding values must lie in [0, 1]; found [0.0, inf]"),
    ],
)
def test_vector_problem_reads_numpy_and_torch_alike(array, values, dim, problem) -> None:
    vector = array(np.asarray(values, dtype=np.float32))
    assert vector_problem(vector, dim) == problem


def test_vector_problem_names_the_dtype_as_its_array_type_prints_it() -> None:
    assert vector_problem(np.zeros(3)) == "embedding dtype is float64, expected float32"
    assert vector_problem(torch.zeros(3, dtype=torch.float64)) == (
        "embedding dtype is torch.float64, expected float32"
    )
    assert vector_problem(np.zeros(3, dtype=np.int32)) == (
        "embedding dtype is int32, expected float32"
    )


def test_vector_problem_module_does_not_import_torch() -> None:
    """The index validates vectors with it and must stay torch-free at import."""
    code = "import sys, hf_stdembed._vectors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
