"""Broken or hostile model folders fail fast with one clear error: never random weights,
never a prompt to run a repo's own code."""

from __future__ import annotations

import builtins
import json
import shutil
import struct
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hf_stdembed.cli import app, main
from hf_stdembed.errors import ModelLoadError
from hf_stdembed.extractors import load_extractor


@pytest.fixture
def timm_copy(tiny_timm_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_timm_dir, folder)
    return folder


def test_timm_folder_with_an_empty_weights_file(timm_copy: Path, monkeypatch, capsys):
    (timm_copy / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"model\.safetensors is empty \(0 bytes\).*re-"):
        load_extractor(f"timm:{timm_copy}")
    # through the CLI: one line
    monkeypatch.setattr(sys, "argv", ["hf-stdembed", "embed", str(timm_copy), "--out", "o", "-q"])
    with pytest.raises(SystemExit):
        main()
    err = capsys.readouterr().err
    assert err.startswith("Error: cannot load model") and "is empty (0 bytes)" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (lambda data: data[: len(data) // 2], r"model\.safetensors is truncated: \d+ bytes"),
        (lambda data: data[:5], r"model\.safetensors is truncated or not a safetensors file"),
        (lambda data: data + b"extra", r"model\.safetensors has \d+ bytes, its header describes"),
        (lambda data: b"\x10" + b"\0" * 7 + b"not json" * 4, r"not a safetensors file"),
        (lambda data: struct.pack("<Q", 2) + b"{}", r"holds no tensors"),
    ],
)
def test_timm_folder_with_a_broken_weights_file(timm_copy: Path, cut, message):
    weights = timm_copy / "model.safetensors"
    weights.write_bytes(cut(weights.read_bytes()))
    with pytest.raises(ModelLoadError, match=message):
        load_extractor(f"timm:{timm_copy}")


def test_hub_snapshot_with_an_empty_weights_file(timm_copy: Path, fake_hub):
    (timm_copy / "model.safetensors").write_bytes(b"")
    fake_hub("org/empty-weights", timm_copy, sha="a" * 40)
    with pytest.raises(ModelLoadError, match=r"model\.safetensors is empty"):
        load_extractor("timm:org/empty-weights")


def test_an_empty_pytorch_checkpoint_is_named(timm_copy: Path):
    (timm_copy / "model.safetensors").unlink()
    (timm_copy / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"pytorch_model\.bin is empty \(0 bytes\)"):
        load_extractor(f"timm:{timm_copy}")


# --- custom code ------------------------------------------------------------------------


@pytest.fixture
def custom_code_dir(tiny_transformers_dir: Path, tmp_path: Path) -> Path:
    """A transformers folder whose config asks for the repo's own code (``auto_map``)."""
    folder = tmp_path / "custom"
    shutil.copytree(tiny_transformers_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "my-own-arch"
    config["auto_map"] = {"AutoConfig": "modeling.MyConfig", "AutoModel": "modeling.MyModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling.py").write_text("raise SystemExit('the custom code ran')\n")
    return folder


def test_custom_code_is_refused_at_once_without_a_prompt(custom_code_dir: Path, monkeypatch):
    """transformers asks `Do you wish to run the custom code? [y/N]` (15 s) unless it is
    told `trust_remote_code=False`; hf-stdembed never runs a repo's code."""

    def prompted(*args, **kwargs):
        raise AssertionError(f"prompted: {args}")

    monkeypatch.setattr(builtins, "input", prompted)
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match=r"needs its own code \(auto_map in config\.json;"):
        load_extractor(f"transformers:{custom_code_dir}")
    assert time.monotonic() - start < 10


def test_custom_code_through_the_cli(custom_code_dir: Path, monkeypatch, tmp_path: Path):
    monkeypatch.setattr(builtins, "input", lambda *a, **k: pytest.fail("prompted"))
    result = CliRunner().invoke(
        app, ["embed", str(custom_code_dir), "--out", str(tmp_path / "o"), "-q"]
    )
    assert result.exit_code == 1
    assert "needs its own code" in str(result.exception)


def test_every_transformers_load_says_trust_remote_code_false(tiny_transformers_dir, monkeypatch):
    """Model, processor (and the config they read) are loaded with trust_remote_code=False."""
    import transformers

    seen = []
    for name in ("AutoModel", "AutoImageProcessor"):
        cls = getattr(transformers, name)
        original = cls.from_pretrained

        def spy(*args, _original=original, _name=name, **kwargs):
            seen.append((_name, kwargs.get("trust_remote_code", "unset")))
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    load_extractor(f"transformers:{tiny_transformers_dir}")
    assert seen == [("AutoModel", False), ("AutoImageProcessor", False)]


def test_timm_weights_missing_a_tensor_are_refused(timm_copy: Path):
    """timm loads non-strictly when the classifier is dropped (num_classes=0), so a file
    missing some tensors, or holding only unrelated ones, gave random weights silently."""
    from safetensors.torch import load_file, save_file

    weights = load_file(timm_copy / "model.safetensors")
    del weights["bn1.bias"]
    save_file(weights, timm_copy / "model.safetensors")
    with pytest.raises(ModelLoadError, match=r"lack 1 of the model's tensors \(bn1\.bias\)"):
        load_extractor(f"timm:{timm_copy}")
    save_file({"unrelated": weights["bn1.weight"]}, timm_copy / "model.safetensors")
    with pytest.raises(ModelLoadError, match=r"lack \d+ of the model's tensors"):
        load_extractor(f"timm:{timm_copy}")
