"""HTTP for the pulls: one client, and retries that honour ``Retry-After`` (httpx and tenacity).

What is retried: 408, 429 and 5xx answers and broken connections, within a budget, waiting what the
server asks (``Retry-After`` in seconds or as an HTTP date) or a capped exponential backoff. What is
never retried: any other 4xx; the caller says which it was. No header or body is ever logged: requests
carry tokens.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import tenacity

from drg_etl import __version__
from drg_etl.core.errors import DrgEtlError

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = f"drg-etl/{__version__} (+registry pull)"
Sleep = Callable[[float], None]


class PullError(DrgEtlError):
    """The pull could not finish; nothing was written into the inbox (exit 2)."""


class CredentialRefused(PullError):
    """The server refused the pull's credential; the message names the setting to check (exit 2)."""


class Retryable(Exception):
    """An answer worth asking again (408, 429, 5xx, a transient OperationOutcome), with the wait it asked for."""

    def __init__(self, response: httpx.Response | None, why: str, wait: float | None = None) -> None:
        super().__init__(why)
        self.response = response
        self.why = why
        self.wait = wait if wait is not None else (retry_after(response) if response is not None else None)


def http_date(value: str | None) -> dt.datetime | None:
    """An HTTP date header (``Date``, ``Expires``, ``Retry-After``) as an aware UTC time, or None when it is none."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def retry_after(response: httpx.Response, now: dt.datetime | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks the client to wait (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = http_date(value)
    return None if when is None else max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


@dataclass
class RetryBudget:
    """How hard a pull tries: attempts per call, the longest single wait, the backoff's base, and the sleep."""

    attempts: int = 6
    longest_wait: float = 120.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    sleep: Sleep = field(default=time.sleep)
    waits: list[float] = field(default_factory=list)  # every wait taken, for the pull's record

    def wait_for(self, state: tenacity.RetryCallState) -> float:
        """The server's ``Retry-After`` where it gave one (capped), else a capped exponential backoff."""
        error = state.outcome.exception() if state.outcome else None
        asked = error.wait if isinstance(error, Retryable) else None
        backoff = min(self.backoff_cap, self.backoff_base * 2 ** (state.attempt_number - 1))
        wait = min(self.longest_wait, asked) if asked is not None else backoff
        self.waits.append(wait)
        return wait


def new_client(timeout: float = 60.0) -> httpx.Client:
    """The pulls' HTTP client: explicit timeouts, no redirects followed silently, our user agent."""
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=False,
                        headers={"User-Agent": USER_AGENT})


def with_retries(call: Callable[[], httpx.Response], budget: RetryBudget, what: str,
                 check: Callable[[httpx.Response], None] | None = None) -> httpx.Response:
    """``call()`` until it gives an answer that is not worth retrying; raise PullError when the budget is spent.

    ``check`` sees every answer first: it may raise :class:`Retryable` for one whose body says so (a
    transient OperationOutcome) or :class:`PullError` for a 5xx whose body says it is final. Otherwise a
    retryable status becomes :class:`Retryable`; a broken connection is retried too.
    """

    def attempt() -> httpx.Response:
        response = call()
        if check is not None:  # first: the body may say "transient", or that a 5xx is fatal
            check(response)
        if response.status_code in RETRYABLE_STATUS:
            response.read()
            raise Retryable(response, f"HTTP {response.status_code}")
        return response

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(budget.attempts), wait=budget.wait_for, sleep=budget.sleep,
        retry=tenacity.retry_if_exception_type((Retryable, httpx.TransportError)), reraise=True)
    try:
        return retrying(attempt)
    except Retryable as exc:
        raise PullError(f"{what}: the server still answered {exc.why} after {budget.attempts} attempts; "
                        "nothing was written") from exc
    except httpx.TransportError as exc:
        raise PullError(f"{what}: {type(exc).__name__} after {budget.attempts} attempts "
                        f"({_plain(exc)}); nothing was written") from exc


def _plain(exc: Exception) -> str:
    """An httpx error's text without anything a request carried (httpx puts no headers in its messages)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def public_url(url: str) -> str:
    """A URL as it may be recorded: without a user or password in it (``https://user:secret@host/...``)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url
