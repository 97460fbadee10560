"""The CLI end to end on tiny real models and data made in the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from hf_stdembed.cli import app, main
from hf_stdembed.embeddings import ModelEmbedding, TaskEmbedding, load_embedding
from hf_stdembed.extractors import load_extractor
from hf_stdembed.pipeline import compute_model_embedding
from hf_stdembed.standards import get_standard

runner = CliRunner()


@pytest.fixture
def standard_file(tmp_path: Path, tiny_timm_dir: Path, tiny_parquet: Path) -> Path:
    """A standard whose baseline is the tiny timm model and whose probe set is tiny_parquet."""
    baseline = load_extractor(f"timm:{tiny_timm_dir}")
    data = {
        "id": "tiny-test",
        "description": "tests",
        "baseline": {
            "model": f"timm:{tiny_timm_dir}",
            "revision": baseline.revision,
            "dim": int(baseline.module.num_features),
        },
        "probe": {"dataset": "parquet", "split": "train", "data_files": [str(tiny_parquet)]},
        "model_embedding": {"steps": 40, "lr_step": 10, "batch_size": 8},
        "task_embedding": {
            "epochs": 4,
            "lr_step_epochs": 1,
            "batch_size": 8,
            "gammas": [0.0, 1e-3, 1e-2, 1e-1],
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_standards_list_and_show():
    listed = invoke("standards", "list").output
    assert "resnet18-in1k-val" in listed and "swin-t-in1k-val" in listed
    shown = invoke("standards", "show", "resnet18-in1k-val").output
    assert shown.startswith(f"# hash: {get_standard('resnet18-in1k-val').hash}")
    assert yaml.safe_load(shown)["baseline"]["model"] == "timm:timm/resnet18.tv_in1k"


def test_embed_task_rank_end_to_end(
    tmp_path: Path,
    standard_file: Path,
    tiny_timm_dir: Path,
    tiny_transformers_dir: Path,
    tiny_parquet: Path,
):
    std = str(standard_file)
    timm_out, tf_out, task_out = (
        tmp_path / n for n in ("a.safetensors", "b.safetensors", "t.safetensors")
    )
    invoke("embed", f"timm:{tiny_timm_dir}", "--standard", std, "--out", timm_out, "-q")
    invoke("embed", str(tiny_transformers_dir), "--standard", std, "--out", tf_out, "-q")
    invoke("task", str(tiny_parquet), "--standard", std, "--out", task_out, "-q")

    standard = get_standard(std)
    model = load_embedding(timm_out, standard=standard)
    assert isinstance(model, ModelEmbedding) and model.vector.shape == (standard.dim,)
    assert model.model_id == f"timm:{tiny_timm_dir}" and model.standard_hash == standard.hash
    task = load_embedding(task_out, standard=standard)
    assert isinstance(task, TaskEmbedding) and task.gammas.tolist() == [0.0, 1e-3, 1e-2, 1e-1]

    ranked = json.loads(invoke("rank", task_out, timm_out, tf_out, "--json", "-s", std).output)
    assert [r["source"] for r in ranked] and {r["source"] for r in ranked} == {
        str(timm_out),
        str(tf_out),
    }
    assert ranked[0]["score"] >= ranked[1]["score"]
    assert {"model", "score", "fidelity", "rank"} <= set(ranked[0])
    top = json.loads(
        invoke("rank", task_out, timm_out, tf_out, "--json", "--top", "1", "-s", std).output
    )
    assert top == ranked[:1]
    table = invoke("rank", task_out, timm_out, tf_out, "-s", std).output
    assert "fidelity" in table and f"timm:{tiny_timm_dir}" in table  # ids are never cut


def test_rank_skips_embeddings_of_another_standard(tmp_path: Path, standard_file: Path):
    from hf_stdembed.embeddings import save_embedding

    standard = get_standard(standard_file)
    task = TaskEmbedding(
        vector=torch.ones(standard.dim),
        standard_id=standard.id,
        standard_hash=standard.hash,
        dataset_id="d",
        dataset_split="train",
        gamma=0.0,
        converged_accuracy=90.0,
        gammas=torch.zeros(1),
        accuracies=torch.zeros(1),
        mask_sizes=torch.zeros(1),
    )
    other = get_standard("resnet18-in1k-val")
    ours = ModelEmbedding(
        torch.full((standard.dim,), 0.5), standard.id, standard.hash, "ours", None, 1, 1
    )
    theirs = ModelEmbedding(torch.ones(other.dim), other.id, other.hash, "theirs", None, 1, 1)
    from hf_stdembed.selection import rank_embeddings

    ranking = rank_embeddings(task, [ours, theirs])
    assert [r.model_id for r in ranking.rows] == ["ours"]
    assert ranking.rows[0].score == pytest.approx(0.5 * standard.dim)
    assert [s.model_id for s in ranking.skipped] == ["theirs"] and "differs" in ranking.skipped[
        0
    ].reason
    save_embedding(task, tmp_path / "t.safetensors")
    save_embedding(ours, tmp_path / "ours.safetensors")
    result = runner.invoke(
        app,
        [
            "rank",
            str(tmp_path / "t.safetensors"),
            str(tmp_path / "t.safetensors"),
            "-s",
            str(standard_file),
        ],
    )
    assert result.exit_code != 0 and "expected a model embedding" in str(result.exception)


def test_cached_and_per_step_protocols_give_the_same_embedding(
    standard_file: Path, tiny_timm_dir: Path
):
    # The paper's literal protocol (a forward pass of both models per step) and the cached one.
    standard = get_standard(standard_file)
    spec = f"timm:{tiny_timm_dir}"
    cached = compute_model_embedding(spec, standard)
    per_step = compute_model_embedding(spec, standard, protocol="per-step")
    torch.testing.assert_close(cached.vector, per_step.vector, atol=1e-4, rtol=0)
    assert cached.l_to == pytest.approx(per_step.l_to, abs=1e-4)
    assert cached.l_from == pytest.approx(per_step.l_from, abs=1e-4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["embed", "/no/such/model", "--out", "x.safetensors"], "Error: cannot load model"),
        (["standards", "show", "nope"], "Error: unknown standard 'nope'"),
        (["rank", "missing.safetensors", "other.safetensors"], "Error: No such file"),
    ],
)
def test_errors_are_one_line_without_traceback(args, message, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["hf-stdembed", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err


def test_console_script_runs_in_a_subprocess(tmp_path: Path, standard_file: Path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "hf_stdembed", "standards", "show", str(standard_file)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "id: tiny-test" in done.stdout


def test_importing_the_cli_imports_no_heavy_library():
    """`hf-stdembed --help` stays fast: torch and friends load only inside the commands."""
    heavy = ("torch", "numpy", "safetensors", "datasets", "timm", "transformers")
    code = f"import sys, hf_stdembed.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    # the CLI spells out the default standard id so as not to import hf_stdembed.standards
    from hf_stdembed.cli._options import DEFAULT_STANDARD
    from hf_stdembed.standards import DEFAULT_STANDARD as LIBRARY_DEFAULT

    assert DEFAULT_STANDARD == LIBRARY_DEFAULT
