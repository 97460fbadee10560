"""``hf-stdembed evaluate``: does selection pick good models on your own pool and tasks?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import StdEmbedError
from ._options import (
    DEFAULT_STANDARD,
    CacheDirOpt,
    DeviceOpt,
    OutOpt,
    QuietOpt,
    StandardOpt,
    TokenOpt,
)
from ._render import progress_lines, quiet_libraries, stderr


def parse_task(
    text: str,
    *,
    test_fraction: float,
    seed: int,
    max_samples: int | None,
    splits: int = 1,
    token: str | None = None,
):
    """``NAME=DATASET[:split]`` -> a :class:`SplitTask` with ``splits`` seeded, stratified
    train/test splits (seeds ``seed .. seed + splits - 1``).

    ``DATASET`` is a ``.parquet`` file, a local folder or a Hub id (read with ``token``;
    default: the saved login); the split (default ``train``) is split class by class into
    train and test parts.
    """
    from ..evaluation import load_split_task

    if splits < 1:
        raise StdEmbedError(f"--splits {splits}: need at least 1 train/test split")
    if not 0.0 < test_fraction < 1.0:
        raise StdEmbedError(f"--test-fraction {test_fraction}: choose a share in (0, 1)")
    name, sep, source = text.partition("=")
    if not sep or not name or not source:
        raise StdEmbedError(f"bad --task {text!r}: write NAME=DATASET[:split]")
    source, split = _dataset_and_split(source)
    return load_split_task(
        name,
        source,
        split=split,
        splits=splits,
        test_fraction=test_fraction,
        seed=seed,
        max_samples=max_samples,
        token=token,
    )


def _dataset_and_split(source: str) -> tuple[str, str]:
    """``DATASET[:split]`` -> (DATASET, split; default ``train``)."""
    head, colon, tail = source.rpartition(":")
    if colon and tail and "/" not in tail and not Path(source).exists():
        return head, tail
    return source, "train"


def task_source(text: str) -> str:
    """The DATASET of a ``NAME=DATASET[:split]`` task, without its split: the task's dataset
    id for the ``declared`` stage-1 order."""
    return _dataset_and_split(text.partition("=")[2])[0]


def parse_declared(texts: list[str], candidates: list[str]) -> list[tuple[str, ...]] | None:
    """``SPEC=DATASET[,DATASET...]`` options -> per candidate (in ``candidates``' order) the
    dataset ids its card declares; None when no option is given."""
    if not texts:
        return None
    claims: dict[str, tuple[str, ...]] = {}
    for text in texts:
        spec, sep, datasets = text.rpartition("=")
        ids = tuple(d.strip() for d in datasets.split(",") if d.strip())
        if not sep or not spec or not ids:
            raise StdEmbedError(f"bad --declared {text!r}: write SPEC=DATASET[,DATASET...]")
        if spec not in candidates:
            raise StdEmbedError(
                f"--declared {spec!r} is not a --candidate; give the candidate's spec as written"
            )
        claims[spec] = claims.get(spec, ()) + ids
    return [claims.get(c, ()) for c in candidates]


def evaluate(
    candidate: Annotated[
        list[str], typer.Option("--candidate", "-c", help="Candidate model spec (repeatable).")
    ],
    task: Annotated[
        list[str], typer.Option("--task", "-t", help="NAME=DATASET[:split] (repeatable).")
    ],
    out: OutOpt,
    standard: StandardOpt = DEFAULT_STANDARD,
    test_fraction: Annotated[float, typer.Option(help="Share of each class to test on.")] = 0.3,
    max_samples: Annotated[
        int | None, typer.Option(help="Stratified subsample of each task first.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the first split.")] = 0,
    splits: Annotated[
        int,
        typer.Option(
            help="Seeded train/test splits per task (seeds SEED..SEED+N-1): every figure is "
            "reported as the mean with a 95% bootstrap interval over them."
        ),
    ] = 5,
    cache_dir: CacheDirOpt = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            help="Variant of our selector to report (repeatable; default: all). "
            "'faithful' is the paper's method.",
        ),
    ] = None,
    logme: Annotated[bool, typer.Option(help="Also score the pool with LogME.")] = True,
    research: Annotated[
        list[str] | None,
        typer.Option(
            "--research",
            help="Closed-form stage-1 score to add (repeatable): r2, r2+normalised, "
            "beyond-baseline, union-r2, union-r2+normalised (union-*: with --union-baseline).",
        ),
    ] = None,
    union_baseline: Annotated[
        list[str] | None,
        typer.Option(
            "--union-baseline",
            help="Model spec whose features join the baseline's for the union-* scores "
            "(repeatable).",
        ),
    ] = None,
    shortlist: Annotated[
        list[str] | None,
        typer.Option(
            "--shortlist",
            help="Named stage-1 configuration to report as a two-stage selector (repeatable; "
            "e.g. faithful+normalised+declared); writes two-stage-curve.md: quality against K.",
        ),
    ] = None,
    declared: Annotated[
        list[str] | None,
        typer.Option(
            "--declared",
            help="SPEC=DATASET[,DATASET...]: what a candidate's card declares it was trained on "
            "(repeatable); a task's id is its DATASET as given to --task.",
        ),
    ] = None,
    plots: Annotated[bool, typer.Option(help="Write PNG plots (needs matplotlib).")] = True,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
    token: TokenOpt = None,
) -> None:
    """Linear probes over seeded splits vs our selection, LogME, fidelity, LOTO, largest, random.

    --token: for the candidates, the tasks' datasets, the standard's baseline and probe set.

    --cache-dir: the probe results are kept only when it is given.
    """
    from ..evaluation import DEFAULT_VARIANTS, curve_markdown
    from ..evaluation import evaluate as run_evaluation
    from ..evaluation.selectors import check_research
    from ..resolve import resolve_standard_or_indexed

    known = {v.name: v for v in DEFAULT_VARIANTS}
    unknown = [name for name in variant or () if name not in known]
    if unknown:
        raise StdEmbedError(
            f"unknown --variant {', '.join(unknown)}; choose among {', '.join(known)}"
        )
    variants = (
        tuple(known[name] for name in dict.fromkeys(variant)) if variant else DEFAULT_VARIANTS
    )
    claims = parse_declared(declared or [], candidate)
    try:
        check_research(tuple(research or ()), union_baseline or (), tuple(shortlist or ()))
    except ValueError as e:
        raise StdEmbedError(f"{e} (--research, --union-baseline, --shortlist)") from None
    if quiet:
        quiet_libraries()
    std = resolve_standard_or_indexed(standard)
    specs = [
        parse_task(
            t,
            test_fraction=test_fraction,
            seed=seed,
            max_samples=max_samples,
            splits=splits,
            token=token,
        )
        for t in task
    ]
    report = run_evaluation(
        candidate,
        std,
        specs,
        variants=variants,
        with_logme=logme,
        device=device,
        cache_dir=cache_dir,
        research=tuple(research or ()),
        union_baselines=tuple(union_baseline or ()),
        shortlists=tuple(shortlist or ()),
        declared=claims,
        dataset_ids={t.partition("=")[0]: task_source(t) for t in task} if claims else None,
        on_progress=progress_lines(quiet),
        token=token,
    )
    written = report.save(out, plots=plots)
    if shortlist:
        curve = Path(out) / "two-stage-curve.md"
        curve.write_text(curve_markdown(report, shortlist) + "\n")
        written.append(curve)
    typer.echo(report.to_markdown())
    stderr().print(f"wrote {len(written)} files under {out}")
