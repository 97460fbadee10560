"""Publishing embeddings: through the fake Hub with the real client, and to a directory."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import httpx2
import pytest
from hub_server import OTHER_TOKEN, TOKEN, FakeHub, use_endpoint
from huggingface_hub import ModelCard
from model_repos import FOREIGN_README, make_timm_dir, model_files, write_standard
from typer.testing import CliRunner

from hf_stdembed.card import CARD_TAG, METADATA_KEY, SECTION_START, card_entries
from hf_stdembed.cli import app, main
from hf_stdembed.embeddings import ModelEmbedding, load_embedding, save_embedding
from hf_stdembed.errors import (
    AuthError,
    ConcurrentUpdateError,
    GatedRepoAccessError,
    RegistryError,
    RepoNotFoundError,
    RepoRevisionNotFoundError,
    StandardMismatchError,
)
from hf_stdembed.extractors import load_extractor
from hf_stdembed.pipeline import compute_model_embedding
from hf_stdembed.publish import diff_plan, plan_publish, publish
from hf_stdembed.registry import DirectoryRegistry, HubRegistry, open_registry
from hf_stdembed.registry.directory import LOCK_FILE
from hf_stdembed.standards import Standard, get_standard

runner = CliRunner()
EMBEDDING = "stdembed/tiny-test.safetensors"


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three tiny real timm models (different seeds) as local folders."""
    return [make_timm_dir(tmp_path_factory.mktemp(f"model{i}"), seed=i + 1) for i in range(3)]


@pytest.fixture
def standard(standard_file: Path) -> Standard:
    return get_standard(standard_file)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff sleeps (ours and the client's), recorded instead of slept."""
    from huggingface_hub.utils import _http

    slept: list[float] = []
    monkeypatch.setattr(_http, "time", types.SimpleNamespace(sleep=slept.append))
    return slept


def registry(sleeps: list[float] | None = None) -> HubRegistry:
    return HubRegistry(sleep=sleeps.append if sleeps is not None else lambda s: None)


def card_of(hub: FakeHub, repo_id: str, revision: str = "main") -> ModelCard:
    return ModelCard(hub.files(repo_id, revision)["README.md"].decode())


# =========================================================================================
# The Hub
# =========================================================================================


def test_publish_three_models(hub: FakeHub, models: list[Path], standard: Standard) -> None:
    readmes = [FOREIGN_README, None, b"# No front matter\n\nJust text.\n"]
    shas = [
        hub.add_repo(f"tester/m{i}", model_files(folder, readme))
        for i, (folder, readme) in enumerate(zip(models, readmes, strict=True))
    ]
    hub_registry = registry()

    for i, sha in enumerate(shas):
        repo_id = f"tester/m{i}"
        hub.clear_requests()
        plan = plan_publish(hub_registry, repo_id, standards=[standard])
        result = publish(hub_registry, plan)
        if i == 0:
            print("requests of one publish:", hub.requests)

        assert plan.parent_commit == sha and result.oid == hub.head(repo_id) != sha
        assert result.pr_url is None and result.commit_url.endswith(result.oid)
        commit = hub.files(repo_id)
        added = set(commit) - set(hub.files(repo_id, sha))
        # the tiny standard is not built in: its YAML is published beside the embedding
        assert added <= {EMBEDDING, "README.md", "stdembed/tiny-test.yaml"} and EMBEDDING in added
        assert not [p for p in added if "/" not in p and p.endswith(".safetensors")]

        card = card_of(hub, repo_id)
        assert CARD_TAG in card.data.tags
        entries, problems = card_entries(card.data.to_dict())
        assert problems == [] and set(entries) == {"tiny-test"}
        entry = entries["tiny-test"]
        assert entry.sha256 == hashlib.sha256(commit[EMBEDDING]).hexdigest()
        assert entry.standard_hash == standard.hash and entry.dim == standard.dim
        assert entry.model_revision == sha  # the pinned commit was embedded
        assert str(card).count(SECTION_START) == 1
        local = hub_registry.download(repo_id, EMBEDDING, revision=result.oid, max_bytes=10**6)
        embedding = load_embedding(local, standard=standard)
        assert isinstance(embedding, ModelEmbedding) and embedding.model_revision == sha
        assert embedding.fidelity == pytest.approx(entry.fidelity)
        ModelCard.validate(card)  # the Hub's validate-yaml accepts it

    first = card_of(hub, "tester/m0")
    assert first.data.license == "apache-2.0" and first.data.library_name == "timm"
    assert first.data["custom_key"] == {"nested": [1, 2]}
    assert first.text.startswith("# A tiny model\n\nText the owner wrote.\n")
    assert card_of(hub, "tester/m1").data.tags == [CARD_TAG]  # a new card
    assert card_of(hub, "tester/m2").text.startswith("# No front matter\n\nJust text.\n")

    listed = {s.repo_id: s for s in hub_registry.list_tagged(CARD_TAG)}
    assert set(listed) == {"tester/m0", "tester/m1", "tester/m2"}
    assert listed["tester/m0"].sha == hub.head("tester/m0")
    assert set(card_entries(listed["tester/m2"].card_data)[0]) == {"tiny-test"}


def test_one_publish_makes_few_requests(
    hub: FakeHub, models: list[Path], standard: Standard
) -> None:
    hub.add_repo("tester/m", model_files(models[0], FOREIGN_README))
    hub_registry = registry()
    load_extractor("tester/m")  # the model in the local cache, as after a first run

    hub.clear_requests()
    plan = plan_publish(hub_registry, "tester/m", standards=[standard])
    planned = hub.requests
    hub.clear_requests()
    publish(hub_registry, plan)

    assert [method for method, _ in hub.requests] == ["POST"] * 3  # validate, preupload, commit
    # head (model_info), then README.md at that sha (HEAD + GET); the model is cached
    assert [(m, p.split("/")[-1]) for m, p in planned] == [
        ("GET", "m"), ("HEAD", "README.md"), ("GET", "README.md")
    ]  # fmt: skip


def test_republish_replaces_the_section_and_merges(
    hub: FakeHub, models: list[Path], standard: Standard, tmp_path: Path, tiny_timm_dir: Path,
    tiny_parquet: Path,
) -> None:  # fmt: skip
    hub.add_repo("tester/m", model_files(models[0], FOREIGN_README))
    hub_registry = registry()
    publish(hub_registry, plan_publish(hub_registry, "tester/m", standards=[standard]))
    first = hub.files("tester/m")
    second_std = get_standard(
        write_standard(tmp_path, tiny_timm_dir, tiny_parquet, standard_id="tiny-b")
    )

    plan = plan_publish(hub_registry, "tester/m", standards=[second_std])
    publish(hub_registry, plan)
    again = plan_publish(hub_registry, "tester/m", standards=[standard])
    publish(hub_registry, again)

    text = hub.files("tester/m")["README.md"].decode()
    assert text.count(SECTION_START) == 1 and text.count("## Standardized embedding") == 1
    entries, _ = card_entries(ModelCard(text).data.to_dict())
    assert set(entries) == {"tiny-test", "tiny-b"}
    files = hub.files("tester/m")
    assert entries["tiny-test"].sha256 == hashlib.sha256(files[EMBEDDING]).hexdigest()
    assert files[EMBEDDING] != first[EMBEDDING]  # recomputed at the new head
    assert entries["tiny-test"].model_revision == again.parent_commit
    assert (
        entries["tiny-b"].sha256
        == hashlib.sha256(plan.files["stdembed/tiny-b.safetensors"]).hexdigest()
    )


def test_concurrent_commit_is_retried(hub: FakeHub, models: list[Path], standard: Standard) -> None:
    hub.add_repo("tester/m", model_files(models[0], FOREIGN_README))
    hub_registry = registry()
    plan = plan_publish(hub_registry, "tester/m", standards=[standard])
    changed = FOREIGN_README.replace(b"Text the owner wrote.", b"Edited meanwhile.")
    theirs = hub.commit("tester/m", {"README.md": changed, "notes.txt": b"n"})

    result = publish(hub_registry, plan)

    commits = [p for m, p in hub.requests if m == "POST" and "/commit/" in p]
    assert len(commits) == 2  # a 412, then the retry on top of their commit
    files = hub.files("tester/m")
    assert files["notes.txt"] == b"n" and result.oid == hub.head("tester/m") != theirs
    card = ModelCard(files["README.md"].decode())
    assert "Edited meanwhile." in card.text and CARD_TAG in card.data.tags
    assert files[EMBEDDING] == plan.files[EMBEDDING]  # not recomputed


def test_a_repo_that_keeps_changing_gives_up(
    hub: FakeHub, models: list[Path], standard: Standard, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("tester/m", model_files(models[0]))
    hub_registry = registry()
    plan = plan_publish(hub_registry, "tester/m", standards=[standard])
    real_commit = hub_registry.commit

    def racing_commit(*args, **kwargs):
        hub.commit("tester/m", {"other.txt": os.urandom(8)})
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(hub_registry, "commit", racing_commit)
    with pytest.raises(ConcurrentUpdateError, match="kept changing") as caught:
        publish(hub_registry, plan, max_attempts=3)
    assert caught.value.repo_id == "tester/m"
    assert EMBEDDING not in hub.files("tester/m")


def test_create_pr_leaves_main_untouched(
    hub: FakeHub, models: list[Path], standard: Standard, monkeypatch: pytest.MonkeyPatch
) -> None:
    main_sha = hub.add_repo("tester/m", model_files(models[0], FOREIGN_README))
    use_endpoint(monkeypatch, hub.endpoint, token=OTHER_TOKEN)  # cannot write tester/*
    with pytest.raises(AuthError, match="--create-pr"):
        registry().check_write("tester/m")
    registry().check_write("tester/m", create_pr=True)  # a pull request may be tried
    # The FakeHub only lets writers open pull requests (the Hub lets anyone with a write
    # token): the pull request itself is opened by the owner.
    use_endpoint(monkeypatch, hub.endpoint, token=TOKEN)
    hub_registry = registry()

    plan = plan_publish(hub_registry, "tester/m", standards=[standard])
    result = publish(hub_registry, plan, create_pr=True)

    assert hub.head("tester/m") == main_sha
    assert result.pr_url is not None and result.pr_url.endswith("/discussions/1")
    pr = hub.files("tester/m", "refs/pr/1")
    assert EMBEDDING in pr and CARD_TAG in ModelCard(pr["README.md"].decode()).data.tags


def test_no_write_access_on_commit_suggests_a_pr(
    hub: FakeHub, models: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = hub.add_repo("tester/m", model_files(models[0]))
    use_endpoint(monkeypatch, hub.endpoint, token=OTHER_TOKEN)

    with pytest.raises(AuthError, match="no write access to tester/m .*--create-pr") as caught:
        registry().commit("tester/m", {"a.txt": b"a"}, message="m", parent_commit=sha)
    assert caught.value.repo_id == "tester/m" and isinstance(caught.value, PermissionError)


def test_dry_run_pushes_nothing_and_shows_the_diff(
    hub: FakeHub, models: list[Path], standard_file: Path
) -> None:
    sha = hub.add_repo("tester/m", model_files(models[0], FOREIGN_README))

    result = runner.invoke(
        app, ["publish", "tester/m", "-s", str(standard_file), "--dry-run", "-q"]
    )

    assert result.exit_code == 0, result.output
    assert hub.head("tester/m") == sha
    assert not [p for m, p in hub.requests if m == "POST"]
    out = result.stdout
    assert f"{EMBEDDING}  " in out and " bytes  sha256 " in out
    assert "--- a/README.md\n+++ b/README.md\n" in out
    assert f"+- {CARD_TAG}\n" in out and f"+{METADATA_KEY}:\n" in out
    assert "\n Text the owner wrote.\n" in out  # context: the body is kept
    assert "Dry run: nothing was pushed." in result.stderr


def test_dry_run_of_a_repo_without_readme(
    hub: FakeHub, models: list[Path], standard: Standard
) -> None:
    hub.add_repo("tester/m", model_files(models[0]))

    plan = plan_publish(registry(), "tester/m", standards=[standard])

    text = diff_plan(plan)
    assert "--- /dev/null\n+++ b/README.md\n" in text
    assert f"README.md  {len(plan.readme_after.encode())} bytes" in text


@pytest.mark.slow
def test_cli_publish_in_a_subprocess(hub: FakeHub, models: list[Path], standard_file: Path) -> None:
    hub.add_repo("tester/cli", model_files(models[1], FOREIGN_README))
    env = {**os.environ}  # HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE=0 and the temp caches

    done = subprocess.run(
        [sys.executable, "-m", "hf_stdembed", "publish", "tester/cli", "-s", str(standard_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    head = hub.head("tester/cli")
    assert done.stdout.strip() == f"{hub.endpoint}/tester/cli/commit/{head}"
    assert "tiny-test: stdembed/tiny-test.safetensors" in done.stderr
    assert EMBEDDING in hub.files("tester/cli")


def test_publish_a_precomputed_embedding_file(
    hub: FakeHub, models: list[Path], standard: Standard, tmp_path: Path
) -> None:
    hub.add_repo("tester/m", model_files(models[0]))
    embedding = compute_model_embedding(f"timm:{models[0]}", standard)
    path = save_embedding(embedding, tmp_path / "e.safetensors")
    hub_registry = registry()

    plan = plan_publish(hub_registry, "tester/m", standards=[standard], embeddings=[path])
    publish(hub_registry, plan)

    assert hub.files("tester/m")[EMBEDDING] == path.read_bytes()
    other = get_standard("resnet18-in1k-val")
    with pytest.raises(StandardMismatchError, match="none of those given"):
        plan_publish(hub_registry, "tester/m", standards=[other], embeddings=[path])


# -- transient failures ------------------------------------------------------------------


def test_server_errors_on_commit_are_retried_when_safe(
    hub: FakeHub, models: list[Path], standard: Standard, sleeps: list[float]
) -> None:
    hub.add_repo("tester/m", model_files(models[0]))
    ours: list[float] = []
    hub_registry = registry(ours)
    plan = plan_publish(hub_registry, "tester/m", standards=[standard])
    hub.clear_requests()
    hub.fail_next(1, status=503, path_prefix="/api/models/tester/m/commit")
    hub.fail_next(1, status=429, path_prefix="/api/models/tester/m/commit", retry_after=3)

    result = publish(hub_registry, plan)

    assert result.oid == hub.head("tester/m") and EMBEDDING in hub.files("tester/m")
    commits = [p for m, p in hub.requests if m == "POST" and "/commit/" in p]
    assert len(commits) == 3  # 503 (head unmoved: retried), 429, done
    assert ("GET", "/api/models/tester/m") in hub.requests  # the head re-checked after the 503
    assert ours == [1.0, 3.0]  # backoff, then Retry-After


def test_a_lost_answer_of_a_commit_that_landed_is_not_repeated(
    hub: FakeHub, models: list[Path], standard: Standard, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("tester/m", model_files(models[0]))
    hub_registry = registry()
    plan = plan_publish(hub_registry, "tester/m", standards=[standard])
    real = hub_registry.api.create_commit

    def commit_then_lose_the_answer(*args, **kwargs):
        real(*args, **kwargs)
        raise httpx2.ReadTimeout("the answer was lost")

    monkeypatch.setattr(hub_registry.api, "create_commit", commit_then_lose_the_answer)
    hub.clear_requests()

    result = publish(hub_registry, plan)

    commits = [p for m, p in hub.requests if m == "POST" and "/commit/" in p]
    assert len(commits) == 1 and result.oid == hub.head("tester/m")
    assert EMBEDDING in hub.files("tester/m")


def test_rate_limited_head_is_retried(hub: FakeHub, sleeps: list[float]) -> None:
    sha = hub.add_repo("tester/m", {"a.txt": b"a"})
    ours: list[float] = []
    hub.fail_next(2, status=429, path_prefix="/api/models/tester/m", retry_after=0)

    assert registry(ours).head("tester/m") == sha
    assert ours == [0.0, 0.0]
    hub.fail_next(3, status=502, path_prefix="/api/models/tester/m")
    with pytest.raises(RegistryError, match="answered 502"):
        registry(ours).head("tester/m")


# -- errors ------------------------------------------------------------------------------


def run_main(monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["hf-stdembed", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("no-token", ["tester/m"], "no Hugging Face token: log in with `hf auth login`"),
        ("other-user", ["tester/m"], "cannot write to tester/m .*--create-pr"),
        ("ok", ["tester/missing", "--dry-run"], "no model repo tester/missing"),
        ("ok", ["tester/m", "-s", "nope", "--dry-run"], "unknown standard 'nope'"),
        ("ok", ["tester/m", "--revision", "v9", "--dry-run"], "has no such revision"),
        ("ok", ["tester/gated", "--dry-run"], "is gated: accept its conditions"),
        ("ok", ["tester/card-only", "--dry-run"], "cannot load model 'tester/card-only'"),
        ("offline", ["tester/m", "--dry-run"], "HF_HUB_OFFLINE is set"),
    ],
)
def test_errors_say_the_fix(
    hub: FakeHub,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
    standard_file: Path,
    setup: str,
    args: list[str],
    message: str,
) -> None:
    import re

    from huggingface_hub import constants

    hub.add_repo("tester/m", {"README.md": FOREIGN_README})
    hub.add_repo("other/gated", {"README.md": FOREIGN_README}, gated=True)
    hub.add_repo("tester/card-only", {"README.md": FOREIGN_README})
    if setup == "no-token":
        use_endpoint(monkeypatch, hub.endpoint, token=None)
    elif setup == "other-user":
        use_endpoint(monkeypatch, hub.endpoint, token=OTHER_TOKEN)
    elif setup == "offline":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    args = [a.replace("tester/gated", "other/gated") for a in args]
    if "-s" not in args:
        args += ["-s", str(standard_file)]

    err = run_main(monkeypatch, capsys, "publish", *args)

    assert re.search(message, err), err


def test_registry_error_types(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("other/gated", {"README.md": b"x"}, gated=True)
    hub_registry = registry()
    with pytest.raises(RepoNotFoundError) as missing:
        hub_registry.head("tester/missing")
    assert isinstance(missing.value, LookupError) and missing.value.repo_id == "tester/missing"
    with pytest.raises(GatedRepoAccessError):
        hub_registry.read_text("other/gated", "README.md", revision=None)
    sha = hub.add_repo("tester/small", {"a.txt": b"0123456789"})
    assert hub_registry.read_text("tester/small", "missing.md", revision=sha) is None
    assert hub_registry.file_size("tester/small", "a.txt", revision=sha) == 10
    assert hub_registry.file_size("tester/small", "b.txt", revision=sha) is None
    from hf_stdembed.errors import FileTooLargeError, RemoteFileNotFoundError

    hub.clear_requests()
    with pytest.raises(FileTooLargeError):
        hub_registry.download("tester/small", "a.txt", revision=sha, max_bytes=9)
    assert hub.downloads == 0
    with pytest.raises(RemoteFileNotFoundError):
        hub_registry.download("tester/small", "b.txt", revision=sha, max_bytes=9)
    use_endpoint(monkeypatch, hub.endpoint, token=None)
    with pytest.raises(AuthError, match="no Hugging Face token"):
        registry().commit("tester/small", {"b.txt": b"b"}, message="m", parent_commit=None)


def test_open_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.example")
    assert open_registry(None).name == "https://hub.example"
    assert open_registry("http://127.0.0.1:9/").name == "http://127.0.0.1:9"
    assert isinstance(open_registry(str(tmp_path)), DirectoryRegistry)
    with pytest.raises(RegistryError, match="no registry directory"):
        open_registry(str(tmp_path / "nope"))


# =========================================================================================
# A directory registry
# =========================================================================================


@pytest.fixture
def directory(tmp_path: Path, models: list[Path]) -> Path:
    root = tmp_path / "registry"
    for i, folder in enumerate(models):
        shutil.copytree(folder, root / "org" / f"m{i}")
    (root / "org" / "m0" / "README.md").write_bytes(FOREIGN_README)
    return root


def test_directory_registry_publish(directory: Path, standard: Standard) -> None:
    reg = DirectoryRegistry(directory)
    for i in range(3):
        repo_id = f"org/m{i}"
        before = reg.head(repo_id)
        plan = plan_publish(reg, repo_id, standards=[standard])
        result = publish(reg, plan)

        repo = directory / repo_id
        assert result.oid == reg.head(repo_id) != before
        data = (repo / EMBEDDING).read_bytes()
        card = ModelCard((repo / "README.md").read_text())
        entry = card_entries(card.data.to_dict())[0]["tiny-test"]
        assert entry.sha256 == hashlib.sha256(data).hexdigest()
        assert load_embedding(repo / EMBEDDING, standard=standard).model_revision is not None
        names = {p.relative_to(repo).as_posix() for p in repo.rglob("*")}
        hidden = {name for name in names if "/." in f"/{name}"}
        assert hidden <= {".cache", ".cache/huggingface", LOCK_FILE}  # no temp files left

    assert ModelCard((directory / "org/m0/README.md").read_text()).data.license == "apache-2.0"
    listed = list(reg.list_tagged(CARD_TAG))
    assert [s.repo_id for s in listed] == ["org/m0", "org/m1", "org/m2"]
    assert listed[0].sha == reg.head("org/m0") and listed[0].last_modified
    assert set(card_entries(listed[1].card_data)[0]) == {"tiny-test"}
    path = reg.download("org/m1", EMBEDDING, revision=listed[1].sha, max_bytes=10**6)
    assert load_embedding(path, standard=standard).standard_hash == standard.hash


def test_directory_registry_concurrent_change_and_errors(
    directory: Path, standard: Standard
) -> None:
    reg = DirectoryRegistry(directory)
    plan = plan_publish(reg, "org/m0", standards=[standard])
    readme = directory / "org/m0/README.md"
    readme.write_text(readme.read_text().replace("Text the owner wrote.", "Edited meanwhile."))
    with pytest.raises(ConcurrentUpdateError):
        reg.commit("org/m0", plan.commit_files(), message="m", parent_commit=plan.parent_commit)

    publish(reg, plan)  # re-reads the README and retries

    assert "Edited meanwhile." in readme.read_text() and SECTION_START in readme.read_text()
    with pytest.raises(RegistryError, match="no pull requests"):
        publish(reg, plan, create_pr=True)
    with pytest.raises(RepoRevisionNotFoundError):
        reg.read_text("org/m0", "README.md", revision=plan.parent_commit)
    with pytest.raises(RepoNotFoundError):
        reg.head("org/missing")
    with pytest.raises(RepoNotFoundError, match="invalid repo id"):
        reg.head("../etc")
    with pytest.raises(RegistryError, match="invalid file path"):
        reg.read_text("org/m0", "../m1/README.md", revision=None)
    assert reg.read_text("org/m1", "README.md", revision=None) is None


def test_directory_registry_cli_dry_run_and_publish(directory: Path, standard_file: Path) -> None:
    before = DirectoryRegistry(directory).head("org/m1")
    args = ["publish", "org/m1", "-s", str(standard_file), "--registry", str(directory), "-q"]

    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "--- /dev/null" in dry.stdout and DirectoryRegistry(directory).head("org/m1") == before

    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == (directory / "org/m1").resolve().as_uri()
    assert (directory / "org/m1" / EMBEDDING).is_file()


def test_model_spec_override(hub: FakeHub, models: list[Path], standard: Standard) -> None:
    hub.add_repo("tester/m", {"README.md": FOREIGN_README})  # a card, no model files

    plan = plan_publish(registry(), "tester/m", standards=[standard], model=f"timm:{models[2]}")

    entry = plan.entries[0]
    assert entry.model_revision == load_extractor(f"timm:{models[2]}").revision
    assert json.loads(json.dumps(entry.to_metadata()))["file"] == EMBEDDING
