"""The HTTP session under pyairtable: rate limiting, 429 penalties and transient retries."""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from app.errors import SourceUnavailableError
from app.extractors.ratelimit import RateLimiter

log = logging.getLogger(__name__)

SERVER_ERRORS = frozenset({500, 502, 503, 504})


class _ServerError(Exception):
    """A 5xx answer, raised only so tenacity can retry it."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class RateLimitedSession(requests.Session):
    """A requests session that waits its turn per base and survives 429s and 5xx.

    pyairtable's own retry gives up after about 3 s, far less than the 30 s Airtable
    refuses a base after a 429, so it is switched off and this session takes over.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        base_key: str,
        token_key: str | None = None,
        penalty_seconds: float,
        max_attempts: int = 6,
        max_penalties: int = 20,
        on_wait: Callable[[str, float], None] | None = None,
    ) -> None:
        super().__init__()
        self.limiter = limiter
        self.base_key = base_key
        # A keyed fingerprint of the token (never the token): its 50 req/s span every base.
        self.token_key = token_key
        self.penalty_seconds = penalty_seconds
        self.max_attempts = max_attempts
        self.max_penalties = max_penalties
        self.on_wait = on_wait
        self.rate_limited = 0
        #: The ``Date`` header of the last answer: the server's clock, for time windows.
        self.last_date: datetime | None = None

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        retrying = Retrying(
            retry=retry_if_exception_type(
                (requests.ConnectionError, requests.Timeout, _ServerError)
            ),
            wait=wait_exponential_jitter(multiplier=0.5, max=8.0),
            stop=stop_after_attempt(self.max_attempts),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._send_within_limits, method, url, *args, **kwargs)
        except _ServerError as exc:
            return exc.response
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise SourceUnavailableError(
                f"cannot reach Airtable at AIRTABLE_API_URL {_origin(str(url))}: "
                f"{type(exc).__name__} after {self.max_attempts} attempts"
            ) from exc

    def _send_within_limits(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        for _ in range(self.max_penalties):
            response = super().request(str(method, "ascii") if isinstance(method, bytes) else method,
                                       url, *args, **kwargs)
            if response.status_code == 429:
                self.rate_limited += 1
                log.warning("Airtable answered 429 for base %s; waiting %.0f s",
                            self.base_key, self.penalty_seconds)
                self.limiter.penalize(self.base_key, self.penalty_seconds)
                if self.on_wait:
                    self.on_wait("429 penalty", self.penalty_seconds)
                continue
            if response.status_code in SERVER_ERRORS:
                raise _ServerError(response)
            self.last_date = _date_header(response)
            return response
        raise SourceUnavailableError(
            f"Airtable kept answering 429 for base {self.base_key} "
            f"after {self.max_penalties} waits of {self.penalty_seconds:.0f} s"
        )

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Wait for the base's and the token's turn, then send at once.

        The turn is taken here, after ``request()`` has prepared everything, so nothing but
        the socket write stands between the limiter's admission and the server's count.
        """
        self._connect_ahead(request, kwargs)
        waited = self.limiter.acquire(self.base_key, self.token_key)
        if waited > 0.5 and self.on_wait:
            self.on_wait("rate limit", waited)
        return super().send(request, **kwargs)

    def _connect_ahead(self, request: requests.PreparedRequest, kwargs: dict[str, Any]) -> None:
        """Open the pooled connection (TCP and TLS) before taking a turn, not after.

        The server counts a request when it arrives; a handshake between the limiter's
        admission and the request would make a fresh connection's first request arrive late
        by the handshake, crowding the request sent a window later.
        """
        if kwargs.get("proxies") or request.url is None:
            return  # requests resolves proxies itself; let it connect as usual
        adapter = self.get_adapter(request.url)
        if not isinstance(adapter, HTTPAdapter):
            return
        verify = kwargs.get("verify", True)
        try:
            pool = adapter.get_connection_with_tls_context(request, verify, cert=kwargs.get("cert"))
            adapter.cert_verify(pool, request.url, verify, kwargs.get("cert"))
            conn = pool._get_conn()  # closes a connection the server dropped
            try:
                if not conn.is_connected:
                    conn.connect()
            finally:
                pool._put_conn(conn)
        except (OSError, urllib3.exceptions.HTTPError, requests.RequestException):
            pass  # the request itself will meet and report the same failure, with retries

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        outcome = state.outcome.exception() if state.outcome else None
        log.warning("Airtable request failed (%s); retry %d", outcome, state.attempt_number)


def _date_header(response: requests.Response) -> datetime | None:
    raw = response.headers.get("Date")
    if not raw:
        return None
    try:
        return email.utils.parsedate_to_datetime(raw).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
