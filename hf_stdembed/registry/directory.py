"""A local folder laid out like Hub repos, as a :class:`~hf_stdembed.registry.protocol.Registry`.

:class:`DirectoryRegistry` serves ``DIR/<org>/<name>/README.md`` and
``DIR/<org>/<name>/stdembed/...`` for air-gapped use. A repo's "revision" is a hash of its
files (see the class); commits write each file atomically, under a lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from filelock import FileLock

from .._files import atomic_write
from ..errors import (
    AuthError,
    ConcurrentUpdateError,
    RegistryError,
    RemoteFileNotFoundError,
    RepoNotFoundError,
    RepoRevisionNotFoundError,
)
from .local_files import card_of, check_regular, file_digest, open_regular, read_card_text
from .protocol import (
    CommitResult,
    ModelSource,
    RepoSummary,
    check_repo_id,
    check_size,
    valid_repo_id,
)

logger = logging.getLogger(__name__)

SMALL_FILE_HASH_MAX_BYTES = 1024 * 1024
"""A directory repo's files up to this size count in its revision by content (larger: stat)."""
CARD_FILE_HASH_MAX_BYTES = 64 * 1024 * 1024
"""The card and embedding files count by content up to this size (the crawl's file limit)."""
MAX_TEXT_BYTES = 16 * 1024 * 1024
"""Largest text file :meth:`DirectoryRegistry.read_text` reads (a README)."""
LOCK_FILE = ".cache/huggingface/hf-stdembed.lock"
"""A repo's commit lock, inside the repo folder (hidden, so outside its revision; where
``huggingface_hub`` keeps its own locks of a local folder, which ``hf upload`` skips)."""
_DEFAULT_BRANCHES = (None, "main")


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

    local = True
    token = None  # a folder needs no token
    offline = False  # a folder is always reachable

    def __repr__(self) -> str:
        return f"DirectoryRegistry({self.root!r})"

    def repo_path(self, repo_id: str) -> Path:
        """The repo's folder.

        Raises:
            RepoNotFoundError: if the id is not ``org/name``, the folder does not exist, or it
                is a link out of the registry.
        """
        check_repo_id(repo_id, namespaced=True)
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
            if not valid_repo_id(repo_id) or not self._inside(readme):
                continue
            try:
                card_data, problem, mentioned = card_of(read_card_text(readme, repo_id), tag)
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
            RemoteFileNotFoundError: the path is not a regular file (a device, a FIFO, a
                folder) or is a link out of the registry.
            FileTooLargeError: the file is over :data:`MAX_TEXT_BYTES`.
            RegistryError: the file is not UTF-8 text.
        """
        file = self._file(repo_id, path, revision)
        if self._stat(repo_id, path, file) is None:
            if file.is_dir():  # a folder where the text should be: not "no such file"
                check_regular(file.stat(), repo_id, path)
            return None
        with open_regular(file, repo_id, path) as f:
            data = f.read(MAX_TEXT_BYTES + 1)
        check_size(repo_id, path, len(data), MAX_TEXT_BYTES)
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
        check_size(repo_id, path, found.st_size, max_bytes)
        return file.resolve()

    def url(self, repo_id: str) -> str:
        """The repo folder as a ``file://`` URL."""
        return (self.root / repo_id).resolve().as_uri()

    def model_source(self, repo_id: str, *, revision: str | None) -> ModelSource:
        """The repo folder, loaded as it is (a directory keeps only its current files, so
        ``revision`` is not looked at: :meth:`head` checks one).

        Raises:
            RepoNotFoundError: no such repo folder, or a link out of the registry.
        """
        return ModelSource(str(self.repo_path(repo_id)), None, None)

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
        for path, target in {**targets, LOCK_FILE: repo / LOCK_FILE}.items():
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
        check_regular(found, repo_id, path)
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
                    self._digests[cached] = file_digest(file, relative)
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


def _locked(repo: Path) -> FileLock:
    """An exclusive lock on a repo of the registry (:data:`LOCK_FILE`), held while committing.

    Raises:
        PermissionError: the lock file cannot be created (the folder is not writable).
    """
    lock = repo / LOCK_FILE
    lock.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(lock)
