"""Which connection fields make a credential: the one table of allowed combinations.

A connection names exactly one credential, as one row of :data:`CREDENTIAL_COMBINATIONS`
(an X.509 proxy or certificate, a static token, an OIDC client, or nothing: the grid
environment). Options go only with their credential: the passphrase with a certificate,
``oidc_scope``, ``oidc_audience``, ``oidc_ca_file``, ``oidc_client_auth`` and
``oidc_storage_access`` with an OIDC client. Any other combination is refused by the
first rule of :data:`_REFUSALS` that it breaks, naming the field and the fix. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from airflow_provider_fts.client.credentials import (
    CERT_FILE,
    CERT_PEM,
    KEY_FILE,
    KEY_PEM,
    PROXY_FILE,
    PROXY_PEM,
)
from airflow_provider_fts.client.errors import FTSValidationError

__all__ = [
    "CREDENTIAL_COMBINATIONS",
    "CREDENTIAL_FIELDS",
    "SourceKind",
    "credential_kind",
    "fields_of",
]

TOKEN = "access_token"
PASSPHRASE = "x509_key_passphrase"
# OIDC: the provider fetches and renews its own tokens.
ISSUER = "oidc_issuer"
CLIENT_ID = "oidc_client_id"
CLIENT_SECRET = "oidc_client_secret"
REFRESH_TOKEN = "oidc_refresh_token"
SCOPE = "oidc_scope"
AUDIENCE = "oidc_audience"
OIDC_CA_FILE = "oidc_ca_file"
CLIENT_AUTH = "oidc_client_auth"
# No field holding a boolean or a path bears a word Airflow masks (its form would show and
# save "***"): this one is no "storage_tokens".
STORAGE_ACCESS = "oidc_storage_access"

#: Where a connection's credential comes from (``Credentials.kind`` says what it is).
SourceKind = Literal["token", "oidc", "proxy_file", "proxy_pem", "certificate", "environment"]

#: Every allowed set of credential fields (besides the passphrase) and what it makes.
CREDENTIAL_COMBINATIONS: dict[frozenset[str], SourceKind] = {
    frozenset({TOKEN}): "token",
    frozenset({ISSUER, CLIENT_ID, CLIENT_SECRET}): "oidc",  # a robot: client credentials
    frozenset({ISSUER, CLIENT_ID, REFRESH_TOKEN}): "oidc",  # a user, public client
    frozenset({ISSUER, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN}): "oidc",  # e.g. oidc-agent
    frozenset({PROXY_FILE}): "proxy_file",
    frozenset({PROXY_PEM}): "proxy_pem",
    frozenset({CERT_FILE, KEY_FILE}): "certificate",
    frozenset({CERT_FILE}): "certificate",  # the key in the same file
    frozenset({CERT_PEM, KEY_PEM}): "certificate",
    frozenset({CERT_FILE, KEY_PEM}): "certificate",
    frozenset({CERT_PEM, KEY_FILE}): "certificate",
    frozenset(): "environment",  # X509_USER_PROXY, /tmp/x509up_u<uid>, X509_USER_CERT
}

_PROXIES = frozenset({PROXY_FILE, PROXY_PEM})
_CERTS = frozenset({CERT_FILE, CERT_PEM})
_KEYS = frozenset({KEY_FILE, KEY_PEM})
_X509 = _PROXIES | _CERTS | _KEYS | {PASSPHRASE}
_OIDC_GRANT = frozenset({ISSUER, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN})
#: Options of an OIDC credential, allowed only with one (as the passphrase with a key).
_OIDC_OPTIONS = frozenset({SCOPE, AUDIENCE, OIDC_CA_FILE, CLIENT_AUTH, STORAGE_ACCESS})
_OIDC = _OIDC_GRANT | _OIDC_OPTIONS
#: Every field that names or qualifies a credential.
CREDENTIAL_FIELDS = _X509 | _OIDC


@dataclass(frozen=True)
class _Refusal:
    """A rule broken by a combination: ``named`` (the field blamed) with ``others``
    (any of them; empty: no condition) and without any of ``missing``."""

    named: frozenset[str]
    others: frozenset[str]
    missing: frozenset[str]
    problem: str
    fix: str

    def blames(self, present: frozenset[str]) -> str | None:
        blamed = sorted(self.named & present)
        if not blamed or (self.others and not self.others & present):
            return None
        return None if self.missing & present else blamed[0]


_NOTHING: frozenset[str] = frozenset()
_ONE_OR_OTHER = "Give it as a path or as PEM text, not both."
# Checked in order on a combination that CREDENTIAL_COMBINATIONS does not hold.
_REFUSALS = (
    _Refusal(
        _OIDC,
        frozenset({TOKEN}),
        _NOTHING,
        "is set together with a static access token; a connection uses one credential.",
        f"Remove {TOKEN!r} (OIDC tokens are fetched and renewed for you) or the oidc_* extras.",
    ),
    _Refusal(
        _OIDC,
        _X509,
        _NOTHING,
        "is set together with X.509 extras; a connection uses one credential.",
        "Remove the X.509 extras (a token needs no proxy) or the oidc_* extras.",
    ),
    _Refusal(
        _OIDC_GRANT | _OIDC_OPTIONS,
        _NOTHING,
        frozenset({ISSUER}),
        f"is set but {ISSUER!r} is not.",
        f"Add {ISSUER!r}, the issuer URL of the identity provider (e.g. https://iam.example.org/).",
    ),
    _Refusal(
        frozenset({ISSUER, CLIENT_SECRET, REFRESH_TOKEN}),
        _NOTHING,
        frozenset({CLIENT_ID}),
        f"is set but {CLIENT_ID!r} is not.",
        f"Add {CLIENT_ID!r}, the OAuth2 client registered at the issuer.",
    ),
    _Refusal(
        frozenset({CLIENT_ID}),
        _NOTHING,
        frozenset({CLIENT_SECRET, REFRESH_TOKEN}),
        "has neither a client secret nor a refresh token with it.",
        f"Add {CLIENT_SECRET!r} (a robot account) or {REFRESH_TOKEN!r} (a user's token, "
        "e.g. from oidc-agent).",
    ),
    _Refusal(
        _X509,
        frozenset({TOKEN}),
        _NOTHING,
        "is set together with an access token; FTS would use the token only.",
        "Remove the X.509 extras or the token.",
    ),
    _Refusal(
        frozenset({PROXY_PEM}),
        frozenset({PROXY_FILE}),
        _NOTHING,
        f"is set together with {PROXY_FILE!r}.",
        _ONE_OR_OTHER,
    ),
    _Refusal(
        _CERTS | _KEYS,
        _PROXIES,
        _NOTHING,
        "is set together with a proxy; a connection uses one credential.",
        "Keep either the proxy or the certificate and key.",
    ),
    _Refusal(
        frozenset({PASSPHRASE}),
        _PROXIES,
        _NOTHING,
        "is set together with a proxy, whose key is never encrypted.",
        "Remove the passphrase.",
    ),
    _Refusal(
        frozenset({CERT_PEM}),
        frozenset({CERT_FILE}),
        _NOTHING,
        f"is set together with {CERT_FILE!r}.",
        _ONE_OR_OTHER,
    ),
    _Refusal(
        frozenset({KEY_PEM}),
        frozenset({KEY_FILE}),
        _NOTHING,
        f"is set together with {KEY_FILE!r}.",
        _ONE_OR_OTHER,
    ),
    _Refusal(
        _KEYS | {PASSPHRASE},
        _NOTHING,
        _CERTS,
        "is set but no certificate is.",
        f"Add {CERT_FILE!r} (a path) or {CERT_PEM!r} (the PEM text).",
    ),
    _Refusal(
        frozenset({CERT_PEM}),
        _NOTHING,
        _KEYS,
        "has no private key with it (pasted keys go in their own, masked field).",
        f"Add {KEY_PEM!r} (the key's PEM text) or {KEY_FILE!r} (its path).",
    ),
)

_OPTIONS = frozenset({PASSPHRASE}) | _OIDC_OPTIONS
_OPTIONS_OF: dict[str, frozenset[str]] = {
    "certificate": frozenset({PASSPHRASE}),
    "oidc": _OIDC_OPTIONS,
}


def refusal(present: frozenset[str]) -> FTSValidationError:
    for rule in _REFUSALS:
        blamed = rule.blames(present)
        if blamed:
            return FTSValidationError(f"extra {blamed!r}", rule.problem, rule.fix)
    # Unreachable while _REFUSALS covers every combination the table lacks (a test checks).
    raise AssertionError(f"no rule refuses {sorted(present)}")


def credential_kind(present: frozenset[str]) -> SourceKind:
    """The credential ``present`` (the fields set) makes, or the refusal naming the fix.

    :param present: the credential fields the connection sets (a token in the password
        counts as ``access_token``; ``oidc_storage_access`` only when true).
    """
    kind = CREDENTIAL_COMBINATIONS.get(present - _OPTIONS)
    if kind is None or not present & _OPTIONS <= _OPTIONS_OF.get(kind, frozenset()):
        raise refusal(present)
    return kind


def fields_of(kind: SourceKind) -> frozenset[str]:
    """The credential fields a connection of ``kind`` reads; for ``environment`` (none set)
    every one, since a connection that sets one of them means that credential."""
    if kind == "environment":
        return CREDENTIAL_FIELDS | {TOKEN}
    rows = [fields for fields, row_kind in CREDENTIAL_COMBINATIONS.items() if row_kind == kind]
    return frozenset().union(*rows) | _OPTIONS_OF.get(kind, frozenset())
