"""The outcome log of ``embed-many``: ``embed-many.jsonl`` beside the index, what each model
came to (and the pull request opened for it), the record a rerun resumes from."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .embed_many import ModelJob, ModelOutcome
    from .standards import Standard

__all__ = ["OutcomeLog"]


class OutcomeLog:
    """``embed-many.jsonl`` beside the index: one line per outcome (and opened pull request),
    appended and fsynced; a torn last line (a crash) is ignored when read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, standard: Standard, job: ModelJob, outcome: ModelOutcome) -> None:
        """Records an outcome of a model at a revision."""
        self._write(
            {
                "standard": standard.hash,
                "repo": job.repo_id,
                "revision": job.revision,
                "status": outcome.status,
                "reason": outcome.reason,
                "seconds": round(outcome.seconds, 3),
                "device": outcome.device,
            }
        )

    def append_pr(self, standard: Standard, repo_id: str, revision: str, url: str) -> None:
        """Records the pull request opened for a model's embedding at a revision."""
        self._write({"standard": standard.hash, "repo": repo_id, "revision": revision, "pr": url})

    def latest(self, standard: Standard) -> dict[str, dict[str, Any]]:
        """The last outcome of each repo under ``standard`` (``pr``: the last pull request
        opened for it, at ``pr_revision``)."""
        found: dict[str, dict[str, Any]] = {}
        for entry in self._entries():
            if entry.get("standard") != standard.hash or not isinstance(entry.get("repo"), str):
                continue
            current = found.setdefault(entry["repo"], {})
            if "pr" in entry:
                current["pr"], current["pr_revision"] = entry["pr"], entry.get("revision")
            else:
                current.update({k: v for k, v in entry.items() if k != "pr"})
        return found

    def _write(self, entry: dict[str, Any]) -> None:
        entry["at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _entries(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash
                if isinstance(entry, dict):
                    yield entry
