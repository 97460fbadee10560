"""The Hugging Face Hub as a :class:`~hf_stdembed.registry.protocol.Registry`.

:class:`HubRegistry` reads and commits model repos through ``huggingface_hub`` (or any server
speaking its API, such as a private Hub at ``HF_ENDPOINT``); it honours ``HF_ENDPOINT``,
``HF_TOKEN`` and ``HF_HUB_OFFLINE``. Its listing is in :mod:`.listing`, its error translation
and retries in :mod:`.errors`, the shared index's dataset repo in :mod:`.index_share`.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from .. import __version__
from ..errors import AuthError, ConcurrentUpdateError, RegistryError, RemoteFileNotFoundError
from .errors import (
    hub_errors,
    is_network_error,
    repo_url,
    require_token,
    retry_delay,
    status_of,
    with_retries,
)
from .index_share import IndexDatasets
from .listing import TaggedListing, resolve_listing_timeout
from .protocol import (
    LIBRARY_NAME,
    CommitResult,
    ModelSource,
    RepoSummary,
    check_repo_id,
    check_size,
)

T = TypeVar("T")


class HubRegistry(IndexDatasets):
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
            take, whole, and each network read of ``model_info`` and ``whoami``; defaults to
            ``$HF_STDEMBED_LISTING_TIMEOUT``, else :data:`~.listing.DEFAULT_LISTING_TIMEOUT`.

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

    local = False  # reached over the network

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
        self.listing_timeout = resolve_listing_timeout(listing_timeout)
        self._sleep = sleep
        self.api = HfApi(
            endpoint=self.endpoint,
            token=token,
            library_name=LIBRARY_NAME,
            library_version=__version__,
        )

    def __repr__(self) -> str:
        return f"HubRegistry(endpoint={self.endpoint!r})"

    @property
    def offline(self) -> bool:
        """Whether ``HF_HUB_OFFLINE`` is set: no request reaches the Hub."""
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)

    # -- reading -----------------------------------------------------------------------------

    def list_tagged(self, tag: str) -> Iterator[RepoSummary]:
        """Every model repo whose tags include ``tag`` (one request per page of results).

        Pages are read raw, not through ``HfApi.list_models`` (see :mod:`.listing` for why).
        Each page is one request bounded in time (:attr:`listing_timeout`, for the whole page,
        checked as its body arrives, and for each network read) and in size
        (:data:`~.listing.MAX_LISTING_PAGE_BYTES`). A 429 or 5xx is retried up to
        ``max_attempts`` times, sleeping ``Retry-After`` (at most
        :data:`~.errors.MAX_RETRY_AFTER` s: a longer wait fails at once, saying so) or 1, 2,
        4... s; a connection dropped mid-answer is retried likewise. A refused connection, a
        timeout or a stalled page fails at once.

        An item whose id the rest of the code would refuse, or whose card metadata is over
        :data:`~.listing.MAX_LISTED_CARD_DATA_CHARS` of JSON, is yielded with ``problem`` set
        and no card data; an item without a commit sha, or with an id too long to record, is
        skipped with a logged warning.

        Raises:
            RegistryError: the endpoint cannot be reached (the message names ``--no-refresh``
                and ``HF_HUB_OFFLINE=1``), is too slow, rate-limits for too long, or refuses
                the listing.
        """
        listing = TaggedListing(
            self.endpoint, self.token, self.max_attempts, self._sleep, self.listing_timeout
        )
        return listing.summaries(tag)

    def head(self, repo_id: str, *, revision: str | None = None) -> str:
        """The commit sha of ``revision`` (default: ``main``), via ``model_info``.

        Raises:
            RepoNotFoundError: no such repo (or private and not visible with this token).
            RepoRevisionNotFoundError: no such revision.
            RegistryError: the Hub cannot be reached, or offline mode is on.
        """
        check_repo_id(repo_id, namespaced=False)
        info = self.retrying(
            repo_id,
            lambda: self.api.model_info(  # the sha only: the client parses a stranger's
                repo_id, revision=revision, timeout=self.listing_timeout, expand=["sha"]
            ),  # card data with ModelCardData, which raises TypeError on `tags: 5`
        )
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
        check_repo_id(repo_id, namespaced=False)
        try:
            with self._errors(repo_id):
                local = self.api.hf_hub_download(repo_id, path, revision=revision)
        except RemoteFileNotFoundError:
            return None
        try:
            return Path(local).read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise RegistryError(f"{repo_id}/{path} is not UTF-8 text ({e})", repo_id=repo_id) from e

    def file_size(self, repo_id: str, path: str, *, revision: str | None) -> int | None:
        """The file's size from a ``HEAD`` request; None if it does not exist."""
        from huggingface_hub import hf_hub_url

        check_repo_id(repo_id, namespaced=False)
        url = hf_hub_url(repo_id, path, revision=revision, endpoint=self.endpoint)
        try:
            metadata = self.retrying(repo_id, lambda: self.api.get_hf_file_metadata(url=url))
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
        check_size(repo_id, path, size, max_bytes)
        with self._errors(repo_id):
            local = Path(self.api.hf_hub_download(repo_id, path, revision=revision))
        check_size(repo_id, path, local.stat().st_size, max_bytes)
        return local

    def url(self, repo_id: str, *, repo_type: str = "model") -> str:
        """The repo's web page (a dataset repo's with ``repo_type="dataset"``)."""
        return repo_url(self.endpoint, repo_id, repo_type=repo_type)

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
        token = require_token(self.token, repo_id)
        me = self.retrying(
            repo_id,
            lambda: self._whoami(token),
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

        check_repo_id(repo_id, namespaced=False)
        require_token(self.token, repo_id)
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
                status = status_of(cause)
                last = attempt == self.max_attempts
                if status == 429 and not last:
                    self._sleep(retry_delay(cause, attempt))
                    continue
                lost = status is not None and status >= 500 or is_network_error(cause)
                if not lost or create_pr or last:
                    raise
                landed = self._landed(repo_id, files, parent_commit)
                if landed is not None:
                    return landed
                self._sleep(retry_delay(cause, attempt))
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

    # -- the repo's model, retries, errors ---------------------------------------------------

    def model_source(self, repo_id: str, *, revision: str | None) -> ModelSource:
        """The repo id at ``revision``, with this registry's token.

        Raises:
            RegistryError: the registry is not the Hub models download from (``HF_ENDPOINT``):
                the message says to set ``HF_ENDPOINT`` instead of ``--registry``.
        """
        from huggingface_hub import constants

        if self.endpoint != constants.ENDPOINT.rstrip("/"):
            raise RegistryError(
                f"the model would be downloaded from {constants.ENDPOINT} but the registry is "
                f"{self.endpoint}: set HF_ENDPOINT={self.endpoint} instead of "
                "--registry, or pass --model / --embedding",
                repo_id=repo_id,
            )
        return ModelSource(repo_id, revision, self.token)

    def retrying(
        self,
        repo_id: str | None,
        call: Callable[[], T],
        *,
        repo_type: str = "model",
        writing: bool = False,
        create_pr: bool = False,
    ) -> T:
        """``call`` (a request of :attr:`api`) with a bounded backoff on 429 / 5xx / connection
        errors, its errors the project's (safe: reads only; ``writing`` and ``create_pr`` only
        word its errors for a write to come).

        Raises:
            RegistryError: the last failure, or one not worth another try, translated.
        """
        return with_retries(
            call,
            attempts=self.max_attempts,
            sleep=self._sleep,
            errors=lambda: self._errors(
                repo_id, repo_type=repo_type, writing=writing, create_pr=create_pr
            ),
        )

    def _errors(
        self,
        repo_id: str | None,
        *,
        writing: bool = False,
        create_pr: bool = False,
        repo_type: str = "model",
    ) -> contextlib.AbstractContextManager[None]:
        """Turns ``huggingface_hub`` and network errors into the project's."""
        return hub_errors(
            self.endpoint,
            self.token,
            repo_id,
            writing=writing,
            create_pr=create_pr,
            repo_type=repo_type,
        )

    def _whoami(self, token: str) -> dict[str, Any]:
        """``HfApi.whoami``, bounded by :attr:`listing_timeout` (``whoami`` takes no timeout,
        and the shared client has none: a stalled Hub would hang it)."""
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        response = get_session().get(
            f"{self.endpoint}/api/whoami-v2",
            headers=build_hf_headers(
                token=token, library_name=LIBRARY_NAME, library_version=__version__
            ),
            timeout=self.listing_timeout,
        )
        hf_raise_for_status(response)
        return response.json()


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
