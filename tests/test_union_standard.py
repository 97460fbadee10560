"""Union standards (two or more baselines, each block standardised over the probe set) and the
closed-form r2 model embedding: the schema and its hashes, a planted mask, the task in the
probe's coordinates, embed -> publish -> select -> verify, and the mistakes' messages."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from model_repos import card_only_files, make_timm_dir, model_files, write_repo
from tiny_images import make_image_dataset
from typer.testing import CliRunner

from hf_stdembed.cli import app
from hf_stdembed.core import embed_task
from hf_stdembed.core.closed_form import R2EmbeddingConfig, embed_model_r2, union_features
from hf_stdembed.data import load_image_dataset
from hf_stdembed.errors import InvalidStandardError, StandardMismatchError
from hf_stdembed.evaluation.embeddings import union_task_embedding
from hf_stdembed.extractors import load_extractor
from hf_stdembed.features import extract_features
from hf_stdembed.pipeline import (
    compute_model_embedding,
    compute_task_embedding,
    load_baselines,
    load_probe,
    standard_features,
)
from hf_stdembed.plausibility import r2_problem, row_flags
from hf_stdembed.standards import (
    builtin_standards,
    get_standard,
    standard_from_text,
    standard_from_yaml,
)

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
UNION_ID = "union-resnet18-swin-t-in1k-val"
TASK = {"epochs": 4, "lr_step_epochs": 2, "gammas": [0.0, 0.001, 0.1]}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four tiny timm models (seeds 0..3): 0 and 1 are the union's baselines."""
    return [make_timm_dir(tmp_path_factory.mktemp(f"u{i}"), seed=i) for i in range(4)]


def _spec(folder: Path) -> dict:
    extractor = load_extractor(f"timm:{folder}")
    dim = int(extractor.module.num_features)
    return {"model": f"timm:{folder}", "revision": extractor.revision, "dim": dim}


def union_data(model_dirs: list[Path], probe: Path, **changes) -> dict:
    data = {
        "id": "tiny-union",
        "baselines": [_spec(model_dirs[0]), _spec(model_dirs[1])],
        "probe": {"dataset": "parquet", "split": "train", "data_files": [str(probe)]},
        "model_embedding": {"method": "r2", "ridge": [0.01, 0.1, 1.0], "split_seed": 0},
        "task_embedding": TASK,
    }
    data.update(changes)
    return data


@pytest.fixture
def union_file(model_dirs: list[Path], tiny_parquet: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tiny-union.yaml"
    path.write_text(yaml.safe_dump(union_data(model_dirs, tiny_parquet)))
    return path


def cli(*args: object) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


# -- the schema ----------------------------------------------------------------------------


def test_existing_standards_keep_their_hashes_and_the_union_builtin_is_pinned():
    hashes = {k: s.hash for k, s in builtin_standards().items()}
    assert hashes == {
        "resnet18-in1k-val": "2d7cbc85a586adae",
        "swin-t-in1k-val": "ca0d44df0875ffe8",
        UNION_ID: "f25a07ad20c1256b",
    }
    bench = REPO / "benchmarks/results/bench-mobilenetv2-cifar10-5000/standard.yaml"
    assert standard_from_yaml(bench).hash == "b012173c82937d4e"
    for s in builtin_standards().values():  # no new keys in a one-baseline P standard
        if not s.is_union:
            assert "baselines" not in s.to_dict() and "method" not in s.to_dict()["model_embedding"]


def test_union_builtin_is_listed_shown_and_says_what_was_measured():
    union = get_standard(UNION_ID)
    assert union.is_union and union.method == "r2" and union.dim == 512 + 768
    assert [b.model for b in union.baselines] == [
        "timm:timm/resnet18.tv_in1k",
        "timm:timm/swin_tiny_patch4_window7_224.ms_in1k",
    ]
    assert "MobileNetV2" in union.description and "not measured" in union.description
    listed = cli("standards", "list")
    assert UNION_ID in listed
    shown = cli("standards", "show", UNION_ID)
    assert shown.startswith(f"# hash: {union.hash}")
    assert len(yaml.safe_load(shown)["baselines"]) == 2


def test_union_yaml_round_trip_keeps_the_hash(model_dirs: list[Path], tiny_parquet: Path):
    union = standard_from_text(yaml.safe_dump(union_data(model_dirs, tiny_parquet)))
    assert union.dim == 96 + 96 and union.model_embedding.ridge == (0.01, 0.1, 1.0)
    back = standard_from_text(union.to_yaml())
    assert back == union and back.hash == union.hash
    data = union.to_dict()
    assert "baseline" not in data and "more_baselines" not in data
    assert [b["model"] for b in data["baselines"]] == [f"timm:{d}" for d in model_dirs[:2]]
    # ridge 1 and 1.0 are one standard; the order of the baselines is not
    ints = union_data(model_dirs, tiny_parquet, model_embedding={"method": "r2", "ridge": [1]})
    floats = union_data(model_dirs, tiny_parquet, model_embedding={"method": "r2", "ridge": [1.0]})
    assert (
        standard_from_text(yaml.safe_dump(ints)).hash
        == standard_from_text(yaml.safe_dump(floats)).hash
    )
    swapped = union_data(model_dirs, tiny_parquet)
    swapped["baselines"].reverse()
    assert standard_from_text(yaml.safe_dump(swapped)).hash != union.hash


def test_method_p_written_out_is_the_default_and_r2_works_with_one_baseline():
    resnet = builtin_standards()["resnet18-in1k-val"].to_dict()
    resnet["model_embedding"] = {"method": "p", **resnet["model_embedding"]}
    assert standard_from_text(yaml.safe_dump(resnet)).hash == "2d7cbc85a586adae"
    resnet["model_embedding"] = {"method": "r2"}
    single = standard_from_text(yaml.safe_dump(resnet))
    assert single.method == "r2" and not single.is_union and single.dim == 512
    assert single.hash != "2d7cbc85a586adae"
    assert standard_from_text(single.to_yaml()).hash == single.hash


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"baselines": []}, "two or more baseline mappings (got 0); for one baseline write"),
        ({"baselines": "timm:x"}, "'baselines' must list two or more"),
        (
            {
                "baselines": [
                    {"model": f"timm:a/b{i}", "revision": None, "dim": 3} for i in range(1000)
                ]
            },
            "at most 16",
        ),
        ({"baseline": {"model": "timm:a/b", "revision": None, "dim": 3}}, "both 'baseline' and"),
        ({"model_embedding": {"method": "logme"}}, "unknown model_embedding method 'logme'"),
        ({"model_embedding": {"method": "r2", "steps": 40}}, "takes only 'ridge' and"),
        ({"model_embedding": {"method": "r2", "ridge": []}}, "a non-empty list of numbers > 0"),
        ({"model_embedding": {"method": "r2", "ridge": ["a"]}}, "ridge must be a number"),
        ({"model_embedding": {"method": "r2", "ridge": [float("inf")]}}, "numbers > 0, finite"),
        ({"model_embedding": {"method": "r2", "split_seed": 10**30}}, "from 0 to 2**63 - 1"),
        ({"model_embedding": {"method": "r2", "split_seed": "0"}}, "Invalid split_seed value"),
    ],
)
def test_union_mistakes_are_one_line_errors_naming_the_fix(
    change: dict, message: str, model_dirs: list[Path], tiny_parquet: Path, tmp_path, console
):
    data = union_data(model_dirs, tiny_parquet, **change)
    with pytest.raises(InvalidStandardError, match=re.escape(message)):
        standard_from_text(yaml.safe_dump(data))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    done = console("standards", "show", path)
    assert done.exit_code == 1 and len(done.error_lines) == 1 and "Traceback" not in done.output


def test_a_blocks_bad_dim_is_refused_when_declared_and_when_the_model_disagrees(
    model_dirs: list[Path], tiny_parquet: Path
):
    data = union_data(model_dirs, tiny_parquet)
    data["baselines"][1]["dim"] = 0
    with pytest.raises(InvalidStandardError, match="Invalid baseline dim 0 of"):
        standard_from_text(yaml.safe_dump(data))
    data["baselines"][1]["dim"] = 95
    wrong = standard_from_text(yaml.safe_dump(data))
    with pytest.raises(StandardMismatchError, match="set that baseline's dim to 96"):
        compute_model_embedding(f"timm:{model_dirs[2]}", wrong, cache=False)


def test_an_r2_mask_of_too_small_a_probe_or_nan_features_is_one_error_line(
    model_dirs: list[Path], tiny_parquet: Path, tmp_path: Path, console
):
    data = union_data(model_dirs, tiny_parquet)
    data["probe"]["num_samples"] = 3
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    done = console("embed", f"timm:{model_dirs[2]}", "-s", path, "-q", "-o", tmp_path / "e.st")
    assert done.exit_code == 1 and len(done.error_lines) == 1, done.output
    assert "at least 4 probe rows" in done.error_lines[0] and "Traceback" not in done.output
    nan = torch.full((10, 3), float("nan"))
    with pytest.raises(ValueError, match="NaN or infinite"):  # not a LinAlgError
        embed_model_r2(nan, torch.randn(10, 4), config=R2EmbeddingConfig())


def test_a_strangers_union_may_name_no_entry_point_in_any_block(
    model_dirs: list[Path], tiny_parquet: Path
):
    data = union_data(model_dirs, tiny_parquet)
    data["baselines"][1]["model"] = "entrypoint:os:getcwd"
    with pytest.raises(InvalidStandardError, match="Python entry point"):
        standard_from_text(yaml.safe_dump(data), trusted=False)
    assert standard_from_text(yaml.safe_dump(data), trusted=True).is_union


# -- the model embedding -------------------------------------------------------------------


def test_planted_candidate_gets_the_union_coordinates_it_is_built_from():
    g = torch.Generator().manual_seed(0)
    block_a, block_b = torch.randn(400, 4, generator=g) * 3 + 1, torch.randn(400, 5, generator=g)
    union, _ = union_features([block_a, block_b])
    candidate = block_b[:, :3] @ torch.randn(3, 6, generator=g)  # B's first 3 features
    out = embed_model_r2(candidate, union, config=R2EmbeddingConfig())
    high = [4, 5, 6]  # block B starts after block A's 4 features
    assert all(out.mask[i] > 0.95 for i in high)
    assert all(out.mask[i] < 0.05 for i in range(9) if i not in high)
    assert out.l_to == pytest.approx(float(out.mask.double().mean()), abs=1e-12)
    assert out.l_from > 0.95 and out.steps == 0  # the union explains the whole candidate
    assert r2_problem(out.mask.numpy(), out.l_to, out.l_from) is None


def test_each_baseline_embeds_on_its_own_block_and_the_embedding_is_cached(
    model_dirs: list[Path], union_file: Path, tmp_path: Path
):
    union = get_standard(union_file)
    cache = tmp_path / "cache"
    first, second = (
        compute_model_embedding(f"timm:{d}", union, cache_dir=cache) for d in model_dirs[:2]
    )
    for mine in (first, second):
        assert mine.vector.shape == (192,) and mine.standard_hash == union.hash
        assert mine.l_to == pytest.approx(float(mine.vector.double().mean()), abs=1e-9)
        assert 0.0 < mine.l_from <= 1.0
    assert float(first.vector[:96].mean()) > float(first.vector[96:].mean()) + 0.1
    assert float(second.vector[96:].mean()) > float(second.vector[:96].mean()) + 0.1
    files = sorted((cache / "embeddings").glob("model-*.safetensors"))
    assert len(files) == 2
    again = compute_model_embedding(f"timm:{model_dirs[0]}", union, cache_dir=cache)
    assert torch.equal(again.vector, first.vector)
    with pytest.raises(Exception, match="drop --protocol per-step"):
        compute_model_embedding(f"timm:{model_dirs[0]}", union, protocol="per-step")


def test_r2_fidelities_are_checked_against_the_mask():
    mask = np.array([1.0, 0.5, 0.0, 0.5], dtype=np.float32)
    assert r2_problem(mask, 0.5, 0.3) is None
    assert "mask's mean" in r2_problem(mask, 0.9, 0.3)
    assert "[0, 1]" in r2_problem(mask, 0.5, -0.2)
    assert row_flags(mask, l_to=0.5, l_from=0.3) == ()  # honest r2 values: no flag
    ones = np.ones(4, dtype=np.float32)
    assert row_flags(ones, l_to=1.0, l_from=1.0) == ("fidelity", "saturated")


# -- the task embedding --------------------------------------------------------------------


def test_task_lives_in_the_probes_coordinates_as_the_evaluation_computes_it(
    union_file: Path, tmp_path: Path
):
    task_file = tmp_path / "task.parquet"
    make_image_dataset(30, seed=3).to_parquet(str(task_file))
    union = get_standard(union_file)
    task = compute_task_embedding(str(task_file), union, cache=False)
    baselines = load_baselines(union)
    _, stats = standard_features(baselines, load_probe(union), union)
    data = load_image_dataset(str(task_file), split="train")
    blocks = [extract_features(b, data) for b in baselines]
    x_task, _ = union_features(blocks, stats=stats)
    labels = data.labels()
    run = SimpleNamespace(y_train=labels, num_classes=data.num_classes, data_ident=["t"])
    research = union_task_embedding(union, x_task, run, ["keys"], None, None)
    assert task.vector.shape == (192,) and torch.equal(task.vector, research.mask)
    direct = embed_task(x_task, labels, num_classes=data.num_classes, config=union.task_embedding)
    assert torch.equal(direct.mask, task.vector)
    # the probe's statistics, not the task's own: a task's own would standardise differently
    own, _ = union_features(blocks)
    assert not torch.allclose(own, x_task)


# -- embed -> publish -> select -> verify ----------------------------------------------------


def test_publish_select_and_verify_under_a_union_standard(
    model_dirs: list[Path], union_file: Path, tiny_parquet: Path, tmp_path: Path, verify
):
    root = tmp_path / "registry"
    for i in (2, 3):
        shutil.copytree(model_dirs[i], root / "team" / f"m{i}")
        cli("publish", f"team/m{i}", "-s", union_file, "--registry", root, "-q")
    union = get_standard(union_file)
    genuine = compute_model_embedding(f"timm:{model_dirs[2]}", union)
    other = compute_model_embedding(f"timm:{model_dirs[3]}", union)
    forged = {
        "allones": dataclasses.replace(genuine, vector=torch.ones(192), l_to=1.0, l_from=1.0),
        "stolen": dataclasses.replace(other, model_revision=genuine.model_revision),
    }
    for name, embedding in forged.items():
        files = {**model_files(model_dirs[2]), **card_only_files(embedding, repo_id=f"x/{name}")}
        write_repo(root, f"x/{name}", files)
    out = cli(
        "select", "--dataset", tiny_parquet, "-s", union_file, "--registry", root,
        "--index", tmp_path / "index", "--rerank", "0", "--json", "-q",
    )  # fmt: skip
    rows = json.loads(out)
    assert sorted(r["model"] for r in rows) == ["team/m2", "team/m3", "x/allones", "x/stolen"]
    flagged = {r["model"]: r["flags"] for r in rows}
    assert "fidelity" in flagged["x/allones"] and flagged["team/m2"] == []

    done = verify("team/m2", "-s", union_file, "--registry", root, "-q")
    assert done.exit_code == 0, done.output
    assert "does not apply to an r2 embedding" in done.stdout and "Pearson 1.000" in done.stdout
    assert "verdict: pass" in done.stdout
    for name in forged:
        bad = verify(f"x/{name}", "-s", union_file, "--registry", root, "-q")
        assert bad.exit_code == 1 and "verdict: FAIL (" in bad.stdout, (name, bad.output)
        assert ("fidelity, mask" if name == "allones" else "mask") in bad.stdout
        assert len(bad.error_lines) == 1 and "is not its model's" in bad.error_lines[0]


def test_evaluate_refuses_a_union_standard_in_one_line_naming_the_research_scores():
    from hf_stdembed.errors import InvalidStandardError
    from hf_stdembed.evaluation import evaluate
    from hf_stdembed.standards import get_standard

    union = get_standard("union-resnet18-swin-t-in1k-val")
    with pytest.raises(InvalidStandardError, match="--research union-r2 --union-baseline"):
        evaluate(["timm:org/x"], union, [object()])


def test_an_import_checks_r2_fidelities_against_the_mask_as_the_crawl_does(tmp_path):
    import numpy as np
    from index_rows import make_row

    from hf_stdembed.index import EmbeddingIndex
    from hf_stdembed.standards import get_standard

    union = get_standard("union-resnet18-swin-t-in1k-val")
    vector = np.random.default_rng(0).random(union.dim, dtype=np.float32)
    honest = make_row(1, union.hash, standard_id=union.id, l_to=float(vector.mean()), l_from=0.4)
    forged = make_row(2, union.hash, standard_id=union.id, l_to=0.99, l_from=0.99)
    with EmbeddingIndex.open(tmp_path / "a") as source, source.update() as tx:
        tx.upsert(honest, vector)
        tx.upsert(forged, vector)
    with EmbeddingIndex.open(tmp_path / "a") as source:
        exported = source.export_parquet(tmp_path / "rows.parquet")
    with EmbeddingIndex.open(tmp_path / "b") as index:
        report = index.import_parquet(exported)
        assert report.imported == 1
        assert [s.repo_id for s in report.skipped] == ["org/model-2"]
        assert "mean" in report.skipped[0].reason


def test_a_second_import_checks_the_r2_rows_of_a_custom_standard_it_carries(tmp_path):
    """The r2 standards known to an index are read at each import, not once per index
    object: a later import's own custom r2 standard is checked too (it was not)."""
    from index_rows import make_row

    from hf_stdembed.index import EmbeddingIndex
    from hf_stdembed.standards import standard_from_dict

    builtin = get_standard("resnet18-in1k-val")
    custom = standard_from_dict(
        {**builtin.to_dict(), "id": "my-r2", "model_embedding": {"method": "r2"}}
    )
    vector = np.random.default_rng(0).random(custom.dim, dtype=np.float32)
    honest = make_row(1, builtin.hash, standard_id=builtin.id)
    forged = make_row(2, custom.hash, standard_id=custom.id, l_to=0.99, l_from=0.99)
    with EmbeddingIndex.open(tmp_path / "a") as source:
        with source.update() as tx:
            tx.upsert(honest, vector)
        first = source.export_parquet(tmp_path / "first.parquet")
    with EmbeddingIndex.open(tmp_path / "b") as source:
        with source.update() as tx:
            tx.remember_standard(custom, trusted=True, origin="user")
            tx.upsert(forged, vector)
        second = source.export_parquet(tmp_path / "second.parquet")
    with EmbeddingIndex.open(tmp_path / "c") as index:
        assert index.import_parquet(first).imported == 1
        report = index.import_parquet(second)  # same index object, one more r2 standard
        assert report.imported == 0 and "mask's mean" in report.skipped[0].reason
