"""The wire side of OIDC token requests, written once for the sync and the async path.

Pure functions: the settings and their checks (:class:`OIDCSettings`), the token request's
form and headers (:func:`token_form`), the parsing of discovery documents and token answers
(:func:`parse_token_answer`, with the renewal time) and the errors a refused request stands
for, each naming the connection field and the fix but never a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from airflow_provider_fts.client.errors import FTSCredentialError, FTSError

__all__ = [
    "CLIENT_AUTHS",
    "Answer",
    "OIDCSettings",
    "Token",
    "TokenError",
    "discovery_url",
    "is_anonymous_answer",
    "issuer_key",
    "jwt_claims",
    "parse_discovery",
    "parse_token_answer",
    "token_form",
]

#: How the client secret is sent (RFC 7591 names): HTTP Basic, or in the form body.
ClientAuth = Literal["client_secret_basic", "client_secret_post"]
CLIENT_AUTHS: tuple[ClientAuth, ...] = ("client_secret_basic", "client_secret_post")
_UNKNOWN_LIFETIME = 300.0  # an answer without expires_in or exp: assume 5 minutes
_DISCOVERY = "/.well-known/openid-configuration"


class TokenError(FTSError):
    """The identity provider refused a token request for a reason the user cannot fix here."""


@dataclass(frozen=True)
class OIDCSettings:
    """Where and how to get an access token (the connection's ``oidc_*`` extras).

    :param issuer: the issuer URL (``oidc_issuer``); discovery names its token endpoint.
    :param client_id: the OAuth2 client (``oidc_client_id``).
    :param client_secret: the client's secret (``oidc_client_secret``); None for a public client.
    :param refresh_token: a user's refresh token (``oidc_refresh_token``): the refresh-token grant.
    :param scope: space-separated scopes (``oidc_scope``).
    :param audience: the token's audience (``oidc_audience``): ``resource`` and ``audience``.
    :param client_auth: how the secret is sent (``oidc_client_auth``): HTTP Basic
        (``client_secret_basic``) or in the form (``client_secret_post``), as the client
        is registered at the issuer.
    :param verify: TLS verification: True, or a CA file or hashed CA directory.
    :param timeout: seconds per request to the identity provider.
    """

    issuer: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    scope: str | None = None
    audience: str | None = None
    client_auth: ClientAuth = "client_secret_basic"
    verify: bool | str = True
    timeout: float = 30.0

    def __post_init__(self) -> None:
        issuer = (self.issuer or "").strip()
        parts = urlsplit(issuer)
        if parts.scheme != "https" or not parts.hostname:
            raise FTSCredentialError(
                "oidc_issuer",
                f"{self.issuer!r} is not an https URL.",
                "Give the issuer URL of the identity provider, e.g. https://iam.example.org/.",
            )
        object.__setattr__(self, "issuer", issuer)
        if not (self.client_id or "").strip():
            raise FTSCredentialError(
                "oidc_client_id", "is empty.", "Give the OAuth2 client id registered at the issuer."
            )
        if not self.client_secret and not self.refresh_token:
            raise FTSCredentialError(
                "oidc_client_secret",
                "neither a client secret nor a refresh token is given.",
                "Give oidc_client_secret (a robot account) or oidc_refresh_token (a user's token).",
            )
        if self.client_auth not in CLIENT_AUTHS:
            raise FTSCredentialError(
                "oidc_client_auth",
                f"{self.client_auth!r} is no way to send the client secret.",
                "Use client_secret_basic (HTTP Basic, the default) or client_secret_post (in "
                "the form), as the client is registered at the issuer.",
            )
        if self.scope is not None:
            object.__setattr__(self, "scope", " ".join(self.scope.split()) or None)

    @property
    def grant(self) -> str:
        return "refresh_token" if self.refresh_token else "client_credentials"

    @property
    def subject(self) -> str | None:
        """Who the refresh token stands for, as a fingerprint (two users may share a client)."""
        if not self.refresh_token:
            return None
        return hashlib.sha256(self.refresh_token.encode()).hexdigest()[:16]

    @property
    def key(self) -> tuple[str | None, ...]:
        """The credential key: one token per key per process."""
        return (
            issuer_key(self.issuer),
            self.client_id,
            self.grant,
            self.audience,
            self.scope,
            self.subject,
        )


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    renew_at: float
    expires_at: float


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, NOT verified (for its ``exp``); None if ``token`` is no JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(b64url_decode(parts[1]))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_anonymous_answer(method: str, path: str, status: int, body: Any) -> bool:
    """Whether FTS answered as it does for an ignored (expired, ...) token.

    403 "Not enough permissions" on any request, 500 on any request about jobs by id (read,
    cancel, priority: the server's job routes crash on a caller without a VO before they
    do anything), or a ``/whoami`` of the anonymous user.
    :param method: the HTTP method of the request.
    :param path: the request path, e.g. ``/jobs/<id>``.
    :param status: the HTTP status of the answer.
    :param body: the decoded JSON body (or None).
    """
    message = body.get("message") if isinstance(body, dict) else None
    if status == 403 and message == "Not enough permissions":
        return True
    route = "/" + path.strip("/")
    if status == 500 and route.startswith("/jobs/"):
        return True
    return (
        status == 200
        and route == "/whoami"
        and isinstance(body, dict)
        and body.get("method") == "unauthenticated"
    )


def _basic_auth(settings: OIDCSettings) -> str:
    # RFC 6749 2.3.1: id and secret are form-encoded before they are joined and encoded.
    pair = f"{quote(settings.client_id, safe='')}:{quote(settings.client_secret or '', safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def token_form(
    settings: OIDCSettings, refresh_token: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers of one token request (client authenticated one way, not both)."""
    form = {"grant_type": settings.grant}
    if refresh_token:
        form["refresh_token"] = refresh_token
    headers = {"Accept": "application/json"}
    if settings.client_secret and settings.client_auth == "client_secret_basic":
        headers["Authorization"] = _basic_auth(settings)
    else:
        form["client_id"] = settings.client_id
        if settings.client_secret:
            form["client_secret"] = settings.client_secret
    if settings.scope:
        form["scope"] = settings.scope
    if settings.audience:
        form["resource"] = settings.audience  # RFC 8707
        form["audience"] = settings.audience  # INDIGO IAM, EGI Check-in
    return form, headers


@dataclass(frozen=True)
class Answer:
    token: Token
    refresh_token: str | None = field(default=None, repr=False)


def parse_token_answer(
    settings: OIDCSettings, status: int, body: bytes, started: float, margin: float
) -> Answer:
    """A token from the token endpoint's answer, or the error it stands for."""
    document = _json_object(body)
    if status != 200 or not isinstance(document.get("access_token"), str):
        raise _token_error(settings, status, document)
    value = document["access_token"]
    expires_at = _expiry(document.get("expires_in"), jwt_claims(value), started)
    lifetime = max(expires_at - started, 0.0)
    # Renew `margin` before expiry, but not before half-way (FTS's own refresh rule), so a
    # token shorter than twice the margin is not renewed on every call.
    renew_at = max(expires_at - margin, started + lifetime / 2)
    rotated = document.get("refresh_token")
    return Answer(Token(value, renew_at, expires_at), rotated if isinstance(rotated, str) else None)


def _expiry(expires_in: Any, claims: Mapping[str, Any] | None, started: float) -> float:
    candidates = []
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
        candidates.append(started + float(expires_in))
    if claims and isinstance(claims.get("exp"), (int, float)):
        candidates.append(float(claims["exp"]))
    return min(candidates) if candidates else started + _UNKNOWN_LIFETIME


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _token_error(settings: OIDCSettings, status: int, document: Mapping[str, Any]) -> FTSError:
    """The error for a refused token request: names the connection field and the fix."""
    code = str(document.get("error") or f"HTTP {status}")
    where = f"the identity provider {settings.issuer} refused the {settings.grant} grant ({code})"
    if code == "invalid_client" and settings.client_secret:
        return FTSCredentialError(
            "oidc_client_secret",
            f"{where}: client {settings.client_id!r}, its secret, or the way it is sent "
            f"({settings.client_auth}) is wrong.",
            "Store the client's current secret in oidc_client_secret, and set "
            "oidc_client_auth to how the client is registered (client_secret_basic or "
            "client_secret_post).",
        )
    if code == "invalid_client" and settings.refresh_token:
        return FTSCredentialError(
            "oidc_client_secret",
            f"{where}: client {settings.client_id!r} needs its secret with the refresh "
            "token (a confidential client), and none is given.",
            "Add the client's secret as oidc_client_secret (oidc-gen -p <account> prints it).",
        )
    if code in ("invalid_client", "unauthorized_client"):
        return FTSCredentialError(
            "oidc_client_id",
            f"{where}: client {settings.client_id!r} may not use it.",
            "Check oidc_client_id and the grants the client is registered for.",
        )
    if code == "invalid_grant" and settings.refresh_token:
        return FTSCredentialError(
            "oidc_refresh_token",
            f"{where}: the refresh token is expired, revoked or of another client.",
            "Get a new refresh token (e.g. from oidc-agent) and store it in oidc_refresh_token.",
        )
    if code == "invalid_scope":
        return FTSCredentialError(
            "oidc_scope", f"{where}.", "Ask only for scopes the client is allowed (oidc_scope)."
        )
    if code == "invalid_target":
        return FTSCredentialError(
            "oidc_audience", f"{where}.", "Give an audience the issuer knows (oidc_audience)."
        )
    description = str(document.get("error_description") or "")[:200]
    return TokenError(f"{where}: {description}".rstrip(": "))


def _discovery_error(issuer: str, problem: str) -> FTSCredentialError:
    return FTSCredentialError(
        "oidc_issuer",
        f"the discovery document of {issuer} {problem}.",
        "Give the issuer URL exactly as the identity provider publishes it.",
    )


def parse_discovery(issuer: str, status: int, body: bytes) -> str:
    document = _json_object(body)
    endpoint = document.get("token_endpoint")
    if status != 200 or not isinstance(endpoint, str) or not endpoint.startswith("https://"):
        raise _discovery_error(issuer, f"has no https token_endpoint (HTTP {status})")
    return endpoint


def issuer_key(issuer: str) -> str:
    """An issuer URL as a key: one issuer with or without its trailing slash (IdPs differ;
    a token's ``iss`` keeps the issuer's own spelling, so only keys drop it)."""
    return issuer.rstrip("/")


def discovery_url(issuer: str) -> str:
    return issuer_key(issuer) + _DISCOVERY
