"""Every user mistake gets one ``Error: ...`` line that says the fix, never a traceback.

Each case runs the console entry point (`hf_stdembed.cli.main`) as a user would, offline.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from hf_stdembed.cli import main


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Runs ``hf-stdembed ARGS``; returns the exit code and stderr."""
    monkeypatch.setattr(sys, "argv", ["hf-stdembed", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and "╭" not in err, err
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    """A current folder holding a file (``a-file``) and an empty folder (``empty``)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a model")
    (tmp_path / "empty").mkdir()
    return tmp_path


# --- model specs (embed; publish --model) ------------------------------------------------

MODEL_MISTAKES = [
    # the README's own example with a missing folder: was an 86-line HFValidationError
    ("timm:./my-private-model", r"no folder \./my-private-model; for a Hub repo write org/name"),
    ("./not-a-model", r"no folder \./not-a-model; for a Hub repo write org/name"),
    ("transformers:../gone", r"no folder \.\./gone; for a Hub repo write org/name"),
    ("~/no-such-model-folder", r"no folder ~/no-such-model-folder; for a Hub repo write"),
    ("timm:", r"nothing after the 'timm:' prefix; write timm:org/name or timm:\./folder"),
    ("x/y/z", r"no folder x/y/z, and a Hub repo id has one '/' \(org/name\)"),
    ("a b", r"no folder 'a b', and a Hub repo id holds only letters, digits"),
    ("a-file", r"a-file is a file, not a model folder: give the folder holding config\.json"),
    ("timm:a-file", r"a-file is a file, not a model folder"),
    ("empty", r"no config\.json in .*empty"),
]


@pytest.mark.parametrize(("spec", "message"), MODEL_MISTAKES)
def test_embed_model_mistakes(workdir: Path, monkeypatch, capsys, spec: str, message: str):
    code, err = run_cli(monkeypatch, capsys, "embed", spec, "--out", "e.safetensors", "-q")
    assert code == 1
    line = one_error_line(err)
    assert line.startswith(f"Error: cannot load model {spec!r}: ")
    assert re.search(message, line), line


def test_publish_readme_example_with_a_missing_folder(workdir: Path, monkeypatch, capsys):
    """`publish ORG/NAME --model timm:./my-private-model` (the README's example) printed an
    86-line traceback when the folder was mistyped."""
    registry = workdir / "registry"
    (registry / "org" / "name").mkdir(parents=True)
    code, err = run_cli(
        monkeypatch,
        capsys,
        *("publish", "org/name", "--model", "timm:./my-private-model", "--dry-run"),
        *("--registry", registry, "-q"),
    )
    assert code == 1
    assert "no folder ./my-private-model; for a Hub repo write org/name" in one_error_line(err)


# --- datasets (task, select, evaluate) ---------------------------------------------------

DATASET_MISTAKES = [
    # was "Repo id must use alphanumeric chars" online, "the Hub cannot be reached" offline
    ("./nope.parquet", r"no file or folder \./nope\.parquet; for a Hub dataset write org/name"),
    ("nope.parquet", r"no file or folder nope\.parquet; for a Hub dataset write org/name"),
    ("../no-folder", r"no file or folder \.\./no-folder; for a Hub dataset write org/name"),
    ("x/y/z", r"no file or folder x/y/z, and a Hub dataset id has one '/' \(org/name\)"),
    ("a b", r"no file or folder 'a b', and a Hub dataset id holds only letters, digits"),
    ("a-file", r"a single file must be \.parquet"),
    ("empty", r"folder .*empty holds no data files: give parquet files or an image folder"),
]


@pytest.mark.parametrize(("source", "message"), DATASET_MISTAKES)
def test_task_dataset_mistakes(workdir: Path, monkeypatch, capsys, source: str, message: str):
    code, err = run_cli(monkeypatch, capsys, "task", source, "--out", "t.safetensors", "-q")
    assert code == 1
    line = one_error_line(err)
    assert line.startswith(f"Error: cannot load dataset {source!r}: ")
    assert re.search(message, line), line


def test_select_with_a_missing_dataset_file(workdir: Path, monkeypatch, capsys):
    """`select --dataset ./nope.parquet` said `Repo id must use alphanumeric chars`."""
    code, err = run_cli(
        monkeypatch,
        capsys,
        *("select", "--dataset", "./nope.parquet", "--no-refresh", "--index", "idx", "-q"),
    )
    assert code == 1
    assert "no file or folder ./nope.parquet; for a Hub dataset" in one_error_line(err)


def test_evaluate_with_a_missing_task_file(workdir: Path, monkeypatch, capsys):
    code, err = run_cli(
        monkeypatch,
        capsys,
        *("evaluate", "-c", "timm:org/model", "-t", "digits=./nope.parquet", "--out", "r", "-q"),
    )
    assert code == 1
    assert re.search(r"no file \./nope\.parquet", one_error_line(err)), err


# --- usage errors and help ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["embed"], "Missing"),
        (["rank"], "Missing"),
        (["embed", "m", "--out", "o", "--batch-size", "many"], "batch-size"),
        (["no-such-command"], "No such command"),
        (["embed", "m", "--out", "o", "--no-such-option"], "No such option"),
    ],
)
def test_usage_errors_print_usage_not_a_traceback(monkeypatch, capsys, args, message):
    """A missing argument printed a 20-line traceback ending in `MissingParameter`."""
    code, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2
    assert "Traceback" not in err and "MissingParameter:" not in err, err
    assert message in err and "Usage:" in err, err


def all_commands():
    """(name, click command) for every command and group of the CLI."""
    import typer

    from hf_stdembed.cli import app

    found = []

    def walk(command, name):
        found.append((name, command))
        for sub_name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, f"{name} {sub_name}".strip())

    walk(typer.main.get_command(app), "")
    return found


@pytest.mark.parametrize(("name", "command"), all_commands(), ids=lambda v: str(v))
def test_help_texts_have_no_hard_line_breaks(name, command):
    """`publish --help` and `evaluate --help` wrapped mid-sentence: a docstring's hard line
    break is kept by the help renderers of some Typer/Click versions."""
    texts = {"": command.help or ""}
    texts.update({p.name: p.help for p in command.params if getattr(p, "help", None)})
    for where, text in texts.items():
        for paragraph in text.strip().split("\n\n"):
            assert "\n" not in paragraph.strip(), f"{name} {where}: {paragraph!r}"
