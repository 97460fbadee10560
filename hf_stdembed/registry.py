"""Registries: where model repos, their cards and their embedding files live.

Every Hub interaction of hf-stdembed goes through a :class:`Registry`. Two implement it:

- :class:`HubRegistry`: the Hugging Face Hub (or any server speaking its API, such as a
  private Hub at ``HF_ENDPOINT``), through ``huggingface_hub``; it honours ``HF_ENDPOINT``,
  ``HF_TOKEN`` and ``HF_HUB_OFFLINE``.
- :class:`DirectoryRegistry`: a local folder laid out like Hub repos
  (``DIR/<org>/<name>/README.md``, ``DIR/<org>/<name>/stdembed/...``) for air-gapped use. A
  repo's "revision" is a hash of its files (see the class); commits write each file atomically.

Errors are the project's (:class:`~hf_stdembed.errors.RegistryError` and subclasses), each
carrying the repo id and saying how to fix the problem.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, TypeVar

import yaml

from . import __version__
from ._files import atomic_write
from ._yaml import MAX_YAML_BYTES
from .errors import (
    AuthError,
    ConcurrentUpdateError,
    FileTooLargeError,
    GatedRepoAccessError,
    InvalidCardError,
    RegistryError,
    RemoteFileNotFoundError,
    RepoNotFoundError,
    RepoRevisionNotFoundError,
)

T = TypeVar("T")

LIBRARY_NAME = "hf-stdembed"
logger = logging.getLogger(__name__)
_REPO_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", re.ASCII)
_LEGACY_REPO_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*", re.ASCII)  # no namespace ("gpt2")
_RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))
_MAX_RETRY_AFTER = 60.0
_SHA_RE = re.compile(r"[0-9a-f]{40}")
_MAX_LISTED_ID_CHARS = 200  # longer listed ids are skipped, not recorded
LISTING_TIMEOUT_ENV = "HF_STDEMBED_LISTING_TIMEOUT"
DEFAULT_LISTING_TIMEOUT = 60.0
"""Seconds one page of a Hub listing may take, whole (``$HF_STDEMBED_LISTING_TIMEOUT``)."""
MAX_LISTING_PAGE_BYTES = 256 * 1024 * 1024
"""Largest page of a Hub listing read."""
MAX_LISTED_CARD_DATA_CHARS = 2 * MAX_YAML_BYTES
"""Largest card metadata kept from a listing item, as compact JSON (a card's YAML is read up
to :data:`~hf_stdembed._yaml.MAX_YAML_BYTES`; its JSON can be somewhat longer)."""
_DEFAULT_BRANCHES = (None, "main")
INDEX_DATASET_FILE = "data/index.parquet"  # where `index push` puts the index in a dataset repo


@dataclass(frozen=True)
class RepoSummary:
    """One repo as a listing returns it."""

    repo_id: str
    sha: str  # the commit (Hub) or content hash (directory) the card data belongs to
    last_modified: str | None  # ISO 8601, when known
    card_data: dict  # the README's YAML front matter, as found; {} if none
    problem: str | None = None  # why the listing could not describe the repo (crawl records it)


@dataclass(frozen=True)
class CommitResult:
    """What a commit made: a commit on the branch, or a pull request."""

    commit_url: str | None
    pr_url: str | None  # set when the commit opened a pull request
    oid: str | None  # the new commit sha (Hub) or content hash (directory)


class Registry(Protocol):
    """Where model repos live: read cards and files, list tagged repos, commit files."""

    name: str  # for display: the endpoint URL or the directory

    def list_tagged(self, tag: str) -> Iterator[RepoSummary]:
        """Every model repo whose card has ``tag``, with its card data and revision."""
        ...

    def head(self, repo_id: str, *, revision: str | None = None) -> str:
        """The commit sha ``revision`` (default: the main branch) points to."""
        ...

    def read_text(self, repo_id: str, path: str, *, revision: str | None) -> str | None:
        """A text file of the repo at ``revision``; None when it does not exist."""
        ...

    def file_size(self, repo_id: str, path: str, *, revision: str | None) -> int | None:
        """The size in bytes of a file of the repo at ``revision``; None when it does not exist."""
        ...

    def download(self, repo_id: str, path: str, *, revision: str | None, max_bytes: int) -> Path:
        """A local path holding the file, refused before download when over ``max_bytes``."""
        ...

    def commit(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        message: str,
        parent_commit: str | None,
        create_pr: bool = False,
    ) -> CommitResult:
        """Add or replace ``files`` (path -> content) in one commit on top of ``parent_commit``."""
        ...

    def url(self, repo_id: str) -> str:
        """A link to the repo to show users."""
        ...


def open_registry(
    url_or_dir: str | os.PathLike[str] | None = None, *, token: str | None = None
) -> Registry:
    """The registry a ``--registry`` value names.

    Args:
        url_or_dir (`str`, *optional*): None for the Hub at the configured endpoint
            (``HF_ENDPOINT``), an ``http://`` or ``https://`` URL for a Hub at that endpoint,
            anything else for a local directory registry.
        token (`str`, *optional*): a Hub registry's token (default: ``HF_TOKEN`` or the saved
            login); a directory registry has none.

    Returns:
        `Registry`: a :class:`HubRegistry` or a :class:`DirectoryRegistry`.

    Raises:
        RegistryError: if a directory registry's folder does not exist.

    Example:
        ```py
        >>> open_registry(None).name
        'https://huggingface.co'
        >>> open_registry("/srv/models").name
        '/srv/models'
        ```
    """
    if url_or_dir is None:
        return HubRegistry(token=token)
    text = os.fspath(url_or_dir)
    if text.startswith(("http://", "https://")):
        return HubRegistry(endpoint=text.rstrip("/"), token=token)
    return DirectoryRegistry(Path(text).expanduser())


# =========================================================================================
# The Hub
# =========================================================================================


class HubRegistry:
    """The Hugging Face Hub (or a server speaking its API), through ``huggingface_hub``.

    Args:
        endpoint (`str`, *optional*): the Hub URL; defaults to ``HF_ENDPOINT`` (else
            ``https://huggingface.co``).
        token (`str`, *optional*): the token; defaults to ``HF_TOKEN`` or the saved login.
        max_attempts (`int`, defaults to 3): tries of a request the client does not retry
            itself (``model_info``, the commit, a listing page) on 429 / 5xx / connection
            errors.
        sleep (`Callable[[float], None]`, defaults to `time.sleep`): the backoff's sleep.
        listing_timeout (`float`, *optional*): seconds one page of :meth:`list_tagged` may
            take, whole; defaults to ``$HF_STDEMBED_LISTING_TIMEOUT``, else
            :data:`DEFAULT_LISTING_TIMEOUT`.

    Raises:
        RegistryError: ``$HF_STDEMBED_LISTING_TIMEOUT`` is not a positive number.

    Example:
        ```py
        >>> hub = HubRegistry()
        >>> sha = hub.head("timm/resnet18.a1_in1k")
        >>> hub.read_text("timm/resnet18.a1_in1k", "README.md", revision=sha)[:3]
        '---'
        ```
    """

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        *,
        max_attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        listing_timeout: float | None = None,
    ) -> None:
        from huggingface_hub import HfApi, constants

        if max_attempts < 1:
            raise ValueError(f"Invalid max_attempts value: {max_attempts} (must be >= 1)")
        self.endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
        self.name = self.endpoint
        self.token = token
        self.max_attempts = max_attempts
        self.listing_timeout = _listing_timeout(listing_timeout)
        self._sleep = sleep
        self.api = HfApi(
            endpoint=self.endpoint,
            token=token,
            library_name=LIBRARY_NAME,
            library_version=__version__,
        )

    def __repr__(self) -> str:
        return f"HubRegistry(endpoint={self.endpoint!r})"

    # -- reading -----------------------------------------------------------------------------

    def list_tagged(self, tag: str) -> Iterator[RepoSummary]:
        """Every model repo whose tags include ``tag`` (one request per page of results).

        Pages are read raw rather than through ``HfApi.list_models``: that builds a
        ``ModelCardData`` from every card, and one stranger's malformed card (``tags: 5``)
        raises inside the generator and ends the whole listing. They are not read through
        ``huggingface_hub.utils.paginate`` either: its ``http_backoff`` has no timeout (the
        shared client's is None), retries a refused connection 5 times over ~24 s, and
        sleeps whatever ``Retry-After`` asks (3600 s five times over).

        Each page is one request bounded in time (:attr:`listing_timeout`, for the whole
        page, checked as its body arrives, and for each network read) and in size
        (:data:`MAX_LISTING_PAGE_BYTES`). A 429 or 5xx is retried up to ``max_attempts``
        times, sleeping ``Retry-After`` (at most :data:`_MAX_RETRY_AFTER` s: a longer wait
        fails at once, saying so) or 1, 2, 4... s; a connection dropped mid-answer is retried
        likewise. A refused connection, a timeout or a stalled page fails at once.

        An item whose id the rest of the code would refuse, or whose card metadata is over
        :data:`MAX_LISTED_CARD_DATA_CHARS` of JSON, is yielded with ``problem`` set and no card
        data; an item without a commit sha, or with an id too long to record, is skipped with
        a logged warning.

        Raises:
            RegistryError: the endpoint cannot be reached (the message names ``--no-refresh``
                and ``HF_HUB_OFFLINE=1``), is too slow, rate-limits for too long, or refuses
                the listing.
        """
        from huggingface_hub.utils import build_hf_headers

        url: str | None = f"{self.endpoint}/api/models"
        params: dict[str, Any] | None = {
            "filter": [tag],
            "expand": ["sha", "lastModified", "cardData"],
        }
        headers = build_hf_headers(
            token=self.token, library_name=LIBRARY_NAME, library_version=__version__
        )
        while url is not None:
            page, url = self._listing_page(url, params, headers)
            params = None  # the next page's URL holds the query
            for item in page:
                summary = _listed_summary(item)
                if summary is not None:
                    yield summary

    def _listing_page(
        self, url: str, params: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[list, str | None]:
        """(one page of the listing, the next page's URL or None); see :meth:`list_tagged`."""
        import httpx2
        from huggingface_hub.errors import OfflineModeIsEnabled
        from huggingface_hub.utils import get_session, hf_raise_for_status

        offline_hint = (
            "to rank the local index without listing, pass --no-refresh to select, or set "
            "HF_HUB_OFFLINE=1"
        )
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                response = _read_page(
                    get_session(), url, params, headers, timeout=self.listing_timeout
                )
            except OfflineModeIsEnabled as e:  # raised by the client's request hook
                raise self._offline_error(None) from e
            except _PageTooLargeError as e:
                raise RegistryError(
                    f"{self.endpoint} sent a listing page of {e}, over the "
                    f"{MAX_LISTING_PAGE_BYTES} byte limit: not read; check the endpoint "
                    f"(HF_ENDPOINT or --registry), or {offline_hint}"
                ) from e
            except (_PageStalledError, httpx2.ReadTimeout, httpx2.WriteTimeout) as e:
                reason = _first_line(e) or f"nothing arrived for {self.listing_timeout:g} s"
                raise RegistryError(
                    f"{self.endpoint} took over {self.listing_timeout:g} s to send one page of "
                    f"the listing ({reason}): try again later, allow more time with "
                    f"{LISTING_TIMEOUT_ENV}=SECONDS, or {offline_hint}"
                ) from e
            except (httpx2.ConnectError, httpx2.TimeoutException) as e:
                reason = _first_line(e) or type(e).__name__
                raise RegistryError(
                    f"cannot reach {self.endpoint} ({reason}): check the network and the "
                    f"endpoint (HF_ENDPOINT or --registry); {offline_hint}"
                ) from e
            except httpx2.TransportError as e:  # connected, then dropped: worth another try
                if last:
                    raise RegistryError(
                        f"cannot reach {self.endpoint} ({_first_line(e)}): the connection "
                        f"broke {attempt} times; try again later, or {offline_hint}"
                    ) from e
                self._sleep(_retry_delay(e, attempt))
                continue
            if response.status_code in _RETRY_STATUSES:
                wanted = _retry_after(response)
                if wanted is not None and wanted > _MAX_RETRY_AFTER:
                    raise RegistryError(
                        f"{self.endpoint} rate-limits the listing and asks to wait {wanted:g} s "
                        f"(over the {_MAX_RETRY_AFTER:g} s this waits): try again later, or "
                        f"{offline_hint}"
                    )
                if not last:
                    self._sleep(_retry_delay(response, attempt))
                    continue
            with self._errors(None):
                hf_raise_for_status(response)
            try:
                page = json.loads(response.content)
            except (ValueError, RecursionError) as e:
                raise RegistryError(
                    f"{self.endpoint} sent a listing page that is not JSON ({_first_line(e)})"
                ) from e
            if not isinstance(page, list):
                raise RegistryError(f"{self.endpoint} sent a listing page that is not a list")
            return page, response.links.get("next", {}).get("url")
        raise AssertionError("unreachable")  # pragma: no cover

    def head(self, repo_id: str, *, revision: str | None = None) -> str:
        """The commit sha of ``revision`` (default: ``main``), via ``model_info``.

        Raises:
            RepoNotFoundError: no such repo (or private and not visible with this token).
            RepoRevisionNotFoundError: no such revision.
            RegistryError: the Hub cannot be reached, or offline mode is on.
        """
        _check_repo_id(repo_id, namespaced=False)
        info = self._retrying(repo_id, lambda: self.api.model_info(repo_id, revision=revision))
        if not info.sha:
            raise RegistryError(
                f"{self.endpoint} gave no commit sha for {repo_id}", repo_id=repo_id
            )
        return info.sha

    def read_text(self, repo_id: str, path: str, *, revision: str | None) -> str | None:
        """A text file at ``revision`` (downloaded into the Hub cache); None if it does not exist.

        Raises:
            RepoNotFoundError, RepoRevisionNotFoundError, GatedRepoAccessError, RegistryError.
        """
        _check_repo_id(repo_id, namespaced=False)
        try:
            with self._errors(repo_id):
                local = self.api.hf_hub_download(repo_id, path, revision=revision)
        except RemoteFileNotFoundError:
            return None
        return Path(local).read_text(encoding="utf-8")

    def file_size(self, repo_id: str, path: str, *, revision: str | None) -> int | None:
        """The file's size from a ``HEAD`` request; None if it does not exist."""
        from huggingface_hub import hf_hub_url

        _check_repo_id(repo_id, namespaced=False)
        url = hf_hub_url(repo_id, path, revision=revision, endpoint=self.endpoint)
        try:
            metadata = self._retrying(repo_id, lambda: self.api.get_hf_file_metadata(url=url))
        except RemoteFileNotFoundError:
            return None
        return metadata.size

    def download(self, repo_id: str, path: str, *, revision: str | None, max_bytes: int) -> Path:
        """Downloads a file into the normal Hub cache, after checking its size.

        Raises:
            RemoteFileNotFoundError: if the file does not exist at ``revision``.
            FileTooLargeError: if it is larger than ``max_bytes`` (nothing is downloaded).
        """
        size = self.file_size(repo_id, path, revision=revision)
        if size is None:
            raise RemoteFileNotFoundError(
                f"{repo_id} has no file {path} at revision {revision or 'main'}", repo_id=repo_id
            )
        _check_size(repo_id, path, size, max_bytes)
        with self._errors(repo_id):
            local = Path(self.api.hf_hub_download(repo_id, path, revision=revision))
        _check_size(repo_id, path, local.stat().st_size, max_bytes)
        return local

    def url(self, repo_id: str, *, repo_type: str = "model") -> str:
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return f"{self.endpoint}/{prefix}{repo_id}"

    # -- dataset repos: the shared index -----------------------------------------------------

    def push_index_dataset(
        self,
        repo_id: str,
        parquet: Path,
        *,
        private: bool = False,
        create_pr: bool = False,
    ) -> CommitResult:
        """Uploads an exported index (:meth:`EmbeddingIndex.export_parquet`) as a dataset repo.

        Creates the dataset repo if needed (``private`` applies only then), then makes one
        commit of ``data/index.parquet`` and a dataset card (``README.md``) whose metadata tags
        it ``hf-stdembed`` and points ``datasets.load_dataset(repo_id)`` at the parquet. A 429
        is retried, honouring ``Retry-After``.

        Args:
            repo_id (`str`): the dataset repo, ``org/name``.
            parquet (`Path`): the exported index.
            private (`bool`, defaults to False): create the repo private.
            create_pr (`bool`, defaults to False): open a pull request instead of committing.

        Returns:
            `CommitResult`: the commit (or pull request) made.

        Raises:
            AuthError: no token, or no write access (the message suggests ``--create-pr``).
            RepoNotFoundError: an invalid repo id.
            RegistryError: the Hub cannot be reached, or offline mode is on.
        """
        from huggingface_hub import CommitOperationAdd

        _check_repo_id(repo_id, namespaced=True)
        self._require_token(repo_id)
        card = index_dataset_card(parquet)
        errors = {"writing": True, "create_pr": create_pr, "repo_type": "dataset"}
        with self._errors(repo_id, **errors):
            self.api.create_repo(
                repo_id, repo_type="dataset", private=True if private else None, exist_ok=True
            )
        for attempt in range(1, self.max_attempts + 1):
            operations = [  # recreated on each try: create_commit mutates them
                CommitOperationAdd(INDEX_DATASET_FILE, str(parquet)),
                CommitOperationAdd("README.md", card.encode()),
            ]
            try:
                with self._errors(repo_id, **errors):
                    info = self.api.create_commit(
                        repo_id,
                        operations,
                        commit_message=f"Update the index ({LIBRARY_NAME} {__version__})",
                        repo_type="dataset",
                        create_pr=create_pr,
                    )
                return CommitResult(commit_url=info.commit_url, pr_url=info.pr_url, oid=info.oid)
            except RegistryError as e:
                if _status(e.__cause__) != 429 or attempt == self.max_attempts:
                    raise
                self._sleep(_retry_delay(e.__cause__, attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def download_index_dataset(self, repo_id: str, *, revision: str | None = None) -> Path:
        """Downloads the index a dataset repo holds (pushed by :meth:`push_index_dataset`).

        Args:
            repo_id (`str`): the dataset repo, ``org/name``.
            revision (`str`, *optional*): a branch, tag or commit; default the main branch.

        Returns:
            `Path`: the parquet file, in the Hub cache.

        Raises:
            RepoNotFoundError: no such dataset repo (or private and not visible).
            RemoteFileNotFoundError: the repo holds no ``data/index.parquet``.
            RepoRevisionNotFoundError, GatedRepoAccessError, RegistryError.
        """
        _check_repo_id(repo_id, namespaced=True)
        try:
            local = self._retrying(
                repo_id,
                lambda: self.api.hf_hub_download(
                    repo_id, INDEX_DATASET_FILE, repo_type="dataset", revision=revision
                ),
                repo_type="dataset",
            )
        except RemoteFileNotFoundError as e:
            raise RemoteFileNotFoundError(
                f"dataset {repo_id} has no {INDEX_DATASET_FILE} at revision {revision or 'main'}: "
                "push an index there with `hf-stdembed index push`",
                repo_id=repo_id,
            ) from e
        return Path(local)

    # -- writing -----------------------------------------------------------------------------

    def check_write(self, repo_id: str, *, create_pr: bool = False) -> None:
        """Fails early when a commit is bound to be refused: no token, or a repo outside
        the account's namespaces (one ``whoami`` request). Fine-grained tokens are not
        second-guessed: the commit itself decides.

        The ``whoami`` request is retried like other reads (a dropped connection, a 429).

        Raises:
            AuthError: no token, an invalid token, or a namespace the account cannot write to.
            RegistryError: the Hub cannot be reached (the message says to check the network).
        """
        token = self._require_token(repo_id)
        me = self._retrying(
            repo_id,
            lambda: self.api.whoami(token=token),
            writing=True,
            create_pr=create_pr,
        )
        if create_pr:
            return
        auth = me.get("auth") if isinstance(me.get("auth"), dict) else {}
        role = (auth.get("accessToken") or {}).get("role")
        if role == "fineGrained" or "/" not in repo_id:
            return
        namespaces = {me.get("name")} | {o.get("name") for o in me.get("orgs") or []}
        namespace = repo_id.split("/")[0]
        if role == "read":
            raise AuthError(
                f"the token of {me.get('name')} is read-only: create a write token at "
                f"{self.endpoint}/settings/tokens and log in with it (`hf auth login`)",
                repo_id=repo_id,
            )
        if namespace not in namespaces:
            raise AuthError(
                f"{me.get('name')} cannot write to {repo_id} ({namespace!r} is neither the "
                "account nor one of its organisations); open a pull request instead with "
                "--create-pr",
                repo_id=repo_id,
            )

    def commit(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        message: str,
        parent_commit: str | None,
        create_pr: bool = False,
    ) -> CommitResult:
        """One ``HfApi.create_commit`` adding ``files``, on top of ``parent_commit``.

        A 429 is retried (the server refused, nothing was committed), honouring
        ``Retry-After``. After a 5xx or a lost connection the commit may or may not have
        happened, so it is retried only once the head is seen unmoved; a head that moved to a
        commit holding exactly our files is our commit, and is returned. Pull requests are not
        retried after a 5xx (a second try could open a second one).

        Raises:
            AuthError: no token, or no write access (the message suggests ``--create-pr``).
            ConcurrentUpdateError: the branch moved away from ``parent_commit``.
            RepoNotFoundError, GatedRepoAccessError, RegistryError.
        """
        from huggingface_hub import CommitOperationAdd

        _check_repo_id(repo_id, namespaced=False)
        self._require_token(repo_id)
        for attempt in range(1, self.max_attempts + 1):
            operations = [CommitOperationAdd(path, data) for path, data in files.items()]
            try:
                with self._errors(repo_id, writing=True, create_pr=create_pr):
                    info = self.api.create_commit(
                        repo_id,
                        operations,
                        commit_message=message,
                        parent_commit=parent_commit,
                        create_pr=create_pr,
                    )
                return CommitResult(commit_url=info.commit_url, pr_url=info.pr_url, oid=info.oid)
            except RegistryError as e:
                cause = e.__cause__
                status = _status(cause)
                last = attempt == self.max_attempts
                if status == 429 and not last:
                    self._sleep(_retry_delay(cause, attempt))
                    continue
                lost = status is not None and status >= 500 or _is_network_error(cause)
                if not lost or create_pr or last:
                    raise
                landed = self._landed(repo_id, files, parent_commit)
                if landed is not None:
                    return landed
                self._sleep(_retry_delay(cause, attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _landed(
        self, repo_id: str, files: Mapping[str, bytes], parent_commit: str | None
    ) -> CommitResult | None:
        """After a lost commit answer: our commit if the head holds it, None if it is safe to
        retry (the head has not moved, or no parent was pinned and our files are not there)."""
        head = self.head(repo_id)
        if parent_commit is not None and head.startswith(parent_commit):
            return None
        if self._holds(repo_id, files, head):
            return CommitResult(
                commit_url=f"{self.url(repo_id)}/commit/{head}", pr_url=None, oid=head
            )
        if parent_commit is not None:
            raise ConcurrentUpdateError(
                f"{repo_id} changed while our commit's answer was lost (head is now {head})",
                repo_id=repo_id,
            )
        return None

    def _holds(self, repo_id: str, files: Mapping[str, bytes], revision: str) -> bool:
        """Whether ``revision`` holds exactly ``files``: blob ids compared, nothing downloaded."""
        from huggingface_hub.hf_api import RepoFile

        folders = {str(PurePosixPath(path).parent) for path in files}
        found: dict[str, RepoFile] = {}
        with self._errors(repo_id):
            for folder in folders:
                tree = self.api.list_repo_tree(
                    repo_id, path_in_repo=None if folder == "." else folder, revision=revision
                )
                found.update({e.path: e for e in tree if isinstance(e, RepoFile)})
        for path, data in files.items():
            entry = found.get(path)
            if entry is None:
                return False
            if entry.lfs is not None:
                if entry.lfs.sha256 != hashlib.sha256(data).hexdigest():
                    return False
            elif entry.blob_id != _git_blob_id(data):
                return False
        return True

    # -- errors and retries ------------------------------------------------------------------

    def _require_token(self, repo_id: str) -> str:
        from huggingface_hub import get_token

        token = self.token or get_token()
        if not token:
            raise AuthError(
                f"no Hugging Face token: log in with `hf auth login` or set HF_TOKEN to a token "
                f"with write access to {repo_id}",
                repo_id=repo_id,
            )
        return token

    def _retrying(
        self,
        repo_id: str,
        call: Callable[[], T],
        *,
        repo_type: str = "model",
        writing: bool = False,
        create_pr: bool = False,
    ) -> T:
        """``call`` with a bounded backoff on 429 / 5xx / connection errors (safe: reads only;
        ``writing`` and ``create_pr`` only word its errors for a write to come)."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                with self._errors(
                    repo_id, repo_type=repo_type, writing=writing, create_pr=create_pr
                ):
                    return call()
            except RegistryError as e:
                status = _status(e.__cause__)
                transient = status in _RETRY_STATUSES or _is_network_error(e.__cause__)
                if not transient or attempt == self.max_attempts:
                    raise
                self._sleep(_retry_delay(e.__cause__, attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def _errors(
        self,
        repo_id: str | None,
        *,
        writing: bool = False,
        create_pr: bool = False,
        repo_type: str = "model",
    ) -> Iterator[None]:
        """Turns ``huggingface_hub`` and network errors into the project's."""
        import httpx2
        from huggingface_hub.errors import (
            HfHubHTTPError,
            HFValidationError,
            LocalEntryNotFoundError,
            OfflineModeIsEnabled,
        )

        try:
            yield
        except HfHubHTTPError as e:
            raise self._translate(
                e, repo_id, writing=writing, create_pr=create_pr, repo_type=repo_type
            ) from e
        except OfflineModeIsEnabled as e:
            raise self._offline_error(repo_id) from e
        except LocalEntryNotFoundError as e:  # the Hub could not be reached and no cached copy
            raise RegistryError(
                f"cannot reach {self.endpoint} (and the file is not in the local cache): {e}",
                repo_id=repo_id,
            ) from e
        except (httpx2.TransportError, ConnectionError) as e:
            reason = _first_line(e) or type(e).__name__
            raise RegistryError(
                f"cannot reach {self.endpoint} ({reason}): check the network and the endpoint "
                "(HF_ENDPOINT or --registry), then try again",
                repo_id=repo_id,
            ) from e
        except HFValidationError as e:
            raise RegistryError(f"invalid repo id or revision: {e}", repo_id=repo_id) from e
        except ValueError as e:
            if "Invalid metadata in README.md" in str(e):
                from .errors import InvalidCardError

                raise InvalidCardError(f"the Hub refused the card: {e}", repo_id=repo_id) from e
            raise

    def _offline_error(self, repo_id: str | None) -> RegistryError:
        return RegistryError(
            f"HF_HUB_OFFLINE is set, so {self.endpoint} cannot be reached: unset it, or use "
            "a directory registry (--registry DIR)",
            repo_id=repo_id,
        )

    def _translate(
        self,
        e: Exception,
        repo_id: str | None,
        *,
        writing: bool,
        create_pr: bool,
        repo_type: str = "model",
    ) -> RegistryError:
        from huggingface_hub.errors import (
            GatedRepoError,
            RemoteEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        status = _status(e)
        where = repo_id or self.endpoint
        server = _server_message(e)
        if isinstance(e, GatedRepoError):
            return GatedRepoAccessError(
                f"{where} is gated: accept its conditions at "
                f"{self.url(where, repo_type=repo_type)}, then log in "
                "with that account (`hf auth login`) or set HF_TOKEN",
                repo_id=repo_id,
            )
        if writing and status == 403:
            if create_pr:
                return AuthError(
                    f"cannot open a pull request on {where} ({server}): check the token's "
                    "permissions",
                    repo_id=repo_id,
                )
            return AuthError(
                f"no write access to {where} ({server}); open a pull request instead with "
                "--create-pr",
                repo_id=repo_id,
            )
        if isinstance(e, RepositoryNotFoundError) or (writing and status == 401):
            if writing and status == 401 and self.token is None:
                from huggingface_hub import get_token

                if not get_token():
                    return AuthError(
                        "no Hugging Face token: log in with `hf auth login` or set HF_TOKEN",
                        repo_id=repo_id,
                    )
            if isinstance(e, RepositoryNotFoundError) and repo_type == "dataset":
                return RepoNotFoundError(
                    f"no dataset repo {where} on {self.endpoint} (if it is private, log in with "
                    "an account that can see it: `hf auth login` or HF_TOKEN)",
                    repo_id=repo_id,
                )
            if isinstance(e, RepositoryNotFoundError):
                return RepoNotFoundError(
                    f"no model repo {where} on {self.endpoint} (if it is private, log in with an "
                    "account that can see it: `hf auth login` or HF_TOKEN)",
                    repo_id=repo_id,
                )
        if isinstance(e, RevisionNotFoundError):
            return RepoRevisionNotFoundError(
                f"{where} has no such revision ({server}); give an existing branch, tag or commit",
                repo_id=repo_id,
            )
        if isinstance(e, RemoteEntryNotFoundError):
            return RemoteFileNotFoundError(f"{where}: file not found ({server})", repo_id=repo_id)
        if status == 412:
            return ConcurrentUpdateError(
                f"{where} changed since it was read ({server})", repo_id=repo_id
            )
        if status == 401:
            return AuthError(
                f"{self.endpoint} refused the token ({server}): log in again with "
                "`hf auth login` or set HF_TOKEN to a valid token",
                repo_id=repo_id,
            )
        return RegistryError(
            f"{self.endpoint} answered {status} for {where}: {server}", repo_id=repo_id
        )


def open_hub(url: str | None = None, *, token: str | None = None) -> HubRegistry:
    """The Hub a ``--registry`` value names (with ``token``, default the saved login), for
    commands that need dataset repos.

    Raises:
        RegistryError: if ``url`` names a local directory (it holds no dataset repos).
    """
    registry = open_registry(url, token=token)
    if not isinstance(registry, HubRegistry):
        raise RegistryError(
            f"a directory registry ({registry.name}) holds no dataset repos: give a Hub URL "
            "(--registry http://...) or leave --registry out, or move the index with "
            "`index export` / `index import`"
        )
    return registry


def index_dataset_card(parquet: Path) -> str:
    """The dataset card (``README.md``) of an index pushed by ``index push``.

    Its metadata tags it ``hf-stdembed`` and declares ``data/index.parquet`` as the default
    config, so ``datasets.load_dataset(repo_id)`` reads it; the text counts the rows of each
    standard.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(parquet, columns=["standard_id", "standard_hash"])
    grouped = table.group_by(["standard_id", "standard_hash"]).aggregate([([], "count_all")])
    counts = {
        (row["standard_id"], row["standard_hash"]): row["count_all"] for row in grouped.to_pylist()
    }
    metadata = {
        "tags": [LIBRARY_NAME],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": INDEX_DATASET_FILE}],
            }
        ],
    }
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {LIBRARY_NAME} index",
        "",
        f"Published standard embeddings of models, one row per (model repo, standard): the "
        f"repo, the commit and file they were read from, the fidelities `l_to` / `l_from` and "
        f"the vector (`embedding`). Written by {LIBRARY_NAME} {__version__} "
        f"(`hf-stdembed index push`); read it into a local index with "
        f"`hf-stdembed index pull REPO_ID`.",
        "",
        f"{table.num_rows} rows:",
        "",
        "| standard | hash | rows |",
        "|---|---|---|",
        *(f"| {sid} | `{sh}` | {n} |" for (sid, sh), n in sorted(counts.items())),
        "",
    ]
    return "\n".join(lines)


class _PageStalledError(Exception):
    """A listing page did not arrive whole within its time."""


class _PageTooLargeError(Exception):
    """A listing page is larger than :data:`MAX_LISTING_PAGE_BYTES`."""


def _read_page(
    client: Any,
    url: str,
    params: dict[str, Any] | None,
    headers: dict[str, str],
    *,
    timeout: float,
) -> Any:
    """``GET url`` read whole within ``timeout`` seconds and :data:`MAX_LISTING_PAGE_BYTES`.

    ``timeout`` bounds each network operation (connect, each read) and, checked as the body
    arrives, the whole answer: a server that sends a byte now and then cannot stall it. The
    answer is returned as an ``httpx2.Response`` holding the body read.

    Raises:
        _PageStalledError: the body took longer.
        _PageTooLargeError: the body is larger than the limit.
        httpx2.TransportError: the connection failed (refused, timed out, dropped).
    """
    import httpx2

    deadline = time.monotonic() + timeout
    with client.stream(
        "GET", url, params=params, headers=headers, timeout=httpx2.Timeout(timeout)
    ) as streamed:
        declared = streamed.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_LISTING_PAGE_BYTES:
            raise _PageTooLargeError(f"{declared} bytes")
        chunks, size = [], 0
        for chunk in streamed.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_LISTING_PAGE_BYTES:
                raise _PageTooLargeError(f"over {MAX_LISTING_PAGE_BYTES} bytes")
            if time.monotonic() > deadline:
                raise _PageStalledError(f"{size} bytes had arrived")
        skip = {"content-encoding", "content-length", "transfer-encoding"}  # the body is decoded
        return httpx2.Response(
            streamed.status_code,
            headers=[(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in skip],
            content=b"".join(chunks),
            request=streamed.request,
        )


def _listed_summary(item: Any) -> RepoSummary | None:
    """A listing item as a summary; one it cannot describe gets ``problem``; None: skipped."""
    if not isinstance(item, dict):
        return None
    repo_id, sha = item.get("id"), item.get("sha")
    if not isinstance(repo_id, str) or not isinstance(sha, str):
        return None  # not a model the API describes fully: nothing to read at a revision
    if len(repo_id) > _MAX_LISTED_ID_CHARS or not _SHA_RE.fullmatch(sha):
        logger.warning(
            "skipping a listed repo: id %r (%d characters) at commit %r",
            repo_id[:100],
            len(repo_id),
            sha[:100],
        )
        return None
    modified = item.get("lastModified")
    modified = modified if isinstance(modified, str) and len(modified) <= 64 else None
    try:
        _check_repo_id(repo_id, namespaced=False)
    except RepoNotFoundError as e:
        return RepoSummary(repo_id, sha, modified, {}, problem=f"the listing gave an {e}")
    card_data = item.get("cardData")
    card_data = card_data if isinstance(card_data, dict) else {}
    size = len(json.dumps(card_data, separators=(",", ":"), ensure_ascii=False))
    if size > MAX_LISTED_CARD_DATA_CHARS:
        problem = (
            f"its card metadata is {size} characters of JSON, over the "
            f"{MAX_LISTED_CARD_DATA_CHARS} limit: not read"
        )
        return RepoSummary(repo_id, sha, modified, {}, problem=problem)
    return RepoSummary(repo_id, sha, modified, card_data)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ""


def _listing_timeout(seconds: float | None) -> float:
    """``seconds``, else ``$HF_STDEMBED_LISTING_TIMEOUT``, else the default; checked > 0."""
    if seconds is None:
        text = os.environ.get(LISTING_TIMEOUT_ENV, "").strip()
        try:
            seconds = float(text) if text else DEFAULT_LISTING_TIMEOUT
        except ValueError:
            seconds = float("nan")
        if not seconds > 0 or seconds == float("inf"):
            raise RegistryError(
                f"{LISTING_TIMEOUT_ENV}={text!r} is not a number of seconds: set it to a "
                f"positive number (default {DEFAULT_LISTING_TIMEOUT:g}) or unset it"
            )
    elif not seconds > 0:
        raise ValueError(f"Invalid listing_timeout value: {seconds} (must be > 0)")
    return float(seconds)


def _status(e: BaseException | None) -> int | None:
    response = getattr(e, "response", None)
    return getattr(response, "status_code", None)


def _server_message(e: Exception) -> str:
    message = getattr(e, "server_message", None)
    return message or str(e).splitlines()[0]


def _is_network_error(e: BaseException | None) -> bool:
    import httpx2

    return isinstance(e, (httpx2.TransportError, ConnectionError))


def _retry_after(source: Any) -> float | None:
    """The ``Retry-After`` seconds of a response (or of an error's response), if any."""
    response = getattr(source, "response", source)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return max(seconds, 0.0) if seconds == seconds else None  # NaN: none


def _retry_delay(source: Any, attempt: int) -> float:
    """``Retry-After`` seconds when the server sent them (capped at :data:`_MAX_RETRY_AFTER`),
    else 1, 2, 4, ... seconds. ``source`` is a response, or an error holding one."""
    wanted = _retry_after(source)
    return float(2 ** (attempt - 1)) if wanted is None else min(wanted, _MAX_RETRY_AFTER)


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _check_size(repo_id: str, path: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise FileTooLargeError(
            f"{repo_id}/{path} is {size} bytes, over the {max_bytes} byte limit", repo_id=repo_id
        )


def _check_repo_id(repo_id: str, *, namespaced: bool) -> None:
    """Refuses what is not ``org/name`` here or what ``huggingface_hub`` would refuse (ASCII
    only, at most 96 characters a part, no ``--`` or ``..``, no ``.git`` ending).

    Raises:
        RepoNotFoundError: the id is invalid (the message names it).
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    ok = _REPO_ID_RE.fullmatch(repo_id) or (
        not namespaced and _LEGACY_REPO_ID_RE.fullmatch(repo_id)
    )
    if ok and ".." not in repo_id:
        try:
            validate_repo_id(repo_id)
            return
        except HFValidationError:
            pass
    raise RepoNotFoundError(
        f"invalid repo id {repo_id!r}: expected 'org/name' (ASCII letters, digits, '-', '_', "
        "'.'; at most 96 characters each)",
        repo_id=repo_id,
    )


# =========================================================================================
# A local directory laid out like Hub repos
# =========================================================================================


class DirectoryRegistry:
    """A folder of repos laid out like the Hub's, for air-gapped use.

    ``root/<org>/<name>/`` is a repo: ``README.md`` is its card, ``stdembed/`` its embedding
    files. A commit writes each file atomically (temporary file + ``os.replace``) under an
    exclusive lock on the repo folder, after checking the revision is still ``parent_commit``.

    **Revision.** A repo's revision is a sha256 (first 40 hex digits) over its visible files'
    relative paths, each with a key that changes when the file changes:

    - the card (``README.md``) and the embedding files (under ``stdembed/``) up to
      :data:`CARD_FILE_HASH_MAX_BYTES`, and any other file up to
      :data:`SMALL_FILE_HASH_MAX_BYTES`: the sha256 of the content;
    - larger files (weights): ``(size, mtime_ns, inode)``. Rewriting one changes its mtime,
      replacing it its inode, so the revision still moves, without reading gigabytes of
      weights at every listing. Restoring the mtime of an in-place rewrite of a large file
      by hand would go unnoticed; copying the registry elsewhere changes the revisions once
      (inodes), and the next crawl re-reads each repo.

    **What it trusts.** Only regular files count. Hidden names (``.x``) are skipped; a
    device, FIFO or socket is skipped by the revision and refused (with the reason) by
    :meth:`read_text`, :meth:`file_size` and :meth:`download`; a symlink (to a file or a
    folder) is followed only when it resolves inside the registry root, so a repo cannot
    make the crawl read, or record the digest of, a file elsewhere. A card's front matter is
    read as a stranger's (:func:`~hf_stdembed.card.read_front_matter`: no YAML aliases,
    at most :data:`~hf_stdembed._yaml.MAX_YAML_BYTES`); a card it refuses is listed with a
    :attr:`RepoSummary.problem` when its text mentions the tag. These checks bind
    authors of repos, not someone racing the crawl with write access to the folder.

    Args:
        root (`Path`): the registry folder; it must exist.

    Raises:
        RegistryError: if ``root`` is not a directory.

    Example:
        ```py
        >>> registry = DirectoryRegistry(Path("/srv/models"))
        >>> sha = registry.head("org/model")
        >>> registry.commit("org/model", {"stdembed/x.txt": b"x"}, message="m", parent_commit=sha)
        ```
    """

    def __init__(self, root: Path) -> None:
        root = Path(root)
        if not root.is_dir():
            raise RegistryError(
                f"no registry directory at {root}: create it, or give a Hub URL (http://...)"
            )
        self.root = root
        self.name = str(root)
        self._real_root = root.resolve()
        self._digests: dict[tuple[str, int, int, int], str] = {}

    def __repr__(self) -> str:
        return f"DirectoryRegistry({self.root!r})"

    def repo_path(self, repo_id: str) -> Path:
        """The repo's folder.

        Raises:
            RepoNotFoundError: if the id is not ``org/name``, the folder does not exist, or it
                is a link out of the registry.
        """
        _check_repo_id(repo_id, namespaced=True)
        path = self.root / repo_id
        if not path.is_dir() or not self._inside(path):
            raise RepoNotFoundError(
                f"no repo {repo_id} in {self.root} (expected a folder {path})", repo_id=repo_id
            )
        return path

    # -- reading -----------------------------------------------------------------------------

    def list_tagged(self, tag: str) -> Iterator[RepoSummary]:
        """Repos whose README front matter lists ``tag`` in ``tags``, in name order.

        A README that cannot be read as a card (YAML aliases, over the size limit, not a
        mapping) is listed with ``problem`` set and no card data when its text
        mentions ``tag``; a README that is not a regular file is not listed.
        """
        for readme in sorted(self.root.glob("*/*/README.md")):
            repo_id = f"{readme.parent.parent.name}/{readme.parent.name}"
            if not _valid_repo_id(repo_id) or not self._inside(readme):
                continue
            try:
                card_data, problem, mentioned = _card_of(_read_card_text(readme, repo_id), tag)
                if problem is None:
                    tags = card_data.get("tags")
                    tags = [tags] if isinstance(tags, str) else tags
                    if not isinstance(tags, list) or tag not in tags:
                        continue
                elif not mentioned:
                    continue
                sha, modified = self._content_hash(readme.parent)
            except RemoteFileNotFoundError as e:
                logger.warning("not listing %s: %s", repo_id, e)
                continue
            except OSError:
                continue  # changed or unreadable while listing
            yield RepoSummary(repo_id, sha, modified, card_data, problem)

    def head(self, repo_id: str, *, revision: str | None = None) -> str:
        """The repo's revision (see the class: a hash of its files).

        Raises:
            RepoNotFoundError: no such repo folder.
            RepoRevisionNotFoundError: ``revision`` is neither None, ``main`` nor the current
                revision (a directory keeps only its current files).
        """
        sha = self._content_hash(self.repo_path(repo_id))[0]
        self._check_revision(repo_id, revision, sha)
        return sha

    def read_text(self, repo_id: str, path: str, *, revision: str | None) -> str | None:
        """A text file of the repo; None when it does not exist.

        Raises:
            RemoteFileNotFoundError: the path is not a regular file (a device, a FIFO) or is a
                link out of the registry.
            FileTooLargeError: the file is over :data:`MAX_TEXT_BYTES`.
            RegistryError: the file is not UTF-8 text.
        """
        file = self._file(repo_id, path, revision)
        if self._stat(repo_id, path, file) is None:
            return None
        with _open_regular(file, repo_id, path) as f:
            data = f.read(MAX_TEXT_BYTES + 1)
        _check_size(repo_id, path, len(data), MAX_TEXT_BYTES)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RegistryError(
                f"{repo_id}/{path} is not UTF-8 text ({e}): save it as UTF-8", repo_id=repo_id
            ) from e

    def file_size(self, repo_id: str, path: str, *, revision: str | None) -> int | None:
        """The file's size; None when it does not exist.

        Raises:
            RemoteFileNotFoundError: not a regular file, or a link out of the registry.
        """
        file = self._file(repo_id, path, revision)
        found = self._stat(repo_id, path, file)
        return None if found is None else found.st_size

    def download(self, repo_id: str, path: str, *, revision: str | None, max_bytes: int) -> Path:
        """The file's own path, links resolved (nothing is copied: commits replace files,
        never rewrite them).

        Raises:
            RemoteFileNotFoundError: no such file, not a regular file, or a link out of the
                registry.
            FileTooLargeError, RepoNotFoundError, RepoRevisionNotFoundError.
        """
        file = self._file(repo_id, path, revision)
        found = self._stat(repo_id, path, file)
        if found is None:
            raise RemoteFileNotFoundError(f"{repo_id} has no file {path}", repo_id=repo_id)
        _check_size(repo_id, path, found.st_size, max_bytes)
        return file.resolve()

    def url(self, repo_id: str) -> str:
        return (self.root / repo_id).resolve().as_uri()

    # -- writing -----------------------------------------------------------------------------

    def check_write(self, repo_id: str, *, create_pr: bool = False) -> None:
        """Fails early when the repo folder is missing or not writable, or on ``create_pr``."""
        path = self.repo_path(repo_id)
        if create_pr:
            raise RegistryError(
                f"a directory registry ({self.root}) has no pull requests: publish without "
                "--create-pr, or ask its owner to",
                repo_id=repo_id,
            )
        if not os.access(path, os.W_OK | os.X_OK):
            raise AuthError(f"no write access to {path}", repo_id=repo_id)

    def commit(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        message: str,
        parent_commit: str | None,
        create_pr: bool = False,
    ) -> CommitResult:
        """Writes ``files`` atomically, each one, if the repo is still at ``parent_commit``.

        ``message`` is not recorded (a directory has no history).

        Raises:
            ConcurrentUpdateError: the repo's content changed since ``parent_commit``.
            AuthError: the folder is not writable.
            RegistryError: on ``create_pr`` (no pull requests here), or a path that a link
                leads out of the registry.
        """
        self.check_write(repo_id, create_pr=create_pr)
        repo = self.repo_path(repo_id)
        targets = {path: self._target(repo, repo_id, path) for path in files}
        for path, target in targets.items():
            if not self._inside(target):
                raise RegistryError(
                    f"{repo_id}/{path} resolves outside the registry ({self.root}): a link in "
                    "the repo points out of it; nothing was written",
                    repo_id=repo_id,
                )
        try:
            with _locked(repo):
                if parent_commit is not None:
                    sha = self._content_hash(repo)[0]
                    if sha != parent_commit:
                        raise ConcurrentUpdateError(
                            f"{repo_id} changed since it was read (content hash {sha}, "
                            f"expected {parent_commit})",
                            repo_id=repo_id,
                        )
                for path, data in files.items():
                    atomic_write(targets[path], data)
                oid = self._content_hash(repo)[0]
        except PermissionError as e:
            raise AuthError(f"no write access to {repo}: {e}", repo_id=repo_id) from e
        return CommitResult(commit_url=self.url(repo_id), pr_url=None, oid=oid)

    # -- helpers -----------------------------------------------------------------------------

    def _file(self, repo_id: str, path: str, revision: str | None) -> Path:
        repo = self.repo_path(repo_id)
        target = self._target(repo, repo_id, path)
        if revision not in _DEFAULT_BRANCHES:
            self._check_revision(repo_id, revision, self._content_hash(repo)[0])
        return target

    def _inside(self, path: Path) -> bool:
        """Whether ``path``, every link resolved, lies inside the registry root."""
        try:
            return path.resolve().is_relative_to(self._real_root)
        except (OSError, RuntimeError):  # a link loop
            return False

    def _stat(self, repo_id: str, path: str, file: Path) -> os.stat_result | None:
        """The regular file's stat; None when there is none (or a folder is there).

        Raises:
            RemoteFileNotFoundError: a link out of the registry, or a special file.
        """
        if not self._inside(file):
            raise RemoteFileNotFoundError(
                f"{repo_id}/{path} resolves outside the registry ({self.root}): links out of "
                "it are not followed",
                repo_id=repo_id,
            )
        try:
            found = file.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISDIR(found.st_mode):
            return None
        _check_regular(found, repo_id, path)
        return found

    @staticmethod
    def _target(repo: Path, repo_id: str, path: str) -> Path:
        parts = PurePosixPath(path).parts
        if (
            not parts
            or "\\" in path
            or PurePosixPath(path).is_absolute()
            or any(p in ("..", ".") or p.startswith(".") for p in parts)
        ):
            raise RegistryError(f"invalid file path {path!r} in {repo_id}", repo_id=repo_id)
        return repo.joinpath(*parts)

    @staticmethod
    def _check_revision(repo_id: str, revision: str | None, sha: str) -> None:
        if revision in _DEFAULT_BRANCHES or (len(revision) >= 7 and sha.startswith(revision)):
            return
        raise RepoRevisionNotFoundError(
            f"{repo_id} is not at revision {revision} (its content hash is {sha}; a directory "
            "registry keeps only its current files)",
            repo_id=repo_id,
        )

    def _content_hash(self, repo: Path) -> tuple[str, str | None]:
        """(the revision: see the class docstring, the newest mtime as ISO 8601)."""
        digest = hashlib.sha256()
        newest = None
        for relative, file, found in self._visible_files(repo):
            limit = (
                CARD_FILE_HASH_MAX_BYTES
                if relative == "README.md" or relative.startswith("stdembed/")
                else SMALL_FILE_HASH_MAX_BYTES
            )
            if found.st_size > limit:
                key = f"stat:{found.st_size}:{found.st_mtime_ns}:{found.st_ino}"
            else:
                cached = (str(file), found.st_size, found.st_mtime_ns, found.st_ino)
                if cached not in self._digests:
                    self._digests[cached] = _file_digest(file, relative)
                key = f"sha256:{self._digests[cached]}"
            digest.update(relative.encode("utf-8", "surrogateescape") + b"\0" + key.encode())
            digest.update(b"\n")
            newest = max(newest or found.st_mtime, found.st_mtime)
        modified = (
            datetime.fromtimestamp(newest, timezone.utc).isoformat(timespec="seconds")
            if newest is not None
            else None
        )
        return digest.hexdigest()[:40], modified

    def _visible_files(self, repo: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
        """(relative path, path, stat) of the repo's regular files, in path order.

        Hidden names are skipped, and so are devices, FIFOs, sockets, dangling links and links
        resolving outside the registry; links to folders inside it are walked once each.
        """
        walked: set[tuple[int, int]] = set()

        def walk(folder: Path, prefix: str) -> Iterator[tuple[str, Path, os.stat_result]]:
            try:
                found = folder.stat()
                if (found.st_dev, found.st_ino) in walked:
                    return  # a link back to a folder already walked
                walked.add((found.st_dev, found.st_ino))
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                return
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                path = Path(entry.path)
                try:
                    if entry.is_symlink() and not self._inside(path):
                        logger.debug("not following %s: it resolves outside %s", path, self.root)
                        continue
                    found = path.stat()
                except OSError:
                    continue  # a dangling link, or removed meanwhile
                if stat.S_ISDIR(found.st_mode):
                    yield from walk(path, f"{prefix}{entry.name}/")
                elif stat.S_ISREG(found.st_mode):
                    yield f"{prefix}{entry.name}", path, found

        yield from walk(repo, "")


SMALL_FILE_HASH_MAX_BYTES = 1024 * 1024
"""A directory repo's files up to this size count in its revision by content (larger: stat)."""
CARD_FILE_HASH_MAX_BYTES = 64 * 1024 * 1024
"""The card and embedding files count by content up to this size (the crawl's file limit)."""
MAX_TEXT_BYTES = 16 * 1024 * 1024
"""Largest text file :meth:`DirectoryRegistry.read_text` reads (a README)."""
_CARD_TEXT_BYTES = MAX_YAML_BYTES + 64 * 1024  # the front matter and a margin, while listing


def _valid_repo_id(repo_id: str) -> bool:
    try:
        _check_repo_id(repo_id, namespaced=True)
    except RepoNotFoundError:
        return False
    return True


def _check_regular(found: os.stat_result, repo_id: str, path: str) -> None:
    """Refuses anything but a regular file: reading a device or a FIFO may never end."""
    if stat.S_ISREG(found.st_mode):
        return
    kinds = {stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    kinds |= {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a folder"}
    kind = next((name for test, name in kinds.items() if test(found.st_mode)), "special")
    raise RemoteFileNotFoundError(
        f"{repo_id}/{path} is not a regular file ({kind}): a directory registry serves "
        "regular files only",
        repo_id=repo_id,
    )


@contextlib.contextmanager
def _open_regular(path: Path, repo_id: str, name: str) -> Iterator[BinaryIO]:
    """``path`` opened for reading, refused unless it is a regular file when opened.

    Opened non-blocking and checked with ``fstat``, so a FIFO swapped in after a ``stat``
    neither blocks the ``open`` nor is read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        _check_regular(os.fstat(fd), repo_id, name)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def _file_digest(path: Path, name: str) -> str:
    """The sha256 of a regular file's bytes (refusing anything else)."""
    with _open_regular(path, "", name) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _read_card_text(readme: Path, repo_id: str) -> tuple[str, bool]:
    """(the README's first :data:`_CARD_TEXT_BYTES` decoded, whether there was more).

    Bytes that are not UTF-8 are replaced (U+FFFD).

    Raises:
        RemoteFileNotFoundError: the README is not a regular file.
    """
    with _open_regular(readme, repo_id, "README.md") as f:
        data = f.read(_CARD_TEXT_BYTES + 1)
    truncated = len(data) > _CARD_TEXT_BYTES
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(data[:_CARD_TEXT_BYTES], final=not truncated), truncated


def _card_of(read: tuple[str, bool], tag: str) -> tuple[dict[str, Any], str | None, bool]:
    """(card data, why it cannot be read or None, whether the text mentions ``tag``)."""
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    from .card import read_front_matter

    text, truncated = read
    mentioned = tag in text
    body = text.removeprefix("\ufeff")
    if truncated and REGEX_YAML_BLOCK.search(body) is None and body.lstrip().startswith("---"):
        return {}, f"README.md: its front matter is over the {MAX_YAML_BYTES} byte limit", mentioned
    try:
        return read_front_matter(text), None, mentioned
    except InvalidCardError as e:
        return {}, f"README.md: {e}", mentioned


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``folder`` (POSIX ``flock``; no lock elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
