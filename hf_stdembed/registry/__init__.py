"""Registries: where model repos, their cards and their embedding files live.

Every Hub interaction of hf-stdembed goes through a :class:`Registry`. Two implement it:

- :class:`HubRegistry` (:mod:`.hub`): the Hugging Face Hub (or any server speaking its API,
  such as a private Hub at ``HF_ENDPOINT``), through ``huggingface_hub``; it honours
  ``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE``. Its paged listing is in
  :mod:`.listing`, its error translation and retries in :mod:`.errors`, the shared index as a
  dataset repo in :mod:`.index_share`.
- :class:`DirectoryRegistry` (:mod:`.directory`): a local folder laid out like Hub repos
  (``DIR/<org>/<name>/README.md``, ``DIR/<org>/<name>/stdembed/...``) for air-gapped use. A
  repo's "revision" is a hash of its files (see the class); commits write each file atomically.

Errors are the project's (:class:`~hf_stdembed.errors.RegistryError` and subclasses), each
carrying the repo id and saying how to fix the problem.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import RegistryError
from .directory import (
    CARD_FILE_HASH_MAX_BYTES,
    MAX_TEXT_BYTES,
    SMALL_FILE_HASH_MAX_BYTES,
    DirectoryRegistry,
)
from .hub import HubRegistry
from .index_share import INDEX_DATASET_FILE, index_dataset_card
from .listing import (
    DEFAULT_LISTING_TIMEOUT,
    LISTING_TIMEOUT_ENV,
    MAX_LISTED_CARD_DATA_CHARS,
    MAX_LISTING_PAGE_BYTES,
)
from .protocol import LIBRARY_NAME, CommitResult, ModelSource, Registry, RepoSummary

__all__ = [
    "CARD_FILE_HASH_MAX_BYTES",
    "DEFAULT_LISTING_TIMEOUT",
    "INDEX_DATASET_FILE",
    "LIBRARY_NAME",
    "LISTING_TIMEOUT_ENV",
    "MAX_LISTED_CARD_DATA_CHARS",
    "MAX_LISTING_PAGE_BYTES",
    "MAX_TEXT_BYTES",
    "SMALL_FILE_HASH_MAX_BYTES",
    "CommitResult",
    "DirectoryRegistry",
    "HubRegistry",
    "ModelSource",
    "Registry",
    "RepoSummary",
    "index_dataset_card",
    "open_hub",
    "open_registry",
]


def open_registry(
    url_or_dir: str | os.PathLike[str] | None = None, *, token: str | None = None
) -> Registry:
    """The registry a ``--registry`` value names.

    Args:
        url_or_dir (`str`, *optional*): None for the Hub at the configured endpoint
            (``HF_ENDPOINT``), an ``http://`` or ``https://`` URL for a Hub at that endpoint,
            anything else for a local directory registry.
        token (`str`, *optional*): the token a Hub is sent (default: ``HF_TOKEN`` or the
            saved login); a directory needs none.

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


def open_hub(url: str | None = None, *, token: str | None = None) -> HubRegistry:
    """The Hub a ``--registry`` value names, for commands that need dataset repos.

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
