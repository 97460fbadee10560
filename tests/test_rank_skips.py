"""`rank` skips (and reports) the files it cannot compare with the task, and ranks the rest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from hf_stdembed.cli import main
from hf_stdembed.embeddings import ModelEmbedding, TaskEmbedding, save_embedding
from hf_stdembed.standards import get_standard

STANDARD = get_standard("resnet18-in1k-val")
OTHER = get_standard("swin-t-in1k-val")


def model_file(folder: Path, name: str, *, standard=STANDARD, value: float = 0.5) -> Path:
    path = folder / f"{name}.safetensors"
    save_embedding(
        ModelEmbedding(
            vector=torch.full((standard.dim,), value),
            standard_id=standard.id,
            standard_hash=standard.hash,
            model_id=f"timm:org/{name}",
            model_revision="abc",
            l_to=0.9,
            l_from=0.9,
        ),
        path,
    )
    return path


def task_file(folder: Path, name: str = "task") -> Path:
    path = folder / f"{name}.safetensors"
    save_embedding(
        TaskEmbedding(
            vector=torch.ones(STANDARD.dim),
            standard_id=STANDARD.id,
            standard_hash=STANDARD.hash,
            dataset_id="digits",
            dataset_split="train",
            gamma=1e-3,
            converged_accuracy=90.0,
            gammas=torch.tensor([0.0, 1e-3]),
            accuracies=torch.tensor([90.0, 89.0]),
            mask_sizes=torch.tensor([500.0, 50.0]),
        ),
        path,
    )
    return path


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["hf-stdembed", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x89PNG not an embedding at all")
    return {
        "task": task_file(tmp_path),
        "good": model_file(tmp_path, "good", value=0.9),
        "fair": model_file(tmp_path, "fair", value=0.2),
        "other": model_file(tmp_path, "swin", standard=OTHER),
        "junk": junk,
        "second-task": task_file(tmp_path, "second-task"),
        "missing": tmp_path / "missing.safetensors",
    }


def test_rank_skips_and_reports_what_it_cannot_compare(files, monkeypatch, capsys):
    """One embedding of another standard aborted the whole ranking (the README says
    rankings skip and report them)."""
    names = ["good", "other", "junk", "fair", "second-task", "missing"]
    code, out, err = run_cli(
        monkeypatch, capsys, "rank", files["task"], *(files[n] for n in names), "--json"
    )
    assert code == 0, err
    rows = json.loads(out)
    assert [r["model"] for r in rows] == ["timm:org/good", "timm:org/fair"]
    skipped = {line.split(": ", 1)[0]: line for line in err.splitlines() if "skipped" in line}
    assert set(skipped) == {
        f"skipped {files[n]}" for n in ("other", "junk", "second-task", "missing")
    }, err
    assert "standard 'swin-t-in1k-val'" in skipped[f"skipped {files['other']}"]
    assert "resnet18-in1k-val" in skipped[f"skipped {files['other']}"]
    assert "not a readable safetensors file" in skipped[f"skipped {files['junk']}"]
    second = skipped[f"skipped {files['second-task']}"]
    assert "is a task embedding, expected a model embedding" in second
    assert "no such file" in skipped[f"skipped {files['missing']}"]
    assert "Error:" not in err and "Traceback" not in err


def test_rank_of_only_bad_files_is_one_clear_error(files, monkeypatch, capsys):
    code, out, err = run_cli(
        monkeypatch, capsys, "rank", files["task"], files["other"], files["junk"]
    )
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 3 and "Traceback" not in err, err
    assert lines[-1] == (
        "Error: none of the 2 embedding files can be ranked against the task's standard"
        " 'resnet18-in1k-val' (reasons above)"
    )


def test_rank_table_lists_the_ranked_files(files, monkeypatch, capsys):
    code, out, err = run_cli(
        monkeypatch, capsys, "rank", files["task"], files["good"], files["other"]
    )
    assert code == 0, err
    assert "timm:org/good" in out and "timm:org/swin" not in out
    assert f"skipped {files['other']}" in err


def test_rank_with_a_custom_standard_skips_builtin_ones(tmp_path, monkeypatch, capsys):
    """With --standard FILE.yaml, an embedding of a built-in standard stopped the ranking."""
    text = STANDARD.to_yaml().replace(f"id: {STANDARD.id}", "id: my-custom", 1)
    (tmp_path / "custom.yaml").write_text(text)
    custom = get_standard(str(tmp_path / "custom.yaml"))
    assert custom.hash != STANDARD.hash
    task = tmp_path / "task.safetensors"
    save_embedding(
        TaskEmbedding(
            vector=torch.ones(custom.dim),
            standard_id=custom.id,
            standard_hash=custom.hash,
            dataset_id="digits",
            dataset_split="train",
            gamma=1e-3,
            converged_accuracy=90.0,
            gammas=torch.tensor([0.0, 1e-3]),
            accuracies=torch.tensor([90.0, 89.0]),
            mask_sizes=torch.tensor([500.0, 50.0]),
        ),
        task,
    )
    mine = model_file(tmp_path, "mine", standard=custom)
    builtin = model_file(tmp_path, "builtin")
    code, out, err = run_cli(
        monkeypatch, capsys, "rank", task, builtin, mine, "--json", "-s", tmp_path / "custom.yaml"
    )
    assert code == 0, err
    assert [r["model"] for r in json.loads(out)] == ["timm:org/mine"]
    assert f"skipped {builtin}: embedding of standard 'resnet18-in1k-val'" in err


def test_rank_of_one_bad_file_says_why_in_the_error(files, monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, "rank", files["task"], files["junk"])
    assert code == 1 and out == ""
    assert err.startswith(f"Error: {files['junk']}: not a readable safetensors file"), err
    assert len(err.strip().splitlines()) == 1
