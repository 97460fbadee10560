"""The GitHub Action, the workflow template and this project's workflows, linted offline.

Two linters from the ``dev`` extra, neither of which downloads anything at run time:
``check-jsonschema`` validates each file against the GitHub schemas it vendors, ``zizmor
--offline`` audits them for security problems (template injection, unpinned actions,
credentials persisted by checkout, excessive permissions...).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
TEMPLATES = sorted((ROOT / "templates").glob("*.yml"))
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
EVERY_FILE = [ACTION, *TEMPLATES, *WORKFLOWS]
# The template's reference to this action: a placeholder the user pins (its comment says so).
OWN_ACTION = "hf-stdembed/hf-stdembed@"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def tool(name: str) -> str:
    """The linter's executable, from this interpreter's environment first."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.is_file() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: pip install -e '.[dev]' installs it")
    return found


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def steps_of(path: Path) -> list[dict]:
    """Every step of an action (``runs.steps``) or a workflow (each job's ``steps``)."""
    data = load(path)
    if "runs" in data:
        return list(data["runs"].get("steps", []))
    return [step for job in data["jobs"].values() for step in job.get("steps", [])]


def test_the_files_exist():
    assert ACTION.is_file()
    assert [p.name for p in TEMPLATES] == ["stdembed-release.yml"]
    assert ROOT / ".github" / "workflows" / "ci.yml" in WORKFLOWS


@pytest.mark.parametrize(
    ("schema", "paths"),
    [("vendor.github-actions", [ACTION]), ("vendor.github-workflows", [*TEMPLATES, *WORKFLOWS])],
)
def test_check_jsonschema(schema: str, paths: list[Path]):
    done = run(tool("check-jsonschema"), "--builtin-schema", schema, *map(str, paths))
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_offline():
    done = run(
        tool("zizmor"), "--offline", "--no-progress", "--color", "never", *map(str, EVERY_FILE)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings" in done.stdout, done.stdout


def test_zizmor_catches_an_injection(tmp_path: Path):
    """The linter would fail the suite on the mistake that matters most here."""
    text = ACTION.read_text().replace(
        'args=(publish "$STDEMBED_REPO_ID" --json)', 'args=(publish "${{ inputs.repo-id }}" --json)'
    )
    assert text != ACTION.read_text()
    bad = tmp_path / "action.yml"
    bad.write_text(text)
    done = run(tool("zizmor"), "--offline", "--no-progress", "--color", "never", str(bad))
    assert done.returncode != 0 and "template-injection" in done.stdout, done.stdout


@pytest.mark.parametrize("path", EVERY_FILE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_expression_in_run_scripts(path: Path):
    """Inputs reach scripts through ``env:``; ``${{ }}`` in ``run:`` would be pasted into
    the script before bash reads it (script injection)."""
    for step in steps_of(path):
        assert "${{" not in step.get("run", ""), f"{path.name}: step {step.get('name')!r}"


@pytest.mark.parametrize("path", EVERY_FILE, ids=lambda p: str(p.relative_to(ROOT)))
def test_third_party_actions_are_pinned_by_sha(path: Path):
    for step in steps_of(path):
        uses = step.get("uses")
        if uses is None or uses.startswith("./") or uses.startswith(OWN_ACTION):
            continue
        assert PINNED.match(uses), f"{path.name}: {uses} is not pinned to a full commit sha"


@pytest.mark.parametrize("path", [*TEMPLATES, *WORKFLOWS], ids=lambda p: p.name)
def test_least_permissions_and_no_persisted_credentials(path: Path):
    data = load(path)
    assert data["permissions"] == {"contents": "read"}
    for step in steps_of(path):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_template_runs_on_release_and_uses_the_action_as_declared():
    template = load(ROOT / "templates" / "stdembed-release.yml")
    on = template.get("on", template.get(True))  # YAML 1.1 reads a bare `on` as True
    assert on["release"] == {"types": ["published"]}
    inputs = load(ACTION)["inputs"]
    (step,) = [s for s in steps_of(ROOT / "templates" / "stdembed-release.yml")
               if s.get("uses", "").startswith(OWN_ACTION)]  # fmt: skip
    given = step["with"]
    assert set(given) <= set(inputs), set(given) - set(inputs)
    assert {name for name, spec in inputs.items() if spec.get("required")} <= set(given)
    assert given["token"] == "${{ secrets.HF_TOKEN }}"
    assert "pin" in (ROOT / "templates" / "stdembed-release.yml").read_text().lower()


def test_ci_lints_tests_and_caches_pip():
    ci = load(ROOT / ".github" / "workflows" / "ci.yml")
    scripts = [s.get("run", "") for s in steps_of(ROOT / ".github" / "workflows" / "ci.yml")]
    assert any("ruff check" in s for s in scripts) and any("pytest" in s for s in scripts)
    assert any("zizmor --offline" in s for s in scripts)
    for job in ci["jobs"].values():
        setup = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
        assert setup and setup[0]["with"]["cache"] == "pip"
