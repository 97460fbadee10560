"""benchmarks/offline_benchmark.py on a tiny stand-in of the pool/tasks contract: the whole
report (summary with intervals, recall@K plot, accuracy-vs-score plots, pool table) comes
out of one command, and the same command again regenerates it from the caches alone."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from eval_pool import TINY_MODULE, refuse_computations
from tiny_images import colour_images

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class _Entry:
    name: str
    spec: str
    family: str
    source: str
    licence: str
    datasets: tuple[str, ...] = ()


@pytest.fixture
def tiny_bench(tmp_path, monkeypatch):
    """A bench folder (CIFAR-10 train stand-in for the probe, two task files) and stub
    ``benchmarks.tasks`` / ``benchmarks.pool`` modules with the contract's names."""
    from hf_stdembed.data import load_image_dataset
    from hf_stdembed.evaluation import repeated_splits

    (tmp_path / "tiny_eval_models.py").write_text(TINY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(ROOT))
    bench = tmp_path / "bench"
    (bench / "data" / "cifar10").mkdir(parents=True)
    colour_images(60, seed=0).to_parquet(str(bench / "data" / "cifar10" / "train.parquet"))
    for i, name in enumerate(("red", "blue")):
        colour_images(45, seed=1 + i).to_parquet(str(bench / "data" / f"{name}.parquet"))

    tasks = types.ModuleType("benchmarks.tasks")
    tasks.TASKS = ("red", "blue")
    tasks.DATASET_IDS = {"red": "org/red", "blue": "org/blue"}

    def task_data(bench_dir, name):
        path = Path(bench_dir) / "data" / f"{name}.parquet"
        return load_image_dataset("parquet", data_files=str(path), split="train"), None

    def splits(pool, n=5, test_fraction=0.3):
        return list(repeated_splits(pool, n=n, test_fraction=test_fraction))

    tasks.task_data, tasks.splits = task_data, splits
    pool = types.ModuleType("benchmarks.pool")
    pool.POOL = [
        _Entry(n, f"entrypoint:tiny_eval_models:{n}", "tiny", "test", "MIT", d)
        for n, d in (("base", ()), ("good", ("red",)), ("noise", ()))
    ]
    pool.STANDARD_BASELINES = {"tiny": "entrypoint:tiny_eval_models:base"}
    pool.pool_table = lambda entries: [
        {"name": e.name, "family": e.family, "parameters": 1, "feature_dim": 2} for e in entries
    ]
    monkeypatch.setitem(sys.modules, "benchmarks.tasks", tasks)
    monkeypatch.setitem(sys.modules, "benchmarks.pool", pool)
    return bench


@pytest.mark.slow
def test_offline_benchmark_writes_the_report_and_regenerates_it_from_its_caches(
    tiny_bench, tmp_path, monkeypatch
):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import offline_benchmark
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

    # main() sets the bench folder's variable for its models: restored after the test, so
    # that later tests find the real bench folder again
    monkeypatch.setenv("HF_STDEMBED_BENCH_DIR", str(tiny_bench))
    out = tmp_path / "results"
    argv = ["--bench-dir", str(tiny_bench), "--out", str(out), "--probe", "40"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--splits", "3", "--p-steps", "40"]
    argv += ["--features", "raw"]
    offline_benchmark.main(argv)
    summary = (out / "summary.md").read_text()
    std = "bench-tiny-cifar10-40-p40"
    assert f"## Standard `{std}`: 3 candidates, 3 splits per task" in summary
    assert "[95 % bootstrap interval] over 3 split(s)" in summary
    assert "| loto |" in summary and "| logme |" in summary
    assert "| selector | K=1 | K=2 | K=3 |" in summary  # the compact recall@K table
    assert "| faithful | " in summary
    assert "| red | 45 | 33 | 12 |" in summary  # task sizes per split
    assert "## Pool (3 candidates)" in summary and "| noise | tiny |" in summary
    written = {p.name for p in (out / std).iterdir()}
    assert f"{std}-recall-at-k-whole-pool.png" in written
    full = (out / std / "recall-at-k.md").read_text()  # every K = 1..m
    assert "| K | faithful |" in full and "\n| 3 | " in full
    assert {f"{std}-red-accuracy-vs-score.png", f"{std}-blue-accuracy-vs-score.png"} <= written
    first = json.loads((out / "summary.json").read_text())
    assert first["setup"]["tasks"]["blue"]["train"] == [33, 33, 33]
    report = json.loads((out / std / "report.json").read_text())
    red = next(t for t in report["tasks"] if t["name"] == "red")
    assert red["scores"]["declared"][1] == 1.0  # the pool's declared datasets reach the report
    assert "two-stage[faithful+normalised+declared]@5" in summary
    assert (out / "command.txt").read_text().startswith("python benchmarks/offline_benchmark.py")

    refuse_computations(monkeypatch)
    (out / "summary.md").unlink()
    offline_benchmark.main(argv)
    assert (out / "summary.md").read_text() == summary
    assert json.loads((out / "summary.json").read_text()) == first
