"""Files the tools write follow the umask (new files) or keep their mode (replaced files)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hf_stdembed._files import atomic_path, atomic_write
from hf_stdembed.cli import app


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[int]:
    """Runs the test under umask 022 (and restores the caller's)."""
    old = os.umask(0o022)
    try:
        yield 0o022
    finally:
        os.umask(old)


def test_new_files_follow_the_umask(tmp_path: Path, umask: int):
    written = atomic_write(tmp_path / "a.bin", b"x")
    assert mode(written) == 0o666 & ~umask
    with atomic_path(tmp_path / "sub" / "b.bin") as tmp:
        tmp.write_bytes(b"y")
    assert mode(tmp_path / "sub" / "b.bin") == 0o666 & ~umask
    os.umask(0o077)
    assert mode(atomic_write(tmp_path / "c.bin", b"z")) == 0o600


def test_files_a_library_recreates_follow_the_umask_too(tmp_path: Path, umask: int):
    """safetensors' save_file (the feature cache's writer) creates its file with 0600."""
    import torch
    from safetensors.torch import save_file

    with atomic_path(tmp_path / "features.safetensors") as tmp:
        save_file({"x": torch.zeros(2)}, tmp)
    assert mode(tmp_path / "features.safetensors") == 0o644


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask: int):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    path.chmod(0o640)
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and mode(path) == 0o640
    path.chmod(0o604)
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"newer")
    assert mode(path) == 0o604


def test_a_failed_write_leaves_nothing(tmp_path: Path, umask: int):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_embed_out_follows_the_umask(
    tmp_path: Path,
    umask: int,
    standard_file: Path,
    tiny_timm_dir: Path,
):
    """`embed --out` wrote its file with mode 0600; other tools' outputs follow the umask."""
    out = tmp_path / "out.safetensors"
    args = ["embed", f"timm:{tiny_timm_dir}", "--standard", str(standard_file), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "-q"])
    assert result.exit_code == 0, result.output
    assert mode(out) == 0o644
