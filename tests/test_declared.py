"""The datasets a card declares (issue 12): read as a stranger's, kept through the crawl, the
index (schema 4, migrated in place), parquet export/import, and used by the two-stage select
as a third stage-1 order that only earns a shortlist place."""

from __future__ import annotations

import sqlite3
import string
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hub_server import FakeHub
from hypothesis import given
from hypothesis import strategies as st
from model_repos import STANDARD, published_files, write_repo
from planted_rerank import Loader, planted_index, row, task_embedding

from hf_stdembed._text import MAX_DATASET_ID_CHARS, MAX_DECLARED_DATASETS, declared_datasets
from hf_stdembed.card import read_card
from hf_stdembed.core.declared import declares
from hf_stdembed.crawl import crawl
from hf_stdembed.index import EmbeddingIndex
from hf_stdembed.index.rows import metadata_problem, row_from_values, row_values
from hf_stdembed.registry import DirectoryRegistry, HubRegistry
from hf_stdembed.rerank import rerank_index, task_dataset_id

ODD = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
ID_PART = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=20)

# --- reading a stranger's `datasets:` -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("uoft-cs/cifar10", ("uoft-cs/cifar10",)),
        (
            ["uoft-cs/cifar10", " cifar100 ", 5, None, "", "a\nb", "cifar100"],
            ("uoft-cs/cifar10", "cifar100"),
        ),  # fmt: skip
        (5, ()),
        ({"name": "cifar10"}, ()),
        (None, ()),
        ([["nested"]], ()),
        (["x" * (MAX_DATASET_ID_CHARS + 1), "ok"], ("ok",)),
        ("y" * 1_000_000, ()),
    ],
)
def test_declared_datasets_drops_what_is_not_an_id(value, expected):
    assert declared_datasets(value) == expected
    assert read_card({"datasets": value}).datasets == expected


def test_ten_thousand_declared_datasets_are_capped():
    many = [f"org/d{i}" for i in range(10_000)]
    assert declared_datasets(many) == tuple(many[:MAX_DECLARED_DATASETS])
    text = "---\ndatasets:\n" + "".join(f"- {d}\n" for d in many) + "---\n\nbody\n"
    assert read_card(text).datasets == tuple(many[:MAX_DECLARED_DATASETS])


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ODD,
    lambda inner: st.lists(inner, max_size=40) | st.dictionaries(ODD, inner, max_size=5),
    max_leaves=60,
)


@given(JSONISH)
def test_declared_datasets_never_raises_and_keeps_only_storable_ids(value):
    kept = declared_datasets(value)
    assert len(kept) <= MAX_DECLARED_DATASETS and len(set(kept)) == len(kept)
    for entry in kept:
        assert entry == entry.strip() and 0 < len(entry) <= MAX_DATASET_ID_CHARS
        assert entry.isprintable()
    assert declared_datasets(list(kept)) == kept  # what the index's check accepts
    stored = replace(row("org/x", None), datasets=kept)
    assert metadata_problem(stored) is None
    assert row_from_values(row_values(stored)) == stored


@pytest.mark.parametrize(
    "bad", [["a"], ("a", 5), ("",), ("a", "a"), ("x" * 201,), tuple(f"d{i}" for i in range(17))]
)
def test_the_index_refuses_datasets_the_card_reader_would_not_keep(bad):
    assert "datasets" in metadata_problem(replace(row("org/x", None), datasets=bad))


# --- matching the task's dataset -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "dataset_id", "match"),
    [
        (["uoft-cs/cifar10"], "cifar10", True),
        (["uoft-cs/cifar10"], "uoft-cs/cifar10", True),
        (["cifar10"], "someone/cifar10", True),
        (["UOFT-CS/CIFAR10"], "uoft-cs/cifar10", True),
        (["uoft-cs/cifar10"], "cifar100", False),
        (["uoft-cs/cifar10"], "", False),
        (["org/"], "other/", False),
        ([], "cifar10", False),
        (["uoft-cs/cifar10"], None, False),
        ([5, None, "usps"], "usps", True),  # a stranger's non-strings are skipped
    ],
)
def test_declares(declared, dataset_id, match):
    assert declares(declared, dataset_id) is match


@given(st.lists(ODD, max_size=5), ODD, ODD)
def test_declares_dataset_never_raises_is_symmetric_and_monotone(declared, dataset_id, other):
    found = declares(declared, dataset_id)
    assert isinstance(found, bool)
    assert declares([other], dataset_id) == declares([dataset_id], other)
    if found:
        assert declares([*declared, other], dataset_id)


@given(ID_PART, ID_PART, ID_PART)
def test_an_id_matches_itself_its_case_and_its_copies(org, name, copier):
    dataset = f"{org}/{name}"
    assert declares([dataset], dataset)
    assert declares([dataset.upper()], dataset.lower())
    assert declares([dataset], name) and declares([dataset], f"{copier}/{name}")


def test_task_dataset_id(tmp_path):
    local = tmp_path / "data.parquet"
    local.write_bytes(b"")
    assert task_dataset_id("uoft-cs/cifar10") == "uoft-cs/cifar10"
    assert task_dataset_id("cifar10") == "cifar10"
    assert task_dataset_id(str(local)) is None
    assert task_dataset_id(str(tmp_path)) is None
    assert task_dataset_id("./nope/x.parquet") is None
    assert task_dataset_id(str(local), "uoft-cs/cifar10") == "uoft-cs/cifar10"
    with pytest.raises(ValueError, match="--dataset-id: invalid repo id 'not an id'"):
        task_dataset_id(str(local), "not an id")


# --- the crawl keeps them ------------------------------------------------------------------------


def declaring(repo: str, seed: int, datasets_yaml: str) -> dict[str, bytes]:
    """``published_files`` whose card also declares ``datasets:`` (YAML text, indented)."""
    files = published_files(repo, seed)
    readme = files["README.md"].decode()
    assert readme.startswith("---\n")
    files["README.md"] = f"---\ndatasets:{datasets_yaml}\n{readme[4:]}".encode()
    return files


HOSTILE = {
    "org/list": (" [uoft-cs/cifar10, cifar100]", ("uoft-cs/cifar10", "cifar100")),
    "org/one": (" uoft-cs/cifar10", ("uoft-cs/cifar10",)),
    "org/number": (" 5", ()),
    "org/mapping": ("\n  name: cifar10", ()),
    "org/many": (
        "".join(f"\n- org/d{i}" for i in range(10_000)),
        tuple(f"org/d{i}" for i in range(16)),
    ),  # fmt: skip
    "org/huge": (" " + "z" * 1_000_000, ()),
}


@pytest.mark.parametrize("where", ["directory", "hub"])
def test_the_crawl_keeps_a_cards_datasets_and_survives_hostile_ones(
    where, tmp_path, request, monkeypatch
):
    if where == "hub":
        hub: FakeHub = request.getfixturevalue("hub")
        for i, (repo, (text, _)) in enumerate(HOSTILE.items()):
            hub.add_repo(repo, declaring(repo, i, text))
        registry = HubRegistry()
    else:
        for i, (repo, (text, _)) in enumerate(HOSTILE.items()):
            write_repo(tmp_path / "registry", repo, declaring(repo, i, text))
        registry = DirectoryRegistry(tmp_path / "registry")
    with EmbeddingIndex.open(tmp_path / "index") as index:
        report = crawl(registry, index)
        assert report.problems == [] and len(report.indexed) == len(HOSTILE)
        found = {repo: index.get(repo, STANDARD.hash).datasets for repo in HOSTILE}
    assert found == {repo: expected for repo, (_, expected) in HOSTILE.items()}


def _downgrade_to_schema_3(root: Path) -> None:
    """The index as schema 3 wrote it: no ``rows.datasets`` (its last column), version 3."""
    conn = sqlite3.connect(root / "index.sqlite")
    conn.execute("ALTER TABLE rows DROP COLUMN datasets")
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.commit()
    columns = [c[1] for c in conn.execute("PRAGMA table_info(rows)")]
    conn.close()
    assert columns[-3:] == ["source", "flags", "model_spec"]  # schema 3's rows table


def test_a_schema_3_index_gains_the_column_and_the_next_crawl_fills_it(hub: FakeHub, tmp_path):
    hub.add_repo("org/declares", declaring("org/declares", 1, " [uoft-cs/cifar10]"))
    hub.add_repo("org/silent", published_files("org/silent", 2))
    root = tmp_path / "index"
    with EmbeddingIndex.open(root) as index:
        crawl(HubRegistry(), index)
    _downgrade_to_schema_3(root)
    with EmbeddingIndex.open(root) as index:
        assert {r.repo_id: r.datasets for r in index.rows()} == {
            "org/declares": (),
            "org/silent": (),
        }
        assert index.crawl_state("org/declares").sha is None  # read again at the next crawl
        report = crawl(HubRegistry(), index)
        assert index.get("org/declares", STANDARD.hash).datasets == ("uoft-cs/cifar10",)
        assert report.downloaded == 1  # only the repo whose card declares datasets
        assert crawl(HubRegistry(), index).unchanged == 2
    conn = sqlite3.connect(root / "index.sqlite")
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("4",)
    conn.close()


# --- export, import, push and pull carry them ----------------------------------------------------


def test_datasets_survive_export_and_import_and_an_old_export_has_none(tmp_path):
    import pyarrow.parquet as pq

    with planted_index(tmp_path / "a") as index:
        with index.update() as tx:
            tuned = row("org/tuned", None, datasets=("uoft-cs/cifar10", "cifar10"))
            tx.upsert(tuned, np.zeros(8, np.float32))
        index.export_parquet(tmp_path / "rows.parquet")
    with EmbeddingIndex.open(tmp_path / "b") as other:
        other.import_parquet(tmp_path / "rows.parquet")
        assert other.get("org/tuned", row("x", None).standard_hash).datasets == (
            "uoft-cs/cifar10",
            "cifar10",
        )
        assert {r.datasets for r in other.rows() if r.repo_id != "org/tuned"} == {()}
    table = pq.read_table(tmp_path / "rows.parquet")
    pq.write_table(table.drop_columns(["datasets"]), tmp_path / "old.parquet")
    with EmbeddingIndex.open(tmp_path / "c") as old:
        assert old.import_parquet(tmp_path / "old.parquet").imported == 5
        assert {r.datasets for r in old.rows()} == {()}
    column = table.schema.get_field_index("datasets")
    forged = table.set_column(column, "datasets", [["x" * 300]] * table.num_rows)
    pq.write_table(forged, tmp_path / "forged.parquet")
    with EmbeddingIndex.open(tmp_path / "d") as forged_index:
        report = forged_index.import_parquet(tmp_path / "forged.parquet")
    assert report.imported == 0 and all("datasets" in s.reason for s in report.skipped)


# --- stage 1: a declared order -------------------------------------------------------------------

TUNED = [0, 0, 0, 0, 0.9, 0.9, 0.9, 0.9]  # nothing on the task's features: last by I and I/|v|


def tuned_index(path: Path) -> EmbeddingIndex:
    """The planted index (narrow's model blind to the colour) plus ``org/tuned``, whose card
    declares the task's dataset and whose model is the one that sees the colour."""
    index = planted_index(path, org_narrow="timm:org/mid-noise")
    with index.update() as tx:
        tuned = row("org/tuned", "timm:org/good", datasets=("someone/colours", "other"))
        tx.upsert(tuned, np.array(TUNED, np.float32))
    return index


def test_a_declared_model_every_similarity_ranks_last_is_shortlisted_and_ranked_first(
    tmp_path, colour_data
):
    with tuned_index(tmp_path / "index") as index:
        blind = rerank_index(task_embedding(), index, colour_data, k=3, load=Loader())
        ranking = rerank_index(
            task_embedding(), index, colour_data, k=3, load=Loader(), dataset_id="colours"
        )
    assert blind.rows[-1].model_id == "org/tuned" and blind.rows[-1].shortlist_place is None
    first = ranking.rows[0]
    assert (first.model_id, first.placed_by, first.declared) == ("org/tuned", "stage 2", True)
    assert (first.shortlisted_by, first.shortlist_place) == ("declared", 3)
    by = {r.model_id: r.shortlisted_by for r in ranking.rows}
    assert by == {
        "org/wide": "intersection",
        "org/narrow": "model-normalised",
        "org/tuned": "declared",
        "org/mid-a": None,
        "org/mid-b": None,
    }
    assert [r.declared for r in ranking.rows].count(True) == 1
    cost = ranking.stage2
    assert cost.stage1 == ("intersection", "model-normalised", "declared")
    assert (cost.dataset_id, cost.declared) == ("colours", 1)


@pytest.mark.parametrize("dataset_id", [None, "cifar10", "colours-2"])
def test_no_declared_order_without_a_matching_dataset(tmp_path, colour_data, dataset_id):
    with tuned_index(tmp_path / "index") as index:
        ranking = rerank_index(
            task_embedding(), index, colour_data, k=3, load=Loader(), dataset_id=dataset_id
        )
    assert ranking.rows[-1].model_id == "org/tuned" and not ranking.rows[-1].declared
    assert ranking.stage2.stage1 == ("intersection", "model-normalised")
    assert ranking.stage2.declared == 0
