"""The fake Hub (tests/hub_server.py) against the real huggingface_hub client."""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hub_server import OTHER_TOKEN, TOKEN, FakeHub, use_endpoint
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    ModelCard,
    ModelCardData,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import _http, get_session

README = b"""---
license: apache-2.0
library_name: timm
tags:
- image-classification
- std-embed
---
# A model
"""


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as hub:
        use_endpoint(monkeypatch, hub.endpoint)
        yield hub
    assert not hub.server_errors, hub.server_errors[0]


@pytest.fixture
def api(hub: FakeHub) -> HfApi:
    return HfApi(token=TOKEN)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's backoff sleeps, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(_http, "time", types.SimpleNamespace(sleep=slept.append))
    return slept


def test_create_commit_then_download(hub: FakeHub, api: HfApi) -> None:
    assert api.whoami()["name"] == "tester"
    url = api.create_repo("tester/emb")
    assert url.repo_id == "tester/emb"
    assert api.create_repo("tester/emb", exist_ok=True).repo_id == "tester/emb"

    operations = [
        CommitOperationAdd("embeddings/model.safetensors", b"\x00\x01" * 100),
        CommitOperationAdd("README.md", README),
    ]
    info = api.create_commit("tester/emb", operations, commit_message="Add embedding")

    assert info.oid == hub.head("tester/emb") and info.pr_url is None
    path = hf_hub_download("tester/emb", "embeddings/model.safetensors")
    assert Path(path).read_bytes() == b"\x00\x01" * 100
    assert f"/snapshots/{info.oid}/" in path
    assert hub.downloads == 1
    # no LFS or Xet traffic: preupload says "regular", the content rides in the commit
    posts = [path for method, path in hub.requests if method == "POST"]
    assert posts == [
        "/api/repos/create",
        "/api/repos/create",
        "/api/validate-yaml",
        "/api/models/tester/emb/preupload/main",
        "/api/models/tester/emb/commit/main",
    ]

    deleted = api.create_commit(
        "tester/emb", [CommitOperationDelete("README.md")], commit_message="Drop card"
    )
    assert set(hub.files("tester/emb", deleted.oid)) == {
        ".gitattributes",
        "embeddings/model.safetensors",
    }


def test_dataset_repos_live_beside_model_repos(hub: FakeHub, api: HfApi) -> None:
    hub.add_repo("tester/same", {"README.md": README})  # a model of the same id
    url = api.create_repo("tester/same", repo_type="dataset", private=True)
    assert url.repo_type == "dataset" and url.repo_id == "tester/same"
    assert api.create_repo("tester/same", repo_type="dataset", exist_ok=True).repo_id
    info = api.create_commit(
        "tester/same",
        [CommitOperationAdd("data/x.parquet", b"rows")],
        commit_message="Add data",
        repo_type="dataset",
    )
    assert info.oid == hub.head("tester/same", repo_type="dataset") != hub.head("tester/same")
    assert "/datasets/tester/same/commit/" in info.commit_url
    assert api.dataset_info("tester/same").private
    assert api.model_info("tester/same").sha == hub.head("tester/same")
    path = hf_hub_download("tester/same", "data/x.parquet", repo_type="dataset", token=TOKEN)
    assert Path(path).read_bytes() == b"rows"
    assert hub.files("tester/same", repo_type="dataset")["data/x.parquet"] == b"rows"
    assert [m.id for m in api.list_models()] == ["tester/same"]  # datasets are not listed
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("tester/missing")
    with pytest.raises(RepositoryNotFoundError):  # private: invisible without the token
        api.dataset_info("tester/same", token=False)


def test_unchanged_files_make_no_commit(hub: FakeHub, api: HfApi) -> None:
    sha = hub.add_repo("tester/same", {"a.txt": b"A"})

    info = api.create_commit("tester/same", [CommitOperationAdd("a.txt", b"A")], commit_message="m")

    assert info.oid == sha == hub.head("tester/same")
    assert ("POST", "/api/models/tester/same/commit/main") not in hub.requests


def test_subprocess_sees_the_fake_hub(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("fake-org/cli", {"config.json": b'{"a": 1}'})
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    code = (
        "from huggingface_hub import HfApi, CommitOperationAdd, hf_hub_download\n"
        "print(open(hf_hub_download('fake-org/cli', 'config.json')).read())\n"
        "op = CommitOperationAdd('out.txt', b'from cli')\n"
        "print(HfApi().create_commit('fake-org/cli', [op], commit_message='cli').oid)\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    content, sha = done.stdout.splitlines()
    assert content == '{"a": 1}'
    assert sha == hub.head("fake-org/cli")
    assert hub.files("fake-org/cli")["out.txt"] == b"from cli"


def test_list_models_follows_link_pagination(hub: FakeHub, api: HfApi) -> None:
    for i in range(25):
        hub.add_repo(f"fake-org/m{i:02d}", {"README.md": README}, tags=["some-tag"])
    for i in range(3):
        hub.add_repo(f"other/x{i}", {"README.md": b"no card"})

    models = list(
        api.list_models(
            filter="some-tag", expand=["sha", "lastModified", "cardData", "tags"], limit=None
        )
    )

    assert [m.id for m in models] == [f"fake-org/m{i:02d}" for i in range(25)]
    assert [path for _, path in hub.requests] == ["/api/models"] * 3
    first = models[0]
    assert first.sha == hub.head("fake-org/m00") and first.last_modified is not None
    assert first.card_data.library_name == "timm"
    assert "std-embed" in first.tags and "license:apache-2.0" in first.tags

    everything = list(api.list_models(full=True))
    assert len(everything) == 28 and everything[-1].siblings[0].rfilename == "README.md"
    assert len(list(api.list_models())) == 28
    assert [m.id for m in api.list_models(author="other", search="x1")] == ["other/x1"]
    hub.clear_requests()
    assert len(list(api.list_models(limit=4))) == 4
    assert len(hub.requests) == 1


def test_model_info(hub: FakeHub, api: HfApi) -> None:
    first = hub.add_repo("fake-org/info", {"README.md": README, "w.safetensors": b"w" * 64})
    second = hub.commit("fake-org/info", {"README.md": b"---\ntags: [changed]\n---\n"})

    info = api.model_info("fake-org/info")
    assert info.sha == second and info.card_data.tags == ["changed"]
    assert info.private is False and info.gated is False and info.disabled is False
    assert isinstance(info.downloads, int) and isinstance(info.likes, int)

    old = api.model_info("fake-org/info", revision=first[:10], files_metadata=True)
    assert old.sha == first
    assert old.card_data.license == "apache-2.0" and old.library_name == "timm"
    weights = next(s for s in old.siblings if s.rfilename == "w.safetensors")
    assert weights.size == 64 and weights.lfs is not None and weights.lfs.size == 64
    assert api.list_repo_files("fake-org/info") == ["README.md", "w.safetensors"]


def test_parent_commit_mismatch_is_a_412(hub: FakeHub, api: HfApi) -> None:
    seen = hub.add_repo("tester/race", {"a.txt": b"A"})
    hub.commit("tester/race", {"b.txt": b"B"})  # someone else was faster

    with pytest.raises(HfHubHTTPError) as caught:
        api.create_commit(
            "tester/race",
            [CommitOperationAdd("c.txt", b"C")],
            commit_message="mine",
            parent_commit=seen,
        )

    assert type(caught.value) is HfHubHTTPError
    assert caught.value.response.status_code == 412
    assert "A commit has happened since" in str(caught.value)
    head = hub.head("tester/race")
    retried = api.create_commit(
        "tester/race", [CommitOperationAdd("c.txt", b"C")], commit_message="m", parent_commit=head
    )
    assert hub.files("tester/race", retried.oid).keys() == {"a.txt", "b.txt", "c.txt"}


def test_create_pr_leaves_main_alone(hub: FakeHub, api: HfApi) -> None:
    main = hub.add_repo("fake-org/pr", {"a.txt": b"A"})

    info = api.create_commit(
        "fake-org/pr", [CommitOperationAdd("a.txt", b"PR")], commit_message="m", create_pr=True
    )

    assert info.pr_revision == "refs/pr/1" and info.pr_num == 1
    assert hub.head("fake-org/pr") == main
    assert Path(hf_hub_download("fake-org/pr", "a.txt")).read_bytes() == b"A"
    path = hf_hub_download("fake-org/pr", "a.txt", revision="refs/pr/1")
    assert Path(path).read_bytes() == b"PR"
    assert api.model_info("fake-org/pr", revision="refs/pr/1").sha == info.oid
    second = api.create_commit(
        "fake-org/pr", [CommitOperationAdd("b.txt", b"B")], commit_message="m", create_pr=True
    )
    assert second.pr_revision == "refs/pr/2"


def _download(repo_id: str, filename: str = "a.txt", **kwargs: object) -> Callable[[], object]:
    return lambda: hf_hub_download(repo_id, filename, **kwargs)


@pytest.mark.parametrize(
    ("call", "error", "status"),
    [
        (_download("tester/missing"), RepositoryNotFoundError, 401),
        (_download("tester/missing", token=TOKEN), RepositoryNotFoundError, 404),
        (_download("tester/private"), RepositoryNotFoundError, 401),
        (_download("tester/public", "nope.txt"), RemoteEntryNotFoundError, 404),
        (_download("tester/public", revision="nope"), RevisionNotFoundError, 404),
        (_download("tester/gated"), GatedRepoError, 401),
        (_download("tester/gated", token=OTHER_TOKEN), GatedRepoError, 403),
        (lambda: HfApi().model_info("tester/missing"), RepositoryNotFoundError, 401),
        (
            lambda: HfApi(token=OTHER_TOKEN).model_info("tester/private"),
            RepositoryNotFoundError,
            404,
        ),
        (lambda: HfApi().model_info("tester/public", revision="v9"), RevisionNotFoundError, 404),
        (lambda: HfApi().whoami(token="hf_unknown"), HfHubHTTPError, 401),
    ],
)
def test_errors_raise_the_hub_exceptions(
    hub: FakeHub, call: Callable[[], object], error: type[Exception], status: int
) -> None:
    hub.add_repo("tester/public", {"a.txt": b"A"})
    hub.add_repo("tester/private", {"a.txt": b"A"}, private=True)
    hub.add_repo("tester/gated", {"a.txt": b"A"}, gated=True)

    with pytest.raises(error) as caught:
        call()

    # the exact class: GatedRepoError is a subclass of RepositoryNotFoundError
    assert type(caught.value) is error
    assert caught.value.response.status_code == status


def test_gated_access_and_existence_checks(hub: FakeHub, api: HfApi) -> None:
    hub.add_repo("tester/gated", {"a.txt": b"A"}, gated=True)
    assert api.model_info("tester/gated", token=False).gated == "auto"  # metadata is public
    hub.grant_access("tester/gated", "other")
    assert Path(hf_hub_download("tester/gated", "a.txt", token=OTHER_TOKEN)).read_bytes() == b"A"
    assert api.repo_exists("tester/gated") and not api.repo_exists("tester/missing")
    assert api.file_exists("tester/gated", "a.txt")
    assert not api.file_exists("tester/gated", "b.txt")
    with pytest.raises(GatedRepoError):
        HfApi(token=False).file_exists("tester/gated", "a.txt")


def test_writes_need_a_token_with_rights(hub: FakeHub, api: HfApi) -> None:
    hub.add_repo("tester/mine", {"a.txt": b"A"})
    add = [CommitOperationAdd("b.txt", b"B")]

    with pytest.raises(RepositoryNotFoundError) as anonymous:  # the Hub's 401 on repo URLs
        api.create_commit("tester/mine", add, commit_message="m", token=False)
    assert anonymous.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as stranger:
        api.create_commit("tester/mine", add, commit_message="m", token=OTHER_TOKEN)
    assert stranger.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as no_token:
        api.create_repo("tester/new", token=False)
    assert no_token.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as elsewhere:
        api.create_repo("fake-org/new", token=OTHER_TOKEN)
    assert elsewhere.value.response.status_code == 403
    assert api.create_repo("fake-org/new").repo_id == "fake-org/new"
    assert set(hub.files("tester/mine")) == {"a.txt"}


def test_invalid_card_metadata_is_refused(hub: FakeHub, api: HfApi) -> None:
    hub.add_repo("tester/card", {"a.txt": b"A"})
    bad = CommitOperationAdd("README.md", b"---\nlicense: [mit\n---\n")

    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        api.create_commit("tester/card", [bad], commit_message="m")

    assert ("POST", "/api/models/tester/card/preupload/main") not in hub.requests


def test_model_card_round_trip(hub: FakeHub, api: HfApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # push_to_hub goes through the module-level HfApi
    api.create_repo("tester/card")
    data = ModelCardData(license="mit", library_name="timm", tags=["std-embed"], model_name="m")
    card = ModelCard.from_template(data, model_description="Embeds images.")

    card.push_to_hub("tester/card", commit_message="Card")
    loaded = ModelCard.load("tester/card")

    assert loaded.data.to_dict() == data.to_dict()
    assert str(loaded) == str(card)
    assert api.model_info("tester/card").card_data.to_dict() == data.to_dict()


@pytest.mark.parametrize(
    ("spec", "status", "content", "content_range"),
    [
        ("bytes=2-4", 206, b"234", "bytes 2-4/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-2", 206, b"89", "bytes 8-9/10"),
        ("bytes=20-", 416, None, "bytes */10"),
    ],
)
def test_range_requests(
    hub: FakeHub, spec: str, status: int, content: bytes | None, content_range: str
) -> None:
    sha = hub.add_repo("tester/r", {"digits.bin": b"0123456789"})

    response = get_session().get(
        f"{hub.endpoint}/tester/r/resolve/main/digits.bin", headers={"Range": spec}
    )

    assert response.status_code == status
    assert response.headers["Content-Range"] == content_range
    if content is not None:
        assert response.content == content and response.headers["X-Repo-Commit"] == sha


def test_snapshot_download(hub: FakeHub) -> None:
    hub.add_repo("tester/snap", {"a.txt": b"A", "sub/dir/b.txt": b"B"})

    folder = Path(snapshot_download("tester/snap"))

    assert (folder / "sub" / "dir" / "b.txt").read_bytes() == b"B"
    assert (folder / "a.txt").read_bytes() == b"A"


# What huggingface_hub 2.4 does on 429 / 5xx (Retry-After: 0 => sleeps 0 + 1 s):
# - hf_hub_download HEAD: first try has no backoff; without a cached file it retries once with
#   backoff (5 retries), and with a cached file it silently returns the cached one.
# - hf_hub_download GET: retries 408/429 only (5 times); a 5xx GET raises at once.
# - list_models pages and preupload: backoff on 429/5xx; model_info, the commit POST and
#   whoami: no retry at all.
def test_rate_limit_head_is_retried(hub: FakeHub, sleeps: list[float]) -> None:
    hub.add_repo("tester/rl", {"a.txt": b"A"})
    hub.fail_next(2, status=429, method="HEAD", retry_after=0)

    assert Path(hf_hub_download("tester/rl", "a.txt")).read_bytes() == b"A"

    assert [method for method, _ in hub.requests] == ["HEAD", "HEAD", "HEAD", "GET"]
    assert sleeps == [1.0]  # Retry-After + 1


def test_rate_limit_exhausted_download(hub: FakeHub, sleeps: list[float]) -> None:
    hub.add_repo("tester/rl", {"a.txt": b"A"})
    hub.fail_next(7, status=503, method="HEAD")

    with pytest.raises(LocalEntryNotFoundError) as caught:
        hf_hub_download("tester/rl", "a.txt")

    assert isinstance(caught.value.__cause__, HfHubHTTPError)
    assert sleeps == [1, 2, 4, 8, 8] and len(hub.requests) == 7


def test_transient_errors_on_get_and_stale_cache(hub: FakeHub, sleeps: list[float]) -> None:
    hub.add_repo("tester/rl", {"a.txt": b"A"})
    hub.fail_next(1, status=429, method="GET", path_prefix="/tester/rl/resolve")
    assert Path(hf_hub_download("tester/rl", "a.txt")).read_bytes() == b"A"
    assert sleeps == [1.0]

    hub.commit("tester/rl", {"a.txt": b"new"})
    hub.fail_next(1, status=503, method="HEAD")
    assert Path(hf_hub_download("tester/rl", "a.txt")).read_bytes() == b"A"  # stale, no error

    hub.fail_next(1, status=503, method="GET", path_prefix="/tester/rl/resolve")
    with pytest.raises(HfHubHTTPError) as caught:
        hf_hub_download("tester/rl", "a.txt", force_download=True)
    assert caught.value.response.status_code == 503


def test_rate_limit_on_api_calls(hub: FakeHub, api: HfApi, sleeps: list[float]) -> None:
    hub.add_repo("tester/rl", {"a.txt": b"A"})

    hub.fail_next(1, status=429, path_prefix="/api/models/tester/rl")
    with pytest.raises(HfHubHTTPError) as caught:
        api.model_info("tester/rl")
    assert caught.value.response.status_code == 429 and sleeps == []

    hub.fail_next(1, status=503, path_prefix="/api/models")
    assert [m.id for m in api.list_models()] == ["tester/rl"]
    assert sleeps == [1]

    hub.fail_next(1, status=429, path_prefix="/api/models/tester/rl/preupload")
    api.create_commit("tester/rl", [CommitOperationAdd("b.txt", b"B")], commit_message="m")
    hub.fail_next(1, status=429, path_prefix="/api/models/tester/rl/commit")
    with pytest.raises(HfHubHTTPError) as caught:
        api.create_commit("tester/rl", [CommitOperationAdd("c.txt", b"C")], commit_message="m")
    assert caught.value.response.status_code == 429
    assert set(hub.files("tester/rl")) == {"a.txt", "b.txt"}


def test_fake_hub_lifecycle() -> None:
    hub = FakeHub()
    with pytest.raises(RuntimeError, match="not started"):
        _ = hub.endpoint
    with hub:
        assert hub.endpoint.startswith("http://127.0.0.1:")
        hub.add_repo("a/b", {})
        with pytest.raises(ValueError, match="Repo already exists: a/b"):
            hub.add_repo("a/b", {})
    hub.stop()  # idempotent
    with pytest.raises(ValueError, match="Invalid page_size value: 0"):
        FakeHub(page_size=0)
