"""How one request to FTS is sent and its answer read, written once for both HTTP libraries.

The policy is a flow (a generator, as in :mod:`.protocol`) that yields :data:`Action`\\ s
and receives their results: :class:`Token` (the bearer's token, or a renewed one),
:class:`Send` (one attempt; a :class:`Reply`, or the :class:`~.errors.FTSConnectionError`
thrown in) and :class:`Pause` (a backoff). A driver performs them: the sync
:class:`~.transport.Transport` with ``requests`` and the async
:class:`~.transport.AsyncTransport` with ``httpx``; they differ only in how they send.

Each rule lives here once:

* idempotency: :attr:`.protocol.Request.idempotent`;
* what is transient: :func:`~.errors.is_transient` (connection failures, 502/503/504);
* when to send again: :func:`may_retry`, a transient fault of an idempotent request, or of
  any request that surely never left (no connection was made). A request that may have
  reached FTS is never sent twice here; submission resolves that itself (``client.py``);
* decoding: :func:`decode`, a 2xx answer is JSON (garbled JSON: an answer lost), text or
  None; any other status is an error mapped by :func:`~.errors.error_from_response`.
  Redirects are not followed (FTS never redirects; a token must not follow one);
* renew once: :func:`~.bearer.renew_after` decides, :func:`send_flow` does it once;
* failures without an answer: :func:`connection_error` (a refused or unreachable endpoint
  names its host and port and the fix).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow_provider_fts.client.bearer import renew_after
from airflow_provider_fts.client.errors import (
    FTSConnectionError,
    FTSError,
    FTSHTTPError,
    ServerCertificateError,
    error_from_response,
    find_cause,
    is_transient,
    verification_failure,
)
from airflow_provider_fts.client.protocol import Exchange, Request

if TYPE_CHECKING:
    from airflow_provider_fts.client.bearer import Bearer
    from airflow_provider_fts.client.credentials import Trust
    from airflow_provider_fts.client.protocol import Flow

__all__ = [
    "Pause",
    "Reply",
    "RetryPolicy",
    "Send",
    "Token",
    "certificate_error",
    "connection_error",
    "conversation",
    "decode",
    "describe_trust",
    "drive",
    "drive_async",
    "may_retry",
    "outgoing",
    "send_flow",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Failures that show no connection was ever made, so nothing reached the server.
_UNREACHABLE = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is sent again after a passing fault."""

    retries: int = 3
    backoff: float = 0.5
    backoff_max: float = 20.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff: spreads the retries of many workers apart."""
        return random.uniform(0, min(self.backoff_max, self.backoff * 2**attempt))


@dataclass(frozen=True)
class Reply:
    """An answer as any HTTP library hands it over."""

    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Token:
    """Get the bearer's token; with ``used``, a renewed one (FTS ignored ``used``)."""

    used: str | None = None


@dataclass(frozen=True)
class Send:
    """Send ``request`` once with ``token``: a :class:`Reply`, or an FTSConnectionError."""

    request: Request
    token: str | None


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` before the next attempt."""

    seconds: float


Action = Token | Send | Pause


def outgoing(request: Request, token: str | None) -> tuple[dict[str, str], bytes | None]:
    """The headers and body bytes of one request (the session adds Accept and User-Agent)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if request.json_body is not None:
        headers["Content-Type"] = "application/json"
        return headers, json.dumps(request.json_body, separators=(",", ":")).encode()
    data = request.data
    return headers, data.encode() if isinstance(data, str) else data


def decode(request: Request, reply: Reply) -> Any:
    """The decoded body of a 2xx answer (JSON, text or None); the error of any other."""
    if not 200 <= reply.status < 300:
        raise error_from_response(
            reply.status,
            reply.body,
            reply.content_type,
            method=request.method,
            path=request.path,
        )
    if not reply.body:
        return None
    if "json" not in reply.content_type.lower():
        return reply.body.decode("utf-8", "replace")
    try:
        return json.loads(reply.body)
    except ValueError:
        # An answer cut short is as good as lost: a submission must be looked up.
        raise FTSConnectionError(
            f"FTS answered {request.method} {request.path} with a body that is not valid JSON"
        ) from None


def may_retry(request: Request, error: FTSError) -> bool:
    """Whether to send ``request`` again after ``error``: a passing fault, and a second copy
    can do no harm (an idempotent request, or one that surely never reached FTS)."""
    if not is_transient(error):
        return False
    never_sent = isinstance(error, FTSConnectionError) and not error.maybe_sent
    return request.idempotent or never_sent


def send_flow(
    request: Request, bearer: Bearer | None, retry: RetryPolicy
) -> Generator[Action, Any, Any]:
    """One request: its decoded answer, after retries and at most one token renewal."""
    token = (yield Token()) if bearer is not None else None
    try:
        status, body = yield from _attempts(request, token, retry)
    except FTSHTTPError as error:
        answer = {"message": error.message}
        if not renew_after(bearer, token, request.method, request.path, error.status, answer):
            raise
    else:
        if not renew_after(bearer, token, request.method, request.path, status, body):
            return body
    # FTS ignored a token it accepted before (expired early, clock skew): once only.
    log.warning(
        "FTS %s %s: the access token was ignored; renewing it once", request.method, request.path
    )
    renewed = yield Token(used=token)
    return (yield from _attempts(request, renewed, retry))[1]


def _attempts(
    request: Request, token: str | None, retry: RetryPolicy
) -> Generator[Action, Any, tuple[int, Any]]:
    """Send until an answer, or a failure not worth another attempt; (status, body)."""
    attempt = 0
    while True:
        started = time.monotonic()
        try:
            reply = yield Send(request, token)
            log.debug(
                "FTS %s %s -> %s in %.3fs",
                request.method,
                request.path,
                reply.status,
                time.monotonic() - started,
            )
            return reply.status, decode(request, reply)
        except FTSError as error:
            if attempt >= retry.retries or not may_retry(request, error):
                raise
            delay = retry.delay(attempt)
            log.warning(
                "FTS %s %s: %s; retrying in %.1fs", request.method, request.path, error, delay
            )
        yield Pause(delay)
        attempt += 1


def conversation(
    flow: Flow[T], bearer: Bearer | None, retry: RetryPolicy
) -> Generator[Action, Any, T]:
    """A :mod:`.protocol` flow with each of its requests sent by :func:`send_flow`."""
    exchange = Exchange(flow)
    while not exchange.done:
        try:
            exchange.answer((yield from send_flow(exchange.request, bearer, retry)))
        except FTSError as error:
            exchange.fail(error)
    return exchange.result  # type: ignore[return-value]


def drive(flow: Generator[Any, Any, T], perform: Callable[[Any], Any]) -> T:
    """Run ``flow``, performing each action it yields (errors of the client's own thrown in)."""
    exchange = Exchange(flow)
    while not exchange.done:
        try:
            exchange.answer(perform(exchange.request))
        except FTSError as error:
            exchange.fail(error)
    return exchange.result  # type: ignore[return-value]


async def drive_async(flow: Generator[Any, Any, T], perform: Callable[[Any], Awaitable[Any]]) -> T:
    """:func:`drive` from an event loop."""
    exchange = Exchange(flow)
    while not exchange.done:
        try:
            exchange.answer(await perform(exchange.request))
        except FTSError as error:
            exchange.fail(error)
    return exchange.result  # type: ignore[return-value]


def connection_error(
    endpoint: str, trust: Trust, request: Request, failure: BaseException, *, sent_nothing: bool
) -> FTSConnectionError:
    """The error of a request that got no answer, whichever library failed.

    :param endpoint: the FTS endpoint, ``https://host:port``.
    :param trust: the CAs that verify the server (named when its certificate fails).
    :param request: the request.
    :param failure: the library's exception.
    :param sent_nothing: the library saw that no connection was made.
    """
    bad_certificate = certificate_error(endpoint, trust, failure)
    if bad_certificate is not None:
        return bad_certificate
    reason = _reason(failure)
    # A TLS error while reading an answer (a reset) is no handshake failure: only the
    # library knows which it was.
    if sent_nothing and find_cause(failure, lambda e: isinstance(e, ssl.SSLError)) is not None:
        return FTSConnectionError(f"TLS with {endpoint} failed: {reason}", maybe_sent=False)
    if sent_nothing or _unreachable(failure):
        where = urlsplit(endpoint).netloc
        return FTSConnectionError(
            f"Cannot connect to FTS at {where} ({reason}). Fix: check the host and port (the "
            "connection's host and port fields; FTS REST listens on 8446 by default), and "
            "that the server is up and reachable from this machine.",
            maybe_sent=False,
        )
    return FTSConnectionError(
        f"{request.method} {request.path} to {endpoint} got no answer: {reason}"
    )


def certificate_error(
    endpoint: str, trust: Trust, failure: BaseException
) -> ServerCertificateError | None:
    """A :class:`ServerCertificateError` when ``failure`` (any library's error) was caused
    by the server certificate failing verification; None for any other failure."""
    cause = verification_failure(failure)
    if cause is None:
        return None
    reason = getattr(cause, "verify_message", None) or str(cause)
    return ServerCertificateError(
        f"The server certificate of {endpoint} failed verification ({reason}) against "
        f"{describe_trust(trust)}. Fix: set the connection extra ca_path to a directory of "
        "the CA certificates that signed it (e.g. /etc/grid-security/certificates) or "
        "ca_file to a PEM bundle of them (Trust(ca_path=...) / Trust(ca_file=...) for the "
        "client); verify=false turns verification off, for tests only."
    )


def describe_trust(trust: Trust) -> str:
    """Which CAs verify the server, in words (no secret is involved)."""
    if trust.ca_path and trust.ca_file:
        return (
            f"the CA directory {trust.ca_path} (ca_path) and the CA file {trust.ca_file} (ca_file)"
        )
    if trust.ca_path:
        return f"the CA directory {trust.ca_path} (ca_path)"
    if trust.ca_file:
        return f"the CA file {trust.ca_file} (ca_file)"
    return "the system CA store (neither ca_path nor ca_file is set)"


def _unreachable(failure: BaseException) -> bool:
    """Whether the failure says no connection could be made (refused, no route, no name)."""
    test = lambda e: isinstance(e, socket.gaierror) or e.errno in _UNREACHABLE  # noqa: E731
    return _os_error(failure, test) is not None


def _os_error(failure: BaseException, test: Callable[[OSError], bool]) -> OSError | None:
    return find_cause(failure, lambda e: isinstance(e, OSError) and test(e))


def _reason(failure: BaseException) -> str:
    """The readable cause of a failure (``Connection refused``), without a traceback."""
    cause = _os_error(failure, lambda e: bool(e.strerror))
    if cause is not None:
        # asyncio words a refused connection "Connect call failed": say what errno says.
        plain = not isinstance(cause, socket.gaierror | ssl.SSLError)
        errno_ = cause.errno if plain and isinstance(cause.errno, int) else 0
        return os.strerror(errno_) if errno_ > 0 else str(cause.strerror)
    while failure.__context__ is not None and not str(failure):
        failure = failure.__context__
    return (str(failure) or type(failure).__name__)[:300]
