"""The same hostile cards (tests/hostile_cards.py) fed to every path that reads a card.

``verify`` and ``publish`` end with exit code 1 and one ``Error:`` line; the crawl
(``index update``, over a directory and the fake Hub's listing) skips the repo with a reason
and finishes; ``index pull`` reads no card at all. Never a traceback. Each runs the console
entry point (`hf_stdembed.cli.main`: the CLI's error boundary) as a user would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_cards import HOSTILE_CARDS, README_A_FOLDER, STANDARD
from hub_server import FakeHub
from index_rows import H, fill
from model_repos import embedding_bytes, published_files

CASES = sorted(HOSTILE_CARDS)
GOOD = "good/model"


def run_cli(console, *args: object) -> tuple[int, str]:
    """``hf-stdembed ARGS`` (the ``console`` fixture): the exit code, and stdout + stderr."""
    done = console(*args)
    assert "Traceback" not in done.output, done.output
    return done.exit_code, done.output


def one_error_line(code: int, output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert code == 1 and len(errors) == 1, output
    return errors[0]


def directory_with(root: Path, repos: dict[str, bytes | None]) -> Path:
    """A directory registry: each repo's README.md (None: README.md is a folder)."""
    for repo_id, readme in repos.items():
        folder = root / repo_id
        folder.mkdir(parents=True)
        if readme is None:
            (folder / "README.md").mkdir()
            (folder / "README.md" / "x").write_text("hf-stdembed")
        else:
            (folder / "README.md").write_bytes(readme)
    return root


@pytest.fixture(scope="module")
def embedding_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid embedding file for the corpus' standard (what publish --embedding takes)."""
    path = tmp_path_factory.mktemp("hostile") / "e.safetensors"
    path.write_bytes(embedding_bytes(3)[1])
    return path


DIRECTORY_CASES = [*CASES, README_A_FOLDER]


def _readme(case: str) -> bytes | None:
    return None if case == README_A_FOLDER else HOSTILE_CARDS[case]


@pytest.mark.parametrize("case", DIRECTORY_CASES)
def test_verify_gives_one_error_line(case: str, tmp_path: Path, console):
    root = directory_with(tmp_path / "registry", {"org/bad": _readme(case)})
    code, output = run_cli(
        console, "verify", "org/bad", "-s", STANDARD.id, "--registry", root, "-q"
    )
    line = one_error_line(code, output)
    assert "org/bad" in line


@pytest.mark.parametrize("case", CASES)
def test_verify_on_the_hub_gives_one_error_line(case: str, hub: FakeHub, console):
    hub.add_repo("org/bad", {"README.md": HOSTILE_CARDS[case]})
    code, output = run_cli(console, "verify", "org/bad", "-s", STANDARD.id, "-q")
    assert "org/bad" in one_error_line(code, output)


@pytest.mark.parametrize("case", DIRECTORY_CASES)
def test_publish_refuses_a_hostile_card_and_leaves_it(
    case: str, embedding_file: Path, tmp_path: Path, console
):
    root = directory_with(tmp_path / "registry", {"org/bad": _readme(case)})
    code, output = run_cli(
        console,
        *("publish", "org/bad", "-e", embedding_file, "-s", STANDARD.id, "--registry", root),
    )  # fmt: skip
    line = one_error_line(code, output)
    assert "org/bad" in line
    if case != README_A_FOLDER:
        assert (root / "org/bad/README.md").read_bytes() == HOSTILE_CARDS[case]  # untouched
    assert not (root / "org/bad/stdembed").exists()


@pytest.mark.parametrize("case", CASES)
def test_publish_on_the_hub_refuses_a_hostile_card(
    case: str, embedding_file: Path, hub: FakeHub, console
):
    sha = hub.add_repo("tester/bad", {"README.md": HOSTILE_CARDS[case]})
    code, output = run_cli(
        console, "publish", "tester/bad", "-e", embedding_file, "-s", STANDARD.id
    )
    assert "tester/bad" in one_error_line(code, output)
    assert hub.head("tester/bad") == sha  # nothing committed


def _crawl_finishes(code: int, output: str, index: Path, listed_hostile: list[str]) -> None:
    from hf_stdembed.index import EmbeddingIndex

    assert code == 0, output
    with EmbeddingIndex.open(index) as opened:
        assert [row.repo_id for row in opened.rows(STANDARD.hash)] == [GOOD]
    for repo_id in listed_hostile:
        assert f"skipped {repo_id}: " in " ".join(output.split()), (repo_id, output)


def test_a_directory_crawl_skips_every_hostile_card_with_a_reason(tmp_path: Path, console):
    repos: dict[str, bytes | None] = {f"bad/{case}": _readme(case) for case in DIRECTORY_CASES}
    root = directory_with(tmp_path / "registry", repos)
    for name, data in published_files(GOOD, 0).items():
        (root / GOOD / name).parent.mkdir(parents=True, exist_ok=True)
        (root / GOOD / name).write_bytes(data)
    code, output = run_cli(
        console, "index", "update", "--registry", root, "--index", tmp_path / "i"
    )
    # listed, hence skipped with a reason: every card that mentions the tag, but a card
    # whose `tags` is no list (it does not carry the tag) and a README that is a folder
    quiet = {"bad/tags-a-number", f"bad/{README_A_FOLDER}"}
    _crawl_finishes(code, output, tmp_path / "i", sorted(set(repos) - quiet))


def test_a_hub_crawl_skips_every_hostile_card_with_a_reason(hub: FakeHub, tmp_path: Path, console):
    for case in CASES:
        hub.add_repo(f"bad/{case}", {"README.md": HOSTILE_CARDS[case]}, tags=["hf-stdembed"])
    hub.add_repo(GOOD, published_files(GOOD, 0))
    code, output = run_cli(console, "index", "update", "--index", tmp_path / "i")
    _crawl_finishes(code, output, tmp_path / "i", [f"bad/{case}" for case in CASES])


def test_index_pull_reads_no_card(hub: FakeHub, tmp_path: Path, console):
    """``index pull`` downloads ``data/index.parquet`` only: a hostile dataset card is never
    read, so every pull succeeds."""
    from hf_stdembed.index import EmbeddingIndex
    from hf_stdembed.registry import INDEX_DATASET_FILE

    fill(tmp_path / "source", [(0, H), (1, H)])
    with EmbeddingIndex.open(tmp_path / "source") as source:
        source.export_parquet(tmp_path / "index.parquet")
    parquet = (tmp_path / "index.parquet").read_bytes()
    for case in CASES:
        files = {"README.md": HOSTILE_CARDS[case], INDEX_DATASET_FILE: parquet}
        hub.add_repo(f"tester/{case}", files, repo_type="dataset")
        code, output = run_cli(
            console, "index", "pull", f"tester/{case}", "--index", tmp_path / case
        )
        assert code == 0 and "Imported 2 rows" in output, (case, output)
