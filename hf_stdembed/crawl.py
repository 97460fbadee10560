"""The crawler: published embeddings from a registry into the local index.

It lists the repos carrying the ``hf-stdembed`` tag, and downloads only the embedding files
of repos whose commit changed since the last crawl, pinned to that commit. Every file is
validated before it enters the index (size cap before download, safetensors only, dtype,
shape, values, standard hash, sha256 equal to the card's); one bad repo is recorded with its
reason and never stops a crawl. Results are committed to the index in batches of repos, each
batch atomically: a crash or Ctrl-C loses at most the batch in flight, which the next crawl
redoes (its repos' recorded commits did not move).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ._files import file_sha256
from .card import CARD_TAG, CardEntry, card_entries
from .embeddings import MAX_FILE_BYTES, ModelEmbedding, load_embedding
from .errors import RegistryError, StdEmbedError
from .index import EmbeddingIndex, IndexRow
from .registry import Registry, RepoSummary
from .standards import Standard, builtin_standards


@dataclass
class CrawlReport:
    """What a crawl did."""

    listed: int = 0  # repos carrying the tag
    unchanged: int = 0  # skipped: same commit as last crawl
    downloaded: int = 0  # embedding files downloaded
    indexed: list[str] = field(default_factory=list)  # repos whose rows were (re)written
    removed: list[str] = field(default_factory=list)  # repos dropped (untagged, deleted...)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (repo, reason)


@dataclass(frozen=True)
class _RepoResult:
    summary: RepoSummary
    rows: list[tuple[IndexRow, ModelEmbedding]]
    problems: list[str]
    failed: bool  # a transient error: do not record the commit, retry next crawl


def crawl(
    registry: Registry,
    index: EmbeddingIndex,
    *,
    tag: str = CARD_TAG,
    standards: Iterable[Standard] = (),
    max_bytes: int = MAX_FILE_BYTES,
    batch_size: int = 50,
    on_repo: Callable[[str], None] | None = None,
) -> CrawlReport:
    """Brings the index up to date with the registry.

    Args:
        registry: where to list and download from.
        index: the local index to update.
        tag: the tag published repos carry.
        standards: standards to accept besides the built-in ones (custom YAML standards).
        max_bytes: embedding files larger than this are refused before download.
        batch_size: repos per index transaction.
        on_repo: progress callback, called with each repo id as it is handled.

    Returns:
        Counts, and each problem with its repo and reason.
    """
    known = builtin_standards() | {s.id: s for s in standards}
    report = CrawlReport()
    seen: set[str] = set()
    pending: list[_RepoResult] = []
    for summary in registry.list_tagged(tag):
        report.listed += 1
        seen.add(summary.repo_id)
        if on_repo is not None:
            on_repo(summary.repo_id)
        state = index.crawl_state(summary.repo_id)
        if state is not None and state.sha == summary.sha and state.status != "error":
            report.unchanged += 1
            continue
        result = _read_repo(registry, summary, known, max_bytes, report)
        pending.append(result)
        if len(pending) >= batch_size:
            _commit(index, pending, report)
            pending = []
    _commit(index, pending, report)
    _remove_missing(index, seen, report)
    return report


def _read_repo(
    registry: Registry,
    summary: RepoSummary,
    known: dict[str, Standard],
    max_bytes: int,
    report: CrawlReport,
) -> _RepoResult:
    entries, problems = card_entries(summary.card_data)
    if not entries and not problems:
        problems.append("the card has the tag but no hf_stdembed entries")
    rows = []
    for entry in entries.values():
        try:
            rows.append(_read_entry(registry, summary, entry, known, max_bytes, report))
        except _Skip as e:
            problems.append(f"{entry.file}: {e}")
        except StdEmbedError as e:
            problems.append(f"{entry.file}: {e}")
            if _is_transient(e):
                return _RepoResult(summary, [], problems, failed=True)
    return _RepoResult(summary, rows, problems, failed=False)


class _Skip(Exception):
    """An entry that cannot be indexed, for a reason worth recording."""


def _read_entry(
    registry: Registry,
    summary: RepoSummary,
    entry: CardEntry,
    known: dict[str, Standard],
    max_bytes: int,
    report: CrawlReport,
) -> tuple[IndexRow, ModelEmbedding]:
    standard = known.get(entry.standard_id)
    if standard is None:
        raise _Skip(f"unknown standard {entry.standard_id!r}")
    if entry.standard_hash != standard.hash:
        raise _Skip(
            f"standard {entry.standard_id!r} hash {entry.standard_hash} differs from the "
            f"known {standard.hash}"
        )
    path = registry.download(summary.repo_id, entry.file, revision=summary.sha, max_bytes=max_bytes)
    report.downloaded += 1
    digest = file_sha256(path)
    if digest != entry.sha256:
        raise _Skip(f"sha256 {digest} differs from the card's {entry.sha256}")
    embedding = load_embedding(path, standard=standard, max_bytes=max_bytes)
    if not isinstance(embedding, ModelEmbedding):
        raise _Skip("is a task embedding, not a model embedding")
    row = IndexRow.from_embedding(
        embedding, summary.repo_id, revision=summary.sha, file_path=entry.file, file_sha256=digest
    )
    return row, embedding


def _commit(index: EmbeddingIndex, results: list[_RepoResult], report: CrawlReport) -> None:
    if not results:
        return
    with index.update() as tx:
        for result in results:
            repo = result.summary.repo_id
            report.problems.extend((repo, p) for p in result.problems)
            if result.failed:
                tx.record_crawl(repo, None, "error", "; ".join(result.problems))
                continue
            kept = {row.standard_hash for row, _ in result.rows}
            for old in _rows_of(index, repo):
                if old.standard_hash not in kept:
                    tx.remove(repo, old.standard_hash)
            for row, embedding in result.rows:
                tx.upsert(row, embedding.vector)
            status = "indexed" if result.rows else "invalid"
            reason = "; ".join(result.problems) or None
            tx.record_crawl(repo, result.summary.sha, status, reason)
            if result.rows:
                report.indexed.append(repo)


def _remove_missing(index: EmbeddingIndex, seen: set[str], report: CrawlReport) -> None:
    gone = sorted({row.repo_id for row in index.rows()} - seen)
    if not gone:
        return
    with index.update() as tx:
        for repo in gone:
            for row in _rows_of(index, repo):
                tx.remove(repo, row.standard_hash)
            tx.record_crawl(repo, None, "removed", "no longer listed with the tag")
    report.removed.extend(gone)


def _rows_of(index: EmbeddingIndex, repo_id: str) -> list[IndexRow]:
    found = (index.get(repo_id, h) for h in index.stats().standards)
    return [row for row in found if row is not None]


def _is_transient(error: StdEmbedError) -> bool:
    """Network trouble and exhausted rate limits: worth retrying at the next crawl. A missing
    repo, revision or file, a refused access or an oversized file is final for that commit."""
    return type(error) is RegistryError
