"""HTTP transports to one FTS endpoint: :class:`Transport` (sync, ``requests``) for the
client, :class:`AsyncTransport` (asyncio, ``httpx``) for the triggers' poller.

Both run the one policy of :mod:`.sending` (retries, backoff, token renewal, decoding,
error mapping) and differ only in how they send bytes and wait: each turns its library's
answer into a :class:`~.sending.Reply` and its library's failure into the one
:func:`~.sending.connection_error`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import requests
from requests.adapters import HTTPAdapter

from airflow_provider_fts.client.credentials import Trust
from airflow_provider_fts.client.protocol import Request, request_headers
from airflow_provider_fts.client.sending import (
    Pause,
    Reply,
    RetryPolicy,
    Send,
    Token,
    connection_error,
    conversation,
    drive,
    drive_async,
    outgoing,
    send_flow,
)

if TYPE_CHECKING:
    from airflow_provider_fts.client.bearer import Bearer
    from airflow_provider_fts.client.protocol import Flow

__all__ = ["AsyncTransport", "RetryPolicy", "Transport"]

T = TypeVar("T")


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


class _Base:
    """What both transports hold: where to send, the trust named in errors, the bearer
    each request's token comes from, and the retry policy."""

    def __init__(
        self,
        endpoint: str,
        *,
        trust: Trust | None,
        bearer: Bearer | None,
        retry: RetryPolicy | None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.trust = trust or Trust()
        self.bearer = bearer
        self.retry = retry or RetryPolicy()

    def _failure(self, request: Request, failure: Exception, sent_nothing: bool) -> Exception:
        return connection_error(
            self.endpoint, self.trust, request, failure, sent_nothing=sent_nothing
        )


class Transport(_Base):
    """Sends requests to one FTS endpoint with one pooled ``requests`` session.

    :param endpoint: ``https://host:port`` of the FTS REST server.
    :param ssl_context: TLS settings, with the client certificate for X.509 credentials.
    :param trust: The CAs ``ssl_context`` verifies the server with (named in errors).
    :param bearer: Where each request's bearer token comes from (static or OIDC-renewed).
    :param timeout: Connect and read timeouts in seconds.
    :param retry: How requests are sent again after passing faults.
    :param user_agent: The User-Agent header (ours by default).
    :param pool_maxsize: Connections kept open to the endpoint.
    """

    def __init__(
        self,
        endpoint: str,
        ssl_context: ssl.SSLContext,
        *,
        trust: Trust | None = None,
        bearer: Bearer | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
        pool_maxsize: int = 16,  # the most chunks a task submits at once
    ) -> None:
        super().__init__(endpoint, trust=trust, bearer=bearer, retry=retry)
        self.timeout = timeout
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
        """Send one request; its decoded answer (JSON, text or None)."""
        return drive(send_flow(request, self.bearer, self.retry), self._perform)

    def run(self, flow: Flow[T]) -> T:
        """Send a :mod:`.protocol` flow's requests one by one; the flow's result."""
        return drive(conversation(flow, self.bearer, self.retry), self._perform)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: str | bytes | None = None,
    ) -> Any:
        """:meth:`send` of a request given by its parts."""
        return self.send(Request(method, path, params, json_body, data=data))

    def _perform(self, action: Any) -> Any:
        if isinstance(action, Pause):
            return time.sleep(action.seconds)
        if isinstance(action, Token):
            bearer: Any = self.bearer
            return bearer.renew(action.used) if action.used else bearer.token()
        return self._send(action)

    def _send(self, send: Send) -> Reply:
        request = send.request
        headers, body = outgoing(request, send.token)
        try:
            response = self.session.request(
                request.method,
                self.endpoint + request.target,
                data=body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            sent_nothing = isinstance(exc, requests.exceptions.ConnectTimeout)
            raise self._failure(request, exc, sent_nothing) from None
        content_type = response.headers.get("Content-Type", "")
        return Reply(response.status_code, content_type, response.content)


class AsyncTransport(_Base):
    """Sends requests to one FTS endpoint from an event loop, with one ``httpx`` client
    (opened by the first request, closed by :meth:`aclose`). Its parameters are those of
    :class:`Transport` but ``user_agent`` and ``pool_maxsize``; without ``ssl_context`` it
    verifies the server against the system CAs.
    """

    def __init__(
        self,
        endpoint: str,
        ssl_context: ssl.SSLContext | None = None,
        *,
        trust: Trust | None = None,
        bearer: Bearer | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(endpoint, trust=trust, bearer=bearer, retry=retry)
        connect, read = timeout
        self._settings = {
            "base_url": self.endpoint,
            "verify": ssl_context if ssl_context is not None else True,
            "headers": request_headers(f"httpx/{httpx.__version__}"),
            "timeout": httpx.Timeout(read, connect=connect),
        }
        self._http: httpx.AsyncClient | None = None

    @property
    def connected(self) -> bool:
        """Whether an HTTP client is open (the next request opens one)."""
        return self._http is not None

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def send(self, request: Request) -> Any:
        """Send one request; its decoded answer (JSON, text or None)."""
        return await drive_async(send_flow(request, self.bearer, self.retry), self._perform)

    async def run(self, flow: Flow[T]) -> T:
        """Send a :mod:`.protocol` flow's requests one by one; the flow's result."""
        return await drive_async(conversation(flow, self.bearer, self.retry), self._perform)

    async def _perform(self, action: Any) -> Any:
        if isinstance(action, Pause):
            return await asyncio.sleep(action.seconds)
        if isinstance(action, Token):
            bearer: Any = self.bearer
            return await (bearer.renew_async(action.used) if action.used else bearer.token_async())
        return await self._send(action)

    async def _send(self, send: Send) -> Reply:
        request = send.request
        headers, body = outgoing(request, send.token)
        if self._http is None:
            self._http = httpx.AsyncClient(**self._settings)
        try:
            response = await self._http.request(
                request.method, request.target, content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            sent_nothing = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            raise self._failure(request, exc, sent_nothing) from None
        content_type = response.headers.get("content-type", "")
        return Reply(response.status_code, content_type, response.content)
