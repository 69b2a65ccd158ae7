"""What an FTS connection says, checked without any framework and without any I/O.

A connection is a host, a port, a password and a dict of extras, wherever it comes from
(an Airflow connection, a config file). :meth:`FTSConnectionSettings.from_connection`
checks every field and reports a mistake by name with its fix, before any request.
The credential is one of a fixed set of field combinations (:data:`CREDENTIAL_COMBINATIONS`,
in :mod:`.credential_table`); any other combination is refused with the rule it breaks.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_fts.client.connection_fields import CONNECTION_FIELDS
from airflow_provider_fts.client.credential_table import (
    AUDIENCE,
    CLIENT_AUTH,
    CLIENT_ID,
    CLIENT_SECRET,
    CREDENTIAL_COMBINATIONS,
    CREDENTIAL_FIELDS,
    ISSUER,
    OIDC_CA_FILE,
    PASSPHRASE,
    REFRESH_TOKEN,
    SCOPE,
    STORAGE_ACCESS,
    TOKEN,
    SourceKind,
    credential_kind,
    fields_of,
)
from airflow_provider_fts.client.credentials import (
    CERT_FILE,
    CERT_PEM,
    KEY_FILE,
    KEY_PEM,
    PROXY_FILE,
    PROXY_PEM,
    Credentials,
    Trust,
    private_key_blocks,
)
from airflow_provider_fts.client.delegation import (
    DEFAULT_DELEGATION_LIFETIME,
    DEFAULT_RENEW_BELOW,
    DelegationPolicy,
)
from airflow_provider_fts.client.endpoints import DEFAULT_FAILOVER_WAIT, POLICIES
from airflow_provider_fts.client.errors import FTSCredentialError, FTSValidationError
from airflow_provider_fts.client.oidc import token_source
from airflow_provider_fts.client.oidc_wire import OIDCSettings
from airflow_provider_fts.client.protocol import normalise_endpoint
from airflow_provider_fts.client.urls import netloc

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CREDENTIAL_COMBINATIONS",
    "DEFAULT_TIMEOUT",
    "MAX_CONNECT_TIMEOUT",
    "PLACEHOLDER",
    "RENAMED_FIELDS",
    "CredentialSource",
    "FTSConnectionSettings",
    "credential_source",
]

MONITORING_URL = "https://{host}:8449/fts3/ftsmon/#/job/{{job_id}}"
DEFAULT_TIMEOUT = 60.0
MAX_CONNECT_TIMEOUT = 10.0

#: Fields renamed before 0.1.0: Airflow hid the path in ``x509_proxy`` and the boolean in
#: ``storage_tokens`` (their names hold "proxy", "token"), and showed the key in
#: ``x509_key_pem`` (no sensitive word in its name).
RENAMED_FIELDS = {
    "x509_proxy": PROXY_FILE,
    "x509_key_pem": KEY_PEM,
    "storage_tokens": STORAGE_ACCESS,
}
#: What Airflow shows in place of a hidden value; its form may save it as the value.
PLACEHOLDER = "***"

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


@dataclass(frozen=True)
class CredentialSource:
    """Where the credential comes from; loading it is a separate, blocking step.

    Secret values are kept out of ``repr`` so a logged settings object leaks nothing.
    """

    kind: SourceKind
    proxy_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    proxy_pem: str | None = field(default=None, repr=False)
    cert_pem: str | None = field(default=None, repr=False)
    key_pem: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    oidc: OIDCSettings | None = None  # its repr hides the secret and the refresh token
    storage_tokens: bool = False

    @property
    def inline_secrets(self) -> list[str]:
        """The secrets held in the connection itself (not in files)."""
        values = [self.proxy_pem, self.key_pem, self.passphrase, self.token]
        if self.oidc is not None:
            values += [self.oidc.client_secret, self.oidc.refresh_token]
        return [v for v in values if v]

    def load(self) -> tuple[Credentials, list[str]]:
        """The credential, and the private keys read from files (to be masked). Blocking."""
        if self.kind == "token":
            return Credentials.from_token(self.token or ""), []
        if self.kind == "oidc" and self.oidc is not None:
            return Credentials.from_oidc(token_source(self.oidc)), []
        if self.kind == "proxy_pem":
            return Credentials.from_pem(proxy_pem=self.proxy_pem), []
        if self.kind == "proxy_file":
            return Credentials.from_proxy_file(self.proxy_path or ""), _keys_in(self.proxy_path)
        if self.kind == "certificate":
            creds = Credentials.from_certificate(
                cert_path=self.cert_path,
                cert_pem=self.cert_pem,
                key_path=self.key_path,
                key_pem=self.key_pem,
                passphrase=self.passphrase,
            )
            return creds, _keys_in(self.cert_path, self.key_path)
        return Credentials.from_environment(), []

    def fingerprint(self) -> str:
        """A digest that differs when the credential differs: part of a shared poller's key.

        Files count by path and modification time, so a renewed proxy gets a new poller.
        """
        parts: list[str] = [self.kind]
        for path in (self.proxy_path, self.cert_path, self.key_path):
            parts.append(f"{path}@{_mtime(path)}" if path else "")
        parts += [self.proxy_pem or "", self.cert_pem or "", self.key_pem or "", self.token or ""]
        # One OIDC credential key, one poller: a changed secret is adopted, not a new key.
        parts.append(repr(self.oidc.key) if self.oidc is not None else "")
        if self.kind == "environment":
            parts += [os.environ.get(v, "") for v in ("X509_USER_PROXY", "X509_USER_CERT")]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class FTSConnectionSettings:
    """Everything an FTS connection says, validated; built without any I/O."""

    endpoint: str
    credential: CredentialSource
    verify: bool = True
    ca_path: str | None = None
    ca_file: str | None = None
    delegation: DelegationPolicy = field(default_factory=DelegationPolicy)
    monitoring_url: str = ""
    timeout: float = DEFAULT_TIMEOUT
    failover_endpoints: tuple[str, ...] = ()
    endpoint_policy: str = POLICIES[0]
    failover_wait: float = DEFAULT_FAILOVER_WAIT

    @classmethod
    def from_connection(
        cls, host: str | None, port: int | None, password: str | None, extra: Mapping[str, Any]
    ) -> FTSConnectionSettings:
        """Validate a connection's fields; raise :class:`FTSValidationError` naming the fix.

        :param host: The endpoint's host, with or without ``https://`` and a port.
        :param port: The endpoint's port (None or 0: from the host, else 8446).
        :param password: A bearer token, if the connection keeps it there.
        :param extra: The connection's extra fields (:data:`CONNECTION_FIELDS`).
        """
        extra = {k: v for k, v in extra.items() if v not in (None, "")}
        _reject_unknown_keys(extra)
        for key in extra.keys() & CONNECTION_FIELDS.keys() - CREDENTIAL_FIELDS - {TOKEN}:
            if extra[key] == PLACEHOLDER:
                raise _placeholder_error(key)
        endpoint, hostname = _endpoint(host, port)
        return cls(
            endpoint=endpoint,
            credential=credential_source(password, extra, endpoint),
            verify=_boolean(extra, "verify", default=True),
            ca_path=extra.get("ca_path"),
            ca_file=extra.get("ca_file"),
            delegation=_delegation(extra),
            monitoring_url=_monitoring_url(extra, hostname),
            timeout=_seconds(extra, "timeout_seconds", DEFAULT_TIMEOUT),
            failover_endpoints=_failover_endpoints(extra, endpoint),
            endpoint_policy=_policy(extra),
            failover_wait=_seconds(extra, "failover_wait_seconds", DEFAULT_FAILOVER_WAIT),
        )

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every FTS endpoint of the connection, in order of preference: the host first."""
        return (self.endpoint, *self.failover_endpoints)

    def for_endpoint(self, endpoint: str) -> FTSConnectionSettings:
        """These settings aimed at another of the connection's endpoints.

        What defaults to the endpoint follows it: the monitoring URL's host and the OIDC
        token's audience (one token per server audience; an ``oidc_audience`` naming
        another value applies to every server).

        :param endpoint: one of :attr:`endpoints`.
        """
        if endpoint == self.endpoint:
            return self
        monitoring = self.monitoring_url
        if monitoring == MONITORING_URL.format(host=_hostname(self.endpoint)):
            monitoring = MONITORING_URL.format(host=_hostname(endpoint))
        credential = self.credential
        oidc = credential.oidc
        if oidc is not None and oidc.audience == self.endpoint:
            oidc = dataclasses.replace(oidc, audience=endpoint)
            credential = dataclasses.replace(credential, oidc=oidc)
        return dataclasses.replace(
            self, endpoint=endpoint, monitoring_url=monitoring, credential=credential
        )

    @property
    def delegation_lifetime(self) -> timedelta:
        return self.delegation.lifetime

    @property
    def renew_below(self) -> timedelta:
        return self.delegation.renew_below

    @property
    def client_timeout(self) -> tuple[float, float]:
        """(connect, read) timeouts: connecting never waits longer than 10 s."""
        return min(MAX_CONNECT_TIMEOUT, self.timeout), self.timeout

    def trust(self) -> Trust:
        """The CAs that verify the server (none named: ``$X509_CERT_DIR`` or the grid's)."""
        return Trust.named(verify=self.verify, ca_path=self.ca_path, ca_file=self.ca_file)

    def job_url(self, job_id: str) -> str:
        return self.monitoring_url.format(job_id=job_id)

    def poller_key(self) -> str:
        """Triggers whose settings share this key can share one poller. Blocking (stat)."""
        trust = f"{self.verify}|{self.ca_path}|{self.ca_file}"
        return f"{self.endpoint}|{trust}|{self.credential.fingerprint()}"


def credential_source(
    password: str | None, extra: Mapping[str, Any], endpoint: str | None = None
) -> CredentialSource:
    """The credential a connection names: one row of :data:`CREDENTIAL_COMBINATIONS`.

    :param password: The connection's password field (a bearer token, if set).
    :param extra: The connection's extras, without empty values.
    :param endpoint: ``https://host:port`` of FTS: the default audience of OIDC tokens.
    """
    # Airflow's placeholder counts as unset where the credential does not read the field.
    masked = frozenset(k for k in CREDENTIAL_FIELDS | {TOKEN} if extra.get(k) == PLACEHOLDER)
    token = password or (extra.get(TOKEN) if TOKEN not in masked else None)
    if password and extra.get(TOKEN) and TOKEN not in masked and password != extra[TOKEN]:
        raise FTSValidationError(
            f"extra {TOKEN!r}", "differs from the token in the password field.", "Keep one."
        )
    present = frozenset(key for key in CREDENTIAL_FIELDS if key in extra) - masked
    if STORAGE_ACCESS in present and not _boolean(extra, STORAGE_ACCESS, default=False):
        present -= {STORAGE_ACCESS}  # false is no option at all
    present |= {TOKEN} if token else set()
    try:
        kind = credential_kind(present)
    except FTSValidationError:
        if masked:  # a field the user meant to set holds the placeholder
            raise _placeholder_error(min(masked)) from None
        raise
    if masked & fields_of(kind):
        raise _placeholder_error(min(masked & fields_of(kind)))
    text = {key: str(extra[key]) for key in present - {TOKEN}}
    return CredentialSource(
        kind,
        proxy_path=text.get(PROXY_FILE),
        cert_path=text.get(CERT_FILE),
        key_path=text.get(KEY_FILE),
        proxy_pem=text.get(PROXY_PEM),
        cert_pem=_without_private_key(text.get(CERT_PEM)),
        key_pem=text.get(KEY_PEM),
        passphrase=text.get(PASSPHRASE),
        token=str(token) if token else None,
        oidc=_oidc_settings(text, extra, endpoint) if kind == "oidc" else None,
        storage_tokens=STORAGE_ACCESS in present,
    )


def _oidc_settings(
    text: Mapping[str, str], extra: Mapping[str, Any], endpoint: str | None
) -> OIDCSettings:
    """The OIDC client of the connection; its audience defaults to the FTS endpoint.

    :param text: the credential extras, as text.
    :param extra: all extras (``verify`` applies to the issuer too).
    :param endpoint: ``https://host:port`` of FTS.
    """
    verify: bool | str = _boolean(extra, "verify", default=True)
    if verify and text.get(OIDC_CA_FILE):
        verify = text[OIDC_CA_FILE]
    try:
        return OIDCSettings(
            issuer=text[ISSUER],
            client_id=text[CLIENT_ID],
            client_secret=text.get(CLIENT_SECRET),
            refresh_token=text.get(REFRESH_TOKEN),
            scope=text.get(SCOPE),
            audience=text.get(AUDIENCE) or endpoint,
            client_auth=text.get(CLIENT_AUTH, "client_secret_basic"),  # checked by OIDCSettings
            verify=verify,
        )
    except FTSCredentialError as error:  # the same check, named as the connection names it
        raise FTSCredentialError(f"extra {error.field!r}", error.problem, error.fix) from None


def _without_private_key(cert_pem: str | None) -> str | None:
    """The certificate text, refused if a key was pasted into it: that field is not masked."""
    if cert_pem and private_key_blocks(cert_pem.encode()):
        raise FTSValidationError(
            f"extra {CERT_PEM!r}",
            "holds a private key; Airflow does not mask this field, so the key would show.",
            f"Move the key block into {KEY_PEM!r} (masked) and replace the stored one.",
        )
    return cert_pem


def _placeholder_error(key: str) -> FTSValidationError:
    return FTSValidationError(
        f"extra {key!r}",
        f"holds {PLACEHOLDER!r}, the text Airflow shows in place of a hidden value, not a value.",
        "Type the value again in the connection form (or remove the field) and save.",
    )


def _reject_unknown_keys(extra: Mapping[str, Any]) -> None:
    for key in extra:
        if key in CONNECTION_FIELDS:
            continue
        if key in RENAMED_FIELDS and extra[key] == PLACEHOLDER:
            continue  # saved by Airflow's form in place of a value: there is none to move
        if key in RENAMED_FIELDS:
            new = RENAMED_FIELDS[key]
            raise FTSValidationError(
                f"extra {key!r}",
                f"was renamed {new!r} in version 0.1.0, so that Airflow masks secrets "
                "and shows paths.",
                f"Rename the extra {new!r}; its value stays the same.",
            )
        close = difflib.get_close_matches(key, CONNECTION_FIELDS, n=1, cutoff=0.75)
        if close:
            raise FTSValidationError(
                f"extra {key!r}", "is not a known FTS connection field.", f"Rename it {close[0]!r}."
            )


def _endpoint(host: str | None, port: int | None) -> tuple[str, str]:
    """``https://host:port`` and the host as a URL writes it (IPv6 in brackets), from a
    host with or without a scheme."""
    # Airflow 3.3.1 gives 0 for an empty port.
    endpoint = normalise_endpoint(host or "", port=port or None, field="host")
    return endpoint, _hostname(endpoint)


def _hostname(endpoint: str) -> str:
    """The host of an endpoint as a URL writes it (IPv6 in brackets), without the port."""
    return netloc(urlsplit(endpoint).hostname or "")


def _failover_endpoints(extra: Mapping[str, Any], endpoint: str) -> tuple[str, ...]:
    """The other endpoints, each checked like the host; none twice, not the host again.

    :param extra: the connection's extras (``failover_endpoints``: a list or a string
        with commas).
    :param endpoint: the host's endpoint.
    """
    key = "failover_endpoints"
    value = extra.get(key) or []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise FTSValidationError(
            f"extra {key!r}",
            f"is a {type(value).__name__}, not a list of endpoints.",
            'Use e.g. ["https://fts2.example.org:8446"] or "fts2.example.org,fts3.example.org".',
        )
    seen = [endpoint]
    for item in items:
        other = normalise_endpoint(str(item), field=f"extra {key!r}")
        if other in seen:
            raise FTSValidationError(
                f"extra {key!r}",
                f"names {other} twice (the host counts as the first endpoint).",
                "List each other endpoint once.",
            )
        seen.append(other)
    return tuple(seen[1:])


def _policy(extra: Mapping[str, Any]) -> str:
    value = str(extra.get("endpoint_policy", POLICIES[0])).strip().lower()
    if value not in POLICIES:
        raise FTSValidationError(
            "extra 'endpoint_policy'",
            f"{extra['endpoint_policy']!r} is not a policy.",
            f"Use one of: {', '.join(POLICIES)}.",
        )
    return value


def _delegation(extra: Mapping[str, Any]) -> DelegationPolicy:
    lifetime = _hours(extra, "delegation_lifetime_hours", DEFAULT_DELEGATION_LIFETIME)
    renew_below = _hours(extra, "delegation_renew_hours", DEFAULT_RENEW_BELOW)
    fields = ("extra 'delegation_lifetime_hours'", "extra 'delegation_renew_hours'")
    DelegationPolicy.check(lifetime, renew_below, fields=fields)
    return DelegationPolicy(lifetime, renew_below)


def _boolean(extra: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = extra.get(key, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise FTSValidationError(f"extra {key!r}", f"{value!r} is not a boolean.", "Use true or false.")


def _hours(extra: Mapping[str, Any], key: str, default: timedelta) -> timedelta:
    if key not in extra:
        return default
    return timedelta(hours=_positive(extra, key, "hours", below=10_000, example=12))


def _seconds(extra: Mapping[str, Any], key: str, default: float) -> float:
    if key not in extra:
        return default
    return _positive(extra, key, "seconds", below=86_400, example=60)


def _positive(
    extra: Mapping[str, Any], key: str, unit: str, *, below: float, example: int
) -> float:
    try:
        value = float(extra[key])
    except (TypeError, ValueError):
        value = float("nan")
    if not 0 < value < below:  # also rejects NaN and infinity
        raise FTSValidationError(
            f"extra {key!r}",
            f"{extra[key]!r} is not a positive number of {unit}.",
            f"Use e.g. {example}.",
        )
    return value


def _monitoring_url(extra: Mapping[str, Any], hostname: str) -> str:
    template = str(extra.get("monitoring_url") or MONITORING_URL.format(host=hostname))
    if "{job_id}" not in template:
        raise FTSValidationError(
            "extra 'monitoring_url'",
            "has no {job_id} placeholder.",
            "Use e.g. https://fts.example.org:8449/fts3/ftsmon/#/job/{job_id}.",
        )
    return template


def _keys_in(*paths: str | None) -> list[str]:
    """Private-key PEM blocks in credential files, so the masker knows them."""
    keys: list[str] = []
    for path in paths:
        if path and os.path.isfile(path):
            with open(path, "rb") as pem:
                keys += private_key_blocks(pem.read())
    return keys


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
