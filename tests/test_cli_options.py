"""One definition per CLI option: each name means one thing across commands, and ``--token``
reaches the Hub."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest
import typer
from hub_server import TOKEN, FakeHub, use_endpoint
from typer.testing import CliRunner

from hf_stdembed.cli import _index, app

CLI = Path(__file__).resolve().parents[1] / "hf_stdembed" / "cli"
runner = CliRunner()


def commands() -> list[tuple[str, object]]:
    """(name, click command) for every leaf command of the app."""
    found = []

    def walk(command, name):
        subs = getattr(command, "commands", None) or {}
        if not subs:
            found.append((name, command))
        for sub_name, sub in subs.items():
            walk(sub, f"{name} {sub_name}".strip())

    walk(typer.main.get_command(app), "")
    return found


def visible_options() -> dict[str, list[tuple[str, object]]]:
    """Each long option name -> (command, click option) wherever it is shown in --help."""
    by_name = defaultdict(list)
    for name, command in commands():
        for param in command.params:
            if param.param_type_name != "option" or param.hidden or param.name == "help":
                continue
            for opt in param.opts:
                if opt.startswith("--"):
                    by_name[opt].append((name, param))
    return by_name


def test_each_option_name_has_one_help_text_and_one_short_flag():
    """`--standard` once meant three things (a standard; extra YAML files to accept; the YAML
    of a custom standard's embeddings), with 7 declarations and 5 help texts."""
    for option, uses in visible_options().items():
        helps = {param.help for _, param in uses}
        assert len(helps) == 1, f"{option}: {len(helps)} help texts in {[c for c, _ in uses]}"
        spellings = {tuple(sorted(param.opts)) for _, param in uses}
        assert len(spellings) == 1, f"{option}: spelt {spellings}"
    short = defaultdict(set)
    for option, uses in visible_options().items():
        for _, param in uses:
            for opt in param.opts:
                if not opt.startswith("--"):
                    short[opt].add(option)
    assert all(len(longs) == 1 for longs in short.values()), dict(short)


def declared_options(path: Path) -> list[str]:
    """The long names of the ``typer.Option`` calls written in a module (an option without a
    name is named after its parameter, as Typer does)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef):
            continue
        for arg in node.args.args + node.args.kwonlyargs:
            for call in ast.walk(arg.annotation) if arg.annotation else ():
                if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "Option":
                    given = [
                        a.value
                        for a in call.args
                        if isinstance(a, ast.Constant) and str(a.value).startswith("--")
                    ]
                    names += given or ["--" + arg.arg.replace("_", "-")]
    # module-level Annotated aliases (SortOption = Annotated[..., typer.Option("--sort")])
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            for call in ast.walk(node.value):
                if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "Option":
                    names += [
                        a.value
                        for a in call.args
                        if isinstance(a, ast.Constant) and str(a.value).startswith("--")
                    ]
    return names


def test_options_of_several_commands_are_declared_only_in_the_options_module():
    shared = {name for name, uses in visible_options().items() if len(uses) > 1}
    assert {"--standard", "--token", "--quiet", "--json", "--index"} <= shared
    for module in sorted(CLI.glob("*.py")):
        if module.name == "_options.py":
            continue
        again = shared & set(declared_options(module))
        assert not again, f"{module.name} declares {sorted(again)}: use cli/_options.py"


def test_the_options_module_declares_each_name_once():
    names = declared_options(CLI / "_options.py")
    assert names.count("--standard") == 2  # the option, and index update's hidden old spelling
    others = [n for n in names if n != "--standard"]
    assert len(others) == len(set(others)), sorted(others)


@pytest.mark.parametrize("spelling", ["--standard-file", "--standard", "-s"])
def test_index_update_takes_extra_standard_files_by_the_new_and_old_names(
    monkeypatch, tmp_path: Path, spelling: str
):
    """`index update --standard FILE` keeps working (hidden) beside `--standard-file FILE`."""
    from hf_stdembed.standards import get_standard

    custom = (
        get_standard("resnet18-in1k-val")
        .to_yaml()
        .replace("id: resnet18-in1k-val", "id: custom-test")
    )
    path = tmp_path / "custom.yaml"
    path.write_text(custom)
    seen = []
    monkeypatch.setattr(
        _index, "run_crawl", lambda source, index, standards, **_: seen.append(standards)
    )
    (tmp_path / "registry").mkdir()
    args = ["index", "update", "--registry", tmp_path / "registry", "--index", tmp_path / "i"]
    done = runner.invoke(app, [str(a) for a in [*args, spelling, path, "-q"]])
    assert done.exit_code == 0, done.output
    assert [[s.id for s in standards] for standards in seen] == [["custom-test"]]


def test_index_update_help_shows_the_new_name_only():
    done = runner.invoke(app, ["index", "update", "--help"], env={"COLUMNS": "200"})
    assert "--standard-file" in done.output
    assert "--standard " not in done.output and " -s " not in done.output


def test_a_token_given_by_flag_reaches_the_hub(monkeypatch, tmp_path: Path):
    """No ambient token: `index push --token` authenticates (the FakeHub reads the
    Authorization header), without it the push is refused; a private dataset pulls likewise."""
    repo = "tester/shared-index"
    with FakeHub() as hub:
        use_endpoint(monkeypatch, hub.endpoint, token=None)
        index = ["--index", str(tmp_path / "index")]

        refused = runner.invoke(app, ["index", "push", repo, "--private", *index])
        assert refused.exit_code != 0
        assert "no Hugging Face token" in str(refused.exception), refused.output

        pushed = runner.invoke(app, ["index", "push", repo, "--private", *index, "--token", TOKEN])
        assert pushed.exit_code == 0, pushed.output
        assert "index.parquet" in " ".join(hub.files(repo, repo_type="dataset"))

        hidden = runner.invoke(app, ["index", "pull", repo, *index])
        assert hidden.exit_code != 0
        pulled = runner.invoke(app, ["index", "pull", repo, *index, "--token", TOKEN])
        assert pulled.exit_code == 0, pulled.output
        assert "Imported 0 rows" in pulled.output
        assert not hub.server_errors, hub.server_errors


def test_index_update_lists_private_repos_with_the_token_given(monkeypatch, tmp_path: Path):
    with FakeHub() as hub:
        use_endpoint(monkeypatch, hub.endpoint, token=None)
        hub.add_repo("tester/private-model", {"README.md": b"---\ntags: [hf-stdembed]\n---\n"},
                     private=True)  # fmt: skip
        args = ["index", "update", "--index", str(tmp_path / "index"), "-q"]

        anonymous = runner.invoke(app, args)
        with_token = runner.invoke(app, [*args, "--token", TOKEN])

        assert anonymous.exit_code == 0 and with_token.exit_code == 0, with_token.output
        assert "0 repos listed" in anonymous.output, anonymous.output
        assert "1 repos listed" in with_token.output, with_token.output


def test_file_standard_reads_a_yaml_value_and_leaves_an_id(tmp_path: Path):
    """`select` takes the file rule from the library (it re-implemented it)."""
    from hf_stdembed.errors import StandardNotFoundError
    from hf_stdembed.resolve import file_standard
    from hf_stdembed.standards import get_standard

    path = tmp_path / "copy.yaml"
    path.write_text(get_standard("resnet18-in1k-val").to_yaml())

    assert file_standard("resnet18-in1k-val") is None
    assert file_standard("some-indexed-id") is None
    assert file_standard(path).hash == get_standard("resnet18-in1k-val").hash
    with pytest.raises(StandardNotFoundError):
        file_standard(tmp_path / "missing.yaml")
