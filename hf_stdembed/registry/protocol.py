"""What every registry is: the :class:`Registry` protocol, what it returns, and repo-id checks.

Every Hub interaction of hf-stdembed goes through a :class:`Registry`; the two
implementations are :class:`~hf_stdembed.registry.hub.HubRegistry` and
:class:`~hf_stdembed.registry.directory.DirectoryRegistry`. Callers use the protocol only:
whether a registry is local (:attr:`Registry.local`), offline (:attr:`Registry.offline`), can
be written (:meth:`Registry.check_write`) and where a repo's own model loads from
(:meth:`Registry.model_source`) are questions it answers, never an ``isinstance``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import FileTooLargeError, RepoNotFoundError

LIBRARY_NAME = "hf-stdembed"
_REPO_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", re.ASCII)
_LEGACY_REPO_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*", re.ASCII)  # no namespace ("gpt2")


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


@dataclass(frozen=True)
class ModelSource:
    """Where a repo's own model loads from: a spec for
    :func:`~hf_stdembed.extractors.load_extractor`, at a revision, with a token."""

    spec: str  # a Hub repo id, or the repo's folder for a directory registry
    revision: str | None  # None: a folder, loaded as it is
    token: str | None  # None: the saved login or HF_TOKEN (a directory needs none)


class Registry(Protocol):
    """Where model repos live: read cards and files, list tagged repos, commit files."""

    name: str  # for display: the endpoint URL or the directory
    local: bool  # a folder of this machine (True) or a Hub reached over the network (False)
    token: str | None  # what requests send; None: the saved login or HF_TOKEN (or nothing)

    @property
    def offline(self) -> bool:
        """Whether the registry is a Hub that ``HF_HUB_OFFLINE`` forbids reaching."""
        ...

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

    def check_write(self, repo_id: str, *, create_pr: bool) -> None:
        """Fails early, saying the fix, when a commit to ``repo_id`` is bound to be refused.

        Raises:
            AuthError: no token, or no write access (a folder, a namespace).
            RepoNotFoundError: no such repo folder (a directory registry).
            RegistryError: ``create_pr`` where there are no pull requests, or the Hub cannot
                be reached.
        """
        ...

    def model_source(self, repo_id: str, *, revision: str | None) -> ModelSource:
        """Where the repo's own model loads from, at ``revision``.

        Raises:
            RepoNotFoundError: no such repo folder (a directory registry).
            RegistryError: the model would load from another Hub than this registry.
        """
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


def check_repo_id(repo_id: str, *, namespaced: bool) -> None:
    """Refuses what is not ``org/name`` here or what ``huggingface_hub`` would refuse (ASCII
    only, at most 96 characters a part, no ``--`` or ``..``, no ``.git`` ending).

    Args:
        repo_id (`str`): the id to check.
        namespaced (`bool`): whether a legacy id without ``org/`` (``gpt2``) is refused.

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


def valid_repo_id(repo_id: str) -> bool:
    """Whether ``repo_id`` is a valid ``org/name`` (see :func:`check_repo_id`)."""
    try:
        check_repo_id(repo_id, namespaced=True)
    except RepoNotFoundError:
        return False
    return True


def check_size(repo_id: str, path: str, size: int, max_bytes: int) -> None:
    """Refuses a file of ``size`` bytes over ``max_bytes``.

    Raises:
        FileTooLargeError: the message gives both sizes.
    """
    if size > max_bytes:
        raise FileTooLargeError(
            f"{repo_id}/{path} is {size} bytes, over the {max_bytes} byte limit", repo_id=repo_id
        )
