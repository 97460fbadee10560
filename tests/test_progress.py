"""Progress: every long library call reports through its ``on_progress`` callback (events in
order, each counter ending at ``done == total``) and writes nothing to stdout or stderr; the
CLI draws the bars on stderr and ``--quiet`` turns them off."""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_server import FakeHub
from model_repos import card_only_files, make_timm_dir, model_files, published_files, write_repo
from planted_rerank import Loader, planted_index, task_embedding
from typer.testing import CliRunner

from hf_stdembed.cli import app
from hf_stdembed.cli._render import progress_bars
from hf_stdembed.pipeline import compute_model_embedding, compute_task_embedding
from hf_stdembed.progress import ProgressEvent, counted, item_lines, step_reporter
from hf_stdembed.standards import get_standard


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_timm_dir(tmp_path_factory.mktemp("progress-model"), seed=31)


@pytest.fixture(autouse=True)
def dependency_bars_off():
    """datasets' and huggingface_hub's own bars (``--quiet`` silences them too) are not the
    library's: off here, so that what is left on stderr would be ours."""
    import datasets
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    were = datasets.is_progress_bar_enabled(), not are_progress_bars_disabled()
    datasets.disable_progress_bars()
    disable_progress_bars()
    yield
    if were[0]:
        datasets.enable_progress_bars()
    if were[1]:
        enable_progress_bars()


def counters(events: list[ProgressEvent]) -> dict[str, list[int]]:
    """Each ``desc``'s ``done`` values, in order."""
    out: dict[str, list[int]] = {}
    for e in events:
        out.setdefault(e.desc, []).append(e.done)
    return out


def assert_counted(events: list[ProgressEvent]) -> None:
    """Every counter starts at or above 0, never goes back, and ends at its total."""
    assert events
    for desc, done in counters(events).items():
        totals = {e.total for e in events if e.desc == desc}
        assert len(totals) == 1, desc
        assert done == sorted(done) and done[0] >= 0, desc
        assert done[-1] == totals.pop(), desc


# --- the helpers --------------------------------------------------------------------------


def test_helpers_report_nothing_without_a_callback_and_count_with_one():
    assert list(counted(iter("ab"), None, "x", 2, unit="batch")) == ["a", "b"]
    assert step_reporter(None, "x") is None
    events: list[ProgressEvent] = []
    assert list(counted(iter("ab"), events.append, "x", 2, unit="batch")) == ["a", "b"]
    step = step_reporter(events.append, "opt")
    assert step is not None
    step(1, 1)
    assert [(e.desc, e.done, e.total, e.unit) for e in events] == [
        ("x", 0, 2, "batch"),
        ("x", 1, 2, "batch"),
        ("x", 2, 2, "batch"),
        ("opt", 1, 1, "step"),
    ]
    lines: list[str] = []
    for e in [ProgressEvent("e", 0, 2, item="task a"), ProgressEvent("e", 2, 2)]:
        item_lines(lines.append)(e)
    assert lines == ["task a"]


def test_the_cli_bars_close_at_the_total_and_quiet_shows_none(capsys):
    with progress_bars(quiet=True) as on_progress:
        assert on_progress is None
    with progress_bars(quiet=False) as on_progress:
        assert on_progress is not None
        for done in range(3):
            on_progress(ProgressEvent("features m", done, 2, "batch", item="x"))
        on_progress(ProgressEvent("crawling hub", 1, None, "repo"))  # closed at the end
    out, err = capsys.readouterr()
    assert out == "" and "features m" in err and "2/2" in err and "crawling hub" in err


# --- one test per command family ----------------------------------------------------------


def test_embed_and_task_report_extraction_and_optimisation_silently(
    model_dir: Path, standard_file: Path, tiny_parquet: Path, capsys
):
    standard = get_standard(standard_file)
    events: list[ProgressEvent] = []
    embedding = compute_model_embedding(
        f"timm:{model_dir}", standard, on_progress=events.append, cache=False
    )
    descs = list(counters(events))
    assert descs[0].startswith("features ") and descs[-1] == f"embedding {embedding.model_id}"
    assert {e.unit for e in events if e.desc.startswith("features")} == {"batch"}
    assert counters(events)[descs[-1]][-1] == standard.model_embedding.steps
    assert_counted(events)
    events.clear()
    compute_task_embedding(str(tiny_parquet), standard, on_progress=events.append, cache=False)
    assert list(counters(events))[-1].startswith("task embedding (")
    assert_counted(events)
    assert capsys.readouterr() == ("", "")


def test_verify_reports_both_optimisations_silently(
    model_dir: Path, standard_file: Path, tmp_path: Path, capsys
):
    from hf_stdembed.registry import open_registry
    from hf_stdembed.verify import verify_published

    standard = get_standard(standard_file)
    embedding = compute_model_embedding(f"timm:{model_dir}", standard)
    root = tmp_path / "registry"
    files = {**model_files(model_dir), **card_only_files(embedding, repo_id="team/m")}
    write_repo(root, "team/m", files)
    capsys.readouterr()
    events: list[ProgressEvent] = []
    result = verify_published(
        open_registry(str(root)), "team/m", standard, on_progress=events.append
    )
    assert result.passed
    steps = [d for d in counters(events) if not d.startswith("features ")]
    assert steps[0].startswith("recomputing P for ") and steps[0].endswith("team/m")
    assert steps[1:] == ["refitting with the published mask"]
    assert_counted(events)
    assert capsys.readouterr() == ("", "")


def test_crawl_reports_each_repo_listed_silently(tmp_path: Path, capsys):
    from hf_stdembed.crawl import crawl
    from hf_stdembed.index import EmbeddingIndex
    from hf_stdembed.registry import open_registry

    root = tmp_path / "registry"
    for i, repo in enumerate(["org/a", "org/b", "org/c"]):
        write_repo(root, repo, published_files(repo, i))
    registry = open_registry(str(root))
    capsys.readouterr()
    events: list[ProgressEvent] = []
    with EmbeddingIndex.open(tmp_path / "index") as index:
        report = crawl(registry, index, on_progress=events.append)
    assert len(report.indexed) == 3
    desc = f"crawling {registry.name}"
    assert [(e.desc, e.done, e.total, e.unit, e.item) for e in events] == [
        (desc, done, None, "repo", None) for done in range(4)
    ]
    assert capsys.readouterr() == ("", "")


def test_rerank_reports_each_shortlisted_model_silently(tmp_path: Path, colour_data, capsys):
    from hf_stdembed.rerank import rerank_index

    events: list[ProgressEvent] = []
    with planted_index(tmp_path / "index") as index:
        ranking = rerank_index(
            task_embedding(), index, colour_data, k=2, load=Loader(), on_progress=events.append
        )
    assert ranking.stage2 is not None and ranking.stage2.reranked == 2
    assert [e.done for e in events if e.item is None] == [1, 2]
    assert_counted([e for e in events if e.desc == "re-rank"])
    assert capsys.readouterr() == ("", "")


def test_embed_many_reports_each_model_silently(
    hub: FakeHub,
    hub_models: list[str],
    standard_file: Path,
    tmp_path: Path,
    capsys,
):
    from hf_stdembed.embed_many import ModelJob, embed_many
    from hf_stdembed.index import EmbeddingIndex
    from hf_stdembed.registry import HubRegistry

    registry = HubRegistry()
    jobs = [ModelJob(repo, repo, registry.head(repo)) for repo in hub_models]
    events: list[ProgressEvent] = []
    with EmbeddingIndex.open(tmp_path / "index") as index:
        report = embed_many(
            jobs,
            get_standard(standard_file),
            index,
            use_ray=False,
            unresolved=[("nope", "not found")],
            on_progress=events.append,
        )
    assert len(report.done) == 3
    assert [(e.desc, e.done, e.total, e.item) for e in events if e.desc == "models"] == [
        ("models", 0, 4, None),
        ("models", 1, 4, "nope"),
        *[("models", i, 4, repo) for i, repo in enumerate(hub_models, 2)],
    ]
    assert_counted([e for e in events if e.desc == "models"])
    assert capsys.readouterr() == ("", "")


def test_evaluate_writes_nothing_and_ends_at_the_total(tiny_pool, tmp_path: Path, capsys):
    from hf_stdembed.evaluation import FAITHFUL, evaluate, load_split_task

    standard, specs, task_file, probe_config = tiny_pool
    task = load_split_task("colours", str(task_file), splits=1)
    capsys.readouterr()
    events: list[ProgressEvent] = []
    evaluate(
        specs[:2],
        standard,
        [task],
        variants=(FAITHFUL,),
        probe_config=probe_config,
        cache_dir=tmp_path / "cache",
        with_logme=False,
        on_progress=events.append,
    )
    assert_counted(events)
    assert capsys.readouterr() == ("", "")


# --- the CLI draws them; --quiet does not -------------------------------------------------


def test_cli_task_draws_bars_on_stderr_unless_quiet(
    standard_file: Path, tiny_parquet: Path, tmp_path
):
    runner = CliRunner()
    args = ["task", str(tiny_parquet), "-s", str(standard_file), "--out"]
    shown = runner.invoke(app, [*args, str(tmp_path / "a"), "--cache-dir", str(tmp_path / "c1")])
    assert shown.exit_code == 0, shown.output
    assert "features timm:" in shown.stderr and "task embedding (" in shown.stderr
    quiet = runner.invoke(
        app, [*args, str(tmp_path / "b"), "--cache-dir", str(tmp_path / "c2"), "-q"]
    )
    assert quiet.exit_code == 0, quiet.output
    assert "features" not in quiet.stderr and "task embedding (" not in quiet.stderr
    assert "Wrote" in quiet.stderr
