"""The shared index as a Hub dataset repo: ``index push`` and ``index pull``.

An exported index (:meth:`EmbeddingIndex.export_parquet
<hf_stdembed.index.EmbeddingIndex.export_parquet>`) is committed as ``data/index.parquet``
with a dataset card, so ``datasets.load_dataset(repo_id)`` reads it too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import RegistryError, RemoteFileNotFoundError
from .errors import hub_errors, require_token, retry_delay, status_of, with_retries
from .protocol import LIBRARY_NAME, CommitResult, check_repo_id

INDEX_DATASET_FILE = "data/index.parquet"  # where `index push` puts the index in a dataset repo
_CARD_TEMPLATE = "---\n{{ card_data }}\n---\n\n{{ body }}"


class IndexDatasets:
    """The dataset-repo half of :class:`~hf_stdembed.registry.hub.HubRegistry`: pushing and
    pulling the shared index. It uses the registry's client, endpoint, token and retries."""

    endpoint: str
    token: str | None
    api: Any  # huggingface_hub.HfApi
    max_attempts: int
    _sleep: Callable[[float], None]

    def push_index_dataset(
        self,
        repo_id: str,
        parquet: Path,
        *,
        private: bool = False,
        create_pr: bool = False,
    ) -> CommitResult:
        """Uploads an exported index (:meth:`EmbeddingIndex.export_parquet`) as a dataset repo.

        Creates the dataset repo if needed (``private`` applies only then), then makes one
        commit of ``data/index.parquet`` and a dataset card (``README.md``) whose metadata tags
        it ``hf-stdembed`` and points ``datasets.load_dataset(repo_id)`` at the parquet. A 429
        is retried, honouring ``Retry-After``.

        Args:
            repo_id (`str`): the dataset repo, ``org/name``.
            parquet (`Path`): the exported index.
            private (`bool`, defaults to False): create the repo private.
            create_pr (`bool`, defaults to False): open a pull request instead of committing.

        Returns:
            `CommitResult`: the commit (or pull request) made.

        Raises:
            AuthError: no token, or no write access (the message suggests ``--create-pr``).
            RepoNotFoundError: an invalid repo id.
            RegistryError: the Hub cannot be reached, or offline mode is on.
        """
        from huggingface_hub import CommitOperationAdd

        check_repo_id(repo_id, namespaced=True)
        require_token(self.token, repo_id)
        card = index_dataset_card(parquet)
        how = {"writing": True, "create_pr": create_pr, "repo_type": "dataset"}
        with hub_errors(self.endpoint, self.token, repo_id, **how):
            self.api.create_repo(
                repo_id, repo_type="dataset", private=True if private else None, exist_ok=True
            )
        for attempt in range(1, self.max_attempts + 1):
            operations = [  # recreated on each try: create_commit mutates them
                CommitOperationAdd(INDEX_DATASET_FILE, str(parquet)),
                CommitOperationAdd("README.md", card.encode()),
            ]
            try:
                with hub_errors(self.endpoint, self.token, repo_id, **how):
                    info = self.api.create_commit(
                        repo_id,
                        operations,
                        commit_message=f"Update the index ({LIBRARY_NAME} {__version__})",
                        repo_type="dataset",
                        create_pr=create_pr,
                    )
                return CommitResult(commit_url=info.commit_url, pr_url=info.pr_url, oid=info.oid)
            except RegistryError as e:
                if status_of(e.__cause__) != 429 or attempt == self.max_attempts:
                    raise
                self._sleep(retry_delay(e.__cause__, attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def download_index_dataset(self, repo_id: str, *, revision: str | None = None) -> Path:
        """Downloads the index a dataset repo holds (pushed by :meth:`push_index_dataset`).

        Args:
            repo_id (`str`): the dataset repo, ``org/name``.
            revision (`str`, *optional*): a branch, tag or commit; default the main branch.

        Returns:
            `Path`: the parquet file, in the Hub cache.

        Raises:
            RepoNotFoundError: no such dataset repo (or private and not visible).
            RemoteFileNotFoundError: the repo holds no ``data/index.parquet``.
            RepoRevisionNotFoundError, GatedRepoAccessError, RegistryError.
        """
        check_repo_id(repo_id, namespaced=True)
        try:
            local = with_retries(
                lambda: self.api.hf_hub_download(
                    repo_id, INDEX_DATASET_FILE, repo_type="dataset", revision=revision
                ),
                attempts=self.max_attempts,
                sleep=self._sleep,
                errors=lambda: hub_errors(self.endpoint, self.token, repo_id, repo_type="dataset"),
            )
        except RemoteFileNotFoundError as e:
            raise RemoteFileNotFoundError(
                f"dataset {repo_id} has no {INDEX_DATASET_FILE} at revision {revision or 'main'}: "
                "push an index there with `hf-stdembed index push`",
                repo_id=repo_id,
            ) from e
        return Path(local)


def index_dataset_card(parquet: Path) -> str:
    """The dataset card (``README.md``) of an index pushed by ``index push``.

    Its metadata (a :class:`~huggingface_hub.DatasetCardData`) tags it ``hf-stdembed`` and
    declares ``data/index.parquet`` as the default config, so ``datasets.load_dataset(repo_id)``
    reads it; the text counts the rows of each standard.
    """
    import pyarrow.parquet as pq
    from huggingface_hub import DatasetCard, DatasetCardData

    table = pq.read_table(parquet, columns=["standard_id", "standard_hash"])
    grouped = table.group_by(["standard_id", "standard_hash"]).aggregate([([], "count_all")])
    counts = {
        (row["standard_id"], row["standard_hash"]): row["count_all"] for row in grouped.to_pylist()
    }
    data = DatasetCardData(
        tags=[LIBRARY_NAME],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": INDEX_DATASET_FILE}],
            }
        ],
    )
    body = [
        f"# {LIBRARY_NAME} index",
        "",
        f"Published standard embeddings of models, one row per (model repo, standard): the "
        f"repo, the commit and file they were read from, the fidelities `l_to` / `l_from` and "
        f"the vector (`embedding`). Written by {LIBRARY_NAME} {__version__} "
        f"(`hf-stdembed index push`); read it into a local index with "
        f"`hf-stdembed index pull REPO_ID`.",
        "",
        f"{table.num_rows} rows:",
        "",
        "| standard | hash | rows |",
        "|---|---|---|",
        *(f"| {sid} | `{sh}` | {n} |" for (sid, sh), n in sorted(counts.items())),
        "",
    ]
    card = DatasetCard.from_template(data, template_str=_CARD_TEMPLATE, body="\n".join(body))
    return str(card)
