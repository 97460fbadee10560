"""``hf-stdembed publish``: a model's embedding into its own repo, with its model card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..standards import DEFAULT_STANDARD, get_standard
from ._embed import BatchSizeOption, CacheDirOption, DeviceOption, QuietOption
from ._render import quiet_libraries, stderr


def publish(
    repo_id: Annotated[str, typer.Argument(help="The model repo to publish to (org/name).")],
    model: Annotated[
        str | None,
        typer.Option(help="Embed this model spec instead of the repo's own model."),
    ] = None,
    embedding: Annotated[
        list[Path] | None,
        typer.Option(
            "--embedding",
            "-e",
            help="Publish this precomputed embedding file (repeatable: one per standard).",
        ),
    ] = None,
    standard: Annotated[
        list[str] | None,
        typer.Option(
            "--standard",
            "-s",
            help=f"Built-in standard id or YAML file (repeatable; default {DEFAULT_STANDARD}).",
        ),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(help="Model revision to embed (default: the head of main, pinned)."),
    ] = None,
    create_pr: Annotated[
        bool,
        typer.Option("--create-pr", help="Open a pull request (for repos you cannot write to)."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show the files and README diff; push nothing."),
    ] = False,
    registry: Annotated[
        str | None,
        typer.Option(
            help="Hub endpoint URL, or a local directory laid out like Hub repos "
            "(default: the Hub at HF_ENDPOINT)."
        ),
    ] = None,
    device: DeviceOption = None,
    batch_size: BatchSizeOption = 64,
    cache_dir: CacheDirOption = None,
    quiet: QuietOption = False,
) -> None:
    """Embed a model and publish it to its repo: stdembed/<standard>.safetensors and the
    model card, in one commit."""
    from ..publish import check_access, diff_plan, plan_publish
    from ..publish import publish as push
    from ..registry import open_registry

    if embedding and (model is not None or revision is not None):
        raise typer.BadParameter(
            "--embedding files are published as they are: drop --model / --revision"
        )
    if quiet:
        quiet_libraries()
    target = open_registry(registry)
    standards = [get_standard(s) for s in standard or [DEFAULT_STANDARD]]
    if not dry_run:
        check_access(target, repo_id, create_pr=create_pr)
    plan = plan_publish(
        target,
        repo_id,
        standards=standards,
        model=model,
        embeddings=embedding,
        revision=revision,
        progress=not quiet,
        device=device,
        batch_size=batch_size,
        cache_dir=cache_dir,
    )
    if dry_run:
        typer.echo(diff_plan(plan), nl=False)
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
    typer.echo(result.pr_url or result.commit_url or target.url(repo_id))
