"""The Registry protocol answered by both registries (no caller tests a concrete class), errors
marked transient by the translation, and the libraries' own tools: the commit lock, bounded
``whoami`` / ``model_info``, the Hub's refused card recognised by type."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock
from hub_server import FakeHub

from hf_stdembed.crawl import _is_transient
from hf_stdembed.errors import (
    InvalidCardError,
    RegistryError,
    RemoteFileNotFoundError,
    RepoNotFoundError,
)
from hf_stdembed.registry import (
    DirectoryRegistry,
    HubRegistry,
    ModelSource,
    Registry,
    open_registry,
)
from hf_stdembed.registry.directory import LOCK_FILE


def no_sleep(seconds: float) -> None:
    pass


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    (root / "org" / "m").mkdir(parents=True)
    (root / "org" / "m" / "README.md").write_text("# m\n")
    return root


def test_a_directory_answers_the_protocol(folder: Path) -> None:
    registry: Registry = open_registry(folder)
    assert registry.local and not registry.offline and registry.token is None
    source = registry.model_source("org/m", revision="v1")  # a folder loads as it is
    assert source == ModelSource(str(folder / "org" / "m"), None, None)
    with pytest.raises(RepoNotFoundError, match="no repo org/missing"):
        registry.model_source("org/missing", revision=None)
    registry.check_write("org/m", create_pr=False)
    with pytest.raises(RegistryError, match="no pull requests"):
        registry.check_write("org/m", create_pr=True)


def test_a_hub_answers_the_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.example")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    registry: Registry = open_registry(None, token="hf_x")
    assert not registry.local and not registry.offline and registry.token == "hf_x"
    assert registry.model_source("org/m", revision="abc") == ModelSource("org/m", "abc", "hf_x")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert registry.offline

    elsewhere = open_registry("http://127.0.0.1:9")
    with pytest.raises(RegistryError, match="set HF_ENDPOINT=http://127.0.0.1:9 instead"):
        elsewhere.model_source("org/m", revision=None)


def test_transient_is_set_by_the_translation(hub: FakeHub) -> None:
    hub.add_repo("tester/m", {"README.md": b"# m\n"})
    registry = HubRegistry(sleep=no_sleep)

    hub.fail_next(3, status=503, path_prefix="/api/models/tester/m")  # every try
    with pytest.raises(RegistryError, match="answered 503") as busy:
        registry.head("tester/m")
    hub.reset_next(3, path_prefix="/api/models/tester/m")
    with pytest.raises(RegistryError, match="cannot reach") as dropped:
        registry.head("tester/m")
    with pytest.raises(RepoNotFoundError) as missing:
        registry.head("tester/missing")
    hub.fail_next(1, status=400, path_prefix="/api/models/tester/m")
    with pytest.raises(RegistryError, match="answered 400") as refused:
        registry.head("tester/m")

    assert busy.value.transient and dropped.value.transient
    assert not missing.value.transient and not refused.value.transient
    assert [_is_transient(e.value) for e in (busy, dropped, missing, refused)] == [
        True,
        True,
        False,
        False,
    ]
    # the attribute decides, not the type
    assert _is_transient(RemoteFileNotFoundError("gone", transient=True))
    assert not _is_transient(RegistryError("final"))


def test_offline_mode_is_transient(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    hub.add_repo("tester/m", {"README.md": b"# m\n"})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RegistryError, match="HF_HUB_OFFLINE is set") as offline:
        HubRegistry(sleep=no_sleep).head("tester/m")
    assert offline.value.transient


def test_a_card_the_hub_refuses_is_an_invalid_card(hub: FakeHub) -> None:
    sha = hub.add_repo("tester/m", {"README.md": b"# m\n"})
    bad = {"README.md": b"---\nlicense: [mit\n---\n"}
    with pytest.raises(InvalidCardError, match="the Hub refused the card"):
        HubRegistry(sleep=no_sleep).commit("tester/m", bad, message="m", parent_commit=sha)
    assert hub.head("tester/m") == sha


@pytest.mark.parametrize("path", ["/api/whoami", "/api/models/tester/m"])
def test_a_stalled_hub_cannot_hang_whoami_or_model_info(hub: FakeHub, path: str) -> None:
    hub.add_repo("tester/m", {"README.md": b"# m\n"})
    registry = HubRegistry(sleep=no_sleep, listing_timeout=0.3, max_attempts=2)
    hub.drip_next(2, path_prefix=path, interval=1.0)
    start = time.monotonic()
    with pytest.raises(RegistryError, match="cannot reach") as stalled:
        if path == "/api/whoami":
            registry.check_write("tester/m", create_pr=False)
        else:
            registry.head("tester/m")
    assert time.monotonic() - start < 10 and stalled.value.transient


def test_a_directory_commit_waits_for_the_repo_lock(folder: Path) -> None:
    registry = DirectoryRegistry(folder)
    repo = folder / "org" / "m"
    (repo / LOCK_FILE).parent.mkdir(parents=True)
    done = threading.Event()

    def commit() -> None:
        registry.commit("org/m", {"a.txt": b"a"}, message="m", parent_commit=None)
        done.set()

    with FileLock(repo / LOCK_FILE):  # another process committing
        worker = threading.Thread(target=commit)
        worker.start()
        assert not done.wait(0.5) and not (repo / "a.txt").exists()
    worker.join(10)
    assert done.is_set() and (repo / "a.txt").read_bytes() == b"a"


def test_a_lock_folder_linked_out_of_the_registry_is_refused(folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "org" / "m" / ".cache").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RegistryError, match="resolves outside the registry"):
        DirectoryRegistry(folder).commit("org/m", {"a.txt": b"a"}, message="m", parent_commit=None)
    assert list(outside.iterdir()) == [] and not (folder / "org" / "m" / "a.txt").exists()
