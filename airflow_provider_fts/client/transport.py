"""HTTP transport: one pooled session, TLS from our own context, and the retry policy.

This module is the one place that decides whether a request may be retried:
idempotent requests (GET, and DELETE of jobs) are retried with exponential backoff and
full jitter on connection errors, read timeouts, 502/503/504 answers and garbled JSON.
Everything else, above all ``POST /jobs``, is sent exactly once; a submission whose
answer was lost surfaces as :class:`~.errors.FTSConnectionError` for the caller to
resolve (the client looks the job up by its deterministic id).
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from airflow_provider_fts.client.bearer import Bearer, StaticToken, accepted, renew_after
from airflow_provider_fts.client.credentials import Trust
from airflow_provider_fts.client.errors import (
    FTSConnectionError,
    FTSHTTPError,
    error_from_response,
)
from airflow_provider_fts.client.protocol import (
    Request,
    certificate_error,
    is_transient,
    request_headers,
    with_query,
)

__all__ = ["RetryPolicy", "Transport"]

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently idempotent requests are retried."""

    retries: int = 3
    backoff: float = 0.5
    backoff_max: float = 20.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff: spreads the retries of many workers apart."""
        return random.uniform(0, min(self.backoff_max, self.backoff * 2**attempt))


class _TLSAdapter(HTTPAdapter):
    """Use our SSL context (client chain, CA directory) for every HTTPS connection.

    requests would otherwise add the certifi bundle to the trust store; FTS servers are
    verified against the grid CAs the context was built with, and nothing else.
    """

    def __init__(self, ssl_context: ssl.SSLContext, pool_maxsize: int) -> None:
        self._ssl_context = ssl_context
        super().__init__(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self._ssl_context
        return super().proxy_manager_for(*args, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        verifying = self._ssl_context.verify_mode != ssl.CERT_NONE
        conn.cert_reqs = "CERT_REQUIRED" if verifying else "CERT_NONE"
        conn.ca_certs = conn.ca_cert_dir = None


class Transport:
    """Sends requests to one FTS endpoint and returns decoded JSON (or text).

    :param endpoint: ``https://host:port`` of the FTS REST server.
    :param ssl_context: TLS settings, with the client certificate for X.509 credentials.
    :param trust: The CAs ``ssl_context`` verifies the server with (named in errors).
    :param token: A static bearer token (the same as ``bearer=StaticToken(token)``).
    :param bearer: Where each request's bearer token comes from (static or OIDC-renewed).
    :param timeout: Connect and read timeouts in seconds.
    :param retry: How idempotent requests are retried.
    :param user_agent: The User-Agent header (ours by default).
    :param pool_maxsize: Connections kept open to the endpoint.
    """

    def __init__(
        self,
        endpoint: str,
        ssl_context: ssl.SSLContext,
        *,
        trust: Trust | None = None,
        token: str | None = None,
        bearer: Bearer | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
        pool_maxsize: int = 16,  # the most chunks a task submits at once
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.bearer = bearer if bearer is not None else (StaticToken(token) if token else None)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.trust = trust or Trust()
        self.session = requests.Session()
        # No .netrc, no environment CA bundles: only what we configure. Proxies from the
        # environment still apply, with NO_PROXY honoured for this endpoint.
        self.session.trust_env = False
        self.session.proxies.update(requests.utils.get_environ_proxies(self.endpoint))
        self.session.mount("https://", _TLSAdapter(ssl_context, pool_maxsize))
        library = f"python-requests/{requests.__version__}"
        # The bearer token is taken per request (it may have been renewed meanwhile).
        self.session.headers.update(request_headers(library, user_agent=user_agent))

    def close(self) -> None:
        self.session.close()

    def send(self, request: Request) -> Any:
        """Send a protocol :class:`~.protocol.Request` (retried when it is idempotent)."""
        return self.request(
            request.method,
            request.path,
            params=request.params,
            json_body=request.json_body,
            retry=request.idempotent,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: str | bytes | None = None,
        retry: bool | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON body, the text, or None when empty.

        ``retry`` defaults to True for GET and False otherwise; callers set it for the
        other idempotent operations (cancelling jobs). The bearer token (if any) is taken
        now, so a token about to expire is renewed first and a refused token grant fails
        before anything reaches FTS.
        """
        token = self.bearer.token() if self.bearer is not None else None
        send = {"params": params, "json_body": json_body, "data": data, "retry": retry}
        try:
            answer = self._attempts(method, path, token, **send)
        except FTSHTTPError as error:
            body = {"message": error.message}
            if not renew_after(self.bearer, token, method, path, error.status, body):
                raise
        else:
            if not renew_after(self.bearer, token, method, path, 200, answer):
                accepted(self.bearer)
                return answer
        # FTS ignored a token it accepted before (expired early, clock skew): once only.
        log.warning("FTS %s %s: the access token was ignored; renewing it once", method, path)
        renewed = self.bearer.renew(token)  # type: ignore[union-attr]
        return self._attempts(method, path, renewed, **send)

    def _attempts(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        params: dict[str, Any] | None,
        json_body: Any,
        data: str | bytes | None,
        retry: bool | None,
    ) -> Any:
        """One request, retried after passing faults when it is idempotent."""
        may_retry = (method == "GET") if retry is None else retry
        attempts = 1 + (self.retry.retries if may_retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._send(
                    method, path, token, params=params, json_body=json_body, data=data
                )
            except FTSConnectionError as error:
                if last or not is_transient(error):
                    raise
                self._pause(attempt, method, path, "connection failed")
                continue
            if response.status_code in _RETRY_STATUSES and not last:
                self._pause(attempt, method, path, f"HTTP {response.status_code}")
                continue
            try:
                return self._decode(method, path, response)
            except _GarbledBody:
                if last:
                    # An answer cut short is as good as lost: a submit must be looked up.
                    raise FTSConnectionError(
                        f"FTS answered {method} {path} with a body that is not valid JSON"
                    ) from None
                self._pause(attempt, method, path, "invalid JSON")
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        params: dict[str, Any] | None,
        json_body: Any,
        data: str | bytes | None,
    ) -> requests.Response:
        url = self.endpoint + with_query(path, params)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":"))
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        try:
            response = self.session.request(
                method, url, data=data, headers=headers, timeout=self.timeout
            )
        except requests.exceptions.SSLError as exc:
            bad_certificate = certificate_error(self.endpoint, self.trust, exc)
            if bad_certificate is not None:
                raise bad_certificate from None
            raise FTSConnectionError(
                f"TLS with {self.endpoint} failed: {_reason(exc)}", maybe_sent=False
            ) from None
        except requests.exceptions.RequestException as exc:
            raise FTSConnectionError(
                f"{method} {path} to {self.endpoint} got no answer: {_reason(exc)}",
                maybe_sent=not _never_connected(exc),
            ) from None
        log.debug(
            "FTS %s %s -> %s in %.3fs",
            method,
            path,
            response.status_code,
            time.monotonic() - started,
        )
        return response

    def _decode(self, method: str, path: str, response: requests.Response) -> Any:
        content_type = response.headers.get("Content-Type", "")
        if response.status_code >= 400:
            raise error_from_response(
                response.status_code, response.text, content_type, method=method, path=path
            )
        body = response.text
        if not body:
            return None
        if "json" not in content_type:
            return body
        try:
            return json.loads(body)
        except ValueError:
            raise _GarbledBody from None

    def _pause(self, attempt: int, method: str, path: str, why: str) -> None:
        delay = self.retry.delay(attempt)
        log.warning("FTS %s %s: %s; retrying in %.1fs", method, path, why, delay)
        time.sleep(delay)


class _GarbledBody(Exception):
    """A success status with a body that does not parse as the JSON it claims to be."""


def _never_connected(exc: requests.exceptions.RequestException) -> bool:
    """True when no connection was made, so the request cannot have reached FTS."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(getattr(cause, "reason", None), urllib3.exceptions.NewConnectionError)


def _reason(exc: BaseException) -> str:
    """The innermost readable cause of a requests/urllib3 error, without a traceback."""
    while exc.__context__ is not None and not str(exc):
        exc = exc.__context__
    text = str(exc) or exc.__class__.__name__
    return text[:300]
