"""The Hub's listing of tagged models, read page by page, bounded in time and size.

Pages are read raw rather than through ``HfApi.list_models``: that builds a ``ModelCardData``
from every card, and one stranger's malformed card (``tags: 5``) raises inside the generator
and ends the whole listing. They are not read through ``huggingface_hub.utils.paginate``
either: its ``http_backoff`` has no timeout (the shared client's is None), retries a refused
connection 5 times over ~24 s, and sleeps whatever ``Retry-After`` asks (3600 s five times
over).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .. import __version__
from .._yaml import MAX_YAML_BYTES
from ..errors import RegistryError, RepoNotFoundError
from .errors import (
    MAX_RETRY_AFTER,
    RETRY_STATUSES,
    first_line,
    hub_errors,
    offline_error,
    retry_after,
    retry_delay,
)
from .protocol import LIBRARY_NAME, RepoSummary, check_repo_id

logger = logging.getLogger(__name__)

LISTING_TIMEOUT_ENV = "HF_STDEMBED_LISTING_TIMEOUT"
DEFAULT_LISTING_TIMEOUT = 60.0
"""Seconds one page of a Hub listing may take, whole (``$HF_STDEMBED_LISTING_TIMEOUT``)."""
MAX_LISTING_PAGE_BYTES = 256 * 1024 * 1024
"""Largest page of a Hub listing read."""
MAX_LISTED_CARD_DATA_CHARS = 2 * MAX_YAML_BYTES
"""Largest card metadata kept from a listing item, as compact JSON (a card's YAML is read up
to :data:`~hf_stdembed._yaml.MAX_YAML_BYTES`; its JSON can be somewhat longer)."""
_SHA_RE = re.compile(r"[0-9a-f]{40}")
_MAX_LISTED_ID_CHARS = 200  # longer listed ids are skipped, not recorded
_OFFLINE_HINT = (
    "to rank the local index without listing, pass --no-refresh to select, or set HF_HUB_OFFLINE=1"
)


@dataclass(frozen=True)
class TaggedListing:
    """How one Hub lists models: where, as whom, how many tries, how long a page may take."""

    endpoint: str
    token: str | None
    max_attempts: int
    sleep: Callable[[float], None]
    timeout: float  # seconds for a whole page, and for each network read

    def summaries(self, tag: str) -> Iterator[RepoSummary]:
        """Every model repo whose tags include ``tag``, one request per page; see
        :meth:`HubRegistry.list_tagged <hf_stdembed.registry.hub.HubRegistry.list_tagged>`.

        Raises:
            RegistryError: the endpoint cannot be reached, is too slow, rate-limits for too
                long, or refuses the listing.
        """
        from huggingface_hub.utils import build_hf_headers

        url: str | None = f"{self.endpoint}/api/models"
        params: dict[str, Any] | None = {
            "filter": [tag],
            "expand": ["sha", "lastModified", "cardData"],
        }
        headers = build_hf_headers(
            token=self.token, library_name=LIBRARY_NAME, library_version=__version__
        )
        while url is not None:
            page, url = self._page(url, params, headers)
            params = None  # the next page's URL holds the query
            for item in page:
                summary = listed_summary(item)
                if summary is not None:
                    yield summary

    def _page(
        self, url: str, params: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[list, str | None]:
        """(one page of the listing, the next page's URL or None)."""
        import httpx2
        from huggingface_hub.errors import OfflineModeIsEnabled
        from huggingface_hub.utils import get_session, hf_raise_for_status

        endpoint, timeout = self.endpoint, self.timeout
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                response = read_page(get_session(), url, params, headers, timeout=timeout)
            except OfflineModeIsEnabled as e:  # raised by the client's request hook
                raise offline_error(endpoint, None) from e
            except _PageTooLargeError as e:
                raise RegistryError(
                    f"{endpoint} sent a listing page of {e}, over the "
                    f"{MAX_LISTING_PAGE_BYTES} byte limit: not read; check the endpoint "
                    f"(HF_ENDPOINT or --registry), or {_OFFLINE_HINT}"
                ) from e
            except (_PageStalledError, httpx2.ReadTimeout, httpx2.WriteTimeout) as e:
                reason = first_line(e) or f"nothing arrived for {timeout:g} s"
                raise RegistryError(
                    f"{endpoint} took over {timeout:g} s to send one page of "
                    f"the listing ({reason}): try again later, allow more time with "
                    f"{LISTING_TIMEOUT_ENV}=SECONDS, or {_OFFLINE_HINT}",
                    transient=True,
                ) from e
            except (httpx2.ConnectError, httpx2.TimeoutException) as e:
                reason = first_line(e) or type(e).__name__
                raise RegistryError(
                    f"cannot reach {endpoint} ({reason}): check the network and the "
                    f"endpoint (HF_ENDPOINT or --registry); {_OFFLINE_HINT}",
                    transient=True,
                ) from e
            except httpx2.TransportError as e:  # connected, then dropped: worth another try
                if last:
                    raise RegistryError(
                        f"cannot reach {endpoint} ({first_line(e)}): the connection "
                        f"broke {attempt} times; try again later, or {_OFFLINE_HINT}",
                        transient=True,
                    ) from e
                self.sleep(retry_delay(e, attempt))
                continue
            if response.status_code in RETRY_STATUSES:
                wanted = retry_after(response)
                if wanted is not None and wanted > MAX_RETRY_AFTER:
                    raise RegistryError(
                        f"{endpoint} rate-limits the listing and asks to wait {wanted:g} s "
                        f"(over the {MAX_RETRY_AFTER:g} s this waits): try again later, or "
                        f"{_OFFLINE_HINT}",
                        transient=True,
                    )
                if not last:
                    self.sleep(retry_delay(response, attempt))
                    continue
            with hub_errors(endpoint, self.token, None):
                hf_raise_for_status(response)
            try:
                page = json.loads(response.content)
            except (ValueError, RecursionError) as e:
                raise RegistryError(
                    f"{endpoint} sent a listing page that is not JSON ({first_line(e)})"
                ) from e
            if not isinstance(page, list):
                raise RegistryError(f"{endpoint} sent a listing page that is not a list")
            return page, response.links.get("next", {}).get("url")
        raise AssertionError("unreachable")  # pragma: no cover


def resolve_listing_timeout(seconds: float | None) -> float:
    """``seconds``, else ``$HF_STDEMBED_LISTING_TIMEOUT``, else the default; checked > 0.

    Raises:
        RegistryError: the environment variable is not a positive number.
        ValueError: ``seconds`` is not positive.
    """
    if seconds is None:
        text = os.environ.get(LISTING_TIMEOUT_ENV, "").strip()
        try:
            seconds = float(text) if text else DEFAULT_LISTING_TIMEOUT
        except ValueError:
            seconds = float("nan")
        if not seconds > 0 or seconds == float("inf"):
            raise RegistryError(
                f"{LISTING_TIMEOUT_ENV}={text!r} is not a number of seconds: set it to a "
                f"positive number (default {DEFAULT_LISTING_TIMEOUT:g}) or unset it"
            )
    elif not seconds > 0:
        raise ValueError(f"Invalid listing_timeout value: {seconds} (must be > 0)")
    return float(seconds)


class _PageStalledError(Exception):
    """A listing page did not arrive whole within its time."""


class _PageTooLargeError(Exception):
    """A listing page is larger than :data:`MAX_LISTING_PAGE_BYTES`."""


def read_page(
    client: Any,
    url: str,
    params: dict[str, Any] | None,
    headers: dict[str, str],
    *,
    timeout: float,
) -> Any:
    """``GET url`` read whole within ``timeout`` seconds and :data:`MAX_LISTING_PAGE_BYTES`.

    ``timeout`` bounds each network operation (connect, each read) and, checked as the body
    arrives, the whole answer: a server that sends a byte now and then cannot stall it. The
    answer is returned as an ``httpx2.Response`` holding the body read.

    Raises:
        _PageStalledError: the body took longer.
        _PageTooLargeError: the body is larger than the limit.
        httpx2.TransportError: the connection failed (refused, timed out, dropped).
    """
    import httpx2

    deadline = time.monotonic() + timeout
    with client.stream(
        "GET", url, params=params, headers=headers, timeout=httpx2.Timeout(timeout)
    ) as streamed:
        declared = streamed.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_LISTING_PAGE_BYTES:
            raise _PageTooLargeError(f"{declared} bytes")
        chunks, size = [], 0
        for chunk in streamed.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_LISTING_PAGE_BYTES:
                raise _PageTooLargeError(f"over {MAX_LISTING_PAGE_BYTES} bytes")
            if time.monotonic() > deadline:
                raise _PageStalledError(f"{size} bytes had arrived")
        skip = {"content-encoding", "content-length", "transfer-encoding"}  # the body is decoded
        return httpx2.Response(
            streamed.status_code,
            headers=[(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in skip],
            content=b"".join(chunks),
            request=streamed.request,
        )


def listed_summary(item: Any) -> RepoSummary | None:
    """A listing item as a summary; one it cannot describe gets ``problem``; None: skipped."""
    if not isinstance(item, dict):
        return None
    repo_id, sha = item.get("id"), item.get("sha")
    if not isinstance(repo_id, str) or not isinstance(sha, str):
        return None  # not a model the API describes fully: nothing to read at a revision
    if len(repo_id) > _MAX_LISTED_ID_CHARS or not _SHA_RE.fullmatch(sha):
        logger.warning(
            "skipping a listed repo: id %r (%d characters) at commit %r",
            repo_id[:100],
            len(repo_id),
            sha[:100],
        )
        return None
    modified = item.get("lastModified")
    modified = modified if isinstance(modified, str) and len(modified) <= 64 else None
    try:
        check_repo_id(repo_id, namespaced=False)
    except RepoNotFoundError as e:
        return RepoSummary(repo_id, sha, modified, {}, problem=f"the listing gave an {e}")
    card_data = item.get("cardData")
    card_data = card_data if isinstance(card_data, dict) else {}
    size = len(json.dumps(card_data, separators=(",", ":"), ensure_ascii=False))
    if size > MAX_LISTED_CARD_DATA_CHARS:
        problem = (
            f"its card metadata is {size} characters of JSON, over the "
            f"{MAX_LISTED_CARD_DATA_CHARS} limit: not read"
        )
        return RepoSummary(repo_id, sha, modified, {}, problem=problem)
    return RepoSummary(repo_id, sha, modified, card_data)
