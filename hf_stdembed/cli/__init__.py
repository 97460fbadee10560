"""The ``hf-stdembed`` command line (also ``hf stdembed`` as a Hugging Face CLI extension).

The CLI only composes: parse, call the library, render. Data goes to stdout, progress and
hints to stderr. Known errors print ``Error: ...`` and exit 1; set ``HF_STDEMBED_DEBUG=1``
for tracebacks.
"""

from __future__ import annotations

import os
import sys

import typer

from ..errors import StdEmbedError
from . import _embed, _embed_many, _evaluate, _index, _publish, _select, _standards

app = typer.Typer(
    name="hf-stdembed",
    help="Scalable model selection with Standardized Embedder: embed models and tasks, rank.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.add_typer(_standards.app, name="standards")
app.command("embed")(_embed.embed)
app.command("task")(_embed.task)
app.command("rank")(_embed.rank)
app.command("demo")(_embed.demo)
app.command("publish")(_publish.publish)
app.command("select")(_select.select)
app.command("verify")(_select.verify)
app.add_typer(_index.app, name="index")
app.command("evaluate")(_evaluate.evaluate)
app.command("embed-many")(_embed_many.embed_many)


def main() -> None:
    """Console entry point: runs the app behind the error boundary."""
    try:
        app(standalone_mode=False)
    except StdEmbedError as e:
        _fail(str(e))
    except FileNotFoundError as e:
        _fail(f"{e.strerror or 'not found'}: {e.filename or e}")
    except typer.Abort:
        _fail("aborted")
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    except Exception as e:
        # click's usage errors (missing argument, bad value, unknown option...) print their
        # usage line (duck-typed: recent Typer versions vendor their own copy of click)
        show, code = getattr(e, "show", None), getattr(e, "exit_code", None)
        if type(e).__module__.partition(".")[0] not in ("click", "typer") or not isinstance(
            code, int
        ):
            raise
        if callable(show):
            show()
        sys.exit(code)


def _fail(message: str, *, code: int = 1) -> None:
    if os.environ.get("HF_STDEMBED_DEBUG"):
        raise
    typer.echo(f"Error: {message}", err=True)
    sys.exit(code)
