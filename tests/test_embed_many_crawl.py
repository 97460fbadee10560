"""A crawl removes only the rows it read itself: rows pulled from a shared index or computed
by ``embed-many`` belong to no repo's listing and must survive the next crawl."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import index_rows
import numpy as np
from index_rows import H2, H
from model_repos import STANDARD, published_files

from hf_stdembed.crawl import crawl
from hf_stdembed.index import EmbeddingIndex
from hf_stdembed.registry import DirectoryRegistry


def _row(i: int, source: str, **changes: object):
    return dataclasses.replace(index_rows.make_row(i, **changes), source=source)


def test_a_complete_crawl_removes_only_crawled_rows_of_repos_no_longer_listed(tmp_path: Path):
    root = tmp_path / "registry"
    root.mkdir()
    vectors = index_rows.vectors(4)
    with EmbeddingIndex.open(tmp_path / "index") as index:
        with index.update() as tx:
            tx.upsert(_row(0, "crawl"), vectors[0])  # its repo lost the tag: removed
            tx.upsert(_row(1, "legacy"), vectors[1])  # crawled by an older version: removed
            tx.upsert(_row(2, "pull:org/shared-index@abc"), vectors[2])
            tx.upsert(_row(3, "embed-many:gpu-box"), vectors[3])
        report = crawl(DirectoryRegistry(root), index)
        assert sorted(report.removed) == ["org/model-0", "org/model-1"]
        assert sorted(r.repo_id for r in index.rows()) == ["org/model-2", "org/model-3"]


def test_a_crawl_of_a_repo_keeps_third_party_rows_of_other_standards(tmp_path: Path):
    """The owner publishes under one standard; a third party's row under another stays."""
    root = tmp_path / "registry"
    (root / "team" / "m").mkdir(parents=True)
    registry = DirectoryRegistry(root)
    registry.commit("team/m", published_files("team/m", 0), message="pub", parent_commit=None)
    with EmbeddingIndex.open(tmp_path / "index") as index:
        with index.update() as tx:
            tx.upsert(_row(0, "embed-many:gpu-box", repo_id="team/m"), index_rows.vectors(1)[0])
            # a stale crawled row of a standard the owner dropped: removed
            tx.upsert(
                _row(1, "crawl", repo_id="team/m", standard_hash=H2), index_rows.vectors(1)[0]
            )
        crawl(registry, index)
        rows = {(r.standard_hash, r.source) for r in index.rows_of_repo("team/m")}
        assert rows == {(STANDARD.hash, "crawl"), (H, "embed-many:gpu-box")}
        assert np.array_equal(index.vectors(H)[0], index_rows.vectors(1)[0])
