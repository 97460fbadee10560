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
