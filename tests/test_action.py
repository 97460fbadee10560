"""The composite action (action.yml), executed step by step against the fake Hub.

A tiny runner stands in for GitHub's: each ``run:`` step goes to ``bash --noprofile --norc
-eo pipefail`` (what ``shell: bash`` means on GitHub) with its ``env:`` mapping evaluated by a
small evaluator of the only expressions the action may use (``inputs.X``, ``env.X``,
``steps.ID.outputs.X``, ``github.action_path``), ``GITHUB_ACTION_PATH`` at the repository root
and ``GITHUB_OUTPUT`` a file per step; ``uses:`` steps (setup-python) are skipped: the test's
interpreter plays the Python they would set up. The install step runs for real with pip, made
a dry run without any index (``PIP_DRY_RUN``, ``PIP_NO_INDEX``): it resolves the package at
``$GITHUB_ACTION_PATH`` against what is installed and changes nothing.

Also here: ``hf-stdembed publish --json``, whose output the action turns into its outputs
(without ``--json`` it prints the URL alone: tests/test_publish.py checks that).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hub_server import TOKEN, FakeHub
from huggingface_hub import ModelCard
from model_repos import make_timm_dir, model_files, write_standard
from typer.testing import CliRunner

from hf_stdembed.card import card_entries
from hf_stdembed.cli import app

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# pip, made harmless: resolve only against what is installed, build without isolation (pip
# reads PIP_NO_BUILD_ISOLATION=0 as --no-build-isolation), install nothing.
# PIP_QUIET=0: the test reads pip's "Would install" line, whatever the caller's settings.
PIP_OFFLINE_DRY_RUN = {
    "PIP_DRY_RUN": "1",
    "PIP_NO_INDEX": "1",
    "PIP_NO_BUILD_ISOLATION": "0",
    "PIP_QUIET": "0",
}
runner = CliRunner()


def evaluate(text: str, *, inputs: dict, env: dict, steps: dict) -> str:
    """``text`` with each ``${{ ... }}`` replaced, for the forms the action may use."""

    def one(match: re.Match) -> str:
        expression = match.group(1)
        parts = expression.split(".")
        if parts[0] == "inputs" and len(parts) == 2:
            return inputs[parts[1]]  # KeyError: an undeclared input
        if parts[0] == "env" and len(parts) == 2:
            return env.get(parts[1], "")
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return steps.get(parts[1], {}).get(parts[3], "")
        if expression == "github.action_path":
            return str(ROOT)
        raise AssertionError(f"the test's evaluator does not know ${{{{ {expression} }}}}")

    return EXPRESSION.sub(one, text)


def read_outputs(path: Path) -> dict[str, str]:
    """A ``$GITHUB_OUTPUT`` file: ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text().splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for value in lines:
                if value == delimiter:
                    break
                block.append(value)
            outputs[name] = "\n".join(block)
        elif line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


@dataclass
class ActionRun:
    returncode: int  # of the last step run
    logs: list[str]  # stdout + stderr of each step run
    steps: dict[str, dict[str, str]]  # outputs of each step with an id
    outputs: dict[str, str]  # the action's outputs
    skipped: list[str]  # the `uses:` steps


def run_action(given: dict[str, str], *, env: dict[str, str], workdir: Path) -> ActionRun:
    """Runs action.yml's steps as GitHub would, stopping at the first failing one."""
    declared = ACTION["inputs"]
    assert set(given) <= set(declared), set(given) - set(declared)
    for name, spec in declared.items():
        assert not spec.get("required") or name in given, f"required input {name} not given"
    inputs = {
        name: str(given.get(name, spec.get("default", ""))) for name, spec in declared.items()
    }
    steps: dict[str, dict[str, str]] = {}
    logs, skipped = [], []
    summary = workdir / "step-summary.md"
    returncode = 0
    for number, step in enumerate(ACTION["runs"]["steps"]):
        if "uses" in step:
            skipped.append(step["uses"])
            continue
        assert step["shell"] == "bash", step
        output = workdir / f"output-{number}"
        output.write_text("")
        script = workdir / f"step-{number}.sh"
        script.write_text(step["run"])
        step_env = {
            **env,
            "GITHUB_ACTION_PATH": str(ROOT),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_WORKSPACE": str(workdir),
            "RUNNER_TEMP": str(workdir),
        }
        for name, value in (step.get("env") or {}).items():
            step_env[name] = evaluate(str(value), inputs=inputs, env=env, steps=steps)
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            env=step_env,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        logs.append(done.stdout + done.stderr)
        returncode = done.returncode
        if "id" in step:
            steps[step["id"]] = read_outputs(output)
        if returncode != 0:
            break
    outputs = {
        name: evaluate(spec["value"], inputs=inputs, env=env, steps=steps)
        for name, spec in ACTION["outputs"].items()
    }
    return ActionRun(returncode, logs, steps, outputs, skipped)


@pytest.fixture
def action_env(hub: FakeHub) -> dict[str, str]:
    """The job's environment: the fake Hub's endpoint and the temp caches, this interpreter
    first on PATH, pip made a dry run, and no ambient token (the action must map its own)."""
    env = {**os.environ, **PIP_OFFLINE_DRY_RUN}
    env.pop("HF_TOKEN", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny timm model (never written to: copy it first)."""
    return make_timm_dir(tmp_path_factory.mktemp("action_model"), seed=4)


def embedding_file(standard_id: str) -> str:
    return f"stdembed/{standard_id}.safetensors"


@pytest.mark.slow
def test_action_publishes_and_writes_its_outputs(
    hub: FakeHub, action_env: dict, model_dir: Path, standard_file: Path, tmp_path: Path
) -> None:
    before = hub.add_repo("tester/action", model_files(model_dir))

    done = run_action(
        {"repo-id": "tester/action", "standards": str(standard_file), "token": TOKEN},
        env=action_env,
        workdir=tmp_path,
    )

    assert done.returncode == 0, "\n".join(done.logs)
    assert [uses.split("@")[0] for uses in done.skipped] == ["actions/setup-python"]
    assert "Would install hf-stdembed" in done.logs[0]  # the install step, as a dry run
    assert "Requirement already satisfied: torch in" in done.logs[0]  # torch first
    head = hub.head("tester/action")
    assert head != before
    files = hub.files("tester/action")
    data = files[embedding_file("tiny-test")]
    out = done.outputs
    assert out["url"] == out["commit-url"] == f"{hub.endpoint}/tester/action/commit/{head}"
    assert out["pr-url"] == ""
    assert out["sha256"] == hashlib.sha256(data).hexdigest()
    assert out["standards"] == "tiny-test"
    fidelity = float(out["fidelity"])
    assert 0.0 < fidelity <= 1.0
    entry = card_entries(ModelCard(files["README.md"].decode()).data.to_dict())[0]["tiny-test"]
    assert entry.sha256 == out["sha256"] and entry.fidelity == pytest.approx(fidelity)
    assert entry.model_revision == before  # the repo's own model, pinned
    result = json.loads(out["result-json"])
    assert result["commit"] == head and result["embeddings"][0]["file"] == embedding_file(
        "tiny-test"
    )
    summary = (tmp_path / "step-summary.md").read_text()
    assert out["sha256"] in summary and "tester/action" in summary
    assert TOKEN not in "\n".join(done.logs)


@pytest.mark.slow
def test_action_opens_a_pull_request_for_two_standards(
    hub: FakeHub,
    action_env: dict,
    model_dir: Path,
    standard_file: Path,
    tiny_timm_dir: Path,
    tiny_parquet: Path,
    tmp_path: Path,
) -> None:
    before = hub.add_repo("tester/action-pr", model_files(model_dir))
    second = write_standard(tmp_path, tiny_timm_dir, tiny_parquet, standard_id="tiny-two")

    done = run_action(
        {
            "repo-id": "tester/action-pr",
            "standards": f"{standard_file}\n  {second}\n",
            "create-pr": "true",
            "torch-index-url": "",
            "token": TOKEN,
        },
        env=action_env,
        workdir=tmp_path,
    )

    assert done.returncode == 0, "\n".join(done.logs)
    assert "Requirement already satisfied: torch in" not in done.logs[0]  # no torch step
    assert hub.head("tester/action-pr") == before  # main is untouched
    out = done.outputs
    assert out["url"] == out["pr-url"] == f"{hub.endpoint}/tester/action-pr/discussions/1"
    pr_files = hub.files("tester/action-pr", "refs/pr/1")
    assert out["standards"] == "tiny-test tiny-two"
    assert out["sha256"].split() == [
        hashlib.sha256(pr_files[embedding_file(s)]).hexdigest() for s in ("tiny-test", "tiny-two")
    ]
    assert [float(f) for f in out["fidelity"].split()] == [
        pytest.approx(e["fidelity"]) for e in json.loads(out["result-json"])["embeddings"]
    ]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"create-pr": "yes"}, "create-pr must be 'true' or 'false', got 'yes'"),
        ({"token": ""}, "empty token input"),
    ],
)
def test_action_refuses_bad_inputs_before_any_work(
    hub: FakeHub, action_env: dict, tmp_path: Path, given: dict, message: str
) -> None:
    hub.add_repo("tester/m", {"README.md": b"# m\n"})
    inputs = {"repo-id": "tester/m", "token": TOKEN, **given}

    done = run_action(inputs, env=action_env, workdir=tmp_path)

    assert done.returncode == 1
    assert f"::error::{message}" in done.logs[-1]
    assert done.outputs["url"] == "" and len(hub.files("tester/m")) == 1


@pytest.mark.slow
def test_action_inputs_reach_the_cli_as_arguments_not_code(
    hub: FakeHub, action_env: dict, tmp_path: Path
) -> None:
    """A hostile-looking input stays one argument: the CLI rejects it as a repo id."""
    marker = tmp_path / "pwned"
    done = run_action(
        {"repo-id": f"x/y$(touch {marker}); touch {marker}", "token": TOKEN},
        env=action_env,
        workdir=tmp_path,
    )

    assert done.returncode == 1 and not marker.exists()
    assert "Error: " in done.logs[-1]


# =========================================================================================
# publish --json
# =========================================================================================


def test_publish_json(tmp_path: Path, model_dir: Path, standard_file: Path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(model_dir, registry / "org" / "m")
    model_dir = registry / "org" / "m"
    args = ["publish", "org/m", "-s", str(standard_file), "--registry", str(registry), "-q"]

    dry = runner.invoke(app, [*args, "--dry-run", "--json"])

    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] is True and planned["url"] is None and planned["commit"] is None
    assert "--- /dev/null" in dry.stderr  # the README diff, out of the JSON's way
    assert not (model_dir / embedding_file("tiny-test")).exists()

    done = runner.invoke(app, [*args, "--json"])

    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    data = (model_dir / embedding_file("tiny-test")).read_bytes()
    assert result["dry_run"] is False and result["repo_id"] == "org/m"
    assert result["url"] == result["commit_url"] == (registry / "org/m").resolve().as_uri()
    assert result["pr_url"] is None and result["commit"]
    (entry,) = result["embeddings"]
    assert entry["standard"] == "tiny-test" and entry["file"] == embedding_file("tiny-test")
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["fidelity"] == pytest.approx(min(entry["l_to"], entry["l_from"]))
    assert entry["standard_hash"] == planned["embeddings"][0]["standard_hash"]
