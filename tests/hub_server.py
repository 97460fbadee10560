"""A fake Hugging Face Hub on 127.0.0.1 for tests: the real ``huggingface_hub`` client talks to it.

The server speaks the subset of the Hub HTTP API that ``huggingface_hub`` 2.4 uses for model repos,
and for dataset repos the same routes under their prefix (``repo_type="dataset"``:
``/api/datasets/{repo}/...`` and ``/datasets/{repo}/resolve/...``; listing is for models only):

=========================================  ==================================================
Client call                                Endpoints
=========================================  ==================================================
``HfApi.whoami``                           ``GET /api/whoami-v2``
``HfApi.create_repo``                      ``POST /api/repos/create``
``HfApi.list_models``                      ``GET /api/models`` (``Link: <...>; rel="next"``)
``HfApi.model_info`` / ``repo_info`` /     ``GET /api/{models,datasets}/{repo}[/revision/{rev}]``
``repo_exists``
``HfApi.list_repo_tree`` / ``list_repo_    ``GET /api/models/{repo}/tree/{rev}[/{path}]``
files`` / ``snapshot_download``
``hf_hub_download`` / ``file_exists``      ``HEAD`` and ``GET /{repo}/resolve/{rev}/{path}``
``HfApi.create_commit`` / ``upload_file``  ``POST /api/models/{repo}/preupload/{rev}`` then
                                           ``POST /api/models/{repo}/commit/{rev}`` (NDJSON)
``ModelCard.validate`` / ``push_to_hub``   ``POST /api/validate-yaml``
=========================================  ==================================================

The preupload answer is ``"uploadMode": "regular"`` for every file, so the client sends all
contents base64-encoded inside the commit payload and never takes the LFS or Xet upload path.
Errors carry the Hub's ``X-Error-Code`` / ``X-Error-Message`` headers and ``{"error": ...}``
body, so the client raises the same exception classes as against huggingface.co.

Failures can be injected for the next matching requests: ``fail_next`` (an error status, with
``Retry-After`` on a 429), ``reset_next`` (the connection dropped with a TCP reset, no answer) and
``drip_next`` (a normal answer whose body arrives one byte at a time).

Everything lives in memory; a single lock serialises request handling, so concurrent commits
behave like the Hub's (one wins, the other gets a 412 when it passed ``parent_commit``).

Example:
    ```python
    with FakeHub() as hub:
        use_endpoint(monkeypatch, hub.endpoint)
        hub.add_repo("org/model", {"README.md": b"---\\ntags: [x]\\n---\\n"})
        HfApi().model_info("org/model").card_data.tags  # ['x']
    ```
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import mimetypes
import os
import re
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest
import yaml

# Tokens every FakeHub knows unless told otherwise: ``TOKEN`` may write to ``tester/*`` and
# ``fake-org/*``; ``OTHER_TOKEN`` to ``other/*`` only.
TOKEN = "hf_fake_tester_token"
OTHER_TOKEN = "hf_fake_other_token"

# Files the default ``.gitattributes`` of the Hub stores with Git LFS; ``model_info`` reports
# ``lfs`` metadata for them (and for any file of 10 MiB or more), as the Hub does.
LFS_SUFFIXES = (
    ".bin", ".ckpt", ".gz", ".h5", ".joblib", ".msgpack", ".npy", ".npz", ".onnx", ".parquet",
    ".arrow", ".pickle", ".pkl", ".pt", ".pth", ".safetensors", ".tar", ".zip",
)  # fmt: skip
LFS_MIN_SIZE = 10 * 1024 * 1024
_GITATTRIBUTES = "".join(
    f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES
)

# Same regex as the Hub server (and huggingface_hub.repocard).
_YAML_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
_EXPANDABLE = frozenset((
    "author", "baseModels", "cardData", "childrenModelCount", "config", "createdAt", "disabled",
    "downloads", "downloadsAllTime", "evalResults", "gated", "gguf", "inference",
    "inferenceProviderMapping", "lastModified", "library_name", "likes", "mask_token",
    "model-index", "pipeline_tag", "private", "resourceGroup", "safetensors", "sha", "siblings",
    "spaces", "tags", "transformersInfo", "trendingScore", "usedStorage", "widgetData",
))  # fmt: skip
_SORTABLE = {"lastModified", "createdAt", "downloads", "likes", "trendingScore"}
_PARENT_MOVED = "A commit has happened since. Please refresh and try again."
_BAD_TOKEN = "Invalid credentials in Authorization header"


@dataclass(frozen=True)
class HubUser:
    """An account the fake Hub knows: it may write to its own namespace and its orgs'."""

    name: str
    orgs: tuple[str, ...] = ()

    def can_write(self, repo_id: str) -> bool:
        return repo_id.split("/")[0] in (self.name, *self.orgs)


@dataclass
class _Commit:
    sha: str
    parent: str | None
    files: dict[str, bytes]  # the whole tree at this commit
    message: str
    date: datetime


def _key(repo_type: str, repo_id: str) -> str:
    """Where a repo is stored: its id for a model, ``datasets/{id}`` for a dataset (as in URLs)."""
    return repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"


@dataclass
class _Repo:
    repo_id: str
    created_at: datetime
    repo_type: str = "model"  # or "dataset"
    private: bool = False
    gated: bool = False
    extra_tags: tuple[str, ...] = ()
    downloads: int = 0
    likes: int = 0
    refs: dict[str, str] = field(default_factory=dict)  # "main", "refs/pr/1" -> sha
    commits: dict[str, _Commit] = field(default_factory=dict)
    pull_requests: int = 0
    allowed: set[str] = field(default_factory=set)  # users granted access to a gated repo


@dataclass
class _Failure:
    remaining: int
    status: int
    path_prefix: str
    method: str | None
    retry_after: int | None
    kind: str = "status"  # "status": answer `status`; "reset": drop the connection; "drip"
    interval: float = 0.0  # "drip": seconds between two bytes of the body


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # drop the connection (TCP reset) instead of answering
    drip: float | None = None  # send the body one byte every `drip` seconds


class _HubError(Exception):
    """An error answer, shaped as the Hub's: status, ``X-Error-Code``, message."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, **headers: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers)
        if code is not None:
            self.headers["X-Error-Code"] = code

    def response(self) -> _Response:
        headers = {**self.headers, "X-Error-Message": self.message}
        return _json(self.status, {"error": self.message}, headers)


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Response:
    body = json.dumps(payload).encode()
    return _Response(status, body, {"Content-Type": "application/json", **(headers or {})})


def _iso(date: datetime) -> str:
    return date.strftime("%Y-%m-%dT%H:%M:%S.") + f"{date.microsecond // 1000:03d}Z"


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(data: bytes) -> bytes:
    """The Git LFS pointer file the Hub stores in git for an LFS file of content ``data``."""
    sha256 = hashlib.sha256(data).hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n"
    return pointer.encode()


def _is_lfs(path: str, data: bytes) -> bool:
    return path.endswith(LFS_SUFFIXES) or len(data) >= LFS_MIN_SIZE


def _card_data(files: Mapping[str, bytes]) -> dict[str, Any] | None:
    """The README's YAML front matter, as the Hub's ``cardData`` (None if absent or invalid)."""
    readme = files.get("README.md")
    if readme is None:
        return None
    match = _YAML_BLOCK.search(readme.decode("utf-8", errors="replace"))
    if match is None:
        return None
    try:
        data = yaml.safe_load(match.group(2))
    except (yaml.YAMLError, RecursionError):  # the Hub lists no card data it cannot parse
        return None
    return data if isinstance(data, dict) else None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


class FakeHub:
    """An in-memory Hugging Face Hub serving the real client over HTTP on 127.0.0.1.

    Args:
        page_size (`int`, defaults to 10): items per ``GET /api/models`` page; further pages are
            announced with a ``Link: <...>; rel="next"`` header.
        tokens (`Mapping[str, HubUser]`, *optional*): bearer token -> account. Defaults to
            ``TOKEN`` (user ``tester``, org ``fake-org``) and ``OTHER_TOKEN`` (user ``other``).

    Example:
        ```python
        with FakeHub(page_size=5) as hub:
            use_endpoint(monkeypatch, hub.endpoint)
            sha = hub.add_repo("fake-org/a", {"config.json": b"{}"}, tags=["image-classification"])
            assert HfApi().model_info("fake-org/a").sha == sha
        ```
    """

    def __init__(self, *, page_size: int = 10, tokens: Mapping[str, HubUser] | None = None):
        if page_size < 1:
            raise ValueError(f"Invalid page_size value: {page_size} (must be >= 1)")
        self.page_size = page_size
        self.tokens: dict[str, HubUser] = (
            dict(tokens)
            if tokens is not None
            else {TOKEN: HubUser("tester", ("fake-org",)), OTHER_TOKEN: HubUser("other")}
        )
        self._repos: dict[str, _Repo] = {}
        self._lock = threading.RLock()
        self._requests: list[tuple[str, str]] = []
        self._downloads = 0
        self._failures: list[_Failure] = []
        self.server_errors: list[str] = []  # tracebacks of FakeHub bugs (answered with a 500)
        self._counter = itertools.count()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeHub:
        """Start serving on a free port of 127.0.0.1, in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeHub is already started")
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="FakeHub", kwargs={"poll_interval": 0.05}
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: the value for ``HF_ENDPOINT``."""
        if self._server is None:
            raise RuntimeError(
                "FakeHub is not started: call start() or use it as a context manager"
            )
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- instrumentation ---------------------------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Every request received so far, as ``(method, path)`` (path without the query)."""
        with self._lock:
            return list(self._requests)

    @property
    def downloads(self) -> int:
        """How many file ``GET /{repo}/resolve/...`` answered with content (200 or 206)."""
        with self._lock:
            return self._downloads

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 429,
        path_prefix: str = "/",
        method: str | None = None,
        retry_after: int | None = 0,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status`` instead of serving them.

        Args:
            n (`int`, defaults to 1): how many requests fail.
            status (`int`, defaults to 429): the status to answer (429, 500, 503, ...).
            path_prefix (`str`, defaults to ``"/"``): only requests whose path starts with this.
            method (`str`, *optional*): only requests with this method (``"HEAD"``, ``"GET"``...).
            retry_after (`int`, *optional*, defaults to 0): ``Retry-After`` seconds sent with a
                429 (the client then sleeps ``retry_after + 1`` seconds); None sends no header.
        """
        if n < 1:
            raise ValueError(f"Invalid n value: {n} (must be >= 1)")
        with self._lock:
            self._failures.append(
                _Failure(n, status, path_prefix, method and method.upper(), retry_after)
            )

    def reset_next(self, n: int = 1, *, path_prefix: str = "/", method: str | None = None) -> None:
        """Drop the connection of the next ``n`` matching requests without an answer (a TCP
        reset: the client sees a network error, as when a proxy or the network fails).

        Args:
            n (`int`, defaults to 1): how many requests are dropped.
            path_prefix (`str`, defaults to ``"/"``): only requests whose path starts with this.
            method (`str`, *optional*): only requests with this method.
        """
        self._add_failure(n, path_prefix, method, kind="reset")

    def drip_next(
        self,
        n: int = 1,
        *,
        path_prefix: str = "/",
        method: str | None = None,
        interval: float = 0.5,
    ) -> None:
        """Answer the next ``n`` matching requests normally, but send each body one byte every
        ``interval`` seconds (a stalled or hostile server: every read succeeds, none finishes).

        Args:
            n (`int`, defaults to 1): how many answers are drip-fed.
            path_prefix (`str`, defaults to ``"/"``): only requests whose path starts with this.
            method (`str`, *optional*): only requests with this method.
            interval (`float`, defaults to 0.5): seconds between two bytes.
        """
        self._add_failure(n, path_prefix, method, kind="drip", interval=interval)

    def _add_failure(
        self, n: int, path_prefix: str, method: str | None, *, kind: str, interval: float = 0.0
    ) -> None:
        if n < 1:
            raise ValueError(f"Invalid n value: {n} (must be >= 1)")
        with self._lock:
            self._failures.append(
                _Failure(n, 0, path_prefix, method and method.upper(), None, kind, interval)
            )

    # -- seeding and inspecting state --------------------------------------------------------

    def add_token(self, token: str, name: str, orgs: Iterable[str] = ()) -> None:
        with self._lock:
            self.tokens[token] = HubUser(name, tuple(orgs))

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        repo_type: str = "model",
        tags: Iterable[str] = (),
        gated: bool = False,
        private: bool = False,
        downloads: int = 0,
        likes: int = 0,
    ) -> str:
        """Create ``repo_id`` with one commit holding exactly ``files``; return its sha.

        Raises:
            ValueError: if the repo already exists.
        """
        key = _key(repo_type, repo_id)
        with self._lock:
            if key in self._repos:
                raise ValueError(f"Repo already exists: {repo_id}")
            self._repos[key] = _Repo(
                repo_id,
                created_at=datetime.now(timezone.utc),
                repo_type=repo_type,
                private=private,
                gated=gated,
                extra_tags=tuple(tags),
                downloads=downloads,
                likes=likes,
            )
            return self._commit(key, "main", None, dict(files), "initial commit")

    def commit(
        self,
        repo_id: str,
        files: Mapping[str, bytes] | None = None,
        deletions: Iterable[str] = (),
        *,
        revision: str = "main",
        message: str = "Commit by someone else",
        repo_type: str = "model",
    ) -> str:
        """Commit to ``revision`` behind the client's back (a concurrent writer); return its sha."""
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            head = repo.refs[revision]
            tree = dict(repo.commits[head].files)
            for path in deletions:
                tree.pop(path, None)
            tree.update(files or {})
            return self._commit(_key(repo_type, repo_id), revision, head, tree, message)

    def grant_access(self, repo_id: str, user: str) -> None:
        """Let ``user`` download from gated ``repo_id``."""
        with self._lock:
            self._repo(repo_id).allowed.add(user)

    def head(self, repo_id: str, revision: str = "main", *, repo_type: str = "model") -> str:
        """The sha ``revision`` (branch or ``refs/pr/N``) points to."""
        with self._lock:
            return self._repo(repo_id, repo_type).refs[revision]

    def files(
        self, repo_id: str, revision: str = "main", *, repo_type: str = "model"
    ) -> dict[str, bytes]:
        """The tree at ``revision``: path -> content."""
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            return dict(repo.commits[self._resolve(repo, revision)].files)

    def _repo(self, repo_id: str, repo_type: str = "model") -> _Repo:
        try:
            return self._repos[_key(repo_type, repo_id)]
        except KeyError:
            raise KeyError(f"No such {repo_type} repo on the FakeHub: {repo_id}") from None

    def _commit(
        self, key: str, ref: str, parent: str | None, tree: dict[str, bytes], message: str
    ) -> str:
        """Record a commit of the repo stored at ``key`` (see ``_key``) whose whole tree is
        ``tree``, and point ``ref`` at it."""
        repo = self._repos[key]
        seed = f"{key}\0{parent}\0{message}\0{next(self._counter)}\0{os.getpid()}"
        sha = hashlib.sha1(seed.encode()).hexdigest()
        repo.commits[sha] = _Commit(sha, parent, tree, message, datetime.now(timezone.utc))
        repo.refs[ref] = sha
        return sha

    def _resolve(self, repo: _Repo, revision: str) -> str:
        """A branch, ``refs/pr/N``, full sha or unique sha prefix (7+) -> sha."""
        if revision in repo.refs:
            return repo.refs[revision]
        if revision in repo.commits:
            return revision
        if len(revision) >= 7:
            found = [sha for sha in repo.commits if sha.startswith(revision)]
            if len(found) == 1:
                return found[0]
        raise _HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")

    # -- request handling --------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> _Response:
        """Answer one request (``target`` is the raw path with its query)."""
        split = urlsplit(target)
        with self._lock:
            self._requests.append((method, split.path))
            failure = self._take_failure(method, split.path)
            if failure is not None and failure.drip is None:
                return failure
            try:
                response = self._route(method, split.path, parse_qs(split.query), headers, body)
            except _HubError as error:
                response = error.response()
            except Exception:  # a FakeHub bug: answer it instead of dropping the connection
                self.server_errors.append(traceback.format_exc())
                return _HubError(500, f"FakeHub crashed:\n{self.server_errors[-1]}").response()
            if failure is not None:  # drip-feed the answer
                response.drip = failure.drip
            return response

    def _take_failure(self, method: str, path: str) -> _Response | None:
        for failure in self._failures:
            if path.startswith(failure.path_prefix) and failure.method in (None, method):
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._failures.remove(failure)
                if failure.kind == "reset":
                    return _Response(0, reset=True)
                if failure.kind == "drip":
                    return _Response(0, drip=failure.interval)
                headers = {}
                if failure.status == 429 and failure.retry_after is not None:
                    headers["Retry-After"] = str(failure.retry_after)
                phrase = HTTPStatus(failure.status).phrase
                return _HubError(failure.status, f"FakeHub injected {phrase}", **headers).response()
        return None

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> _Response:
        parts = [unquote(part) for part in path.strip("/").split("/")]
        user = self._user(headers)
        if parts[0] == "api" and len(parts) > 1:
            route = (method, parts[1])
            if route == ("GET", "whoami-v2"):
                return self._whoami(user)
            if route == ("GET", "agent-harnesses"):  # fetched by the client's user-agent builder
                return _json(200, {"standardEnvVars": [], "harnesses": {}})
            if route == ("POST", "validate-yaml"):
                return self._validate_yaml(headers, body)
            if route == ("POST", "repos") and parts[2:] == ["create"]:
                return self._create_repo(user, json.loads(body or b"{}"))
            if route == ("GET", "models") and len(parts) == 2:
                return self._list_models(user, query)
            if parts[1] in ("models", "datasets") and len(parts) > 2:
                repo_type = parts[1][:-1]
                repo_id, rest = self._split_repo(parts[2:], repo_type)
                return self._repo_api(method, user, repo_type, repo_id, rest, query, body)
        elif "resolve" in parts and method in ("GET", "HEAD"):
            repo_type = "dataset" if parts[0] == "datasets" else "model"
            if repo_type != "model":
                parts = parts[1:]
            at = parts.index("resolve")
            if 0 < at <= 2 and len(parts) > at + 2:
                repo_id = "/".join(parts[:at])
                revision, filename = parts[at + 1], "/".join(parts[at + 2 :])
                return self._resolve_file(
                    method, user, repo_type, repo_id, revision, filename, headers
                )
        raise _HubError(501, f"FakeHub does not implement {method} {path}")

    def _split_repo(self, parts: list[str], repo_type: str) -> tuple[str, list[str]]:
        """Split ``["ns", "name", "commit", "main"]`` into the repo id and the rest."""
        if len(parts) >= 2 and _key(repo_type, "/".join(parts[:2])) in self._repos:
            return "/".join(parts[:2]), parts[2:]
        if _key(repo_type, parts[0]) in self._repos:
            return parts[0], parts[1:]
        return "/".join(parts[:2]), parts[2:]

    def _repo_api(
        self,
        method: str,
        user: HubUser | None,
        repo_type: str,
        repo_id: str,
        rest: list[str],
        query: dict[str, list[str]],
        body: bytes,
    ) -> _Response:
        if method == "GET" and not rest:
            return self._repo_info(user, repo_type, repo_id, "main", query)
        if method == "GET" and len(rest) == 2 and rest[0] == "revision":
            return self._repo_info(user, repo_type, repo_id, rest[1], query)
        if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
            return self._tree(user, repo_type, repo_id, rest[1], "/".join(rest[2:]), query)
        if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
            payload = json.loads(body or b"{}")
            return self._preupload(user, repo_type, repo_id, rest[1], payload)
        if method == "POST" and len(rest) == 2 and rest[0] == "commit":
            return self._create_commit(user, repo_type, repo_id, rest[1], query, body)
        raise _HubError(501, f"FakeHub does not implement {method} /api/{repo_type}s/{repo_id}/...")

    # -- auth --------------------------------------------------------------------------------

    def _user(self, headers: Mapping[str, str]) -> HubUser | None:
        auth = headers.get("authorization")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise _HubError(401, _BAD_TOKEN)
        return self.tokens[token]

    def _readable(self, user: HubUser | None, repo_id: str, repo_type: str = "model") -> _Repo:
        """The repo, or the Hub's RepoNotFound answer (missing and private look the same)."""
        repo = self._repos.get(_key(repo_type, repo_id))
        if repo is not None and (not repo.private or (user and user.can_write(repo_id))):
            return repo
        if user is None:
            raise _HubError(401, "Invalid username or password.", code="RepoNotFound")
        raise _HubError(404, "Repository not found", code="RepoNotFound")

    def _writable(self, user: HubUser | None, repo_id: str, repo_type: str = "model") -> _Repo:
        if user is None:
            raise _HubError(401, "Invalid username or password.", code="RepoNotFound")
        repo = self._readable(user, repo_id, repo_type)
        if not user.can_write(repo_id):
            raise _HubError(403, "You don't have the rights to create a commit in this repo")
        return repo

    def _whoami(self, user: HubUser | None) -> _Response:
        if user is None:
            raise _HubError(401, _BAD_TOKEN)
        orgs = [{"type": "org", "name": org, "roleInOrg": "write"} for org in user.orgs]
        return _json(
            200,
            {
                "type": "user",
                "id": hashlib.sha1(user.name.encode()).hexdigest()[:24],
                "name": user.name,
                "fullname": user.name,
                "orgs": orgs,
                "auth": {"type": "access_token", "accessToken": {"role": "write"}},
            },
        )

    # -- repos -------------------------------------------------------------------------------

    def _create_repo(self, user: HubUser | None, payload: dict[str, Any]) -> _Response:
        if user is None:
            raise _HubError(401, "You must be authenticated to create a repo")
        repo_type = payload.get("type") or "model"
        if repo_type not in ("model", "dataset"):
            raise _HubError(400, "FakeHub only serves model and dataset repos")
        name = payload.get("name") or ""
        namespace = payload.get("organization") or user.name
        repo_id = f"{namespace}/{name}"
        if not re.fullmatch(r"[\w.-]+", name) or not user.can_write(repo_id):
            raise _HubError(
                403,
                f"You don't have the rights to create a {repo_type} under the namespace "
                f'"{namespace}"',
            )
        url = self._url(repo_type, repo_id)
        key = _key(repo_type, repo_id)
        if key in self._repos:
            return _json(409, {"error": f"You already created this {repo_type} repo", "url": url})
        self._repos[key] = _Repo(
            repo_id,
            created_at=datetime.now(timezone.utc),
            repo_type=repo_type,
            private=payload.get("visibility") == "private" or bool(payload.get("private")),
        )
        files = {".gitattributes": _GITATTRIBUTES.encode()}
        self._commit(key, "main", None, files, "initial commit")
        return _json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _url(self, repo_type: str, repo_id: str) -> str:
        """The repo's web page, as the Hub links it."""
        return f"{self.endpoint}/{_key(repo_type, repo_id)}"

    def _info(self, repo: _Repo, sha: str, *, blobs: bool) -> dict[str, Any]:
        """Every property of the repo at commit ``sha``, named as the Hub names them."""
        commit = repo.commits[sha]
        card = _card_data(commit.files)
        tags = [*repo.extra_tags, *_as_list((card or {}).get("tags"))]
        library_name = (card or {}).get("library_name")
        tags += _as_list(library_name) + [
            f"license:{x}" for x in _as_list((card or {}).get("license"))
        ]
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": sha,
            "lastModified": _iso(commit.date),
            "createdAt": _iso(repo.created_at),
            "private": repo.private,
            "gated": "auto" if repo.gated else False,
            "disabled": False,
            "downloads": repo.downloads,
            "likes": repo.likes,
            "trendingScore": 0,
            "tags": list(dict.fromkeys(tags)),
            "library_name": library_name,
            "pipeline_tag": (card or {}).get("pipeline_tag"),
            "siblings": [self._sibling(p, d, blobs=blobs) for p, d in sorted(commit.files.items())],
            "usedStorage": sum(len(data) for data in commit.files.values()),
        }
        if card is not None:
            info["cardData"] = card
        return info

    @staticmethod
    def _sibling(path: str, data: bytes, *, blobs: bool) -> dict[str, Any]:
        if not blobs:
            return {"rfilename": path}
        if not _is_lfs(path, data):
            return {"rfilename": path, "size": len(data), "blobId": _git_sha1(data)}
        pointer = _lfs_pointer(data)
        return {
            "rfilename": path,
            "size": len(data),
            "blobId": _git_sha1(pointer),
            "lfs": {
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "pointerSize": len(pointer),
            },
        }

    @staticmethod
    def _select(info: dict[str, Any], query: dict[str, list[str]], default: set[str]) -> dict:
        """Keep the properties ``expand`` asks for (``_id`` and ``id`` always), else ``default``."""
        expand = query.get("expand", []) + query.get("expand[]", [])
        if expand:
            unknown = sorted(set(expand) - _EXPANDABLE)
            if unknown:
                raise _HubError(400, f"Invalid expand value(s): {', '.join(unknown)}")
            keep = set(expand)
        else:
            keep = default
        return {k: v for k, v in info.items() if k in keep or k in ("_id", "id")}

    def _repo_info(
        self,
        user: HubUser | None,
        repo_type: str,
        repo_id: str,
        revision: str,
        query: dict[str, list[str]],
    ) -> _Response:
        repo = self._readable(user, repo_id, repo_type)
        sha = self._resolve(repo, revision)
        info = self._info(repo, sha, blobs=_flag(query, "blobs"))
        return _json(200, self._select(info, query, default=set(info)))

    def _list_models(self, user: HubUser | None, query: dict[str, list[str]]) -> _Response:
        filters = set(query.get("filter", []))
        search = (query.get("search") or [""])[0].lower()
        author = (query.get("author") or [None])[0]
        gated = (query.get("gated") or [None])[0]
        matches = []
        for repo in self._repos.values():
            if repo.repo_type != "model":
                continue
            if repo.private and not (user and user.can_write(repo.repo_id)):
                continue
            info = self._info(repo, repo.refs["main"], blobs=False)
            if filters - set(info["tags"]) or search not in repo.repo_id.lower():
                continue
            if author is not None and info["author"] != author:
                continue
            if gated is not None and repo.gated != (gated.lower() == "true"):
                continue
            matches.append(info)
        sort = (query.get("sort") or [None])[0]
        if sort is not None:
            if sort not in _SORTABLE:
                raise _HubError(400, f"Invalid sort value: {sort}")
            matches.sort(key=lambda info: info[sort], reverse=True)

        default = {"likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag"}
        default |= {"library_name", "createdAt", "modelId"}
        if _flag(query, "full"):
            default |= {"author", "sha", "lastModified", "gated", "disabled", "siblings"}
        if _flag(query, "cardData") or _flag(query, "full"):
            default.add("cardData")
        start = int((query.get("cursor") or ["0"])[0])
        size = min(self.page_size, int((query.get("limit") or [self.page_size])[0]))
        page = [self._select(info, query, default) for info in matches[start : start + size]]
        headers = {}
        if start + size < len(matches):
            params = [(k, v) for k, values in query.items() if k != "cursor" for v in values]
            next_url = (
                f"{self.endpoint}/api/models?{urlencode([*params, ('cursor', start + size)])}"
            )
            headers["Link"] = f'<{next_url}>; rel="next"'
        return _json(200, page, headers)

    def _tree(
        self,
        user: HubUser | None,
        repo_type: str,
        repo_id: str,
        revision: str,
        folder: str,
        query: dict[str, list[str]],
    ) -> _Response:
        repo = self._readable(user, repo_id, repo_type)
        files = repo.commits[self._resolve(repo, revision)].files
        prefix = f"{folder}/" if folder else ""
        recursive = _flag(query, "recursive")
        entries: dict[str, dict[str, Any]] = {}
        for path, data in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                name = prefix + "/".join(parts[:depth])
                entries[name] = {"type": "directory", "oid": _git_sha1(name.encode()), "path": name}
            if recursive or len(parts) == 1:
                sibling = self._sibling(path, data, blobs=True)
                entries[path] = {
                    "type": "file",
                    "oid": sibling["blobId"],
                    "size": len(data),
                    "path": path,
                }
                if "lfs" in sibling:
                    lfs = sibling["lfs"]
                    entries[path]["lfs"] = {
                        "oid": lfs["sha256"],
                        "size": lfs["size"],
                        "pointerSize": lfs["pointerSize"],
                    }
        if folder and not entries:
            raise _HubError(404, f"{folder} does not exist on {revision}", code="EntryNotFound")
        return _json(200, list(entries.values()))

    # -- files -------------------------------------------------------------------------------

    def _resolve_file(
        self,
        method: str,
        user: HubUser | None,
        repo_type: str,
        repo_id: str,
        revision: str,
        filename: str,
        headers: Mapping[str, str],
    ) -> _Response:
        repo = self._readable(user, repo_id, repo_type)
        if repo.gated and not (user and (user.can_write(repo_id) or user.name in repo.allowed)):
            if user is None:
                message = (
                    f"Access to model {repo_id} is restricted. You must have access to it and be"
                    " authenticated to access it. Please log in."
                )
                raise _HubError(401, message, code="GatedRepo")
            message = (
                f"Access to model {repo_id} is restricted and you are not in the authorized list."
                f" Visit {self._url(repo_type, repo_id)} to ask for access."
            )
            raise _HubError(403, message, code="GatedRepo")
        sha = self._resolve(repo, revision)
        data = repo.commits[sha].files.get(filename)
        if data is None:
            raise _HubError(404, "Entry not found", code="EntryNotFound", **{"X-Repo-Commit": sha})
        out = {
            "X-Repo-Commit": sha,
            "Accept-Ranges": "bytes",
            "Content-Type": mimetypes.guess_type(filename)[0] or "application/octet-stream",
        }
        if _is_lfs(filename, data):
            etag = hashlib.sha256(data).hexdigest()
            out.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        else:
            etag = _git_sha1(data)
        out["ETag"] = f'"{etag}"'
        status, content = 200, data
        if headers.get("range") and method == "GET":
            first, last = _byte_range(headers["range"], len(data))
            status, content = 206, data[first : last + 1]
            out["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        if method == "GET":
            self._downloads += 1
            repo.downloads += 1
        return _Response(status, content, out)

    # -- commits -----------------------------------------------------------------------------

    def _preupload(
        self,
        user: HubUser | None,
        repo_type: str,
        repo_id: str,
        revision: str,
        payload: dict[str, Any],
    ) -> _Response:
        repo = self._writable(user, repo_id, repo_type)
        tree = repo.commits[self._resolve(repo, revision)].files
        files = []
        for entry in payload.get("files", []):
            current = tree.get(entry["path"])
            files.append(
                {
                    "path": entry["path"],
                    # "regular": the client puts the content in the commit payload (no LFS/Xet)
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": _git_sha1(current) if current is not None else None,
                }
            )
        return _json(200, {"files": files, "commitOid": self._resolve(repo, revision)})

    def _create_commit(
        self,
        user: HubUser | None,
        repo_type: str,
        repo_id: str,
        revision: str,
        query: dict[str, list[str]],
        body: bytes,
    ) -> _Response:
        repo = self._writable(user, repo_id, repo_type)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        if revision not in repo.refs:
            raise _HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        head = repo.refs[revision]
        parent = header.get("parentCommit")
        create_pr = _flag(query, "create_pr")
        if parent is not None and not create_pr and not head.startswith(parent):
            raise _HubError(412, _PARENT_MOVED)
        base = self._resolve(repo, parent) if parent is not None and create_pr else head

        tree = dict(repo.commits[base].files)
        for line in lines:  # operations apply in order, as on the Hub
            key, value = line["key"], line["value"]
            if key == "file":
                tree[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if tree.pop(value["path"], None) is None:
                    raise _HubError(
                        404, "A file with this name doesn't exist", code="EntryNotFound"
                    )
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                tree = {path: data for path, data in tree.items() if not path.startswith(prefix)}
            elif key == "lfsFile":
                raise _HubError(400, "FakeHub stores no LFS objects: preupload answers 'regular'")
            elif key != "header":
                raise _HubError(400, f"Unknown commit operation: {key}")
        message = header.get("summary") or "Update"
        payload: dict[str, Any] = {"success": True, "hookOutput": ""}
        if create_pr:
            repo.pull_requests += 1
            ref = f"refs/pr/{repo.pull_requests}"
            url = self._url(repo_type, repo_id)
            payload["pullRequestUrl"] = f"{url}/discussions/{repo.pull_requests}"
        else:
            ref = revision
        sha = self._commit(_key(repo_type, repo_id), ref, base, tree, message)
        payload["commitOid"] = sha
        payload["commitUrl"] = f"{self._url(repo_type, repo_id)}/commit/{sha}"
        return _json(200, payload)

    # -- cards -------------------------------------------------------------------------------

    @staticmethod
    def _validate_yaml(headers: Mapping[str, str], body: bytes) -> _Response:
        content = json.loads(body or b"{}").get("content", "")
        match = _YAML_BLOCK.search(content)
        error = None
        if match is not None:
            try:
                data = yaml.safe_load(match.group(2))
            except yaml.YAMLError as e:
                error = f"Invalid YAML in README.md metadata: {e}"
            else:
                if data is not None and not isinstance(data, dict):
                    error = "README.md metadata must be a YAML mapping"
        if "text/plain" in headers.get("accept", ""):
            return _Response(
                400 if error else 200, (error or "").encode(), {"Content-Type": "text/plain"}
            )
        if error:
            return _json(400, {"errors": [{"message": error}], "warnings": [], "error": error})
        return _json(200, {"errors": [], "warnings": []})


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[0].lower() in ("1", "true")


def _byte_range(spec: str, size: int) -> tuple[int, int]:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` -> (first, last) byte; 416 if unsatisfiable."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", spec)
    if match is not None and match.group(1):
        first = int(match.group(1))
        last = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    elif match is not None and match.group(2):
        first, last = max(size - int(match.group(2)), 0), size - 1
    else:
        first, last = 0, -1
    if first > last:
        raise _HubError(
            416, f"Range not satisfiable: {spec}", **{"Content-Range": f"bytes */{size}"}
        )
    return first, last


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client closing its keep-alive connection is no error worth a traceback on stderr
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, lets the FakeHub answer it, writes the answer (HTTP/1.1 keep-alive)."""

    hub: FakeHub
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end eventually

    def _serve(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.hub.handle(self.command, self.path, headers, body)
        if response.reset:
            # SO_LINGER 0: closing sends a TCP reset, not an orderly end of stream
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.drip is None:
            self.wfile.write(response.body)
            return
        self.close_connection = True
        for i in range(len(response.body)):
            self.wfile.write(response.body[i : i + 1])
            time.sleep(response.drip)

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class name
        pass


def use_endpoint(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, *, token: str | None = None
) -> None:
    """Point the in-process ``huggingface_hub`` client (and subprocesses) at ``endpoint``.

    ``huggingface_hub`` reads ``HF_ENDPOINT`` once, at import, into several module globals;
    this patches each of them, turns offline mode off (``tests/conftest.py`` turns it on), turns
    Xet and telemetry off and closes the shared HTTP client so the next request starts afresh.
    The environment variables are set too, for subprocesses.

    Args:
        monkeypatch (`pytest.MonkeyPatch`): undoes everything at the end of the test.
        endpoint (`str`): e.g. ``FakeHub.endpoint``.
        token (`str`, *optional*): the implicit token (``HF_TOKEN``) of every client call here
            and in subprocesses. None removes any ambient token (``HF_TOKEN``, the token file),
            so calls without ``token=`` are anonymous.
    """
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _http

    endpoint = endpoint.rstrip("/")
    host = urlsplit(endpoint).hostname
    env = {
        "HF_ENDPOINT": endpoint,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)  # HF_HUB_OFFLINE falls back to it
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)
    # a developer's saved login must not leak in: the token file moves under HF_HOME (a temp
    # folder in tests/conftest.py)
    token_path = os.path.join(constants.HF_HOME, "token")
    monkeypatch.setenv("HF_TOKEN_PATH", token_path)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", token_path)
    monkeypatch.setattr(
        constants, "HF_STORED_TOKENS_PATH", os.path.join(constants.HF_HOME, "stored_tokens")
    )
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        endpoint + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {host})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    # the module-level HfApi behind huggingface_hub.upload_file, model_info, ... (and ModelCard)
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    monkeypatch.setattr(_http, "_HUB_ORIGINS", _http._HUB_ORIGINS | {_http._url_origin(endpoint)})
    _http.close_session()
