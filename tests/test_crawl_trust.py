"""What a crawl keeps, retries, refuses and flags: issues 9 (#1, #5) and 10 (#1, #2, #5, weak).

Each defect is reproduced first, end to end through the CLI where it is user-facing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from hub_server import FakeHub
from model_repos import embedding_bytes, task_embedding_bytes, write_standard
from typer.testing import CliRunner

from hf_stdembed.card import CardEntry, update_card
from hf_stdembed.cli import app
from hf_stdembed.crawl import CrawlBudget, crawl
from hf_stdembed.errors import RegistryError
from hf_stdembed.index import SCHEMA_VERSION, EmbeddingIndex
from hf_stdembed.progress import ProgressEvent
from hf_stdembed.registry import HubRegistry, RepoSummary
from hf_stdembed.standards import Standard, get_standard, standard_from_dict

runner = CliRunner()
BUILTIN = get_standard("resnet18-in1k-val")
DIM = 16


def custom_standard(
    standard_id: str = "newcomer-digits", *, model: str = "timm:org/base"
) -> Standard:
    data = {
        "id": standard_id,
        "baseline": {"model": model, "revision": None, "dim": DIM},
        "probe": {"dataset": "parquet", "split": "train", "data_files": ["probe.parquet"]},
    }
    return standard_from_dict(data, trusted=True)


def repo_files(
    repo_id: str,
    standards: list[Standard],
    seed: int = 0,
    *,
    with_standard_file: bool = False,
    standard_text: str | None = None,
    vector: torch.Tensor | None = None,
    file_changes: dict | None = None,
    entry_changes: dict | None = None,
) -> dict[str, bytes]:
    """A repo as `publish` writes it: one embedding per standard, a card declaring them, and
    (optionally) the custom standard's YAML beside the embedding."""
    files, entries = {}, []
    for standard in standards:
        declared, _ = embedding_bytes(seed, standard=standard, vector=vector)  # what the card says
        _, data = embedding_bytes(seed, standard=standard, vector=vector, **(file_changes or {}))
        entry = CardEntry.from_embedding(declared, data, sha256=hashlib.sha256(data).hexdigest())
        if with_standard_file:
            entry = dataclasses.replace(entry, standard_file=f"stdembed/{standard.id}.yaml")
            files[entry.standard_file] = (standard_text or standard.to_yaml()).encode()
        entry = dataclasses.replace(entry, **(entry_changes or {}))
        files[entry.file] = data
        entries.append(entry)
    files["README.md"] = update_card(None, entries, repo_id=repo_id).encode()
    return files


def cli(*args: object, code: int = 0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def index(tmp_path: Path) -> Iterator[EmbeddingIndex]:
    with EmbeddingIndex.open(tmp_path / "index") as opened:
        yield opened


@pytest.fixture
def std_file(tmp_path: Path) -> Path:
    path = tmp_path / "std.yaml"
    path.write_text(custom_standard().to_yaml())
    return path


# =========================================================================================
# issue 9 #1: repos of an unknown standard are read again once it is known
# =========================================================================================


def test_repos_of_an_unknown_standard_are_indexed_once_it_is_given(
    hub: FakeHub, tmp_path: Path, std_file: Path
):
    standard = custom_standard()
    for i in range(3):
        hub.add_repo(f"tester/m{i}", repo_files(f"tester/m{i}", [standard], i))
    folder = tmp_path / "i"
    first = cli("index", "update", "--index", folder, "-q")
    assert "unknown standard 'newcomer-digits'" in first.stderr
    assert "3 to read again next time" in first.stderr

    second = cli("index", "update", "--index", folder, "--standard", std_file, "-q")
    assert "3 indexed" in second.stderr and "0 unchanged" in second.stderr
    listed = cli("index", "list", "--index", folder, "--standard", std_file)
    assert listed.stdout.count("tester/m") == 3

    third = cli("index", "update", "--index", folder, "-q")  # known from now on (stored)
    assert "3 unchanged" in third.stderr and "0 files downloaded" in third.stderr


def test_a_pending_repo_keeps_what_it_had_indexed_without_downloading_it_again(
    hub: FakeHub, index: EmbeddingIndex
):
    standard = custom_standard()
    hub.add_repo("tester/both", repo_files("tester/both", [BUILTIN, standard]))
    report = crawl(HubRegistry(), index)
    assert report.downloaded == 1 and report.pending == 1
    assert index.crawl_state("tester/both").status == "pending"
    before = hub.downloads
    report = crawl(HubRegistry(), index)  # read again: the built-in row is kept as it is
    assert hub.downloads == before and report.pending == 1
    report = crawl(HubRegistry(), index, standards=[standard])
    assert report.downloaded == 1 and hub.downloads == before + 1  # only the new standard's
    assert {r.standard_id for r in index.rows_of_repo("tester/both")} == {
        BUILTIN.id,
        standard.id,
    }
    assert index.crawl_state("tester/both").status == "indexed"


# =========================================================================================
# issue 9 #5: a custom standard's id resolves where the tool prints it
# =========================================================================================


def test_a_custom_standard_id_resolves_through_the_index(
    hub: FakeHub, tmp_path: Path, std_file: Path
):
    standard = custom_standard()
    hub.add_repo("tester/m0", repo_files("tester/m0", [standard]))
    folder = tmp_path / "i"
    refused = cli("index", "list", "--index", folder, "--standard", "newcomer-digits", code=1)
    assert "unknown standard 'newcomer-digits'" in str(refused.exception)
    cli("index", "update", "--index", folder, "--standard", std_file, "-q")
    listed = cli("index", "list", "--index", folder, "--standard", "newcomer-digits")
    assert "tester/m0" in listed.stdout
    with EmbeddingIndex.open(folder) as opened:
        (stored,) = opened.standards()
        assert stored.trusted and stored.origin == "user"
        assert stored.load() == standard


def test_every_command_resolves_an_id_the_default_index_has_seen(
    hub: FakeHub, tmp_path: Path, std_file: Path, monkeypatch: pytest.MonkeyPatch
):
    standard = custom_standard()
    hub.add_repo("tester/m0", repo_files("tester/m0", [standard]))
    monkeypatch.setenv("HF_STDEMBED_INDEX", str(tmp_path / "default-index"))
    refused = cli("standards", "show", "newcomer-digits", code=1)
    assert "unknown standard 'newcomer-digits'" in str(refused.exception)
    cli("index", "update", "--standard", std_file, "-q")  # the default index learns it
    shown = cli("standards", "show", "newcomer-digits")
    assert standard.hash in shown.stdout
    model_file = tmp_path / "m.safetensors"
    model_file.write_bytes(embedding_bytes(3, standard=standard)[1])
    (tmp_path / "t.safetensors").write_bytes(task_embedding_bytes(1, standard=standard)[1])
    ranked = cli("rank", tmp_path / "t.safetensors", model_file, "--standard", "newcomer-digits")
    assert "model-3" in ranked.stdout


def test_a_cards_standard_file_is_fetched_untrusted_and_remembered(
    hub: FakeHub, tmp_path: Path, index: EmbeddingIndex
):
    standard = custom_standard()
    hub.add_repo("tester/m0", repo_files("tester/m0", [standard], with_standard_file=True))
    report = crawl(HubRegistry(), index)
    assert report.indexed == ["tester/m0"] and report.standards == [standard.id]
    (stored,) = index.standards()
    assert not stored.trusted and stored.origin.startswith("repo:tester/m0@")
    # a second repo of the same standard needs no fetch; the user's copy makes it trusted
    hub.add_repo("tester/m1", repo_files("tester/m1", [standard], 1))
    before = hub.downloads
    crawl(HubRegistry(), index, standards=[standard])
    assert hub.downloads == before + 1 and len(index.rows(standard.hash)) == 2
    (stored,) = index.standards()
    assert stored.trusted and stored.origin == "user"


def test_a_standard_file_of_another_hash_or_with_code_is_refused(
    hub: FakeHub, index: EmbeddingIndex
):
    standard = custom_standard()
    other = custom_standard().to_dict() | {"description": "x"}
    other["baseline"]["dim"] = DIM + 1
    hub.add_repo(
        "bad/hash",
        repo_files(
            "bad/hash", [standard], with_standard_file=True, standard_text=yaml.safe_dump(other)
        ),
    )
    code = custom_standard(model="os:system")
    hub.add_repo("bad/code", repo_files("bad/code", [code], with_standard_file=True))
    report = crawl(HubRegistry(), index)
    reasons = dict(report.problems)
    assert "has hash" in reasons["bad/hash"] and standard.hash in reasons["bad/hash"]
    assert "entry point" in reasons["bad/code"]
    assert index.standards() == [] and index.rows() == []
    before = hub.downloads  # retried (the user may pass the YAML) without fetching it again
    crawl(HubRegistry(), index)
    assert hub.downloads == before


# =========================================================================================
# issue 10 #1: strangers' strings are data, never markup
# =========================================================================================


def test_markup_in_a_card_is_printed_as_written(hub: FakeHub, tmp_path: Path):
    hub.add_repo(
        "bad/markup",
        {"README.md": b"---\ntags: [hf-stdembed]\nhf_stdembed:\n  schema_version: '[/x]'\n---\n"},
    )
    hub.add_repo(
        "bad/link",
        {
            "README.md": b"---\ntags: [hf-stdembed]\nhf_stdembed:\n  schema_version: "
            b"'[link=https://evil.example]click[/link] :smile:'\n---\n"
        },
    )
    result = cli("index", "update", "--index", tmp_path / "i", "-q")
    assert "schema_version '[/x]'" in result.stderr
    assert "[link=https://evil.example]click[/link] :smile:" in result.stderr
    assert "\x1b]8;" not in result.stderr  # no terminal hyperlink escape


def test_a_ranking_prints_markup_in_ids_as_written(capsys):
    from hf_stdembed.cli._render import render_ranking
    from hf_stdembed.selection import RankedModel, Ranking, SkippedModel

    row = RankedModel(1, "[/x]", "[bold]r", 1.0, 0.5, "import:[link=http://e]f", ("saturated",))
    render_ranking(Ranking([row], [SkippedModel("m", "[/y]", "[red]why")]), as_json=False)
    out, err = capsys.readouterr()
    for text in ("[/x]", "[bold]r", "[link=http://e]f"):
        assert text in out
    assert "[/y]: [red]why" in err and "saturated" in err


# =========================================================================================
# issue 10 #2: an import never shadows the crawl
# =========================================================================================


def forge(parquet: Path, out: Path, **changes) -> Path:
    """The exported rows with every vector set to ones (and other columns changed)."""
    table = pq.read_table(parquet)
    rows = [dict(r, embedding=[1.0] * len(r["embedding"]), **changes) for r in table.to_pylist()]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), out)
    return out


def test_an_imported_forged_vector_never_replaces_a_crawled_row(hub: FakeHub, tmp_path: Path):
    hub.add_repo("tester/m0", repo_files("tester/m0", [BUILTIN]))
    folder, parquet = tmp_path / "i", tmp_path / "index.parquet"
    cli("index", "update", "--index", folder, "-q")
    cli("index", "export", parquet, "--index", folder)
    forged = forge(parquet, tmp_path / "forged.parquet")
    with EmbeddingIndex.open(folder) as opened:
        real = np.array(opened.vectors(BUILTIN.hash))

    result = cli("index", "import", forged, "--index", folder)
    assert "Imported 0 rows, 0 unchanged, 1 skipped" in result.stderr
    assert "an import never replaces it" in result.stderr
    again = cli("index", "update", "--index", folder, "-q")
    assert "1 unchanged" in again.stderr
    with EmbeddingIndex.open(folder) as opened:
        np.testing.assert_array_equal(opened.vectors(BUILTIN.hash), real)
        assert opened.get("tester/m0", BUILTIN.hash).source == "crawl"

    # the same file under another repo: its sha256 names the crawled vector, not this one
    copy = forge(parquet, tmp_path / "copy.parquet", repo_id="evil/copy")
    result = cli("index", "import", copy, "--index", folder)
    assert "disagrees with the file of sha256" in result.stderr


def test_a_crawl_replaces_an_imported_row(hub: FakeHub, tmp_path: Path):
    hub.add_repo("tester/m0", repo_files("tester/m0", [BUILTIN]))
    source, parquet = tmp_path / "src", tmp_path / "index.parquet"
    cli("index", "update", "--index", source, "-q")
    cli("index", "export", parquet, "--index", source)
    forged = forge(parquet, tmp_path / "forged.parquet")
    folder = tmp_path / "i"
    cli("index", "import", forged, "--index", folder)
    with EmbeddingIndex.open(folder) as opened:
        row = opened.get("tester/m0", BUILTIN.hash)
        assert row.source == f"import:{forged}" and "saturated" in row.flag_names
    cli("index", "update", "--index", folder, "-q")
    with EmbeddingIndex.open(folder) as opened, EmbeddingIndex.open(source) as src:
        assert opened.get("tester/m0", BUILTIN.hash).source == "crawl"
        np.testing.assert_array_equal(opened.vectors(BUILTIN.hash), src.vectors(BUILTIN.hash))


def make_version_2(path: Path) -> None:
    """Turn a fresh index into the layout schema 2 had (no source, flags, standards)."""
    columns = (
        "standard_hash, repo_id, pos, revision, standard_id, file_path, file_sha256, model_id, "
        "model_revision, l_to, l_from, library_version, created_at, indexed_at"
    )
    conn = sqlite3.connect(path / "index.sqlite", isolation_level=None)
    conn.executescript(
        f"""
        BEGIN;
        CREATE TABLE rows_2 AS SELECT {columns} FROM rows;
        DROP TABLE rows;
        ALTER TABLE rows_2 RENAME TO rows;
        CREATE INDEX rows_pos ON rows (standard_hash, pos);
        DROP TABLE standards;
        UPDATE meta SET value = '2' WHERE key = 'schema_version';
        COMMIT;
        """
    )
    conn.close()


def test_upgrade_from_2_marks_rows_legacy_and_the_next_crawl_reads_them(
    hub: FakeHub, tmp_path: Path
):
    hub.add_repo("tester/m0", repo_files("tester/m0", [BUILTIN]))
    folder = tmp_path / "i"
    with EmbeddingIndex.open(folder) as opened:
        crawl(HubRegistry(), opened)
    make_version_2(folder)
    with EmbeddingIndex.open(folder) as opened:
        assert opened.get("tester/m0", BUILTIN.hash).source == "legacy"
        opened.check()
        report = crawl(HubRegistry(), opened)  # same commit, but the row's origin is unknown
        assert report.downloaded == 1 and report.indexed == ["tester/m0"]
        assert opened.get("tester/m0", BUILTIN.hash).source == "crawl"
        assert crawl(HubRegistry(), opened).unchanged == 1
    conn = sqlite3.connect(folder / "index.sqlite")
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
        SCHEMA_VERSION,
    )
    conn.close()


# =========================================================================================
# issue 10 #5 / deliverable 3: plausibility at crawl time
# =========================================================================================


def test_files_that_disagree_with_their_card_or_range_are_refused(
    hub: FakeHub, index: EmbeddingIndex
):
    other = custom_standard("other-std")
    cases = {
        "bad/huge-fidelity": {"file_changes": {"l_to": 1e308, "l_from": 1e308}},
        "bad/card-fidelity": {"entry_changes": {"l_to": 0.5}},
        "bad/other-id": {"file_changes": {"standard_id": "other-std"}},
        "bad/revision": {"entry_changes": {"model_revision": "f" * 40}},
    }
    for repo, changes in cases.items():
        hub.add_repo(repo, repo_files(repo, [BUILTIN], **changes))
    report = crawl(HubRegistry(), index, standards=[other])
    reasons = dict(report.problems)
    assert set(reasons) == set(cases), reasons
    assert "not a cosine similarity" in reasons["bad/huge-fidelity"]
    assert "differs from the card's 0.5" in reasons["bad/card-fidelity"]
    # refused by load_embedding (the file's id is not the requested standard's) before the
    # card comparison runs; either way the reason names the other standard
    assert "'other-std'" in reasons["bad/other-id"]
    assert "model revision" in reasons["bad/revision"]
    assert index.rows() == []


def test_an_all_ones_vector_is_flagged_not_ranked_silently(hub: FakeHub, index: EmbeddingIndex):
    """The issue's reproducer: an all-ones vector with fidelity 1.0 ranked first in 19 of 20
    random tasks, nothing flagged. It still ranks (it may be the baseline), but flagged."""
    from hf_stdembed.selection import rank_index

    for i in range(5):
        hub.add_repo(f"tester/m{i}", repo_files(f"tester/m{i}", [BUILTIN], i))
    ones, perfect = torch.ones(BUILTIN.dim), {"l_to": 1.0, "l_from": 1.0}
    files = repo_files(
        "evil/ones", [BUILTIN], 9, vector=ones, file_changes=perfect, entry_changes=perfect
    )
    hub.add_repo("evil/ones", files)
    crawl(HubRegistry(), index)
    firsts = 0
    for seed in range(20):
        task, _ = task_embedding_bytes(100 + seed, standard=BUILTIN)
        top = rank_index(task, index, top=6).rows
        flagged = {r.model_id: r.flags for r in top}
        assert flagged["evil/ones"] == ("fidelity", "saturated")
        assert all(not f for m, f in flagged.items() if m != "evil/ones")
        firsts += top[0].model_id == "evil/ones"
    assert firsts >= 19  # it still wins: the flag is what tells the user


def test_select_shows_source_and_flags(
    hub: FakeHub, tmp_path: Path, tiny_timm_dir: Path, tiny_parquet: Path
):
    path = write_standard(tmp_path, tiny_timm_dir, tiny_parquet, standard_id="newcomer-digits")
    standard = get_standard(path)
    hub.add_repo("tester/ok", repo_files("tester/ok", [standard], 1, with_standard_file=True))
    ones = torch.ones(standard.dim)
    hub.add_repo("evil/ones", repo_files("evil/ones", [standard], 2, vector=ones))
    folder = tmp_path / "i"
    args = ["select", "--dataset", tiny_parquet, "--index", folder, "-q", "--rerank", "0"]
    table = cli(*args, "--standard", "newcomer-digits")  # learnt from tester/ok's card
    assert "S" in table.stdout and "crawl" in table.stdout
    assert "flag S (saturated)" in table.stderr
    rows = json.loads(cli(*args, "--standard", "newcomer-digits", "--json", "--no-refresh").stdout)
    by_model = {r["model"]: r for r in rows}
    assert by_model["evil/ones"]["flags"] == ["saturated"]
    assert by_model["tester/ok"]["flags"] == [] and by_model["tester/ok"]["source"] == "crawl"


# =========================================================================================
# issue 10 weak list: robustness and budget
# =========================================================================================


class StubRegistry:
    """A listing of given summaries; downloads from a dict (or raise what is given)."""

    name = "stub"

    def __init__(self, summaries, files, *, fail_after: int | None = None) -> None:
        self.summaries, self.files, self.fail_after = summaries, files, fail_after
        self.root: Path | None = None

    def list_tagged(self, tag: str):
        for i, summary in enumerate(self.summaries):
            if self.fail_after is not None and i == self.fail_after:
                raise RegistryError("connection reset while listing")
            yield summary

    def download(self, repo_id: str, path: str, *, revision: str | None, max_bytes: int) -> Path:
        from hf_stdembed.errors import FileTooLargeError, RemoteFileNotFoundError

        data = self.files.get((repo_id, path))
        if data is None:
            raise RemoteFileNotFoundError(f"{repo_id} has no {path}", repo_id=repo_id)
        if len(data) > max_bytes:
            raise FileTooLargeError(f"{path} is over {max_bytes}", repo_id=repo_id)
        target = self.root / hashlib.sha256(f"{repo_id}/{path}".encode()).hexdigest()
        target.write_bytes(data)
        return target


def stub(tmp_path: Path, repos: list[str], **kwargs) -> StubRegistry:
    summaries, files = [], {}
    for i, repo in enumerate(repos):
        made = repo_files("org/x", [BUILTIN], i)
        card = yaml.safe_load(made.pop("README.md").decode().split("---")[1])
        summaries.append(RepoSummary(repo, f"{i:040x}", None, card))
        files.update({(repo, path): data for path, data in made.items()})
    registry = StubRegistry(summaries, files, **kwargs)
    registry.root = tmp_path / "downloads"
    registry.root.mkdir(exist_ok=True)
    return registry


def test_an_odd_listing_id_is_one_problem_not_the_end_of_the_crawl(
    tmp_path: Path, index: EmbeddingIndex
):
    odd = "odd/m\u00f6del" + "x" * 110
    registry = stub(tmp_path, ["org/a", odd, "org/b"])
    report = crawl(registry, index)
    assert [r.repo_id for r in index.rows()] == ["org/a", "org/b"]
    assert dict(report.problems)[odd].startswith("invalid repo id")


def test_ctrl_c_and_a_failing_listing_keep_the_batch_read(tmp_path: Path, index: EmbeddingIndex):
    registry = stub(tmp_path, [f"org/m{i}" for i in range(6)])
    seen = []

    def interrupt(event: ProgressEvent) -> None:
        seen.append(event.done)
        if event.done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        crawl(registry, index, on_progress=interrupt, batch_size=100)
    assert seen == [0, 1, 2, 3, 4]
    assert len(index.rows()) == 3  # what was read before Ctrl-C is committed

    failing = stub(tmp_path, [f"org/m{i}" for i in range(6)], fail_after=5)
    report = crawl(failing, index, batch_size=100)
    assert len(index.rows()) == 5 and "listing failed after 5 repos" in report.stopped
    assert report.removed == []  # an incomplete listing removes nothing


def test_reasons_are_shortened(hub: FakeHub, index: EmbeddingIndex):
    junk = "x" * 100_000
    card = f"---\ntags: [hf-stdembed]\nhf_stdembed:\n  schema_version: {junk}\n---\n"
    hub.add_repo("bad/long", {"README.md": card.encode()})
    report = crawl(HubRegistry(), index)
    (reason,) = [r for repo, r in report.problems if repo == "bad/long"]
    assert len(reason) <= 300 and reason.endswith("…")
    assert len(index.crawl_state("bad/long").reason) <= 300


def test_the_time_budget_stops_the_crawl_and_the_next_one_goes_on(
    tmp_path: Path, index: EmbeddingIndex
):
    registry = stub(tmp_path, [f"org/m{i}" for i in range(5)])
    ticks = iter(range(100))
    report = crawl(registry, index, budget=CrawlBudget(seconds=2.5), clock=lambda: next(ticks))
    assert len(index.rows()) == 2 and "time budget of 2.5 s" in report.stopped
    assert "crawled next time" in report.stopped
    report = crawl(registry, index)
    assert report.unchanged == 2 and len(index.rows()) == 5 and report.stopped is None


def test_the_byte_budget_is_never_exceeded(hub: FakeHub, tmp_path: Path):
    for i in range(4):
        hub.add_repo(f"tester/m{i}", repo_files(f"tester/m{i}", [BUILTIN], i))
    size = len(repo_files("x/y", [BUILTIN])[f"stdembed/{BUILTIN.id}.safetensors"])
    folder = tmp_path / "i"
    megabytes = (2.5 * size) / 1e6
    result = cli("index", "update", "--index", folder, "-q", "--crawl-mb", megabytes)
    assert "download budget" in result.stderr and "crawled next time" in result.stderr
    with EmbeddingIndex.open(folder) as opened:
        assert len(opened.rows()) == 2
    result = cli("index", "update", "--index", folder, "-q")
    assert "2 unchanged" in result.stderr and "2 indexed" in result.stderr
