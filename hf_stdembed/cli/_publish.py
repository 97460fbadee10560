"""``hf-stdembed publish``: a model's embedding into its own repo, with its model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._options import (
    DEFAULT_STANDARD,
    BatchSizeOpt,
    CacheDirOpt,
    CreatePrOpt,
    DeviceOpt,
    JsonOpt,
    ModelOpt,
    QuietOpt,
    RegistryOpt,
    RevisionOpt,
    StandardsOpt,
    TokenOpt,
)
from ._render import progress_bars, quiet_libraries, stderr

if TYPE_CHECKING:
    from ..publish import PublishPlan
    from ..registry import CommitResult


def publish(
    repo_id: Annotated[str, typer.Argument(help="The model repo to publish to (org/name).")],
    model: ModelOpt = None,
    embedding: Annotated[
        list[Path] | None,
        typer.Option(
            "--embedding",
            "-e",
            help="Publish this precomputed embedding file (repeatable: one per standard).",
        ),
    ] = None,
    standard: StandardsOpt = None,
    revision: RevisionOpt = None,
    create_pr: CreatePrOpt = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show the files and README diff; push nothing."),
    ] = False,
    as_json: JsonOpt = False,
    registry: RegistryOpt = None,
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = 64,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    token: TokenOpt = None,
) -> None:
    """Embed a model; publish stdembed/<standard>.safetensors and its card in one commit.

    --standard: repeatable, one embedding per standard (default: resnet18-in1k-val).

    --model: the card records it when it names a Hub repo (a local directory: not loadable).

    --revision: the model's, pinned in the card (default: the head of main).

    --json: the URLs and each standard's file, sha256 and fidelity (--dry-run: diff to stderr).
    """
    from ..publish import check_access, diff_plan, plan_publish
    from ..publish import publish as push
    from ..registry import open_registry
    from ..resolve import resolve_standard_or_indexed

    if embedding and (model is not None or revision is not None):
        raise typer.BadParameter(
            "--embedding files are published as they are: drop --model / --revision"
        )
    if quiet:
        quiet_libraries()
    target = open_registry(registry, token=token)
    standards = [resolve_standard_or_indexed(s) for s in standard or [DEFAULT_STANDARD]]
    if not dry_run:
        check_access(target, repo_id, create_pr=create_pr)
    with progress_bars(quiet) as on_progress:
        plan = plan_publish(
            target,
            repo_id,
            standards=standards,
            model=model,
            embeddings=embedding,
            revision=revision,
            on_progress=on_progress,
            device=device,
            batch_size=batch_size,
            cache_dir=cache_dir,
        )
    if dry_run:
        typer.echo(diff_plan(plan), nl=False, err=as_json)
        if as_json:
            typer.echo(json.dumps(result_json(plan, None), indent=2))
        stderr().print("Dry run: nothing was pushed.")
        return
    result = push(target, plan, create_pr=create_pr)
    for entry in plan.entries:
        stderr().print(
            f"{entry.standard_id}: {entry.file} ({entry.dim} features, fidelity "
            f"{entry.fidelity:.4f})"
        )
    if result.pr_url:
        stderr().print(f"Opened a pull request on {repo_id}.")
    else:
        stderr().print(f"Published to {repo_id}.")
    if as_json:
        typer.echo(json.dumps(result_json(plan, result, url=target.url(repo_id)), indent=2))
    else:
        typer.echo(result.pr_url or result.commit_url or target.url(repo_id))


def result_json(plan: PublishPlan, result: CommitResult | None, *, url: str | None = None) -> dict:
    """What ``publish --json`` prints: the commit (None on a dry run) and each embedding."""
    return {
        "repo_id": plan.repo_id,
        "dry_run": result is None,
        "url": None if result is None else result.pr_url or result.commit_url or url,
        "commit_url": None if result is None else result.commit_url,
        "pr_url": None if result is None else result.pr_url,
        "commit": None if result is None else result.oid,
        "parent_commit": plan.parent_commit,
        "embeddings": [
            {"standard": entry.standard_id, **entry.to_metadata()} for entry in plan.entries
        ],
    }
