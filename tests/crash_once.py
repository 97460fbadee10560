"""Kill the process embedding one model, once: ``embed_one`` wrapped, for the crash tests.

``crash_once(embed_one, marker, repo)`` gives an ``embed_one`` that kills its process with
SIGKILL the first time it is called for ``repo`` (``marker`` records that it did). The tests
put it in place of ``hf_stdembed.embed_many.embed_one``: in a Ray driver (Ray pickles the
wrapper, a closure, by value into its workers), or in a subprocess running the CLI in-process:

    python tests/crash_once.py MARKER REPO embed-many ...
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def crash_once(embed_one: Callable[..., Any], marker: Path, repo: str) -> Callable[..., Any]:
    """``embed_one``, except that the first call for ``repo`` kills this process."""

    def embed_or_crash(job: Any, *args: Any, **kwargs: Any) -> Any:
        if job.repo_id == repo and not marker.exists():
            marker.write_text("crashed once\n")
            os.kill(os.getpid(), signal.SIGKILL)
        return embed_one(job, *args, **kwargs)

    return embed_or_crash


if __name__ == "__main__":
    import hf_stdembed.embed_many
    from hf_stdembed.cli import main

    marker, repo, *arguments = sys.argv[1:]
    module = hf_stdembed.embed_many
    module.embed_one = crash_once(module.embed_one, Path(marker), repo)
    sys.argv = ["hf-stdembed", *arguments]
    main()
