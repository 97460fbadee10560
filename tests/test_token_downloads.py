"""``--token`` reaches every Hub download a command makes, not only the registry's requests.

No ambient token here (``use_endpoint(..., token=None)``): the FakeHub serves a private repo
only to a request whose Authorization header carries ``TOKEN``, so a command that passes with
``--token`` and fails without it sent the flag's token on that download.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets.config
import pytest
from hub_server import TOKEN, FakeHub, use_endpoint
from huggingface_hub import constants
from model_repos import card_only_files, make_timm_dir, model_files
from typer.testing import CliRunner

from hf_stdembed.cli import app
from hf_stdembed.data import load_image_dataset
from hf_stdembed.pipeline import compute_model_embedding
from hf_stdembed.standards import get_standard

runner = CliRunner()


@pytest.fixture
def anonymous_hub(monkeypatch: pytest.MonkeyPatch):
    """A FakeHub with no ambient token; ``datasets`` online too (tests/conftest.py turns it
    off)."""
    with FakeHub() as hub:
        use_endpoint(monkeypatch, hub.endpoint, token=None)
        monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
        # datasets reads HF_ENDPOINT once, at import, like huggingface_hub
        monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.endpoint)
        url = hub.endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
        monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL", url)
        yield hub
    assert not hub.server_errors, hub.server_errors


def test_verify_downloads_a_private_model_with_the_token_given(
    anonymous_hub: FakeHub, standard_file: Path, tmp_path: Path
):
    """A public card names a private model (``timm:tester/weights``): the registry's requests
    need no token, the model's download does."""
    hub = anonymous_hub
    weights = model_files(make_timm_dir(tmp_path / "m", seed=21))
    hub.add_repo("tester/weights", weights, private=True)
    embedded = hub.head("tester/weights")
    standard = get_standard(standard_file)
    embedding = compute_model_embedding("tester/weights", standard, revision=embedded, token=TOKEN)
    assert embedding.model_revision == embedded
    hub.add_repo(
        "tester/card",
        card_only_files(embedding, repo_id="tester/card", model="timm:tester/weights"),
    )
    shutil.rmtree(constants.HF_HUB_CACHE)  # a pinned revision would load from the cache
    args = ["verify", "tester/card", "-s", str(standard_file), "-q"]

    anonymous = runner.invoke(app, args)
    assert anonymous.exit_code != 0
    assert "tester/weights" in str(anonymous.exception), anonymous.output

    with_token = runner.invoke(app, [*args, "--token", TOKEN])
    assert with_token.exit_code == 0, with_token.output
    assert "checked with timm:tester/weights" in with_token.stdout
    assert "verdict: pass" in with_token.stdout


def test_task_downloads_a_private_dataset_with_the_token_given(
    anonymous_hub: FakeHub, standard_file: Path, tiny_parquet: Path, tmp_path: Path
):
    repo = "tester/private-images"
    files = {"data/train.parquet": tiny_parquet.read_bytes(), "README.md": b"# images\n"}
    anonymous_hub.add_repo(repo, files, repo_type="dataset", private=True)
    out = tmp_path / "task.safetensors"
    args = ["task", repo, "-s", str(standard_file), "-o", str(out), "-q"]

    anonymous = runner.invoke(app, args)
    assert anonymous.exit_code != 0 and not out.exists()
    assert repo in str(anonymous.exception), anonymous.output

    with_token = runner.invoke(app, [*args, "--token", TOKEN])
    assert with_token.exit_code == 0, with_token.output
    assert out.exists()
    assert ("GET", f"/datasets/{repo}/resolve/{anonymous_hub.head(repo, repo_type='dataset')}"
            "/data/train.parquet") in anonymous_hub.requests  # fmt: skip


def test_a_token_is_no_part_of_a_datasets_fingerprint(
    anonymous_hub: FakeHub, tiny_parquet: Path, monkeypatch: pytest.MonkeyPatch
):
    """The task embedding cache keys hold the fingerprint: the token given by argument and the
    same token from the environment give the same one."""
    repo = "tester/private-images"
    files = {"data/train.parquet": tiny_parquet.read_bytes()}
    anonymous_hub.add_repo(repo, files, repo_type="dataset", private=True)

    given = load_image_dataset(repo, split="train", token=TOKEN)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    ambient = load_image_dataset(repo, split="train")
    assert given.fingerprint == ambient.fingerprint
    assert len(given) == len(ambient) == 24


def test_evaluate_passes_its_token_to_the_tasks_and_the_pool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """evaluate's --token reaches load_split_task (the tasks' datasets) and evaluate (the
    candidates, the baseline and the probe set)."""
    import hf_stdembed.evaluation as evaluation

    seen = {}

    def load_split_task(name, source, **options):
        seen["task"] = options["token"]
        return name

    class Stop(Exception):
        pass

    def evaluate(candidates, standard, tasks, **options):
        seen["evaluate"] = options["token"]
        raise Stop

    monkeypatch.setattr(evaluation, "load_split_task", load_split_task)
    monkeypatch.setattr(evaluation, "evaluate", evaluate)
    args = ["evaluate", "-c", "timm:org/a", "-t", "t=org/data", "-o", str(tmp_path / "r")]
    done = runner.invoke(app, [*args, "--token", "hf_given"])
    assert isinstance(done.exception, Stop), done.output
    assert seen == {"task": "hf_given", "evaluate": "hf_given"}


def test_embed_many_downloads_a_private_model_with_the_token_given(
    anonymous_hub: FakeHub, standard_file: Path, tmp_path: Path
):
    """The repo's head was already read with the token; the model's download is the new path
    (it failed without the token, recorded as `1 failed`)."""
    repo = "tester/private-model"
    anonymous_hub.add_repo(repo, model_files(make_timm_dir(tmp_path / "m", seed=22)), private=True)
    args = ["embed-many", repo, "-s", str(standard_file), "--index", str(tmp_path / "index")]
    done = runner.invoke(app, [*args, "--no-ray", "-q", "--token", TOKEN])
    assert done.exit_code == 0, done.output
    assert "1 embedded, 0 skipped, 0 failed" in done.stderr


def test_evaluate_loads_union_baselines_with_the_token(monkeypatch: pytest.MonkeyPatch):
    """The union-* research scores load their extra baselines with evaluate's token."""
    from types import SimpleNamespace

    from hf_stdembed.evaluation import research

    seen = []

    class Stop(Exception):
        pass

    def load(spec, **options):
        seen.append((spec, options.get("token")))
        raise Stop

    monkeypatch.setattr(research, "load_extractor", load)
    setup = SimpleNamespace(token="hf_given", baseline=None, probe=None, cache_dir=None)
    with pytest.raises(Stop):
        research.ClosedForm.start(("union-r2",), ["timm:org/other"], setup)
    assert seen == [("timm:org/other", "hf_given")]
