"""OIDC access tokens fetched, cached and renewed by the client itself (no cron job beside it).

A :class:`TokenSource` holds one token for one credential key (issuer, client, grant,
audience, scope) and is shared by every caller in the process (:func:`token_source`). It
fetches on first use and renews before expiry, leaving a margin that covers the slowest
request. A real FTS server never says "expired": it ignores a bad token and answers as for
an anonymous user (:func:`is_anonymous_answer`), so a caller that gets such an answer for a
token that worked before calls :meth:`TokenSource.renew` once and retries once.

Fetching is one flow (:meth:`TokenSource._obtain`: discovery once per issuer, then the
token request), driven from a thread with ``requests`` or from an event loop with ``httpx``
(for the triggerer); only the sending differs. Tokens, secrets and refresh tokens never
appear in a ``repr``, a log line or an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import requests

from airflow_provider_fts.client.errors import (
    FTSConnectionError,
    FTSCredentialError,
    FTSError,
    verification_failure,
)
from airflow_provider_fts.client.oidc_wire import (
    Answer,
    OIDCSettings,
    Token,
    TokenError,
    discovery_url,
    is_anonymous_answer,
    issuer_key,
    jwt_claims,
    parse_discovery,
    parse_token_answer,
    token_form,
)
from airflow_provider_fts.client.sending import drive, drive_async

__all__ = [
    "OIDCSettings",
    "TokenError",
    "TokenSource",
    "is_anonymous_answer",
    "jwt_claims",
    "on_new_secret",
    "reset_token_sources",
    "token_source",
]

_DEFAULT_MARGIN = 60.0  # seconds: twice the default request timeout


def _checked_ca(settings: OIDCSettings) -> bool | str:
    """``settings.verify``, its CA file checked first: the HTTP libraries' own error names
    no field."""
    verify = settings.verify
    if isinstance(verify, str) and not os.path.exists(verify):
        raise FTSCredentialError(
            "oidc_ca_file",
            f"{verify} does not exist.",
            "Give the path of a PEM bundle of the CAs that sign the identity provider's "
            "certificate, on every machine that runs tasks (without oidc_ca_file: the "
            "system CAs).",
        )
    return verify


def _ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    if verify is True or verify is False:
        return verify
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


class _DiscoveryCache:
    """Token endpoints by issuer, looked up once per process."""

    def __init__(self) -> None:
        self._endpoints: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, issuer: str) -> str | None:
        return self._endpoints.get(issuer_key(issuer))

    def put(self, issuer: str, endpoint: str) -> None:
        with self._lock:
            self._endpoints[issuer_key(issuer)] = endpoint

    def clear(self) -> None:
        with self._lock:
            self._endpoints.clear()


_DISCOVERY_CACHE = _DiscoveryCache()


class _Grant:
    """What the token requests of one grant share, so that they go one at a time.

    For the refresh-token grant that is every source of one user's refresh token (FTS
    token, storage tokens): the provider may rotate the refresh token on each use and
    revoke the whole grant if a spent one is used again.
    """

    def __init__(self, refresh_token: str | None) -> None:
        self.lock = threading.Lock()
        self.refresh_token = refresh_token
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._async_locks = weakref.WeakKeyDictionary()
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return "_Grant()"

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold :attr:`lock` from an event loop without blocking it.

        Tasks of one loop queue on an asyncio lock; the one in front waits for the
        thread lock (held by a sync fetch, if any) in a worker thread.
        """
        async with self._async_lock():
            if not self.lock.acquire(blocking=False):
                waiting = asyncio.ensure_future(asyncio.to_thread(self.lock.acquire))
                try:
                    await asyncio.shield(waiting)
                except asyncio.CancelledError:
                    # The thread still gets the lock: hand it back once it has.
                    waiting.add_done_callback(lambda _: self.lock.release())
                    raise
            try:
                yield
            finally:
                self.lock.release()

    def _async_lock(self) -> asyncio.Lock:
        """The lock of the running event loop (an asyncio lock never blocks the loop)."""
        loop = asyncio.get_running_loop()
        with self._guard:
            lock = self._async_locks.get(loop)
            if lock is None:
                lock = self._async_locks[loop] = asyncio.Lock()
        return lock


_GRANTS: dict[tuple, _Grant] = {}
_GRANTS_LOCK = threading.Lock()


def _grant_for(settings: OIDCSettings) -> _Grant:
    if not settings.refresh_token:
        return _Grant(None)
    key = (issuer_key(settings.issuer), settings.client_id, settings.subject)
    with _GRANTS_LOCK:
        grant = _GRANTS.get(key)
        if grant is None:
            grant = _GRANTS[key] = _Grant(settings.refresh_token)
    return grant


class TokenSource:
    """One access token for one credential key, fetched on first use and renewed in time.

    Thread-safe: when many threads ask at once, one fetches and the others wait for it.
    The async path (:meth:`token_async`) never blocks its event loop.

    :param settings: the issuer, client and grant.
    :param margin: seconds before expiry to renew at (capped at half the lifetime).
    :param clock: wall-clock seconds (tests may pass a fake one).
    :param session: the ``requests`` session of the sync path.
    """

    renewable = True  # as opposed to a static token (credentials.StaticToken)

    def __init__(
        self,
        settings: OIDCSettings,
        *,
        margin: float = _DEFAULT_MARGIN,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self.margin = margin
        self._clock = clock
        self._session = session or requests.Session()
        self._token: Token | None = None
        self._grant = _grant_for(settings)
        self.fetches = 0  # token requests made: what the tests and benchmarks count
        # Set by a client once FTS accepted one of this source's tokens: only then does an
        # anonymous answer mean "expired" (renew once, retry once), not "never valid".
        self.worked = False

    def __repr__(self) -> str:
        state = "none" if self._token is None else f"expires_at={self._token.expires_at:.0f}"
        s = self.settings
        who = f"issuer={s.issuer!r}, client_id={s.client_id!r}, grant={s.grant!r}"
        return f"TokenSource({who}, {state})"

    def adopt(self, settings: OIDCSettings) -> None:
        """Use changed settings of the same credential key (e.g. a new client secret)."""
        if settings.key != self.settings.key:
            raise ValueError("adopt() needs settings of the same credential key")
        self.settings = settings

    # -- one flow, driven from a thread or from an event loop ---------------------------

    def token(self) -> str:
        """A token valid for at least the margin (fetched now if needed)."""
        fresh = self._fresh()
        return fresh if fresh is not None else self._obtain_sync(None)

    def renew(self, used: str) -> str:
        """Renew once after FTS ignored ``used``; a token another caller renewed is reused."""
        return self._obtain_sync(used)

    async def token_async(self) -> str:
        """:meth:`token` for an event loop: waits for a fetch without blocking the loop."""
        fresh = self._fresh()
        return fresh if fresh is not None else await self._obtain_async(None)

    async def renew_async(self, used: str) -> str:
        """:meth:`renew` for an event loop."""
        return await self._obtain_async(used)

    def invalidate(self) -> None:
        """Forget the token: the next :meth:`token` fetches a new one."""
        self._token = None

    def _fresh(self) -> str | None:
        """The current token while it is valid for at least the margin, else None."""
        current = self._token
        if current is not None and self._clock() < current.renew_at:
            return current.value
        return None

    @property
    def expires_at(self) -> float | None:
        """When the current token expires (epoch seconds); None before the first fetch."""
        current = self._token
        return None if current is None else current.expires_at

    def _obtain(self, used: str | None) -> Generator[_Call, tuple[int, bytes], str]:
        """The token to use, fetched when needed: the one flow of both drivers, run with
        the grant's lock held (one request of a grant at a time).

        :param used: a token FTS ignored (renew), or None (any fresh token will do).
        """
        current = self._token
        if used is None:
            fresh = self._fresh()
            if fresh is not None:
                return fresh  # another caller fetched it while this one waited
        elif current is not None and current.value != used:
            return current.value  # another caller renewed it meanwhile
        issuer = self.settings.issuer
        endpoint = _DISCOVERY_CACHE.get(issuer)
        if endpoint is None:
            endpoint = parse_discovery(issuer, *(yield _Call("GET", discovery_url(issuer))))
            _DISCOVERY_CACHE.put(issuer, endpoint)
        form, headers = token_form(self.settings, self._grant.refresh_token)
        started = self._clock()
        answer = yield _Call("POST", endpoint, form, headers)
        return self._store(parse_token_answer(self.settings, *answer, started, self.margin))

    def _store(self, answer: Answer) -> str:
        _announce(answer.token.value, answer.refresh_token)  # masked before anyone sees it
        self._token = answer.token
        if answer.refresh_token and self.settings.refresh_token:
            self._grant.refresh_token = answer.refresh_token  # rotated: the old one is spent
        self.fetches += 1
        return answer.token.value

    def _obtain_sync(self, used: str | None) -> str:
        with self._grant.lock:
            return drive(self._obtain(used), self._send_sync)

    def _send_sync(self, call: _Call) -> tuple[int, bytes]:
        try:
            response = self._session.request(
                call.method,
                call.url,
                data=call.form,
                headers=call.headers,
                verify=_checked_ca(self.settings),
                timeout=self.settings.timeout,
            )
        except requests.RequestException as exc:
            raise _unreachable(call.url, exc, self.settings.verify) from None
        return response.status_code, response.content

    async def _obtain_async(self, used: str | None) -> str:
        # A client per fetch: a token is fetched once per lifetime, and the IdP is trusted
        # by its own CA (oidc_ca_file), not by the FTS connection's.
        async with self._grant.exclusive():
            verify = _ssl_context(_checked_ca(self.settings))
            async with httpx.AsyncClient(verify=verify, timeout=self.settings.timeout) as client:
                send = partial(_send_async, client, self.settings.verify)
                return await drive_async(self._obtain(used), send)


@dataclass(frozen=True)
class _Call:
    """One request to the identity provider (discovery, or the token request)."""

    method: str
    url: str
    form: dict[str, str] | None = field(default=None, repr=False)
    headers: dict[str, str] | None = field(default=None, repr=False)


async def _send_async(
    client: httpx.AsyncClient, verify: bool | str, call: _Call
) -> tuple[int, bytes]:
    try:
        response = await client.request(call.method, call.url, data=call.form, headers=call.headers)
    except httpx.HTTPError as exc:
        raise _unreachable(call.url, exc, verify) from None
    return response.status_code, response.content


def _unreachable(url: str, exc: Exception, verify: bool | str) -> FTSError:
    """The error for a request that got no answer; an untrusted certificate names its field.

    :param url: the request's URL.
    :param exc: the HTTP library's error (its text is not repeated: some quote the request).
    :param verify: what verified the identity provider (``oidc_ca_file``, or the system CAs).
    """
    failure = verification_failure(exc)
    if failure is not None:
        against = "the system CAs (oidc_ca_file is not set)"
        if isinstance(verify, str):
            against = f"the CA file {verify} (oidc_ca_file)"
        reason = getattr(failure, "verify_message", None) or "not trusted"
        return FTSCredentialError(
            "oidc_ca_file",
            f"the certificate of the identity provider at {url} failed verification "
            f"({reason}) against {against}.",
            "Set oidc_ca_file to a PEM bundle of the CAs that signed it.",
        )
    return FTSConnectionError(
        f"cannot reach the identity provider at {url}: {type(exc).__name__}", maybe_sent=True
    )


_SECRET_LISTENERS: list[Callable[[str], None]] = []


def on_new_secret(listener: Callable[[str], None]) -> None:
    """Call ``listener`` with every access token and rotated refresh token fetched from now on.

    A framework registers its log masker here (the Airflow hook: ``mask_secret``), once.
    :param listener: called before the token is handed to anyone.
    """
    if listener not in _SECRET_LISTENERS:
        _SECRET_LISTENERS.append(listener)


def _announce(*secrets: str | None) -> None:
    for secret in secrets:
        if secret:
            for listener in list(_SECRET_LISTENERS):
                listener(secret)


_SOURCES: dict[tuple, TokenSource] = {}
_SOURCES_LOCK = threading.Lock()
# One requests session per issuer: the sources of one issuer (an FTS token and a storage
# token per directory) share its pooled connections instead of opening one each.
_SESSIONS: dict[str, requests.Session] = {}


def token_source(settings: OIDCSettings, **kwargs: Any) -> TokenSource:
    """The process-wide :class:`TokenSource` of ``settings.key`` (made on first use).

    :param settings: the credential.
    :param kwargs: :class:`TokenSource` options, used only when the source is made.
    """
    with _SOURCES_LOCK:
        source = _SOURCES.get(settings.key)
        if source is None:
            if "session" not in kwargs:
                kwargs["session"] = _issuer_session(settings.issuer)
            source = _SOURCES[settings.key] = TokenSource(settings, **kwargs)
            return source
    if settings != source.settings:
        source.adopt(settings)
    return source


def _issuer_session(issuer: str) -> requests.Session:
    """The session the token sources of ``issuer`` share (call with the sources' lock)."""
    session = _SESSIONS.get(issuer_key(issuer))
    if session is None:
        session = _SESSIONS[issuer_key(issuer)] = requests.Session()
    return session


def reset_token_sources() -> None:
    """Forget every cached token and discovery document (tests, or after a config change)."""
    with _SOURCES_LOCK:
        _SOURCES.clear()
        _SESSIONS.clear()
    with _GRANTS_LOCK:
        _GRANTS.clear()
    _DISCOVERY_CACHE.clear()
