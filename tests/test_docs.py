"""The README's examples are real: every command and option it shows exists, the Action's
inputs and outputs it documents are the ones action.yml declares, and every error message its
troubleshooting table quotes is one the code (or the action) can print."""

from __future__ import annotations

import ast
import functools
import re
import shlex
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from hf_stdembed.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
runner = CliRunner()
WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200", "NO_COLOR": "1"}


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def command_lines(program: str) -> list[str]:
    """Lines of the README's bash blocks that run ``program`` (comments and pipes cut)."""
    found = []
    for block in code_blocks("bash"):
        for line in block.splitlines():
            line = line.strip()
            if line.startswith(program + " "):
                found.append(line)
    return found


def words(line: str) -> list[str]:
    """The command's words, up to a comment, pipe, redirection or ``&&``."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    out = []
    for word in lexer:
        if word in {"|", "||", "&&", ";", ">", ">>", "<"}:
            break
        out.append(word)
    return out


def split_command(group, args: list[str]) -> tuple[list[str], list[str]]:
    """(the subcommand path, the rest), following the command groups (typer's or click's)."""
    path: list[str] = []
    command = group
    while args and args[0] in (getattr(command, "commands", None) or {}):
        path.append(args[0])
        command = command.commands[args[0]]
        args = args[1:]
    return path, args


def option_names(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("-") and a != "-"]


STDEMBED_LINES = command_lines("hf-stdembed") + [
    "hf-stdembed" + line.removeprefix("hf stdembed") for line in command_lines("hf stdembed")
]


def test_the_readme_shows_the_commands():
    shown = {tuple(split_command(typer.main.get_command(app), words(line)[1:])[0])
             for line in STDEMBED_LINES}  # fmt: skip
    for command in [("publish",), ("select",), ("verify",), ("index", "update")]:
        assert command in shown, command
    assert len(command_lines("hf stdembed")) >= 2


@pytest.mark.parametrize("line", STDEMBED_LINES)
def test_documented_command_and_options_exist(line: str):
    group = typer.main.get_command(app)
    path, rest = split_command(group, words(line)[1:])
    assert path, f"no subcommand in {line!r}"

    done = runner.invoke(app, [*path, "--help"], env=WIDE)

    assert done.exit_code == 0, done.output
    for option in option_names(rest):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", done.output), (
            f"{line!r}: {option} is not an option of `hf-stdembed {' '.join(path)}`"
        )


@pytest.mark.parametrize("line", command_lines("hf extensions"))
def test_documented_hf_extensions_commands_exist(line: str):
    from click.testing import CliRunner as ClickRunner
    from huggingface_hub.cli.hf import app as hf_app  # a click group, not a Typer

    path, rest = words(line)[1:3], words(line)[3:]

    done = ClickRunner().invoke(hf_app, [*path, "--help"], env=WIDE)

    assert path[0] == "extensions" and done.exit_code == 0, done.output
    assert f"extensions {path[1]} [OPTIONS]" in done.output, done.output
    for option in option_names(rest):
        assert option in done.output, f"{line!r}: {option}"


def test_the_repository_is_a_python_hf_extension():
    """What `hf extensions install OWNER/hf-stdembed` needs: the repo name gives the command
    `hf stdembed`, which no built-in command takes; no root file named ``hf-stdembed`` (it
    would be installed as a shell-script extension instead); a ``hf-stdembed`` console script
    in the package it pip-installs."""
    import tomllib
    from huggingface_hub.cli.extensions import _normalize_repo_id
    from huggingface_hub.cli.hf import app as hf_app

    assert _normalize_repo_id("hf-stdembed/hf-stdembed") == (
        "hf-stdembed",
        "hf-stdembed",
        "stdembed",
    )
    built_in = {name.strip() for cmd in hf_app.commands for name in cmd.split("|")}
    assert "stdembed" not in built_in
    assert not (ROOT / "hf-stdembed").exists()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["hf-stdembed"] == "hf_stdembed.cli:main"
    assert "hf extensions install hf-stdembed/hf-stdembed" in README


def test_the_action_snippet_and_tables_match_action_yml():
    (snippet,) = [b for b in code_blocks("yaml") if "hf-stdembed/hf-stdembed@" in b]
    steps = yaml.safe_load(snippet)["jobs"]["publish"]["steps"]
    (step,) = [s for s in steps if s.get("uses", "").startswith("hf-stdembed/hf-stdembed@")]
    assert set(step["with"]) <= set(ACTION["inputs"])
    section = README.split("### Publish on every release")[1].split("\n## ")[0]
    documented = re.findall(r"^\| `([a-z-]+)` \|", section, flags=re.M)
    assert documented == list(ACTION["inputs"])
    for output in ACTION["outputs"]:
        assert f"`{output}`" in section, output


@functools.cache
def message_texts() -> list[str]:
    """Every string literal of the package (f-string fields as NUL), and action.yml."""
    texts = [(ROOT / "action.yml").read_text()]
    for path in sorted((ROOT / "hf_stdembed").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                texts.append(node.value)
            elif isinstance(node, ast.JoinedStr):
                texts.append("".join(
                    v.value if isinstance(v, ast.Constant) else "\0" for v in node.values
                ))  # fmt: skip
    return texts


def troubleshooting_messages() -> list[str]:
    section = README.split("## Troubleshooting\n")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [re.match(r"\| `([^`]+)`", row).group(1) for row in rows]


def test_troubleshooting_lists_the_common_errors():
    assert len(troubleshooting_messages()) >= 20


@pytest.mark.parametrize("message", troubleshooting_messages())
def test_troubleshooting_messages_are_real(message: str):
    pattern = re.compile(".*?".join(re.escape(part) for part in message.split("…")), re.S)
    assert any(pattern.search(text) for text in message_texts()), (
        f"the README quotes {message!r}, which nothing prints"
    )
