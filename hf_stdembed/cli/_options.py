"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# The same as hf_stdembed.standards.DEFAULT_STANDARD (tests check it): spelled out here so that
# importing the CLI does not import the standards module, which imports torch.
DEFAULT_STANDARD = "resnet18-in1k-val"

RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Where embeddings are published: a Hub endpoint URL (default: the Hub at "
        "HF_ENDPOINT) or a local directory laid out like Hub repos.",
    ),
]
IndexOption = Annotated[
    Path | None,
    typer.Option(
        "--index", help="Local index folder (default: $HF_STDEMBED_INDEX or the HF cache)."
    ),
]
StandardsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--standard",
        "-s",
        help="Custom standard YAML file(s) to accept besides the built-in ones (repeatable).",
    ),
]
