"""Publishing: a model's embedding into its own repo, with its model card, in one commit.

:func:`plan_publish` reads the repo (its head and README), computes (or loads) the
embedding for each standard and renders the new card; :func:`diff_plan` shows the plan
(``--dry-run``); :func:`publish` commits it, pinned to the revision read, and re-renders the
card on top of a concurrent change. Embedding files go under ``stdembed/``, never at the
repo root (timm loads every root ``*.safetensors`` as weights); so does the YAML of a standard
that is not built in (``stdembed/<id>.yaml``), so that readers of the card can use it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .card import CardEntry, editable_card, embedding_path, standard_path, update_card
from .embeddings import ModelEmbedding, embedding_bytes, load_embedding
from .errors import (
    ConcurrentUpdateError,
    InvalidEmbeddingError,
    InvalidStandardError,
    StandardMismatchError,
)
from .progress import Progress
from .registry import CommitResult, ModelSource, Registry
from .standards import Standard, builtin_standards

README = "README.md"


@dataclass(frozen=True)
class PublishPlan:
    """Everything one publish commits, computed before anything is pushed."""

    repo_id: str
    parent_commit: str | None  # the revision read: the commit is made on top of it
    files: dict[str, bytes]  # embedding files (and custom standards' YAML): path -> bytes
    readme_before: str | None  # None: the repo has no README.md
    readme_after: str
    entries: tuple[CardEntry, ...]  # what the card records, one per standard

    def commit_files(self) -> dict[str, bytes]:
        """The embedding files, custom standards' YAML and the new README.md: what the commit
        holds."""
        return {**self.files, README: self.readme_after.encode("utf-8")}


def check_access(registry: Registry, repo_id: str, *, create_pr: bool = False) -> None:
    """Fails before any work when a publish is bound to be refused (no token, a repo out of
    the account's namespaces, an unwritable folder), where the registry can tell.

    Raises:
        AuthError: the message says the fix (log in, or ``--create-pr``).
        RepoNotFoundError: for a directory registry without the repo.
    """
    registry.check_write(repo_id, create_pr=create_pr)


def plan_publish(
    registry: Registry,
    repo_id: str,
    *,
    standards: Sequence[Standard],
    model: str | None = None,
    embeddings: Sequence[Path] | None = None,
    revision: str | None = None,
    on_progress: Progress | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
) -> PublishPlan:
    """Reads the repo and computes what publishing would commit; pushes nothing.

    The model embedded is, by default, the repo's own at a pinned commit: ``revision``
    resolved to a sha (default: the head of ``main``). For a directory registry it is the
    repo folder. ``model`` embeds another spec instead (``revision`` then applies to it), and
    ``embeddings`` publishes precomputed files (one per standard, matched by standard hash).
    The card records the model spec others can load (the repo's own on the Hub, ``model``
    when it names a Hub repo; None for a local directory, an entry point, or a directory
    registry). A standard that is not built in is committed too, as ``stdembed/<id>.yaml``,
    and the card points to it.

    Args:
        registry (`Registry`): where the repo lives.
        repo_id (`str`): the model repo to publish to.
        standards (`Sequence[Standard]`): the standards to embed under (at least one).
        model (`str`, *optional*): a model spec to embed instead of the repo itself.
        embeddings (`Sequence[Path]`, *optional*): precomputed embedding files.
        revision (`str`, *optional*): the model revision to embed.
        on_progress (`Progress`, *optional*): hears the extractions and optimisations.
        device, batch_size, cache_dir: as in
            :func:`~hf_stdembed.pipeline.compute_model_embedding`.

    Returns:
        `PublishPlan`: the files, the README before and after, and the card entries.

    Raises:
        InvalidStandardError: no standard, a standard given twice, or an id that cannot
            name a file.
        StandardMismatchError: an embedding file of none of the standards, or a standard
            without a file.
        RepoNotFoundError, RepoRevisionNotFoundError, GatedRepoAccessError, RegistryError:
            from the registry.
        ModelLoadError: the model cannot be loaded.
        InvalidCardError: the README cannot be edited: its front matter cannot be read, its
            ``tags`` are not a list, or its ``hf_stdembed`` metadata is malformed.

    Example:
        ```py
        >>> standard = get_standard("resnet18-in1k-val")
        >>> plan = plan_publish(HubRegistry(), "me/model", standards=[standard])
        >>> print(diff_plan(plan))
        ```
    """
    if not standards:
        raise InvalidStandardError("no standard given: name at least one (--standard)")
    ids = [s.id for s in standards]
    for standard_id in ids:
        if ids.count(standard_id) > 1:
            raise InvalidStandardError(f"standard {standard_id!r} is given twice")
        embedding_path(standard_id)
    if embeddings and (model is not None or revision is not None):
        raise ValueError("Invalid arguments: embedding files are published as they are; "
                         "model and revision apply only when computing")  # fmt: skip

    parent = registry.head(repo_id)
    readme = registry.read_text(repo_id, README, revision=parent)
    editable_card(readme, repo_id=repo_id)  # before any work: a card publish cannot edit
    if embeddings:
        computed = _load_files(embeddings, standards)
    else:
        computed = _compute(
            registry,
            repo_id,
            parent,
            standards,
            model=model,
            revision=revision,
            options={
                "on_progress": on_progress,
                "device": device,
                "batch_size": batch_size,
                "cache_dir": cache_dir,
            },
        )
    custom = _custom_standards(standards)
    entries = tuple(
        CardEntry.from_embedding(
            emb,
            data,
            sha256=hashlib.sha256(data).hexdigest(),
            standard_file=standard_path(emb.standard_id) if emb.standard_id in custom else None,
        )
        for emb, data in computed
    )
    files = {entry.file: data for entry, (_, data) in zip(entries, computed, strict=True)}
    for standard_id, text in custom.items():
        files[standard_path(standard_id)] = text.encode("utf-8")
    return PublishPlan(
        repo_id=repo_id,
        parent_commit=parent,
        files=files,
        readme_before=readme,
        readme_after=update_card(readme, list(entries), repo_id=repo_id),
        entries=entries,
    )


def rebase_plan(registry: Registry, plan: PublishPlan) -> PublishPlan:
    """The plan on top of the repo's current head: README re-read and the card re-rendered.

    The embedding files are kept as they are: they depend on the model, not on the card.
    """
    head = registry.head(plan.repo_id)
    readme = registry.read_text(plan.repo_id, README, revision=head)
    return dataclasses.replace(
        plan,
        parent_commit=head,
        readme_before=readme,
        readme_after=update_card(readme, list(plan.entries), repo_id=plan.repo_id),
    )


def publish(
    registry: Registry,
    plan: PublishPlan,
    *,
    create_pr: bool = False,
    max_attempts: int = 3,
) -> CommitResult:
    """Commits a plan: the embedding files and README.md in one commit on ``parent_commit``.

    When someone else commits in between (the registry answers with a parent mismatch), the
    README is read again at the new head, the card re-rendered on top of it and the commit
    retried, at most ``max_attempts`` times in all. The embedding itself is not recomputed:
    it depends on the model only.

    Args:
        registry (`Registry`): where the repo lives.
        plan (`PublishPlan`): from :func:`plan_publish`.
        create_pr (`bool`, defaults to False): open a pull request instead of committing to
            the main branch (for repos you cannot write to).
        max_attempts (`int`, defaults to 3): commits tried in all.

    Returns:
        `CommitResult`: the commit (or pull request) made.

    Raises:
        ConcurrentUpdateError: the repo kept changing for ``max_attempts`` tries.
        AuthError: no token, or no write access (the message suggests ``--create-pr``).
        RepoNotFoundError, GatedRepoAccessError, RegistryError: from the registry.

    Example:
        ```py
        >>> result = publish(registry, plan_publish(registry, "me/model", standards=[std]))
        >>> result.commit_url
        'https://huggingface.co/me/model/commit/...'
        ```
    """
    if max_attempts < 1:
        raise ValueError(f"Invalid max_attempts value: {max_attempts} (must be >= 1)")
    ids = ", ".join(entry.standard_id for entry in plan.entries)
    message = f"Publish hf-stdembed embedding{'s' if len(plan.entries) > 1 else ''} ({ids})"
    for attempt in range(1, max_attempts + 1):
        try:
            return registry.commit(
                plan.repo_id,
                plan.commit_files(),
                message=message,
                parent_commit=plan.parent_commit,
                create_pr=create_pr,
            )
        except ConcurrentUpdateError as e:
            if attempt == max_attempts:
                raise ConcurrentUpdateError(
                    f"{plan.repo_id} kept changing while publishing ({max_attempts} attempts); "
                    "publish again",
                    repo_id=plan.repo_id,
                ) from e
            plan = rebase_plan(registry, plan)
    raise AssertionError("unreachable")  # pragma: no cover


def diff_plan(plan: PublishPlan) -> str:
    """What a plan would change, for ``--dry-run``: each file with its size and sha256, what
    the card records per standard, and a unified diff of README.md."""
    lines = [f"Would commit to {plan.repo_id} on top of {plan.parent_commit or 'the head'}:"]
    for path, data in sorted(plan.commit_files().items()):
        lines.append(f"  {path}  {len(data)} bytes  sha256 {hashlib.sha256(data).hexdigest()}")
    for entry in plan.entries:
        lines.append(
            f"  standard {entry.standard_id} ({entry.standard_hash}): {entry.dim} features, "
            f"fidelity {entry.fidelity:.4f} (L_to {entry.l_to:.4f}, L_from {entry.l_from:.4f}), "
            f"model {entry.model or '(no spec others can load)'} at revision "
            f"{entry.model_revision or 'unknown'}"
            + (
                f"; the standard's YAML goes to {entry.standard_file}"
                if entry.standard_file
                else ""
            )
        )
    before = _lines(plan.readme_before or "")
    after = _lines(plan.readme_after)
    source = "a/README.md" if plan.readme_before is not None else "/dev/null"
    diff = "".join(difflib.unified_diff(before, after, fromfile=source, tofile="b/README.md"))
    return "\n".join(lines) + "\n\n" + (diff or "README.md: no change\n")


def _custom_standards(standards: Sequence[Standard]) -> dict[str, str]:
    """The YAML of each standard that is not built in (by id): readers need it to use the
    embedding."""
    builtin = builtin_standards()
    return {
        s.id: s.to_yaml() for s in standards if s.id not in builtin or builtin[s.id].hash != s.hash
    }


def _lines(text: str) -> list[str]:
    return [line if line.endswith("\n") else line + "\n" for line in text.splitlines(True)]


def _compute(
    registry: Registry,
    repo_id: str,
    parent: str,
    standards: Sequence[Standard],
    *,
    model: str | None,
    revision: str | None,
    options: dict,
) -> list[tuple[ModelEmbedding, bytes]]:
    from .extractors import load_extractor
    from .pipeline import compute_model_embedding

    if model is None:
        source = _repo_model(registry, repo_id, parent, revision)
    else:  # another spec: loaded with the registry's token, as the repo's own would be
        source = ModelSource(model, revision, registry.token)
    extractor = load_extractor(source.spec, revision=source.revision, token=source.token)
    results = []
    for standard in standards:  # the baseline and probe set download with the same token
        embedding = compute_model_embedding(extractor, standard, token=source.token, **options)
        results.append((embedding, embedding_bytes(embedding)))
    return results


def _repo_model(registry: Registry, repo_id: str, parent: str, revision: str | None) -> ModelSource:
    """The repo's own model, pinned: at the commit read (``parent``), or at ``revision``
    resolved to a commit. A folder loads as it is; ``head`` still refuses a ``revision`` that
    is not its current files."""
    source = registry.model_source(repo_id, revision=parent)
    if revision is None:
        return source
    pinned = registry.head(repo_id, revision=revision)
    return source if source.revision is None else dataclasses.replace(source, revision=pinned)


def _load_files(
    paths: Sequence[Path], standards: Sequence[Standard]
) -> list[tuple[ModelEmbedding, bytes]]:
    """Each file validated against the standard whose hash it records, in standards order."""
    found: dict[str, tuple[ModelEmbedding, bytes]] = {}
    for path in paths:
        for standard in standards:
            try:
                embedding = load_embedding(path, standard=standard, kind=ModelEmbedding)
            except StandardMismatchError:
                continue
            break
        else:
            given = ", ".join(s.id for s in standards)
            raise StandardMismatchError(
                f"{path}: its standard is none of those given ({given}); pass its standard "
                "with --standard (a built-in id or a YAML file)"
            )
        if standard.id in found:
            raise InvalidEmbeddingError(f"a second file for standard {standard.id!r}", path=path)
        found[standard.id] = (embedding, Path(path).read_bytes())
    missing = [s.id for s in standards if s.id not in found]
    if missing:
        raise StandardMismatchError(
            f"no embedding file given for standard(s) {', '.join(missing)}: pass one with "
            "--embedding, or drop that --standard"
        )
    return [found[s.id] for s in standards]
