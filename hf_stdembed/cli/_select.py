"""``hf-stdembed select`` and ``hf-stdembed verify``: selection over published embeddings."""

from __future__ import annotations

from typing import Annotated

import typer

from ._index import run_crawl
from ._options import DEFAULT_STANDARD, IndexOption, RegistryOption
from ._render import quiet_libraries, render_ranking, stderr


def select(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Hub dataset id or local dataset path.")
    ],
    split: Annotated[str, typer.Option(help="Dataset split to learn the task from.")] = "train",
    standard: Annotated[
        str, typer.Option("--standard", "-s", help="Built-in standard id or a YAML file.")
    ] = DEFAULT_STANDARD,
    top: Annotated[int, typer.Option(help="How many models to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    registry: RegistryOption = None,
    index: IndexOption = None,
    refresh: Annotated[
        bool, typer.Option(help="Crawl the registry for new or changed embeddings first.")
    ] = True,
    image_column: Annotated[str | None, typer.Option(help="Image column (detected).")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column (detected).")] = None,
    device: Annotated[str | None, typer.Option(help="torch device (default: best).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Rank every published model for a dataset: one task embedding, one sweep."""
    from huggingface_hub import constants

    from ..index import EmbeddingIndex
    from ..pipeline import compute_task_embedding
    from ..registry import HubRegistry, open_registry
    from ..selection import rank_index
    from ..standards import get_standard

    if quiet:
        quiet_libraries()
    std = get_standard(standard)
    links = open_registry(registry)
    if refresh and isinstance(links, HubRegistry) and constants.HF_HUB_OFFLINE:
        stderr().print("HF_HUB_OFFLINE is set: ranking the local index as it is (no crawl).")
        refresh = False
    with EmbeddingIndex.open(index) as opened:
        if refresh:
            custom = [standard] if standard.endswith((".yaml", ".yml")) else None
            run_crawl(registry, opened, custom, quiet=quiet)
        task = compute_task_embedding(
            dataset,
            std,
            split=split,
            image_column=image_column,
            label_column=label_column,
            device=device,
            progress=not quiet,
        )
        ranking = rank_index(task, opened, top=top)
    render_ranking(
        ranking, as_json=as_json, extra={"link": [links.url(r.model_id) for r in ranking.rows]}
    )
    if not ranking.rows:
        stderr().print(
            f"No published model uses standard {std.id!r} yet: nothing to rank "
            "(try --refresh, another --standard, or --registry)."
        )


def verify(
    repo_id: Annotated[str, typer.Argument(help="The repo whose published embedding to check.")],
    standard: Annotated[
        str, typer.Option("--standard", "-s", help="Built-in standard id or a YAML file.")
    ] = DEFAULT_STANDARD,
    model: Annotated[
        str | None, typer.Option(help="Model spec to recompute with (default: the repo).")
    ] = None,
    registry: RegistryOption = None,
    min_jaccard: Annotated[
        float, typer.Option(help="Least Jaccard overlap of the masks that counts as agreement.")
    ] = 0.9,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Recompute a published embedding from the model and compare (defence against forgery)."""
    from ..errors import StdEmbedError
    from ..registry import open_registry
    from ..standards import get_standard
    from ..verify import verify_published

    if quiet:
        quiet_libraries()
    result = verify_published(
        open_registry(registry), repo_id, get_standard(standard), model=model, progress=not quiet
    )
    typer.echo(
        f"{repo_id} [{result.standard_id}]: Jaccard {result.jaccard:.3f}, max |diff| "
        f"{result.max_abs_diff:.4f}, fidelity published {result.published_fidelity:.4f} / "
        f"recomputed {result.recomputed_fidelity:.4f}"
    )
    if not result.agrees(min_jaccard):
        raise StdEmbedError(
            f"the published embedding of {repo_id} does not match its recomputation "
            f"(Jaccard {result.jaccard:.3f} < {min_jaccard})"
        )
