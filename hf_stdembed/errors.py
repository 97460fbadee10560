"""Errors raised by hf-stdembed.

Every error derives from :class:`StdEmbedError` and from the builtin that matches it, so
callers can catch either. The CLI turns any :class:`StdEmbedError` into a one-line
``Error: ...`` message.
"""

from __future__ import annotations


class StdEmbedError(Exception):
    """Base class of every error raised by hf-stdembed."""


class StandardNotFoundError(StdEmbedError, LookupError):
    """A standard id or YAML path names no known standard."""


class StandardMismatchError(StdEmbedError, ValueError):
    """Two artefacts (or an artefact and a standard) belong to different standards."""


class InvalidStandardError(StdEmbedError, ValueError):
    """A standard file is malformed or holds an invalid value."""


class InvalidEmbeddingError(StdEmbedError, ValueError):
    """An embedding file is malformed: wrong format, schema, shape, dtype or values."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        self.reason = message  # without the path: for callers that name the file their way
        super().__init__(f"{path}: {message}" if path else message)


class ModelLoadError(StdEmbedError, RuntimeError):
    """A candidate model could not be resolved or loaded as a feature extractor."""

    def __init__(self, message: str, *, spec: str | None = None) -> None:
        self.spec = spec
        super().__init__(f"cannot load model {spec!r}: {message}" if spec else message)


class DatasetLoadError(StdEmbedError, RuntimeError):
    """A dataset could not be loaded, or its image/label columns could not be found."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"cannot load dataset {source!r}: {message}" if source else message)


class IndexCorruptError(StdEmbedError, RuntimeError):
    """The local embedding index's files disagree with its database (a file is missing or
    shorter than the rows it should hold)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class IndexBusyError(StdEmbedError, TimeoutError):
    """Another process (or another index object) is updating the local embedding index."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class InvalidCardError(StdEmbedError, ValueError):
    """A model card (README.md) cannot be parsed: its YAML front matter is invalid."""

    def __init__(self, message: str, *, repo_id: str | None = None) -> None:
        self.repo_id = repo_id
        super().__init__(f"{repo_id}: {message}" if repo_id else message)


class RegistryError(StdEmbedError):
    """A registry (the Hub, or a directory laid out like it) refused or failed a request.

    Attributes:
        repo_id: the repo the request was about, if any.
        transient: network trouble, offline mode or a server refusing for now (429, 5xx):
            the same request may succeed later. False: final until the repo changes.
    """

    def __init__(
        self, message: str, *, repo_id: str | None = None, transient: bool = False
    ) -> None:
        self.repo_id = repo_id
        self.transient = transient
        super().__init__(message)


class RepoNotFoundError(RegistryError, LookupError):
    """The repo does not exist in the registry (or is private and the token cannot see it)."""


class RepoRevisionNotFoundError(RegistryError, LookupError):
    """The revision (branch, tag, commit, or a directory's content hash) does not exist."""


class RemoteFileNotFoundError(RegistryError, FileNotFoundError):
    """The file does not exist in the repo at that revision."""


class FileTooLargeError(RegistryError, ValueError):
    """A file is larger than the caller allows; it was not downloaded."""


class AuthError(RegistryError, PermissionError):
    """No token, an invalid token, or a token without write access to the repo."""


class GatedRepoAccessError(AuthError):
    """The repo is gated and this account has not been granted access."""


class ConcurrentUpdateError(RegistryError):
    """The repo changed between reading it and committing (the parent commit moved)."""
