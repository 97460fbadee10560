"""Registries facing hostile content: special files, symlinks, YAML bombs, big weights (a
directory registry), and odd, slow, rate-limited or unreachable listings (the Hub)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from hub_server import FakeHub, use_endpoint
from hypothesis import given, settings
from hypothesis import strategies as st
from model_repos import STANDARD, published_files, seed_repos

from hf_stdembed.card import CARD_TAG
from hf_stdembed.cli import main
from hf_stdembed.crawl import crawl
from hf_stdembed.errors import RegistryError, RemoteFileNotFoundError
from hf_stdembed.index import EmbeddingIndex
from hf_stdembed.registry import DirectoryRegistry, HubRegistry, listing, local_files, protocol
from hf_stdembed.registry import directory as directory_module
from hf_stdembed.registry import errors as registry_errors

TAGGED = b"---\ntags: [hf-stdembed]\n---\n# A model\n"


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> str:
    """stderr of ``hf-stdembed ARGS`` run through the CLI's error boundary; it must fail with
    one ``Error:`` line."""
    monkeypatch.setattr(sys, "argv", ["hf-stdembed", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "Traceback" not in err, err
    assert err.startswith("Error: ") and len(err.strip().splitlines()) == 1, err
    return err


def within(seconds: float, call: Callable[[], object]) -> object:
    """``call()``, failing the test if it has not returned after ``seconds`` (it may hang)."""
    result: list[object] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as e:  # noqa: BLE001 - handed to the test
            error.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s (hangs)"
    if error:
        raise error[0]
    return result[0]


@pytest.fixture
def index(tmp_path: Path) -> EmbeddingIndex:
    with EmbeddingIndex.open(tmp_path / "index") as opened:
        yield opened


def directory(tmp_path: Path, repos: dict[str, dict[str, bytes]]) -> DirectoryRegistry:
    root = tmp_path / "registry"
    for repo_id, files in repos.items():
        for path, data in files.items():
            (root / repo_id / path).parent.mkdir(parents=True, exist_ok=True)
            (root / repo_id / path).write_bytes(data)
    root.mkdir(exist_ok=True)
    return DirectoryRegistry(root)


def embedding_path(files: dict[str, bytes]) -> str:
    return next(path for path in files if path.startswith("stdembed/"))


# =========================================================================================
# A directory registry
# =========================================================================================


@pytest.mark.parametrize("special", ["devzero", "fifo"])
def test_special_files_neither_hang_nor_count(
    tmp_path: Path, index: EmbeddingIndex, special: str
) -> None:
    """``weights.bin -> /dev/zero`` and FIFOs: listing, head and reads end, and refuse them."""
    files = published_files("team/m", 1)
    registry = directory(tmp_path, {"team/m": files, "team/pipe": published_files("team/pipe", 2)})
    repo, pipe = registry.root / "team" / "m", registry.root / "team" / "pipe"
    emb = embedding_path(files)
    (pipe / emb).unlink()
    if special == "devzero":
        os.symlink("/dev/zero", repo / "weights.bin")
        os.symlink("/dev/zero", pipe / emb)
    else:
        os.mkfifo(repo / "weights.bin")
        os.mkfifo(pipe / emb)

    # /dev/zero lies outside the registry; a FIFO inside it is no regular file: both refused
    refused = "outside the registry" if special == "devzero" else "not a regular file"
    listed = within(20, lambda: list(registry.list_tagged(CARD_TAG)))
    assert [s.repo_id for s in listed] == ["team/m", "team/pipe"]
    sha = within(20, lambda: registry.head("team/m"))
    assert sha == listed[0].sha
    for call in (
        lambda: registry.read_text("team/m", "weights.bin", revision=None),
        lambda: registry.file_size("team/m", "weights.bin", revision=None),
        lambda: registry.download("team/m", "weights.bin", revision=sha, max_bytes=1 << 40),
    ):
        with pytest.raises(RemoteFileNotFoundError, match=refused):
            within(20, call)

    report = crawl(registry, index)  # the index's connection belongs to this thread
    assert report.indexed == ["team/m"] and refused in dict(report.problems)["team/pipe"]


def test_links_out_of_the_registry_are_not_followed(tmp_path: Path, index: EmbeddingIndex) -> None:
    """A symlink must not turn the crawl into an oracle for the sha256 of any readable file."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(b"the owner's private key\n")
    secret_sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    repos = {f"team/m{i}": published_files(f"team/m{i}", i) for i in range(4)}
    registry = directory(tmp_path, repos)
    emb = embedding_path(repos["team/m0"])
    # a file link out of the registry, a folder link out of it, and links within it
    (registry.root / "team/m0" / emb).unlink()
    os.symlink(secret, registry.root / "team/m0" / emb)
    os.symlink(secret.parent, registry.root / "team/m1" / "leak")
    (registry.root / "team/m2" / emb).unlink()
    os.symlink(registry.root / "team/m3" / emb, registry.root / "team/m2" / emb)  # same bytes?
    os.symlink("../../team/m3/README.md", registry.root / "team/m3" / "CARD.md")

    with pytest.raises(RemoteFileNotFoundError, match="outside the registry"):
        registry.download("team/m0", emb, revision=None, max_bytes=1 << 20)
    with pytest.raises(RemoteFileNotFoundError, match="outside the registry"):
        registry.read_text("team/m1", "leak/secret.txt", revision=None)
    assert (
        registry.read_text("team/m3", "CARD.md", revision=None)
        == repos["team/m3"]["README.md"].decode()
    )

    report = crawl(registry, index)
    reasons = dict(report.problems)
    assert secret_sha not in repr(report) and "outside the registry" in reasons["team/m0"]
    assert "sha256" in reasons["team/m2"]  # m3's file, read within the registry: m2's card differs
    assert sorted(report.indexed) == ["team/m1", "team/m3"]
    # the revision does not depend on what lies outside
    before = registry.head("team/m1")
    secret.write_bytes(b"another key\n")
    assert registry.head("team/m1") == before
    # nor is anything written through a link out of it
    with pytest.raises(RegistryError, match="outside the registry"):
        registry.commit("team/m1", {"leak/new.txt": b"x"}, message="m", parent_commit=None)
    assert not (secret.parent / "new.txt").exists()


def alias_bomb(levels: int) -> str:
    """Nested YAML aliases: ``levels`` levels of 9 references expand to 9**levels strings."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines)


def test_yaml_alias_bomb_in_a_card_is_a_reason_not_memory(
    tmp_path: Path, index: EmbeddingIndex
) -> None:
    """The issue's bomb has 9 levels (2.9 GB); 5 levels (59,049 strings) show the expansion."""
    bomb = alias_bomb(5).replace("\n", "\n  ")
    readme = (
        "---\ntags: [hf-stdembed]\nhf_stdembed:\n  schema_version: 1\n  embeddings:\n"
        f"    x:\n      file:\n        {bomb.replace(chr(10), chr(10) + '      ')}\n---\n"
    )
    registry = directory(
        tmp_path,
        {
            "team/bomb": {"README.md": readme.encode()},
            "team/good": published_files("team/good", 1),
            # an unreadable card that does not mention the tag is not listed
            "team/other": {"README.md": b"---\nx: &a [1]\ny: *a\n---\n"},
        },
    )
    listed = {s.repo_id: s for s in registry.list_tagged(CARD_TAG)}
    assert set(listed) == {"team/bomb", "team/good"}
    bomb_summary = listed["team/bomb"]
    assert bomb_summary.card_data == {} and "alias" in bomb_summary.problem
    assert listed["team/good"].problem is None
    report = crawl(registry, index)
    assert report.indexed == ["team/good"] and "team/bomb" in dict(report.problems)


def test_oversized_front_matter_is_a_reason(tmp_path: Path) -> None:
    readme = "---\ntags: [hf-stdembed]\nnote: " + "x" * (2 << 20) + "\n---\n"
    registry = directory(tmp_path, {"team/big": {"README.md": readme.encode()}})
    (summary,) = registry.list_tagged(CARD_TAG)
    assert summary.card_data == {} and "limit" in summary.problem


def test_big_files_are_not_hashed_at_every_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repo's revision costs its small files' bytes and the big files' stat, not their bytes.

    It still changes whenever a file changes: content for small files, card and embedding
    files; size, mtime and inode for the others.
    """
    files = published_files("team/m", 1)
    registry = directory(tmp_path, {"team/m": {**files, "config.json": b"{}"}})
    repo = registry.root / "team/m"
    weights = repo / "model.safetensors"
    with open(weights, "wb") as f:  # sparse: costs no disk
        f.truncate(256 << 20)
    hashed: list[str] = []
    real = local_files.file_digest

    def spy(path: Path, name: str) -> str:
        hashed.append(path.name)
        return real(path, name)

    monkeypatch.setattr(directory_module, "file_digest", spy)
    first = registry.head("team/m")
    assert "model.safetensors" not in hashed and "README.md" in hashed
    again = DirectoryRegistry(registry.root)  # a new process: no in-memory cache
    assert again.head("team/m") == first
    assert [s.sha for s in again.list_tagged(CARD_TAG)] == [first]
    assert "model.safetensors" not in hashed

    def changed(edit: Callable[[], None]) -> bool:
        before = DirectoryRegistry(registry.root).head("team/m")
        edit()
        return DirectoryRegistry(registry.root).head("team/m") != before

    stat = (repo / "config.json").stat()

    def same_size_same_mtime() -> None:  # content-hashed: caught even with the mtime restored
        (repo / "config.json").write_bytes(b"[]")
        os.utime(repo / "config.json", ns=(stat.st_atime_ns, stat.st_mtime_ns))

    def rewrite_weights() -> None:
        with open(weights, "r+b") as f:
            f.write(b"\1")
        os.utime(weights, ns=(1, 1))

    assert changed(same_size_same_mtime)
    assert changed(rewrite_weights)
    assert changed(lambda: os.replace(weights, repo / "renamed.safetensors"))
    assert not changed(lambda: None)


# =========================================================================================
# The Hub's listing
# =========================================================================================


@pytest.fixture
def no_library_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub's own backoff must not run on the listing: it would sleep."""
    from huggingface_hub.utils import _http

    def refuse(seconds: float) -> None:
        raise AssertionError(f"huggingface_hub's backoff slept {seconds} s")

    monkeypatch.setattr(_http, "time", types.SimpleNamespace(sleep=refuse))


def test_odd_listing_ids_do_not_abort_the_crawl(hub: FakeHub, index: EmbeddingIndex) -> None:
    seed_repos(hub, 3)
    odd = "odd/m\u00f6del" + "x" * 110  # 120 characters, not ASCII: refused everywhere else
    hub.add_repo(odd, published_files(odd, 7))
    listed = {s.repo_id: s for s in HubRegistry().list_tagged(CARD_TAG)}
    assert "invalid repo id" in listed[odd].problem and listed[odd].card_data == {}
    report = crawl(HubRegistry(), index)
    assert len(report.indexed) == 3 and odd in dict(report.problems)
    assert len(index.rows(STANDARD.hash)) == 3


def test_listing_retry_after_is_capped_and_attempts_bounded(
    hub: FakeHub, no_library_sleep: None
) -> None:
    seed_repos(hub, 2)
    slept: list[float] = []
    registry = HubRegistry(sleep=slept.append, max_attempts=3)

    hub.fail_next(2, status=429, path_prefix="/api/models", retry_after=5)
    assert len(list(registry.list_tagged(CARD_TAG))) == 2 and slept == [5.0, 5.0]

    slept.clear()
    hub.fail_next(1, status=429, path_prefix="/api/models", retry_after=3600)
    with pytest.raises(RegistryError, match="3600 s") as caught:
        list(registry.list_tagged(CARD_TAG))
    assert slept == [] and "--no-refresh" in str(caught.value)

    hub.clear_requests()
    hub.fail_next(10, status=503, path_prefix="/api/models", retry_after=None)
    with pytest.raises(RegistryError, match="503"):
        list(registry.list_tagged(CARD_TAG))
    assert len(hub.requests) == 3 and max(slept) <= registry_errors.MAX_RETRY_AFTER


def test_drip_fed_listing_fails_fast(
    hub: FakeHub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    no_library_sleep: None,
) -> None:
    """A listing whose body never finishes stops the crawl at the page deadline, clearly."""
    seed_repos(hub, 2)
    hub.drip_next(1, path_prefix="/api/models", interval=0.05)
    monkeypatch.setenv("HF_STDEMBED_LISTING_TIMEOUT", "2")
    start = time.monotonic()
    err = run_main(monkeypatch, capsys, "index", "update", "--index", str(tmp_path / "i"), "-q")
    assert time.monotonic() - start < 20  # 2 s, on a loaded machine
    assert "took over 2 s to send one page of the listing" in err
    # a page that arrives in time is read whole
    hub.drip_next(1, path_prefix="/api/models", interval=0.0005)
    assert len(list(HubRegistry(listing_timeout=30).list_tagged(CARD_TAG))) == 2


def test_oversized_listing_page_is_refused(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, no_library_sleep: None
) -> None:
    seed_repos(hub, 2)
    monkeypatch.setattr(listing, "MAX_LISTING_PAGE_BYTES", 100)
    with pytest.raises(RegistryError, match="over the 100 byte limit: not read"):
        list(HubRegistry().list_tagged(CARD_TAG))


def test_oversized_card_data_is_a_problem_not_kept(hub: FakeHub, index: EmbeddingIndex) -> None:
    seed_repos(hub, 2)
    files = published_files("org9/huge", 3)
    readme = files["README.md"].decode().replace("---\n", f"---\nnote: {'x' * (2 << 20)}\n", 1)
    hub.add_repo("org9/huge", {**files, "README.md": readme.encode()})
    listed = {s.repo_id: s for s in HubRegistry().list_tagged(CARD_TAG)}
    assert listed["org9/huge"].card_data == {} and "limit" in listed["org9/huge"].problem
    assert all(s.problem is None for r, s in listed.items() if r != "org9/huge")
    report = crawl(HubRegistry(), index)
    assert len(report.indexed) == 2 and "org9/huge" in dict(report.problems)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_select_without_network_fails_fast_and_says_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_parquet: Path
) -> None:
    """Was: 6 retry warnings over ~24 s, then `cannot reach ...` with no way out."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    use_endpoint(monkeypatch, endpoint)
    args = ["select", "-d", str(tiny_parquet), "--registry", endpoint]
    args += ["--index", str(tmp_path / "i"), "-q"]
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "hf_stdembed", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: cannot reach"), result.stderr
    assert "--no-refresh" in lines[0] and "HF_HUB_OFFLINE=1" in lines[0]
    assert elapsed < 30  # startup included; was ~24 s of retries alone


# =========================================================================================
# Publish's access check
# =========================================================================================


def test_reset_during_whoami_is_one_error_line(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.add_repo("tester/m", {"README.md": TAGGED})
    hub.reset_next(1, path_prefix="/api/whoami")
    HubRegistry(sleep=lambda s: None).check_write("tester/m")  # one reset: retried

    hub.reset_next(10, path_prefix="/api/whoami")
    err = run_main(monkeypatch, capsys, "publish", "tester/m", "-q")
    assert err.startswith("Error: cannot reach") and "try again" in err


# =========================================================================================
# Parsers of what strangers send, over arbitrary input
# =========================================================================================

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
listing_items = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=250) | st.from_regex(r"[a-z]{1,8}/[a-z0-9.-]{1,12}", fullmatch=True),
        "sha": st.from_regex(r"[0-9a-f]{40}", fullmatch=True) | json_values,
        "lastModified": json_values,
        "cardData": json_values,
    },
)


@settings(max_examples=150, deadline=None)
@given(item=listing_items | json_values)
def test_any_listing_item_is_a_summary_a_problem_or_skipped(item: object) -> None:
    summary = listing.listed_summary(item)
    if summary is None:
        return
    assert isinstance(summary.card_data, dict) and len(summary.sha) == 40
    if summary.problem is None:
        protocol.check_repo_id(summary.repo_id, namespaced=False)  # usable everywhere
    else:
        assert summary.card_data == {}


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300), truncated=st.booleans())
def test_any_readme_text_is_card_data_or_a_problem(text: str, truncated: bool) -> None:
    for candidate in (text, f"---\n{text}\n---\n", f"---\ntags: [hf-stdembed]\n{text}\n---\n"):
        data, problem, mentioned = local_files.card_of((candidate, truncated), CARD_TAG)
        assert isinstance(data, dict) and (problem is None or data == {})
        assert mentioned == (CARD_TAG in candidate)
