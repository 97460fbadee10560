"""Embedding many Hub models under one standard, on Ray or in-process, into the local index.

The driver resolves the models (a list of specs, or a Hub query) to ``(repo, commit)`` jobs,
skips those the index already holds at that commit (or whose owner publishes an embedding of
their own: a crawled row always wins, :attr:`hf_stdembed.index.IndexRow.crawled`), computes the
baseline's probe features once and hands them to every model's task (``ray.put`` on Ray, the
tensor itself in-process). Each task extracts its own model's probe features (the feature
cache) and runs P. Each result is committed to the index as it arrives (one transaction), its
embedding file kept under ``<index>/embed-many/<standard hash>/``, and every outcome, failures
with their reason, appended to ``<index>/embed-many.jsonl``. A crash of a worker or of the
driver therefore loses only the models in flight; a rerun skips what is done and retries what
failed.

Without Ray (not installed, or ``use_ray=False``) the same tasks run in-process, one model
after another, with the same results.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._text import shorten
from .errors import ModelLoadError, StdEmbedError
from .outcome_log import OutcomeLog
from .progress import Progress, ProgressEvent

if TYPE_CHECKING:
    import torch

    from .index import EmbeddingIndex
    from .registry import HubRegistry, Registry
    from .standards import Standard

logger = logging.getLogger(__name__)

STATE_FILE = "embed-many.jsonl"
"""The log of outcomes beside the index (one JSON object a line, the last line of a model wins)."""
FILES_FOLDER = "embed-many"
"""The embedding files beside the index: ``<index>/embed-many/<standard hash>/<org>--<name>``."""
SOURCE_PREFIX = "embed-many:"
"""``IndexRow.source`` of a row computed here: ``embed-many:<who>`` (hostname by default)."""
HUB_SORTS = ("downloads", "likes", "trending_score", "created_at", "last_modified")
# Forwarded to Ray workers (a remote cluster too): where the Hub is and how to reach it.
_HUB_ENV = ("HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_XET")
# Forwarded to a local Ray only: folders of this machine.
_LOCAL_ENV = ("HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_STDEMBED_CACHE")

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class ModelJob:
    """One model to embed: the Hub repo its row is filed under, what to load, and at which
    commit (the row's ``model_revision``; a rerun at the same commit skips it)."""

    repo_id: str
    spec: str
    revision: str


@dataclass(frozen=True)
class ModelOutcome:
    """What happened to one model."""

    repo_id: str
    status: Status
    reason: str | None = None  # why it was skipped or failed
    seconds: float = 0.0  # wall time of its task
    device: str = "cpu"  # where the task ran: "cuda", "mps" or "cpu"


@dataclass
class EmbedManyReport:
    """What :func:`embed_many` did."""

    done: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (repo, why)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (repo, reason)
    device_seconds: dict[str, float] = field(default_factory=dict)  # "cuda"/"cpu" -> seconds
    baseline_passes_saved: int = 0  # baseline forward passes (images) not run again per model
    executor: str = "in-process"  # "in-process" or "ray <address>"


# =========================================================================================
# Which models
# =========================================================================================


def read_model_list(text: str) -> list[str]:
    """Model specs from a file's text: one a line; blank lines and ``#`` comments ignored.

    Args:
        text: the file's text (a stranger's file is fine: nothing is interpreted).

    Returns:
        The specs, stripped, in order, each once.
    """
    specs = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return list(dict.fromkeys(s for s in specs if s))


def resolve_specs(
    specs: Iterable[str], registry: HubRegistry
) -> tuple[list[ModelJob], list[tuple[str, str]]]:
    """Each spec's Hub repo and the commit its ``main`` points to now.

    Returns:
        The jobs (one per repo), and the specs that could not be resolved with the reason
        (a missing or gated repo, the Hub unreachable): :func:`embed_many` records them.

    Raises:
        ModelLoadError: a spec names a local folder or an entry point (rows are filed under Hub
            repos: give the repo id).
    """
    from .errors import RegistryError
    from .extractors import parse_spec

    jobs: dict[str, ModelJob] = {}
    problems = []
    for spec in specs:
        source, target = parse_spec(spec)
        if source == "entrypoint" or Path(target).expanduser().exists():
            raise ModelLoadError(
                "embed-many files rows under Hub repos: give the model's Hub repo id "
                "(org/name, timm:org/name or transformers:org/name), not a local folder or an "
                "entry point",
                spec=spec,
            )
        try:
            jobs.setdefault(target, ModelJob(target, spec, registry.head(target)))
        except RegistryError as e:
            problems.append((spec, shorten(str(e))))
    return list(jobs.values()), problems


def hub_query(
    registry: HubRegistry,
    *,
    filters: Sequence[str] = (),
    library: str | None = None,
    sort: str = "downloads",
    limit: int = 100,
) -> list[ModelJob]:
    """The first ``limit`` models of a Hub query (``HfApi.list_models``), most ``sort`` first.

    Args:
        registry: the Hub to ask.
        filters: tags every model must carry (``image-classification``...).
        library: the library tag (``timm``, ``transformers``); it also prefixes the spec.
        sort: one of :data:`HUB_SORTS`.
        limit: at most this many models.

    Raises:
        ValueError: an unknown ``sort`` or a ``limit`` below 1.
        RegistryError: the listing failed.
    """
    if sort not in HUB_SORTS:
        raise ValueError(f"Invalid sort value: {sort!r} (one of {', '.join(HUB_SORTS)})")
    if limit < 1:
        raise ValueError(f"Invalid limit value: {limit} (must be >= 1)")
    wanted = [*filters, *([library] if library else [])]
    prefix = f"{library}:" if library in ("timm", "transformers") else ""

    def listing() -> list[ModelJob]:
        found = registry.api.list_models(
            filter=wanted or None, sort=sort, limit=limit, expand=["sha", "library_name"]
        )
        return [ModelJob(m.id, prefix + m.id, m.sha) for m in found if m.sha]

    return registry.retrying(None, listing)


# =========================================================================================
# One model (a Ray task, or a call in-process)
# =========================================================================================


@dataclass(frozen=True)
class _TaskResult:
    repo_id: str
    data: bytes | None  # the embedding file's bytes; None on failure
    reason: str | None
    seconds: float
    device: str


_PROBES: dict[str, Any] = {}  # standard hash -> probe set, per worker process


def embed_one(
    job: ModelJob,
    standard: Standard,
    baseline_features: torch.Tensor,
    *,
    device: str | None = None,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    token: str | None = None,
) -> _TaskResult:
    """Embeds one model given the standard's probe features (a union's: standardised; see
    :func:`~hf_stdembed.pipeline.standard_features`): the body of a Ray task.

    Never raises for the model's sake: a model that cannot be loaded or embedded gives a
    result with its reason (one line). ``token``: Hub token for the model and the probe set
    (default: the saved login, or ``HF_TOKEN``, which Ray tasks get from the driver).
    """
    import torch

    from .embeddings import embedding_bytes
    from .extractors import load_extractor
    from .features import default_device, extract_features
    from .pipeline import embed_features, load_probe, model_embedding_of

    started = time.monotonic()
    target = torch.device(device) if device else default_device()
    try:
        extractor = load_extractor(job.spec, revision=job.revision, token=token)
        if standard.hash not in _PROBES:
            _PROBES[standard.hash] = load_probe(standard, token=token)
        probe = _PROBES[standard.hash]
        features = extract_features(
            extractor,
            probe,
            batch_size=batch_size,
            device=target,
            cache_dir=cache_dir,
        )
        result = embed_features(features, baseline_features, standard, device=target)
        data, reason = embedding_bytes(model_embedding_of(extractor, standard, result)), None
    except Exception as e:  # any model's failure is its own: recorded, never the run's end
        data, reason = None, shorten(f"{type(e).__name__}: {e}".replace("\n", " "))
    return _TaskResult(job.repo_id, data, reason, time.monotonic() - started, target.type)


# =========================================================================================
# Many models
# =========================================================================================


def default_computed_by() -> str:
    """Who computed a row, by default: this machine's hostname."""
    return socket.gethostname() or "unknown"


def embed_many(
    jobs: Sequence[ModelJob],
    standard: Standard,
    index: EmbeddingIndex,
    *,
    computed_by: str | None = None,
    use_ray: bool | None = None,
    ray_address: str | None = None,
    device: str | None = None,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    max_retries: int = 1,
    unresolved: Sequence[tuple[str, str]] = (),
    on_progress: Progress | None = None,
    token: str | None = None,
) -> EmbedManyReport:
    """Embeds every job's model under ``standard`` into ``index`` (resumable, idempotent).

    Args:
        jobs: the models (:func:`resolve_specs`, :func:`hub_query`).
        standard: the standard.
        index: the local index; rows get ``source = "embed-many:<computed_by>"``.
        computed_by: who computed the rows (default: the hostname).
        use_ray: True: on Ray (an error if it is not installed); False: in-process, one model
            after another; None: Ray when it is installed.
        ray_address: ``auto``, ``ray://HOST:PORT`` or None (a local Ray, or the one this
            process is connected to already).
        device: torch device in-process (default: best); Ray tasks use their GPU if given one.
        batch_size, cache_dir: as in :func:`~hf_stdembed.pipeline.compute_model_embedding`.
        max_retries: Ray retries of a task whose worker died (a model whose load or
            optimisation fails is never retried in the same run).
        unresolved: (spec, reason) of models :func:`resolve_specs` could not resolve:
            recorded as failed.
        on_progress: hears ``models``: each model (``item``: its repo id) as it is over,
            unresolved and skipped ones first.
        token: Hub token for the models, the baseline and the probe set when they are
            private or gated (default: the saved login); passed to each Ray task.

    Returns:
        Done, skipped and failed models (with reasons), device time, baseline passes saved.

    Raises:
        StdEmbedError: the standard's baseline or probe set cannot be loaded, Ray is asked
            for but not installed, or its cluster cannot be reached.
    """
    from .pipeline import load_baselines, load_probe, standard_features

    computed_by = computed_by or default_computed_by()
    log = OutcomeLog(index.root / STATE_FILE)
    report = EmbedManyReport()
    total = len(jobs) + len(unresolved)

    def finish(outcome: ModelOutcome) -> None:
        _finish(report, outcome)
        if on_progress is not None:
            done = len(report.done) + len(report.skipped) + len(report.failed)
            on_progress(ProgressEvent("models", done, total, "model", outcome.repo_id))

    if on_progress is not None:
        on_progress(ProgressEvent("models", 0, total, "model"))
    for spec, reason in unresolved:
        outcome = ModelOutcome(spec, "failed", reason)
        log.append(standard, ModelJob(spec, spec, ""), outcome)
        finish(outcome)
    todo = []
    for job in jobs:
        why = _skip_reason(index, standard, job)
        if why is None:
            todo.append(job)
        else:
            finish(ModelOutcome(job.repo_id, "skipped", why))
    if not todo:
        return report
    ray = _ray_module(use_ray, ray_address)

    probe = load_probe(standard, token=token)
    baselines = load_baselines(standard, token=token)
    base, _ = standard_features(  # a union's blocks standardised over the probe
        baselines, probe, standard, batch_size=batch_size, device=device, cache_dir=cache_dir
    )
    report.baseline_passes_saved = (len(todo) - 1) * len(probe.dataset)
    options = {"batch_size": batch_size, "cache_dir": cache_dir, "token": token}
    if ray is None:
        results: Iterator[_TaskResult] = (
            embed_one(job, standard, base, device=device, **options) for job in todo
        )
    else:
        results = _on_ray(ray, ray_address, todo, standard, base, options, max_retries, report)
    by_repo = {job.repo_id: job for job in todo}
    for result in results:
        job = by_repo[result.repo_id]
        finish(_record(index, standard, job, result, computed_by, log))
    return report


def _skip_reason(index: EmbeddingIndex, standard: Standard, job: ModelJob) -> str | None:
    existing = index.get(job.repo_id, standard.hash)
    if existing is None:
        return None
    if existing.crawled:
        return "its owner publishes an embedding under this standard (a crawled row wins)"
    if existing.model_revision == job.revision:
        return f"embedded already at this revision ({existing.source})"
    return None


def _finish(report: EmbedManyReport, outcome: ModelOutcome) -> None:
    if outcome.status == "done":
        report.done.append(outcome.repo_id)
    elif outcome.status == "skipped":
        report.skipped.append((outcome.repo_id, outcome.reason or ""))
    else:
        report.failed.append((outcome.repo_id, outcome.reason or "unknown"))
    if outcome.seconds:
        seconds = report.device_seconds.get(outcome.device, 0.0) + outcome.seconds
        report.device_seconds[outcome.device] = seconds


def embedding_file(index: EmbeddingIndex, standard: Standard, repo_id: str) -> Path:
    """Where the embedding file of a model computed by :func:`embed_many` is kept."""
    return index.root / FILES_FOLDER / standard.hash / f"{repo_id.replace('/', '--')}.safetensors"


def _record(
    index: EmbeddingIndex,
    standard: Standard,
    job: ModelJob,
    result: _TaskResult,
    computed_by: str,
    log: OutcomeLog,
) -> ModelOutcome:
    """Files a task's result: the embedding file, the index row (unless a crawled row holds
    the place), the log line."""
    from ._files import atomic_write
    from .card import embedding_path
    from .embeddings import ModelEmbedding, load_embedding
    from .index import IndexRow
    from .pipeline import loadable_spec
    from .standards import builtin_standards

    status: Status = "failed"
    reason = result.reason
    if result.data is not None:
        path = atomic_write(embedding_file(index, standard, job.repo_id), result.data)
        try:
            embedding = load_embedding(path, standard=standard, kind=ModelEmbedding)
            if embedding.model_revision != job.revision:
                raise ModelLoadError(
                    f"loaded revision {embedding.model_revision}, asked for {job.revision}",
                    spec=job.spec,
                )
            row = IndexRow.from_embedding(
                embedding,
                job.repo_id,
                revision=job.revision,
                file_path=embedding_path(standard.id),
                file_sha256=hashlib.sha256(result.data).hexdigest(),
                source=shorten(SOURCE_PREFIX + computed_by, 200),
                model_spec=loadable_spec(job.spec),  # what was embedded, when others can load it
            )
            with index.update() as tx:
                existing = index.get(job.repo_id, standard.hash)
                if existing is not None and existing.crawled:  # the import rule: crawled wins
                    status, reason = "skipped", "its owner published an embedding meanwhile"
                else:
                    if builtin_standards().get(standard.id) != standard:  # as the crawl does
                        tx.remember_standard(standard, trusted=True, origin="user")
                    tx.upsert(row, embedding.vector)
                    status, reason = "done", None
        except StdEmbedError as e:
            reason = shorten(str(e))
    outcome = ModelOutcome(job.repo_id, status, reason, result.seconds, result.device)
    log.append(standard, job, outcome)
    return outcome


# ---- Ray ---------------------------------------------------------------------------------


def _ray_module(use_ray: bool | None, address: str | None) -> Any:
    """The ``ray`` module, or None to run in-process."""
    if use_ray is False:
        if address is not None:
            raise StdEmbedError("a Ray address was given with Ray turned off: drop one of them")
        return None
    try:
        import ray
    except ImportError:
        if use_ray or address is not None:
            raise StdEmbedError(
                'Ray is not installed: pip install "hf-stdembed[ray]" (or run without '
                "--ray-address, in-process)"
            ) from None
        return None
    return ray


def _on_ray(
    ray: Any,
    address: str | None,
    jobs: list[ModelJob],
    standard: Standard,
    base: torch.Tensor,
    options: dict[str, Any],
    max_retries: int,
    report: EmbedManyReport,
) -> Iterator[_TaskResult]:
    """Runs the jobs as Ray tasks (a GPU each where the cluster has GPUs), at most a few per
    slot in flight; yields each result as it arrives. A task whose worker died, after its
    retries, gives a failed result with Ray's reason."""
    pending: dict[Any, ModelJob] = {}
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as e:  # ConnectionError, ValueError, RuntimeError...: one line
            raise StdEmbedError(
                f"cannot start or reach Ray at {address or 'a new local cluster'}: "
                f"{shorten(str(e).splitlines()[0] if str(e) else type(e).__name__)}"
            ) from e
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        report.executor = f"ray {address or 'local'} ({gpus} GPU, {int(resources['CPU'])} CPU)"
        names = _HUB_ENV + (_LOCAL_ENV if address is None else ())
        env = {name: os.environ[name] for name in names if name in os.environ}
        task = ray.remote(embed_one).options(
            num_gpus=1 if gpus else 0,
            num_cpus=1,
            max_retries=max_retries,
            retry_exceptions=False,
            runtime_env={"env_vars": env},
        )
        base_ref = ray.put(base)  # once: every task reads the same object
        slots = max(1, gpus or int(resources.get("CPU", 1)))
        queue = list(reversed(jobs))
        while queue or pending:
            while queue and len(pending) < 2 * slots:
                job = queue.pop()
                pending[task.remote(job, standard, base_ref, **options)] = job
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as e:
                    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                    yield _TaskResult(job.repo_id, None, shorten(f"Ray: {reason}"), 0.0, "cpu")
    finally:
        for ref in pending:  # the driver stops (an error, Ctrl-C): the models in flight are lost
            ray.cancel(ref)
        if started_here:
            ray.shutdown()


# =========================================================================================
# Pull requests to the models' own repos
# =========================================================================================


@dataclass(frozen=True)
class PullRequestOutcome:
    """A pull request opened (``url``) or not (``reason``) for one model."""

    repo_id: str
    url: str | None = None
    reason: str | None = None


def open_pull_requests(
    registry: Registry,
    index: EmbeddingIndex,
    standard: Standard,
    jobs: Sequence[ModelJob],
    *,
    on_progress: Progress | None = None,
) -> list[PullRequestOutcome]:
    """Opens a pull request to each model's own repo with its embedding and card (the publish
    path), for every job embedded here at its revision and not proposed yet at it.
    ``on_progress`` hears ``pull requests``: each repo (``item``) once tried.

    Returns:
        One outcome per pull request tried; a refused one carries its reason (one line).
    """
    from .publish import plan_publish, publish

    log = OutcomeLog(index.root / STATE_FILE)
    latest = log.latest(standard)
    outcomes: list[PullRequestOutcome] = []
    todo = [job for job in jobs if _pr_due(latest.get(job.repo_id, {}), job)]
    for job in todo:
        path = embedding_file(index, standard, job.repo_id)
        try:
            plan = plan_publish(registry, job.repo_id, standards=[standard], embeddings=[path])
            url = publish(registry, plan, create_pr=True).pr_url
            outcome = PullRequestOutcome(job.repo_id, url=url or "")
            log.append_pr(standard, job.repo_id, job.revision, outcome.url or "")
        except (StdEmbedError, OSError) as e:
            outcome = PullRequestOutcome(job.repo_id, reason=shorten(str(e)))
        outcomes.append(outcome)
        if on_progress is not None:
            on_progress(
                ProgressEvent("pull requests", len(outcomes), len(todo), "repo", job.repo_id)
            )
    return outcomes


def _pr_due(state: dict[str, Any], job: ModelJob) -> bool:
    """Whether ``job`` is embedded here at its revision and not proposed yet at it."""
    if state.get("status") != "done" or state.get("revision") != job.revision:
        return False
    return not (state.get("pr") and state.get("pr_revision") == job.revision)
