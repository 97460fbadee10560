"""Two-stage select (issue 12): a shortlist from the O(1) sweep, re-ranked by LogME, on the
planted ground truth of tests/planted_rerank.py."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch
from model_repos import make_timm_dir, model_files, write_standard
from planted_rerank import MODELS, H, Loader, planted_index, row, task_embedding
from tiny_images import colour_images

from hf_stdembed.core.shortlist import merge_shortlist, two_stage_order
from hf_stdembed.extractors import FeatureExtractor, load_extractor
from hf_stdembed.index import EmbeddingIndex
from hf_stdembed.rerank import rerank_index
from hf_stdembed.selection import rank_index

# --- the pure core ---------------------------------------------------------------------------


def test_round_robin_takes_the_top_of_each_score_in_turn():
    assert merge_shortlist([[0, 1, 2, 3], [3, 2, 1, 0]], 2) == [0, 3]
    assert merge_shortlist([[0, 1, 2, 3], [0, 2, 1, 3]], 3) == [0, 2, 1]  # no repeat
    assert merge_shortlist([[0, 1, 2], [2, 1, 0], [1, 0, 2]], 3) == [0, 2, 1]
    assert merge_shortlist([[0, 1], [1, 0]], 5) == [0, 1]  # fewer candidates than k
    assert merge_shortlist([[0, 1, 2, 3], [3, 2, 1, 0]], 2, rule="first-score") == [0, 1]
    assert merge_shortlist([[0, 1]], 0) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"rule": "best"}, "unknown merge rule"), ({"k": -1}, "Invalid k"), ({"orders": []}, "order")],
)
def test_merge_refuses_bad_settings(kwargs, message):
    args = {"orders": [[0, 1]], "k": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        merge_shortlist(args.pop("orders"), args.pop("k"), **args)


def test_two_stage_order_keeps_unscored_places_and_demotes_flagged_ones():
    assert two_stage_order([5, 6, 7], {5: 0.0, 6: 1.0, 7: 2.0}) == [7, 6, 5]
    assert two_stage_order([5, 6, 7], {6: 1.0, 7: 2.0}) == [5, 7, 6]
    assert two_stage_order([5, 6, 7], {6: 1.0, 7: 2.0}, demoted={5}) == [7, 6, 5]
    assert two_stage_order([5, 6, 7], {5: 3.0, 7: 2.0}, demoted={5}) == [5, 6, 7]  # scored: kept
    assert two_stage_order([5, 6], {6: 1.0, 5: 1.0}) == [5, 6]  # ties: shortlist order


# --- the library on a planted index ----------------------------------------------------------


def test_a_model_stage_1_ranks_last_reaches_the_top_when_shortlisted(tmp_path, colour_data):
    loader = Loader()
    with planted_index(tmp_path / "index") as index:
        plain = rank_index(task_embedding(), index)
        assert [r.model_id for r in plain.rows][-1] == "org/narrow"
        ranking = rerank_index(task_embedding(), index, colour_data, k=2, load=loader)
    rows = ranking.rows
    assert [r.model_id for r in rows] == ["org/narrow", "org/wide", "org/mid-a", "org/mid-b"]
    assert [r.placed_by for r in rows] == ["stage 2", "stage 2", "stage 1", "stage 1"]
    assert rows[0].stage2_score > rows[1].stage2_score
    assert [r.shortlist_place for r in rows] == [2, 1, None, None]
    assert rows[2].stage2_score is None and rows[2].not_reranked is None  # not shortlisted
    # each row keeps both stage-1 scores; `score` is the plain intersection, as without rerank
    assert dict(rows[0].stage1_scores) == pytest.approx(
        {"intersection": 1.0, "model-normalised": 1.0}
    )
    by_id = {r.model_id: r.score for r in plain.rows}
    assert all(r.score == pytest.approx(by_id[r.model_id]) for r in rows)
    assert sorted(loader.calls) == [("timm:org/good", "d" * 40), ("timm:org/wide-noise", "d" * 40)]
    cost = ranking.stage2
    assert (cost.k, cost.shortlisted, cost.reranked) == (2, 2, 2)
    assert (cost.forward_models, cost.forward_samples, cost.cached_models) == (2, 90, 0)
    assert [r.forward_samples for r in rows] == [45, 45, 0, 0]


def test_a_second_ranking_forwards_nothing_through_the_feature_cache(tmp_path, colour_data):
    with planted_index(tmp_path / "index") as index:
        first = rerank_index(task_embedding(), index, colour_data, k=2, load=Loader())
        again = rerank_index(task_embedding(), index, colour_data, k=2, load=Loader())
    assert [r.model_id for r in again.rows] == [r.model_id for r in first.rows]
    assert (again.stage2.forward_models, again.stage2.cached_models) == (0, 2)


def test_one_score_alone_leaves_the_narrow_model_off_the_shortlist(tmp_path, colour_data):
    with planted_index(tmp_path / "index") as index:
        single = rerank_index(
            task_embedding(), index, colour_data, k=2, stage1=("intersection",), load=Loader()
        )
        merged = rerank_index(task_embedding(), index, colour_data, k=2, load=Loader())
    assert single.rows[-1].model_id == "org/narrow" and single.rows[-1].shortlist_place is None
    assert {r.model_id for r in merged.rows if r.shortlist_place} == {"org/wide", "org/narrow"}


def test_stage2_forwards_a_class_stratified_draw_of_at_most_samples_images(tmp_path, colour_data):
    from hf_stdembed.data import stratified_subset

    with planted_index(tmp_path / "index") as index:
        every = rerank_index(task_embedding(), index, colour_data, k=2, load=Loader())
        some = rerank_index(
            task_embedding(),
            index,
            colour_data,
            k=2,
            samples=20,
            load=Loader(),
            cache_dir=tmp_path / "c",
        )
        with pytest.raises(ValueError, match="Invalid samples value: 0"):
            rerank_index(task_embedding(), index, colour_data, k=2, samples=0, load=Loader())
    assert every.stage2.forward_samples == 2 * 45
    drawn = stratified_subset(colour_data, 20, seed=0)
    assert some.stage2.forward_samples == 2 * len(drawn) and 18 <= len(drawn) <= 22
    # every class keeps its share: the draw's label counts follow the data's
    counts = torch.bincount(colour_data.labels())
    drawn_counts = torch.bincount(drawn.labels(), minlength=len(counts))
    assert torch.all((drawn_counts - counts * 20 / 45).abs() <= 1)
    # the planted order survives the draw: the narrow model still wins stage 2
    assert some.rows[0].model_id == every.rows[0].model_id == "org/narrow"


def test_quotas_take_their_counts_first(tmp_path, colour_data):
    with planted_index(tmp_path / "index") as index:
        normalised = rerank_index(
            task_embedding(), index, colour_data, k=0, stage1=("model-normalised",)
        )
        ranking = rerank_index(
            task_embedding(), index, colour_data, k=2, merge="quotas", quotas=(0, 2), load=Loader()
        )
    # both places go to the I/|v| order's top two, none to the intersection's
    top_two = [r.model_id for r in normalised.rows[:2]]
    assert {r.model_id for r in ranking.rows if r.shortlist_place} == set(top_two)
    assert {r.shortlisted_by for r in ranking.rows if r.shortlist_place} == {"model-normalised"}
    assert ranking.stage2.merge == "quotas"
    assert set(top_two) != {"org/wide", "org/narrow"}  # round-robin's shortlist of 2


def test_a_model_that_cannot_be_loaded_keeps_its_place_marked_with_the_reason(
    tmp_path, colour_data
):
    loader = Loader()
    with planted_index(tmp_path / "index", org_wide="timm:org/gone") as index:
        ranking = rerank_index(task_embedding(), index, colour_data, k=2, load=loader)
    first, second = ranking.rows[:2]
    assert (first.model_id, first.rank, first.placed_by) == ("org/wide", 1, "stage 1")
    assert "org/gone" in first.not_reranked and first.stage2_score is None
    assert (second.model_id, second.placed_by) == ("org/narrow", "stage 2")
    assert ranking.stage2.reranked == 1


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (None, "no loadable model spec"),
        ("entrypoint:os:getcwd", "not a Hub repo"),
        ("os:getcwd", "not a Hub repo"),
        ("timm:/tmp/weights", "not a Hub repo"),
    ],
)
def test_no_spec_or_a_spec_that_is_no_hub_repo_is_never_loaded(tmp_path, colour_data, spec, reason):
    loader = Loader()
    with planted_index(tmp_path / "index", org_wide=spec) as index:
        ranking = rerank_index(task_embedding(), index, colour_data, k=2, load=loader)
    assert ranking.rows[0].model_id == "org/wide" and reason in ranking.rows[0].not_reranked
    assert loader.calls == [("timm:org/good", "d" * 40)]


def test_a_failing_model_never_stops_the_ranking(tmp_path, colour_data):
    def load(spec: str, revision: str) -> FeatureExtractor:
        if spec == "timm:org/wide-noise":
            raise RuntimeError("CUDA out of memory\nsecond line")
        return MODELS[spec]()

    events = []
    with planted_index(tmp_path / "index") as index:
        ranking = rerank_index(
            task_embedding(), index, colour_data, k=2, load=load, on_progress=events.append
        )
    assert ranking.rows[0].model_id == "org/wide"
    assert ranking.rows[0].not_reranked == "RuntimeError: CUDA out of memory second line"
    assert ranking.rows[1].placed_by == "stage 2"
    assert [(e.desc, e.done, e.total, e.unit, e.item) for e in events] == [
        ("re-rank", 0, 2, "model", "load org/wide"),  # its load fails: over, not re-ranked
        ("re-rank", 1, 2, "model", None),
        ("re-rank", 1, 2, "model", "load org/narrow"),
        ("re-rank", 1, 2, "model", "features org/narrow"),
        ("re-rank", 1, 2, "model", "score org/narrow"),
        ("re-rank", 2, 2, "model", None),
    ]


@pytest.mark.parametrize("spec", [None, "timm:org/mid-noise"])
def test_a_forged_saturated_row_cannot_keep_first_place(tmp_path, colour_data, spec):
    forged = {"org/forged": ([1.0] * 8, spec)}  # the largest intersection there can be
    with planted_index(tmp_path / "index", extra=forged) as index:
        assert rank_index(task_embedding(), index).rows[0].model_id == "org/forged"
        ranking = rerank_index(task_embedding(), index, colour_data, k=3, load=Loader())
    ids = [r.model_id for r in ranking.rows]
    assert ids[0] == "org/narrow"
    forged_row = ranking.rows[ids.index("org/forged")]
    assert forged_row.flags == ("saturated",) and forged_row.shortlist_place == 1
    if spec is None:  # not re-ranked: after every re-ranked row, not at its stage-1 place
        assert ids.index("org/forged") == 2 and forged_row.not_reranked


def test_rerank_zero_is_the_stage_1_order_and_loads_nothing(tmp_path, colour_data):
    loader = Loader()
    with planted_index(tmp_path / "index") as index:
        plain = rank_index(task_embedding(), index)
        zero = rerank_index(task_embedding(), index, colour_data, k=0, load=loader)
    assert [(r.model_id, r.score) for r in zero.rows] == [
        (r.model_id, pytest.approx(r.score)) for r in plain.rows
    ]
    assert loader.calls == [] and zero.stage2.forward_models == 0


def test_other_standards_are_skipped_and_bad_options_refused(tmp_path, colour_data):
    with planted_index(tmp_path / "index") as index:
        with index.update() as tx:
            tx.upsert(row("org/other", None, standard_hash="cd" * 8), np.zeros(8, np.float32))
        ranking = rerank_index(task_embedding(), index, colour_data, k=1, load=Loader())
        assert len(ranking.rows) == 4 and "1 model(s)" in ranking.skipped[0].source
        for kwargs, message in [
            ({"k": -1}, "Invalid k"),
            ({"stage1": ("dice",)}, "unknown stage-1"),
            ({"stage1": ()}, "at least one"),
            ({"merge": "best"}, "unknown merge"),
            ({"scorer": "leep"}, "unknown stage-2"),
            ({"merge": "quotas"}, "Invalid quotas value: \\(\\)"),
            ({"merge": "quotas", "quotas": (1, 1, 1, 1)}, "may add one for 'declared'"),
            ({"quotas": (1, 1)}, "Invalid quotas"),
            ({"merge": "quotas", "quotas": (1, -1)}, ">= 0"),
        ]:
            with pytest.raises(ValueError, match=message):
                rerank_index(task_embedding(), index, colour_data, **{"k": 1, **kwargs})


# --- the index keeps the spec ----------------------------------------------------------------


def test_the_model_spec_survives_export_and_import(tmp_path):
    with planted_index(tmp_path / "a", org_wide=None) as index:
        index.export_parquet(tmp_path / "rows.parquet")
    with EmbeddingIndex.open(tmp_path / "b") as other:
        other.import_parquet(tmp_path / "rows.parquet")
        specs = {r.repo_id: r.model_spec for r in other.rows()}
    assert specs == {
        "org/wide": None,
        "org/mid-a": "timm:org/mid-noise",
        "org/mid-b": "timm:org/mid-noise",
        "org/narrow": "timm:org/good",
    }


def test_a_schema_3_index_without_the_spec_column_gains_it(tmp_path):
    import sqlite3

    with planted_index(tmp_path / "index"):
        pass
    db = tmp_path / "index" / "index.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE rows DROP COLUMN model_spec")
    conn.execute("ALTER TABLE rows DROP COLUMN datasets")
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with EmbeddingIndex.open(tmp_path / "index") as index:
        assert {r.model_spec for r in index.rows()} == {None}
        with index.update() as tx:
            tx.upsert(row("org/new", "timm:org/good"), np.zeros(8, np.float32))
        assert index.get("org/new", H).model_spec == "timm:org/good"


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def cli_setup(tmp_path, tiny_timm_dir, monkeypatch):
    """A tiny standard, the colour dataset as parquet, and the planted rows indexed under the
    standard (vectors padded to its N); the planted models load in place of Hub downloads."""
    import yaml

    import hf_stdembed.rerank as rerank_module
    from hf_stdembed.pipeline import compute_task_embedding
    from hf_stdembed.standards import get_standard

    parquet = tmp_path / "colours.parquet"
    colour_images(45, seed=0).to_parquet(str(parquet))
    extractor = load_extractor(f"timm:{tiny_timm_dir}")
    std_file = tmp_path / "tiny.yaml"
    dim = int(extractor.module.num_features)
    baseline = {"model": f"timm:{tiny_timm_dir}", "revision": extractor.revision, "dim": dim}
    probe = {"dataset": "parquet", "split": "train", "data_files": [str(parquet)]}
    std_file.write_text(yaml.safe_dump({"id": "tiny-rr", "baseline": baseline, "probe": probe}))
    std = get_standard(std_file)
    task = compute_task_embedding(str(parquet), std).vector.numpy()
    # planted against the real task mask: wide covers it, narrow is one of its features
    on = np.flatnonzero(task > 0.5)
    vectors = {
        "org/wide": np.where(task > 0.5, 1.0, 0.6),
        "org/mid": np.where(task > 0.5, 0.5, 0.3),
        "org/narrow": np.isin(np.arange(dim), on[:1]).astype(float),
    }
    specs = {"org/wide": None, "org/mid": "timm:org/mid-noise", "org/narrow": "timm:org/good"}
    with EmbeddingIndex.open(tmp_path / "index").update() as tx:
        for repo, vector in vectors.items():
            tx.upsert(
                row(repo, specs[repo], standard_hash=std.hash, standard_id=std.id),
                vector.astype(np.float32),
            )
    monkeypatch.setattr(rerank_module, "load_extractor", lambda spec, **_: MODELS[spec]())
    base = ["select", "-d", parquet, "-s", std_file, "--index", tmp_path / "index"]
    return [str(a) for a in [*base, "--no-refresh", "-q"]]


def _run(args: list[str]):
    from typer.testing import CliRunner

    from hf_stdembed.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_cli_rerank_zero_is_the_o1_ranking_and_the_default_re_ranks(cli_setup):
    from hf_stdembed.cli._select import DEFAULT_RERANK_K as CLI_DEFAULT
    from hf_stdembed.rerank import DEFAULT_RERANK_K

    zero = json.loads(_run([*cli_setup, "--json", "--rerank", "0"]).stdout)
    assert [r["model"] for r in zero] == ["org/wide", "org/mid", "org/narrow"]
    fields = {"rank", "model", "revision", "score", "fidelity", "source", "flags", "link"}
    assert set(zero[0]) == fields
    from hf_stdembed.cli._select import DEFAULT_RERANK_SAMPLES as CLI_SAMPLES
    from hf_stdembed.rerank import DEFAULT_RERANK_SAMPLES

    assert CLI_DEFAULT == DEFAULT_RERANK_K == 13
    assert CLI_SAMPLES == DEFAULT_RERANK_SAMPLES == 5000
    default = _run([*cli_setup, "--json"])
    explicit = _run([*cli_setup, "--json", "--rerank", str(DEFAULT_RERANK_K)])
    same = ("model", "placed_by", "shortlist_place", "stage2_score", "not_reranked")
    assert [[r[f] for f in same] for r in json.loads(default.stdout)] == [
        [r[f] for f in same] for r in json.loads(explicit.stdout)
    ]
    assert all(r["shortlist_place"] for r in json.loads(default.stdout))  # 3 rows, K = 13
    assert "stage 2: 2 of 3 shortlisted models re-ranked" in default.stderr


def test_cli_json_carries_both_stages_and_the_forward_passes(cli_setup):
    result = _run([*cli_setup, "--json", "--rerank", "3"])
    rows = json.loads(result.stdout)
    # shortlist: wide (intersection #1), narrow (I/|v| #1), mid; wide cannot be re-ranked
    assert [r["model"] for r in rows] == ["org/wide", "org/narrow", "org/mid"]
    wide, narrow, mid = rows
    assert narrow["placed_by"] == "stage 2" and narrow["stage2_scorer"] == "logme"
    assert narrow["stage2_score"] > mid["stage2_score"]
    assert narrow["shortlist_place"] == 2 and mid["shortlist_place"] == 3
    assert set(narrow["stage1_scores"]) == {"intersection", "model-normalised"}
    assert narrow["stage1_scores"]["intersection"] == narrow["score"]
    assert wide["placed_by"] == "stage 1" and "no loadable model spec" in wide["not_reranked"]
    assert wide["shortlist_place"] == 1 and wide["stage2_score"] is None
    assert narrow["forward_samples"] == 45 and wide["forward_samples"] == 0
    assert "stage 2: 2 of 3 shortlisted models re-ranked by logme" in result.stderr
    assert "+ 2 model(s) over the task's images (90 images)" in result.stderr
    assert "not re-ranked org/wide: no loadable model spec" in result.stderr


def test_cli_table_shows_both_stages_and_who_placed_each_row(cli_setup):
    out = _run([*cli_setup, "--rerank", "2"]).stdout
    assert "I/|v|" in out and "logme" in out and "stage" in out
    assert re.search(r"│ 2 I/\|v\| +│", out) and re.search(r"│ 1\* I +│", out), out


def _add_tuned(cli_setup: list[str]) -> None:
    """A row whose card declares uoft-cs/colours, with nothing on the task's features."""
    index = cli_setup[cli_setup.index("--index") + 1]
    with EmbeddingIndex.open(index) as opened:
        wide = opened.get("org/wide", opened.rows()[0].standard_hash)
        dim = opened.vectors(wide.standard_hash).shape[1]
        tuned = dataclasses.replace(
            wide, repo_id="org/tuned", model_spec="timm:org/good", datasets=("uoft-cs/colours",)
        )
        with opened.update() as tx:
            tx.upsert(tuned, np.zeros(dim, np.float32))


def test_cli_dataset_id_puts_a_declared_model_on_the_shortlist(cli_setup):
    _add_tuned(cli_setup)
    blind = _run([*cli_setup, "--json", "--rerank", "3"])
    rows = {r["model"]: r for r in json.loads(blind.stdout)}
    assert rows["org/tuned"]["shortlist_place"] is None and not rows["org/tuned"]["declared"]
    assert "no dataset id to match cards against: see --dataset-id" in blind.stderr
    told = _run([*cli_setup, "--json", "--rerank", "3", "--dataset-id", "uoft-cs/colours"])
    rows = {r["model"]: r for r in json.loads(told.stdout)}
    tuned = rows["org/tuned"]
    assert (tuned["shortlist_place"], tuned["shortlisted_by"], tuned["declared"]) == (
        3,
        "declared",
        True,
    )
    assert tuned["placed_by"] == "stage 2" and rows["org/mid"]["shortlist_place"] is None
    assert rows["org/wide"]["shortlisted_by"] == "intersection"
    assert rows["org/narrow"]["shortlisted_by"] == "model-normalised"
    assert "1 model(s) whose card declares uoft-cs/colours" in told.stderr
    table = _run([*cli_setup, "--rerank", "3", "--dataset-id", "colours"])
    assert re.search(r"│ 2 card +│", table.stdout), table.stdout
    assert "card: its card declares colours" in table.stderr


def test_cli_refuses_a_dataset_id_that_is_no_hub_id_in_one_line(cli_setup):
    from typer.testing import CliRunner

    from hf_stdembed.cli import app

    result = CliRunner().invoke(app, [*cli_setup, "--dataset-id", "not an id"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--dataset-id" in result.output and "invalid repo id 'not an id'" in result.output


def test_cli_default_k_offline_ranks_and_says_why_in_one_line(cli_setup, monkeypatch):
    """HF_HUB_OFFLINE with the default K: the ranking, and one line for the models the local
    Hub cache does not hold (not one per model, no network)."""
    from huggingface_hub import constants

    import hf_stdembed.rerank as rerank_module

    monkeypatch.setattr(rerank_module, "load_extractor", load_extractor)  # the real one
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    result = _run([*cli_setup, "--json"])
    rows = json.loads(result.stdout)
    assert [r["model"] for r in rows] == ["org/wide", "org/narrow", "org/mid"]  # the shortlist
    assert all(r["placed_by"] == "stage 1" for r in rows)
    lines = [line for line in result.stderr.splitlines() if "not re-ranked" in line]
    assert len(lines) == 2, result.stderr  # org/wide: no spec; the other two: offline
    offline = [line for line in lines if "local Hub cache" in line]
    assert len(offline) == 1 and "2 models: org/narrow, org/mid" in offline[0]
    assert "Traceback" not in result.stderr


def test_cli_token_reaches_each_shortlisted_models_download(cli_setup, monkeypatch):
    import hf_stdembed.rerank as rerank_module

    tokens = []

    def load(spec, **options):
        tokens.append(options.get("token"))
        return MODELS[spec]()

    monkeypatch.setattr(rerank_module, "load_extractor", load)
    _run([*cli_setup, "--rerank", "3", "--token", "hf_given"])
    assert tokens == ["hf_given", "hf_given"]  # org/mid and org/narrow (org/wide: no spec)


def test_cli_refuses_a_negative_rerank_in_one_line(cli_setup):
    from typer.testing import CliRunner

    from hf_stdembed.cli import app

    result = CliRunner().invoke(app, [*cli_setup, "--rerank", "-1"])
    assert result.exit_code != 0 and "Traceback" not in result.output


# --- end to end: publish -> crawl -> select --rerank, the models loaded from the (fake) Hub ---


@pytest.mark.slow
def test_publish_crawl_and_rerank_load_each_model_at_its_pinned_revision(
    hub, tmp_path, tiny_timm_dir, tiny_parquet
):
    standard_file = write_standard(tmp_path, tiny_timm_dir, tiny_parquet, standard_id="tiny-e2e")
    repos = ["tester/rr0", "tester/rr1"]
    for i, repo in enumerate(repos):
        hub.add_repo(repo, model_files(make_timm_dir(tmp_path / f"m{i}", seed=20 + i)))
        _run(["publish", repo, "-s", str(standard_file), "-q"])
    index = tmp_path / "index"
    _run(["index", "update", "--index", str(index), "-s", str(standard_file), "-q"])
    with EmbeddingIndex.open(index) as opened:
        rows = {r.repo_id: r for r in opened.rows()}
    assert all(r.model_spec in (repo, f"timm:{repo}") for repo, r in rows.items())
    args = ["select", "-d", str(tiny_parquet), "-s", str(standard_file), "--index", str(index)]
    result = _run([*args, "--no-refresh", "-q", "--json", "--rerank", "2"])
    ranked = json.loads(result.stdout)
    assert all(r["placed_by"] == "stage 2" and r["not_reranked"] is None for r in ranked)
    assert {r["model"]: r["revision"] for r in ranked} == {r: rows[r].revision for r in repos}
    # the task is the probe set here: publish ran both models over it, the cache serves them
    assert "2 model(s) from the feature cache" in result.stderr
