"""The crawler: published embeddings from a registry into the local index.

It lists the repos carrying the ``hf-stdembed`` tag, and downloads only the embedding files
of repos whose commit changed since the last crawl, pinned to that commit. Every file is
validated before it enters the index (size cap before download, safetensors only, dtype,
shape, values, standard id and hash, sha256, dim and fidelities equal to the card's; see
:mod:`hf_stdembed.plausibility`); one bad repo is recorded with its reason and never stops
a crawl. Results are committed to the index in batches of repos, each batch atomically; the
batch in progress is also committed when the crawl stops early (an error, Ctrl-C, a budget
running out), so a crash loses at most the batch in flight, which the next crawl redoes
(its repos' recorded commits did not move).

A repo skipped for a reason that can change without the repo changing (an unknown standard,
a transient error, a budget that ran out) is read again by the next crawl; what it already
had indexed at the same commit is kept, not downloaded again. A custom standard's YAML that
a card names (``standard_file``) is downloaded, read as untrusted and remembered in the
index when its hash is the card's, so that the repos using it are indexed. Each row keeps
the datasets the card declares (``datasets:``, capped: :attr:`CardReading.datasets
<hf_stdembed.card.CardReading.datasets>`), for the two-stage select's shortlist.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._files import file_sha256
from ._text import shorten
from .card import CARD_TAG, CardEntry, read_card
from .embeddings import MAX_FILE_BYTES, ModelEmbedding, load_embedding
from .errors import FileTooLargeError, InvalidEmbeddingError, RegistryError, StdEmbedError
from .index import SOURCE_CRAWL, SOURCE_LEGACY, CrawlState, EmbeddingIndex, IndexRow, row_problem
from .plausibility import entry_problem
from .progress import Progress
from .progress import report as report_progress
from .registry import Registry, RepoSummary
from .standards import MAX_STANDARD_BYTES, Standard, builtin_standards, standard_from_text

RETRY_STATUSES = frozenset({"error", "pending"})
"""Crawl states read again at an unchanged commit: ``error`` (a transient failure) and
``pending`` (an entry waits for a standard the crawl does not know yet)."""
_REPO_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(?:/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
"""The repo ids the crawl reads: ASCII, at most 96 characters a part (the Hub's own rules)."""


@dataclass(frozen=True)
class CrawlBudget:
    """Limits for a whole crawl; a crawl that reaches one stops, commits what it read and
    says so (the repos not reached are crawled next time).

    Args:
        seconds: wall time, from the start of the crawl (None: no limit).
        bytes: bytes downloaded, embedding and standard files together (None: no limit).
            A file that would go past it is not downloaded.
    """

    seconds: float | None = None
    bytes: int | None = None

    def __post_init__(self) -> None:
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"Invalid seconds value: {self.seconds}")
        if self.bytes is not None and self.bytes < 0:
            raise ValueError(f"Invalid bytes value: {self.bytes}")


@dataclass
class CrawlReport:
    """What a crawl did."""

    listed: int = 0  # repos carrying the tag
    unchanged: int = 0  # skipped: same commit as last crawl
    downloaded: int = 0  # embedding and standard files downloaded
    downloaded_bytes: int = 0
    indexed: list[str] = field(default_factory=list)  # repos whose rows were (re)written
    removed: list[str] = field(default_factory=list)  # repos dropped (untagged, deleted...)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (repo, reason), shortened
    pending: int = 0  # repos to read again next time (an unknown standard, an error)
    standards: list[str] = field(default_factory=list)  # custom standards learnt from repos
    stopped: str | None = None  # why the crawl stopped before the end of the listing


@dataclass(frozen=True)
class _RepoResult:
    summary: RepoSummary
    rows: list[tuple[IndexRow, np.ndarray | None]]  # None: indexed already, keep as it is
    problems: list[str]
    failed: bool  # a transient error: do not record the commit, retry next crawl
    retry: bool = False  # an entry waits for a standard: record the commit, retry anyway
    standards: list[tuple[Standard, str]] = field(default_factory=list)  # fetched, origin


class _Skip(Exception):
    """An entry that cannot be indexed, for a reason worth recording."""

    def __init__(self, reason: str, *, retry: bool = False) -> None:
        super().__init__(reason)
        self.retry = retry  # the reason can go away without the repo changing


class _BudgetSpent(Exception):
    """The crawl's budget ran out (the message says which)."""


class _Crawl:
    """One crawl's state: the standards it knows, what it spent."""

    def __init__(
        self,
        registry: Registry,
        index: EmbeddingIndex,
        given: list[Standard],
        max_bytes: int,
        budget: CrawlBudget,
        report: CrawlReport,
    ) -> None:
        self.registry, self.index, self.max_bytes = registry, index, max_bytes
        self.budget, self.report = budget, report
        builtins = builtin_standards()
        self.ids = {s.id: s for s in builtins.values()} | {s.id: s for s in given}
        self.by_hash: dict[str, Standard] = {}
        for stored in index.standards():
            try:
                self.by_hash[stored.standard_hash] = stored.load()
            except StdEmbedError:
                continue  # unreadable by this version: its repos stay pending
        self.by_hash |= {s.hash: s for s in [*builtins.values(), *given]}

    # ---- one repo -----------------------------------------------------------------------

    def read_repo(self, summary: RepoSummary, state: CrawlState | None) -> _RepoResult:
        if summary.problem:
            return _RepoResult(summary, [], [summary.problem], failed=False)
        if not _REPO_ID_RE.fullmatch(summary.repo_id):
            reason = "invalid repo id: ASCII letters, digits, '_', '.', '-', one '/'"
            return _RepoResult(summary, [], [reason], failed=False)
        card = read_card(summary.card_data)
        entries, problems = card.entries, list(card.problems)
        if not entries and not problems:
            problems.append("the card has the tag but no hf_stdembed entries")
        first_look = state is None or state.sha != summary.sha
        rows, fetched, retry = [], [], False
        for entry in entries.values():
            try:
                found = self.read_entry(
                    summary, entry, fetched, first_look=first_look, datasets=card.datasets
                )
                rows.append(found)
            except _Skip as e:
                problems.append(f"{entry.file}: {e}")
                retry = retry or e.retry
            except InvalidEmbeddingError as e:  # named by its repo path, not the local copy's
                problems.append(f"{entry.file}: {e.reason}")
            except StdEmbedError as e:
                problems.append(f"{entry.file}: {e}")
                if _is_transient(e):
                    return _RepoResult(summary, [], problems, failed=True)
            except (ValueError, OSError) as e:  # e.g. a client refusing an odd name
                problems.append(f"{entry.file}: {type(e).__name__}: {e}")
                return _RepoResult(summary, [], problems, failed=True)
        return _RepoResult(summary, rows, problems, failed=False, retry=retry, standards=fetched)

    def read_entry(
        self,
        summary: RepoSummary,
        entry: CardEntry,
        fetched: list[tuple[Standard, str]],
        *,
        first_look: bool,
        datasets: tuple[str, ...],
    ) -> tuple[IndexRow, np.ndarray | None]:
        standard = self.by_hash.get(entry.standard_hash)
        if standard is None and entry.standard_file is not None and first_look:
            standard = self.fetch_standard(summary, entry)
            origin = f"repo:{summary.repo_id}@{summary.sha}/{entry.standard_file}"
            self.by_hash[standard.hash] = standard
            fetched.append((standard, origin))
            self.report.standards.append(standard.id)
        if standard is None:
            same_id = self.ids.get(entry.standard_id)
            if same_id is not None:
                raise _Skip(
                    f"standard {entry.standard_id!r} hash {entry.standard_hash} differs from "
                    f"the known {same_id.hash}",
                    retry=True,
                )
            raise _Skip(
                f"unknown standard {entry.standard_id!r} (pass its YAML file with --standard; "
                "the repo is read again at the next crawl)",
                retry=True,
            )
        if standard.id != entry.standard_id:
            raise _Skip(
                f"unknown standard {entry.standard_id!r}: the card's standard hash "
                f"{entry.standard_hash} is that of standard {standard.id!r}"
            )
        repo = summary.repo_id
        existing = self.index.get(repo, standard.hash)
        if (
            existing is not None
            and existing.crawled
            and (existing.revision, existing.file_path, existing.file_sha256, existing.datasets)
            == (summary.sha, entry.file, entry.sha256, datasets)
        ):
            return existing, None  # indexed at this commit already: nothing to download
        path = self.download(repo, entry.file, summary.sha, self.max_bytes)
        digest = file_sha256(path)
        if digest != entry.sha256:
            raise _Skip(f"sha256 {digest} differs from the card's {entry.sha256}")
        embedding = load_embedding(
            path, standard=standard, max_bytes=self.max_bytes, kind=ModelEmbedding
        )
        problem = entry_problem(entry, embedding, standard)
        if problem:
            raise _Skip(problem)
        row = IndexRow.from_embedding(
            embedding,
            repo,
            revision=summary.sha,
            file_path=entry.file,
            file_sha256=digest,
            model_spec=entry.model,  # else the file's own spec
            datasets=datasets,
        )
        vector = embedding.vector.detach().cpu().numpy()
        problem = row_problem(row, vector, dim=standard.dim)
        if problem:
            raise _Skip(problem)
        return row, vector

    def fetch_standard(self, summary: RepoSummary, entry: CardEntry) -> Standard:
        """The custom standard a card entry names as a file of the repo, read untrusted.

        Raises:
            _Skip: (to retry) if it cannot be read or is not the standard of the entry's hash.
            RegistryError: on a transient error.
        """
        file = entry.standard_file
        try:
            path = self.download(summary.repo_id, file, summary.sha, MAX_STANDARD_BYTES)
            text = path.read_bytes()[: MAX_STANDARD_BYTES + 1].decode("utf-8")
            standard = standard_from_text(text, source=file, trusted=False)
        except UnicodeDecodeError as e:
            raise _Skip(f"its standard file {file} is not text", retry=True) from e
        except StdEmbedError as e:
            if _is_transient(e):
                raise
            raise _Skip(str(e), retry=True) from e
        if standard.hash != entry.standard_hash:
            raise _Skip(
                f"its standard file {file} has hash {standard.hash}, the card says "
                f"{entry.standard_hash}",
                retry=True,
            )
        return standard

    def download(self, repo: str, file: str, revision: str, max_bytes: int) -> Path:
        """A file of the repo at ``revision``, within the crawl's byte budget."""
        limit = max_bytes
        if self.budget.bytes is not None:
            left = self.budget.bytes - self.report.downloaded_bytes
            if left <= 0:
                raise _BudgetSpent(self._bytes_spent())
            limit = min(max_bytes, left)
        try:
            path = self.registry.download(repo, file, revision=revision, max_bytes=limit)
        except FileTooLargeError:
            if limit < max_bytes:  # the budget refused it, not the file cap
                raise _BudgetSpent(self._bytes_spent()) from None
            raise
        self.report.downloaded += 1
        self.report.downloaded_bytes += path.stat().st_size
        return path

    def _bytes_spent(self) -> str:
        return (
            f"the crawl's download budget of {self.budget.bytes} bytes is spent "
            f"({self.report.downloaded_bytes} downloaded)"
        )


def crawl(
    registry: Registry,
    index: EmbeddingIndex,
    *,
    tag: str = CARD_TAG,
    standards: Iterable[Standard] = (),
    max_bytes: int = MAX_FILE_BYTES,
    batch_size: int = 50,
    on_progress: Progress | None = None,
    budget: CrawlBudget | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> CrawlReport:
    """Brings the index up to date with the registry.

    Args:
        registry: where to list and download from.
        index: the local index to update.
        tag: the tag published repos carry.
        standards: standards to accept besides the built-in ones (custom YAML standards the
            user gave: remembered in the index as trusted, so their ids resolve later).
        max_bytes: embedding files larger than this are refused before download.
        batch_size: repos per index transaction.
        on_progress: hears ``crawling <registry name>`` in repos (total unknown): ``done = 0``
            at the start, then each repo listed as it is handled.
        budget: limits for the whole crawl (default: none). When one is reached, the crawl
            commits what it read, stops, and says why in ``stopped``; the repos it did not
            reach are crawled next time.
        clock: seconds, for the time budget (tests pass a fake).

    Returns:
        Counts, and each problem with its repo and reason (shortened).

    Raises:
        RegistryError: if the listing fails before its first repo. A listing that fails
            later ends the crawl like a budget (``stopped`` says why).
    """
    desc = f"crawling {registry.name}"
    report_progress(on_progress, desc, 0, None, unit="repo")
    budget = budget or CrawlBudget()
    given = [s for s in standards]
    report = CrawlReport()
    started = clock()
    custom = [s for s in given if builtin_standards().get(s.id, None) != s]
    if custom:
        with index.update() as tx:
            for standard in custom:
                tx.remember_standard(standard, trusted=True, origin="user")
    state = _Crawl(registry, index, given, max_bytes, budget, report)
    seen: set[str] = set()
    pending: list[_RepoResult] = []
    complete = False
    listing = iter(registry.list_tagged(tag))
    try:
        while True:
            try:
                summary = next(listing, None)
            except StdEmbedError as e:
                if report.listed == 0:
                    raise
                report.stopped = f"the listing failed after {report.listed} repos: {e}"
                break
            if summary is None:
                complete = True
                break
            report.listed += 1
            seen.add(summary.repo_id)
            report_progress(on_progress, desc, report.listed, None, unit="repo")
            if budget.seconds is not None and clock() - started > budget.seconds:
                report.stopped = (
                    f"the crawl's time budget of {budget.seconds:g} s ran out after "
                    f"{report.listed - 1} repos"
                )
                break
            crawled = index.crawl_state(summary.repo_id)
            if _unchanged(index, crawled, summary):
                report.unchanged += 1
                continue
            try:
                result = state.read_repo(summary, crawled)
            except _BudgetSpent as e:
                report.stopped = str(e)
                break
            pending.append(result)
            if len(pending) >= batch_size:
                batch, pending = pending, []
                _commit(index, batch, report)
    finally:
        _commit(index, pending, report)  # also on errors and Ctrl-C: keep what was read
    if report.stopped is not None:
        report.stopped = shorten(f"{report.stopped}; the rest is crawled next time")
    if complete:
        _remove_missing(index, seen, report)
    return report


def _unchanged(index: EmbeddingIndex, state: CrawlState | None, summary: RepoSummary) -> bool:
    """Whether a repo can be skipped: read at this commit, for good, and every row of it
    read by the crawl itself (an imported row is checked against the repo once)."""
    if state is None or state.sha != summary.sha or state.status in RETRY_STATUSES:
        return False
    return all(row.crawled for row in index.rows_of_repo(summary.repo_id))


def _commit(index: EmbeddingIndex, results: list[_RepoResult], report: CrawlReport) -> None:
    if not results:
        return
    with index.update() as tx:
        for result in results:
            repo = result.summary.repo_id
            problems = [shorten(p) for p in result.problems]
            report.problems.extend((shorten(repo), p) for p in problems)
            for standard, origin in result.standards:
                tx.remember_standard(standard, trusted=False, origin=origin)
            if result.failed:
                tx.record_crawl(repo, None, "error", "; ".join(problems))
                report.pending += 1
                continue
            kept = {row.standard_hash for row, _ in result.rows}
            for old in index.rows_of_repo(repo):
                if old.standard_hash not in kept and _read_by_a_crawl(old):
                    tx.remove(repo, old.standard_hash)
            written = False
            for row, vector in result.rows:
                if vector is not None:
                    tx.upsert(row, vector)
                    written = True
            if result.retry:
                status = "pending"
                report.pending += 1
            else:
                status = "indexed" if result.rows else "invalid"
            tx.record_crawl(repo, result.summary.sha, status, "; ".join(problems) or None)
            if written:
                report.indexed.append(repo)


def _read_by_a_crawl(row: IndexRow) -> bool:
    """Whether a crawl wrote this row (this version's or an older one's), so that a crawl may
    remove it. Rows pulled from a shared index or computed by ``embed-many`` are not the
    listing's to remove: they stay until replaced (a crawled row replaces them)."""
    return row.source in (SOURCE_CRAWL, SOURCE_LEGACY)


def _remove_missing(index: EmbeddingIndex, seen: set[str], report: CrawlReport) -> None:
    gone = sorted({row.repo_id for row in index.rows() if _read_by_a_crawl(row)} - seen)
    if not gone:
        return
    with index.update() as tx:
        for repo in gone:
            for row in index.rows_of_repo(repo):
                if _read_by_a_crawl(row):
                    tx.remove(repo, row.standard_hash)
            tx.record_crawl(repo, None, "removed", "no longer listed with the tag")
    report.removed.extend(gone)


def _is_transient(error: StdEmbedError) -> bool:
    """Network trouble and exhausted rate limits (:attr:`RegistryError.transient`): worth
    retrying at the next crawl. A missing repo, revision or file, a refused access or an
    oversized file is final for that commit."""
    return isinstance(error, RegistryError) and error.transient
