"""Every option more than one command takes, defined once: one name, one meaning, one help.

As in ``huggingface_hub``'s ``cli/_cli_utils.py``: a command declares ``token: TokenOpt =
None`` and never spells the flag or its help itself. ``tests/test_cli_options.py`` walks the
app and fails when a name gets a second definition or a second help text.

An option's type may differ between commands (``--standard`` is repeatable for ``publish``,
optional for ``index list``) while its meaning does not: those share one ``typer.Option``
(Typer copies it per parameter).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# The same as hf_stdembed.standards.DEFAULT_STANDARD (tests check it): spelled out here so that
# importing the CLI does not import the standards module, which imports torch.
DEFAULT_STANDARD = "resnet18-in1k-val"

DEFAULT_CRAWL_SECONDS = 1800.0  # half an hour: a first crawl of a few thousand repos
DEFAULT_CRAWL_MB = 2048.0  # 2 GB: about 500,000 embeddings of N = 512 (4 KB each)

# -- what to work under and where ---------------------------------------------------------

_STANDARD = typer.Option(
    "--standard",
    "-s",
    help="Standard: a built-in id, the id (or hash) of a standard the local index has seen, "
    "or a standard YAML file.",
)
StandardOpt = Annotated[str, _STANDARD]
OptionalStandardOpt = Annotated[str | None, _STANDARD]
StandardsOpt = Annotated[list[str] | None, _STANDARD]

_STANDARD_FILE_HELP = (
    "Custom standard YAML file whose embeddings the crawl accepts besides the built-in "
    "standards' (repeatable)."
)
StandardFileOpt = Annotated[
    list[str] | None, typer.Option("--standard-file", help=_STANDARD_FILE_HELP)
]
StandardFileAliasOpt = Annotated[
    list[str] | None,
    typer.Option("--standard", "-s", hidden=True, help="Old spelling of --standard-file."),
]
"""``index update --standard FILE`` before ``--standard-file`` existed; hidden (click cannot
hide one spelling of an option, so the old one is a second, hidden option)."""

RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Where embeddings are published: a Hub endpoint URL (default: the Hub at "
        "HF_ENDPOINT) or a local directory laid out like Hub repos.",
    ),
]
IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index", help="Local index folder (default: $HF_STDEMBED_INDEX or the HF cache)."
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Hugging Face token for the Hub (default: $HF_TOKEN, else the token saved by "
        "`hf auth login`).",
    ),
]
RevisionOpt = Annotated[
    str | None,
    typer.Option(
        "--revision",
        help="Branch, tag or commit of the Hub repo to read (default: main).",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Model spec of the repo's embedding, when it is not the repo's own model "
        "(timm:ORG/NAME, transformers:ORG/NAME, a local directory...).",
    ),
]
CreatePrOpt = Annotated[
    bool,
    typer.Option(
        "--create-pr",
        help="Open a pull request instead of committing (for repos you cannot write to).",
    ),
]

# -- data ----------------------------------------------------------------------------------

SplitOpt = Annotated[str, typer.Option("--split", help="Dataset split to learn the task from.")]
ImageColumnOpt = Annotated[
    str | None, typer.Option("--image-column", help="Image column (detected).")
]
LabelColumnOpt = Annotated[
    str | None, typer.Option("--label-column", help="Label column (detected).")
]
OutOpt = Annotated[
    Path,
    typer.Option("--out", "-o", help="Where to write the result (a file; for evaluate, a folder)."),
]

# -- compute -------------------------------------------------------------------------------

DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="torch device (default: cuda, then mps, then cpu)."),
]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", help="Forward-pass batch size.")]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Cache folder of computed features and results (default: under the HF cache).",
    ),
]
CrawlSecondsOpt = Annotated[
    float,
    typer.Option(
        "--crawl-seconds",
        help="Time budget of the crawl, in seconds (0: none); repos not reached are crawled "
        "next time.",
    ),
]
CrawlMegabytesOpt = Annotated[
    float,
    typer.Option(
        "--crawl-mb",
        help="Download budget of the crawl, in MB (0: none); repos not reached are crawled "
        "next time.",
    ),
]

# -- output --------------------------------------------------------------------------------

_TOP = typer.Option("--top", help="Show only the best K models.")
TopOpt = Annotated[int, _TOP]
OptionalTopOpt = Annotated[int | None, _TOP]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON instead of a table or text (for scripts).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
