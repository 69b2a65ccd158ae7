"""Bearer tokens on requests to FTS: where each request's token comes from, and the one
rule for a token FTS ignores.

A bearer is a :class:`StaticToken` (``access_token``, sent as is) or an OIDC
:class:`~.oidc.TokenSource` (fetched and renewed by the client). The one sending policy
(:mod:`.sending`, for the sync client and the triggers' poller alike) takes the token per
request and applies :func:`renew_after`: FTS never says "expired", it answers as for an
anonymous user (:func:`~.oidc_wire.is_anonymous_answer`), so such an answer for a renewable
token that FTS accepted before means "renew once, send once more"; never more than once.
"""

from __future__ import annotations

from typing import Any, Protocol

from airflow_provider_fts.client.errors import FTSCredentialError
from airflow_provider_fts.client.oidc_wire import is_anonymous_answer, jwt_claims

__all__ = ["Bearer", "StaticToken", "renew_after", "token_ignored_error"]


class StaticToken:
    """A token given as is (``access_token``): sent with every request, never renewed."""

    renewable = False

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "StaticToken()"

    def token(self) -> str:
        return self._value

    @property
    def expires_at(self) -> float | None:
        """The token's ``exp`` (epoch seconds), None if it is no JWT (not verified here)."""
        exp = (jwt_claims(self._value) or {}).get("exp")
        return float(exp) if isinstance(exp, (int, float)) else None

    async def token_async(self) -> str:
        return self._value


class Bearer(Protocol):
    """Where a request's token comes from: a :class:`StaticToken` or an OIDC
    :class:`~.oidc.TokenSource` (``renewable``, which also has ``worked``, ``renew`` and
    ``renew_async``)."""

    renewable: bool

    def token(self) -> str: ...

    async def token_async(self) -> str: ...

    @property
    def expires_at(self) -> float | None: ...


def renew_after(
    bearer: Bearer | None, token: str | None, method: str, path: str, status: int, body: Any
) -> bool:
    """Whether to renew ``token`` and send the request once more.

    True when FTS answered as for an anonymous user to a renewable token whose credential
    it accepted before. Each such answer is a refusal (FTS did nothing), so sending again
    is safe for every request, a submission included. The caller does it at most once.
    Any other successful answer notes that FTS accepts the bearer's tokens: from then on an
    anonymous answer means the token went bad (renew), not that it never was valid (report).
    :param bearer: where the token came from.
    :param token: the token the request carried.
    :param method: the request's HTTP method.
    :param path: the request's path.
    :param status: the answer's HTTP status.
    :param body: the answer's decoded JSON (or None).
    """
    if token is None or bearer is None or not bearer.renewable:
        return False
    if is_anonymous_answer(method, path, status, body):
        return bearer.worked
    if 200 <= status < 300:
        bearer.worked = True
    return False


def token_ignored_error(field: str) -> FTSCredentialError:
    """FTS answered a fresh token as for an anonymous user: it ignored it, never saying why.

    :param field: the credential's field (``token`` for ``access_token``, else OIDC).
    """
    if field == "token":
        return FTSCredentialError(
            "access_token",
            "FTS ignored the token: it is expired, of an issuer FTS does not trust, or of "
            "another audience.",
            "Store a fresh token, or let the provider fetch them (the oidc_* extras).",
        )
    return FTSCredentialError(
        "oidc_audience",
        "FTS ignored the token fetched from the issuer: its audience is not one FTS "
        "accepts, or FTS does not trust the issuer.",
        "Set oidc_audience to an audience in the server's AuthorizedAudiences (default: the "
        "endpoint URL), and ask the FTS admins to trust oidc_issuer.",
    )
