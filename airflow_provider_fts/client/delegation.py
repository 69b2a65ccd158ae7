"""Client side of FTS proxy delegation: sign the server's request, read the expiry.

FTS acts for the user with a proxy it holds itself: the server makes a key pair and sends
a certificate request (CSR); we sign it with our credential as an RFC 3820 proxy and PUT
the proxy back with our chain. Our private key never leaves this process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from airflow_provider_fts.client.certs import build_proxy, chain_not_after
from airflow_provider_fts.client.credentials import MIN_SUBMIT_LIFETIME, Credentials
from airflow_provider_fts.client.errors import FTSCredentialError, FTSError, FTSValidationError

__all__ = [
    "DEFAULT_DELEGATION_LIFETIME",
    "DEFAULT_RENEW_BELOW",
    "DelegationPolicy",
    "parse_termination_time",
    "sign_proxy_request",
]

# Renewing at half the lifetime keeps long jobs and retries covered between checks.
DEFAULT_DELEGATION_LIFETIME = timedelta(hours=12)
DEFAULT_RENEW_BELOW = timedelta(hours=6)

# Back-dating tolerates clocks of storage endpoints that run a little behind ours.
_CLOCK_SKEW = timedelta(minutes=5)
# A renewal that would not extend the delegation by more than this is not worth a request.
_MIN_RENEWAL_GAIN = timedelta(minutes=1)


def sign_proxy_request(
    csr_pem: bytes | str,
    credentials: Credentials,
    lifetime: timedelta,
    *,
    now: datetime | None = None,
) -> str:
    """The PEM body of the delegation PUT: a proxy for the CSR's key, then our chain.

    The proxy lives ``lifetime`` but never past any certificate of our chain (the server
    would cap it anyway, and storage endpoints reject a proxy outliving its issuer).
    """
    if credentials.kind == "token" or credentials.private_key is None:
        raise FTSCredentialError(
            "credentials",
            "a token cannot sign a proxy: token users do not delegate to FTS.",
            "use an X.509 proxy or certificate to delegate.",
        )
    now = now or datetime.now(UTC)
    credentials.check_usable("submit", now)
    request = _load_request(csr_pem)
    proxy = build_proxy(
        credentials.chain[0],
        credentials.private_key,
        request.public_key(),
        not_before=now - _CLOCK_SKEW,
        not_after=min(now + lifetime, chain_not_after(credentials.chain)),
    )
    return proxy.public_bytes(serialization.Encoding.PEM).decode() + (
        credentials.signing_chain_pem()
    )


def _load_request(csr_pem: bytes | str) -> x509.CertificateSigningRequest:
    data = csr_pem.encode() if isinstance(csr_pem, str) else csr_pem
    try:
        request = x509.load_pem_x509_csr(data)
    except ValueError:
        raise FTSError("FTS sent a delegation request that is not a PEM CSR.") from None
    if not request.is_signature_valid:
        raise FTSError("FTS sent a delegation request whose signature does not verify.")
    return request


def parse_termination_time(body: Any) -> datetime | None:
    """The expiry (aware UTC) of a delegation from ``GET /delegation/<id>``, or None.

    The server answers ``null``, ``[]`` (newer clients) or ``{}`` when nothing is
    delegated. Times are naive ISO in UTC; a ``+0000`` suffix is tolerated.
    """
    if isinstance(body, bytes | str):
        body = json.loads(body or "null")
    if not body:
        return None
    if not isinstance(body, dict):
        raise FTSError(f"unexpected delegation answer from FTS: {str(body)[:200]}")
    text = body.get("termination_time")
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise FTSError(f"FTS sent an unreadable termination_time: {text!r}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class DelegationPolicy:
    """How long a delegated proxy lives and when to replace it.

    Renewing well before expiry (6 of 12 hours by default) keeps long-running jobs and
    retries covered. FTS refuses submissions under one hour, so a threshold below one hour
    would never be the reason to renew: it is refused, as is one not below the lifetime.
    """

    lifetime: timedelta = DEFAULT_DELEGATION_LIFETIME
    renew_below: timedelta = DEFAULT_RENEW_BELOW

    def __post_init__(self) -> None:
        self.check(self.lifetime, self.renew_below)

    @staticmethod
    def check(
        lifetime: timedelta,
        renew_below: timedelta,
        *,
        fields: tuple[str, str] = ("delegation_lifetime", "renew_below"),
    ) -> None:
        """Refuse settings that cannot work; ``fields`` name them as the user wrote them.

        :param lifetime: The lifetime requested for each delegated proxy.
        :param renew_below: Delegate again when the server's copy has less than this left.
        :param fields: The names of the two settings in the error (lifetime, renew_below).
        """
        lifetime_field, renew_field = fields
        if renew_below < MIN_SUBMIT_LIFETIME:
            raise FTSValidationError(
                renew_field,
                f"{renew_below} is under one hour; FTS refuses submissions when less than "
                "an hour is left, so the delegation is renewed then anyway.",
                "use at least one hour (default 6 hours).",
            )
        if lifetime <= renew_below:
            raise FTSValidationError(
                lifetime_field,
                f"{lifetime} must be longer than the renewal threshold {renew_below}, "
                "or every check would delegate again.",
                "use about twice the threshold (defaults 12 and 6 hours).",
            )

    def needs_renewal(
        self,
        termination_time: datetime | None,
        now: datetime | None = None,
        *,
        credential_not_after: datetime | None = None,
    ) -> bool:
        """Whether to delegate again.

        Yes when nothing is delegated, it expires within the hour (FTS would refuse
        submissions) or within ``renew_below`` -- unless ``credential_not_after`` says a
        new delegation could not last noticeably longer (it is capped by our chain).
        """
        if termination_time is None:
            return True
        now = now or datetime.now(UTC)
        left = termination_time - now
        if left < MIN_SUBMIT_LIFETIME:
            return True
        if left >= self.renew_below:
            return False
        best_possible = now + self.lifetime
        if credential_not_after is not None:
            best_possible = min(best_possible, credential_not_after)
        return best_possible - termination_time > _MIN_RENEWAL_GAIN
