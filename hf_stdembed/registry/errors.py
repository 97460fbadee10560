"""The Hub's errors as the project's, and the bounded retries of Hub requests.

``huggingface_hub`` and ``httpx2`` errors become :class:`~hf_stdembed.errors.RegistryError`
(or a subclass) saying the fix, with the original as ``__cause__``. Network trouble, offline
mode and rate limits or server errors (429, 5xx) are marked
:attr:`~hf_stdembed.errors.RegistryError.transient`: worth trying again later. Whether a
request is retried now is decided on the cause (its HTTP status, or a network error type).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..errors import (
    AuthError,
    ConcurrentUpdateError,
    GatedRepoAccessError,
    InvalidCardError,
    RegistryError,
    RemoteFileNotFoundError,
    RepoNotFoundError,
    RepoRevisionNotFoundError,
)

T = TypeVar("T")

RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))
"""HTTP statuses worth another try: the server refused for now, or failed."""
MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` honoured, in seconds."""


def repo_url(endpoint: str, repo_id: str, *, repo_type: str = "model") -> str:
    """The web page of a repo on the Hub at ``endpoint``."""
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    return f"{endpoint}/{prefix}{repo_id}"


def offline_error(endpoint: str, repo_id: str | None) -> RegistryError:
    """The error for a request that ``HF_HUB_OFFLINE`` forbids (transient)."""
    return RegistryError(
        f"HF_HUB_OFFLINE is set, so {endpoint} cannot be reached: unset it, or use "
        "a directory registry (--registry DIR)",
        repo_id=repo_id,
        transient=True,
    )


@contextlib.contextmanager
def hub_errors(
    endpoint: str,
    token: str | None,
    repo_id: str | None,
    *,
    writing: bool = False,
    create_pr: bool = False,
    repo_type: str = "model",
) -> Iterator[None]:
    """Turns ``huggingface_hub`` and network errors raised inside into the project's.

    Args:
        endpoint (`str`): the Hub, for messages.
        token (`str`, *optional*): the registry's own token (None: the saved login).
        repo_id (`str`, *optional*): the repo the request is about (None: the endpoint).
        writing (`bool`): word errors for a write (a 403 suggests ``--create-pr``).
        create_pr (`bool`): the write opens a pull request.
        repo_type (`str`): ``model`` or ``dataset``.
    """
    import httpx2
    from huggingface_hub.errors import (
        BadRequestError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
    )

    try:
        yield
    except HfHubHTTPError as e:
        raise translate(
            e,
            repo_id,
            endpoint=endpoint,
            token=token,
            writing=writing,
            create_pr=create_pr,
            repo_type=repo_type,
        ) from e
    except OfflineModeIsEnabled as e:
        raise offline_error(endpoint, repo_id) from e
    except LocalEntryNotFoundError as e:  # the Hub could not be reached and no cached copy
        raise RegistryError(
            f"cannot reach {endpoint} (and the file is not in the local cache): {e}",
            repo_id=repo_id,
            transient=True,
        ) from e
    except (httpx2.TransportError, ConnectionError) as e:
        reason = first_line(e) or type(e).__name__
        raise RegistryError(
            f"cannot reach {endpoint} ({reason}): check the network and the endpoint "
            "(HF_ENDPOINT or --registry), then try again",
            repo_id=repo_id,
            transient=True,
        ) from e
    except HFValidationError as e:
        raise RegistryError(f"invalid repo id or revision: {e}", repo_id=repo_id) from e
    except ValueError as e:
        # A README refused by the Hub's YAML check: huggingface_hub raises a bare ValueError
        # from the BadRequestError of /api/validate-yaml, so the cause's type tells it.
        if isinstance(e.__cause__, BadRequestError):
            raise InvalidCardError(f"the Hub refused the card: {e}", repo_id=repo_id) from e
        raise


def translate(
    e: Exception,
    repo_id: str | None,
    *,
    endpoint: str,
    token: str | None,
    writing: bool,
    create_pr: bool,
    repo_type: str = "model",
) -> RegistryError:
    """The project's error for a ``huggingface_hub`` HTTP error (see :func:`hub_errors`)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    status = status_of(e)
    where = repo_id or endpoint
    server = server_message(e)
    if isinstance(e, GatedRepoError):
        return GatedRepoAccessError(
            f"{where} is gated: accept its conditions at "
            f"{repo_url(endpoint, where, repo_type=repo_type)}, then log in "
            "with that account (`hf auth login`) or set HF_TOKEN",
            repo_id=repo_id,
        )
    if writing and status == 403:
        if create_pr:
            return AuthError(
                f"cannot open a pull request on {where} ({server}): check the token's permissions",
                repo_id=repo_id,
            )
        return AuthError(
            f"no write access to {where} ({server}); open a pull request instead with --create-pr",
            repo_id=repo_id,
        )
    if isinstance(e, RepositoryNotFoundError) or (writing and status == 401):
        if writing and status == 401 and token is None:
            from huggingface_hub import get_token

            if not get_token():
                return AuthError(
                    "no Hugging Face token: log in with `hf auth login` or set HF_TOKEN",
                    repo_id=repo_id,
                )
        if isinstance(e, RepositoryNotFoundError) and repo_type == "dataset":
            return RepoNotFoundError(
                f"no dataset repo {where} on {endpoint} (if it is private, log in with "
                "an account that can see it: `hf auth login` or HF_TOKEN)",
                repo_id=repo_id,
            )
        if isinstance(e, RepositoryNotFoundError):
            return RepoNotFoundError(
                f"no model repo {where} on {endpoint} (if it is private, log in with an "
                "account that can see it: `hf auth login` or HF_TOKEN)",
                repo_id=repo_id,
            )
    if isinstance(e, RevisionNotFoundError):
        return RepoRevisionNotFoundError(
            f"{where} has no such revision ({server}); give an existing branch, tag or commit",
            repo_id=repo_id,
        )
    if isinstance(e, RemoteEntryNotFoundError):
        return RemoteFileNotFoundError(f"{where}: file not found ({server})", repo_id=repo_id)
    if status == 412:
        return ConcurrentUpdateError(
            f"{where} changed since it was read ({server})", repo_id=repo_id
        )
    if status == 401:
        return AuthError(
            f"{endpoint} refused the token ({server}): log in again with "
            "`hf auth login` or set HF_TOKEN to a valid token",
            repo_id=repo_id,
        )
    return RegistryError(
        f"{endpoint} answered {status} for {where}: {server}",
        repo_id=repo_id,
        transient=status in RETRY_STATUSES,
    )


def with_retries(
    call: Callable[[], T],
    *,
    attempts: int,
    sleep: Callable[[float], None],
    errors: Callable[[], contextlib.AbstractContextManager[None]],
) -> T:
    """``call`` inside ``errors()``, tried up to ``attempts`` times while it fails with a 429,
    a 5xx or a network error, sleeping :func:`retry_delay` between tries.

    Raises:
        RegistryError: what ``errors()`` made of the last failure, or of one not worth
            another try.
    """
    for attempt in range(1, attempts + 1):
        try:
            with errors():
                return call()
        except RegistryError as e:
            if not worth_retrying(e.__cause__) or attempt == attempts:
                raise
            sleep(retry_delay(e.__cause__, attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def worth_retrying(cause: BaseException | None) -> bool:
    """Whether a request that failed with ``cause`` may succeed if sent again now: a 429 or
    a 5xx answer, or a network error (offline mode is one: a ``ConnectionError``)."""
    return status_of(cause) in RETRY_STATUSES or is_network_error(cause)


def first_line(e: BaseException) -> str:
    """The first line of an error's message ('' when empty)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ""


def status_of(e: BaseException | None) -> int | None:
    """The HTTP status of the response an error holds, if any."""
    response = getattr(e, "response", None)
    return getattr(response, "status_code", None)


def server_message(e: Exception) -> str:
    """What the server said about an HTTP error (else the error's first line)."""
    message = getattr(e, "server_message", None)
    return message or str(e).splitlines()[0]


def is_network_error(e: BaseException | None) -> bool:
    """Whether ``e`` is a connection failing (refused, dropped, timed out)."""
    import httpx2

    return isinstance(e, (httpx2.TransportError, ConnectionError))


def retry_after(source: Any) -> float | None:
    """The ``Retry-After`` seconds of a response (or of an error's response), if any."""
    response = getattr(source, "response", source)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return max(seconds, 0.0) if seconds == seconds else None  # NaN: none


def retry_delay(source: Any, attempt: int) -> float:
    """``Retry-After`` seconds when the server sent them (capped at :data:`MAX_RETRY_AFTER`),
    else 1, 2, 4, ... seconds. ``source`` is a response, or an error holding one."""
    wanted = retry_after(source)
    return float(2 ** (attempt - 1)) if wanted is None else min(wanted, MAX_RETRY_AFTER)


def require_token(token: str | None, repo_id: str) -> str:
    """``token``, else the saved login or ``HF_TOKEN``.

    Raises:
        AuthError: there is none (the message says how to log in).
    """
    from huggingface_hub import get_token

    found = token or get_token()
    if not found:
        raise AuthError(
            f"no Hugging Face token: log in with `hf auth login` or set HF_TOKEN to a token "
            f"with write access to {repo_id}",
            repo_id=repo_id,
        )
    return found
