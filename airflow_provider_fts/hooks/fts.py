"""FTSHook: an Airflow connection of type ``fts`` turned into an FTS client.

The connection holds the REST endpoint (host and port), the credential (a proxy file, a
certificate and key, pasted PEMs, or a bearer token) and how to trust the server. Every
extra is checked before any request, and a mistake is reported by name with its fix.
Secrets the hook loads go through Airflow's secret masker before anything can log them.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.log import amask_secret, mask_secret

from airflow_provider_fts.client.errors import (
    FTSValidationError,
    NotFound,
    error_from_job_entry,
    is_job_error_entry,
)
from airflow_provider_fts.get_provider_info import CONNECTION_FIELDS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from airflow_provider_fts.client.client import FTSClient
    from airflow_provider_fts.client.credentials import Credentials, Trust
    from airflow_provider_fts.client.poller import JobPoller
    from airflow_provider_fts.client.submission import Transfer

DEFAULT_DELEGATION_LIFETIME = timedelta(hours=12)
DEFAULT_RENEW_BELOW = timedelta(hours=6)
# FTS refuses a submission when the delegated proxy has under one hour left (REFERENCE 3).
MIN_RENEW_BELOW = timedelta(hours=1)
MONITORING_URL = "https://{host}:8449/fts3/ftsmon/#/job/{{job_id}}"
DEFAULT_TIMEOUT = 60.0
MAX_CONNECT_TIMEOUT = 10.0

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})
_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S
)


@dataclass(frozen=True)
class CredentialSource:
    """Where the credential comes from; loading it is a separate, blocking step.

    Secret values are kept out of ``repr`` so a logged settings object leaks nothing.
    """

    kind: str  # "proxy_file", "cert_files", "pem", "token" or "environment"
    proxy_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    proxy_pem: str | None = field(default=None, repr=False)
    cert_pem: str | None = field(default=None, repr=False)
    key_pem: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @property
    def inline_secrets(self) -> list[str]:
        """The secrets held in the connection itself (not in files)."""
        values = (self.proxy_pem, self.key_pem, self.passphrase, self.token)
        secrets = [v for v in values if v]
        if self.cert_pem:
            secrets += _PRIVATE_KEY_BLOCK.findall(self.cert_pem)
        return secrets

    def load(self) -> tuple[Credentials, list[str]]:
        """The credential, and the private keys read from files (to be masked). Blocking."""
        from airflow_provider_fts.client.credentials import Credentials

        if self.kind == "token":
            return Credentials.from_token(self.token), []
        if self.kind == "pem":
            creds = Credentials.from_pem(
                proxy_pem=self.proxy_pem,
                cert_pem=self.cert_pem,
                key_pem=self.key_pem,
                passphrase=self.passphrase,
            )
            return creds, []
        if self.kind == "proxy_file":
            return Credentials.from_proxy_file(self.proxy_path), _keys_in(self.proxy_path)
        if self.kind == "cert_files":
            creds = Credentials.from_cert_key(self.cert_path, self.key_path, self.passphrase)
            return creds, _keys_in(self.cert_path, self.key_path)
        return Credentials.from_environment(), []

    def fingerprint(self) -> str:
        """A digest that differs when the credential differs: part of a shared poller's key.

        Files count by path and modification time, so a renewed proxy gets a new poller.
        """
        parts = [self.kind]
        for path in (self.proxy_path, self.cert_path, self.key_path):
            parts.append(f"{path}@{_mtime(path)}" if path else "")
        parts += [self.proxy_pem or "", self.cert_pem or "", self.key_pem or "", self.token or ""]
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
    delegation_lifetime: timedelta = DEFAULT_DELEGATION_LIFETIME
    renew_below: timedelta = DEFAULT_RENEW_BELOW
    monitoring_url: str = ""
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_connection(
        cls, host: str | None, port: int | None, password: str | None, extra: Mapping[str, Any]
    ) -> FTSConnectionSettings:
        """Validate a connection's fields; raise :class:`FTSValidationError` naming the fix."""
        extra = {k: v for k, v in extra.items() if v not in (None, "")}
        _reject_misspelled_keys(extra)
        endpoint, hostname = _endpoint(host, port)
        lifetime = _hours(extra, "delegation_lifetime_hours", DEFAULT_DELEGATION_LIFETIME)
        renew_below = _hours(extra, "delegation_renew_hours", DEFAULT_RENEW_BELOW)
        if renew_below < MIN_RENEW_BELOW:
            raise FTSValidationError(
                "extra 'delegation_renew_hours'",
                "is under 1 hour; FTS refuses submissions when less than an hour is left.",
                "Set it to at least 1 (default 6).",
            )
        if lifetime <= renew_below:
            raise FTSValidationError(
                "extra 'delegation_lifetime_hours'",
                "must be longer than delegation_renew_hours.",
                "Use e.g. 12 and 6 (the defaults).",
            )
        return cls(
            endpoint=endpoint,
            credential=_credential_source(password, extra),
            verify=_boolean(extra, "verify", default=True),
            ca_path=extra.get("ca_path"),
            ca_file=extra.get("ca_file"),
            delegation_lifetime=lifetime,
            renew_below=renew_below,
            monitoring_url=_monitoring_url(extra, hostname),
            timeout=_seconds(extra, "timeout_seconds", DEFAULT_TIMEOUT),
        )

    def trust(self) -> Trust:
        from airflow_provider_fts.client.credentials import Trust

        return Trust(verify=self.verify, ca_path=self.ca_path, ca_file=self.ca_file)

    def job_url(self, job_id: str) -> str:
        return self.monitoring_url.format(job_id=job_id)

    def poller_key(self) -> str:
        """Triggers whose settings share this key can share one poller. Blocking (stat)."""
        trust = f"{self.verify}|{self.ca_path}|{self.ca_file}"
        return f"{self.endpoint}|{trust}|{self.credential.fingerprint()}"


def _reject_misspelled_keys(extra: Mapping[str, Any]) -> None:
    for key in extra:
        if key in CONNECTION_FIELDS:
            continue
        close = difflib.get_close_matches(key, CONNECTION_FIELDS, n=1, cutoff=0.75)
        if close:
            raise FTSValidationError(
                f"extra {key!r}", "is not a known FTS connection field.", f"Rename it {close[0]!r}."
            )


def _endpoint(host: str | None, port: int | None) -> tuple[str, str]:
    """``https://host:port`` and the bare host name, from a host with or without a scheme."""
    from airflow_provider_fts.client.client import normalise_endpoint

    # Airflow 3.3.1 gives 0 for an empty port.
    endpoint = normalise_endpoint(host or "", port=port or None, field="host")
    return endpoint, endpoint.removeprefix("https://").rsplit(":", 1)[0]


def _credential_source(password: str | None, extra: Mapping[str, Any]) -> CredentialSource:
    token = password or extra.get("access_token")
    if password and extra.get("access_token") and password != extra["access_token"]:
        raise FTSValidationError(
            "extra 'access_token'", "differs from the token in the password field.", "Keep one."
        )
    x509 = [k for k in CONNECTION_FIELDS if k.startswith("x509_") and k in extra]
    if token:
        if x509:
            raise FTSValidationError(
                f"extra {x509[0]!r}",
                "is set together with a bearer token; FTS would use the token only.",
                "Remove the X.509 extras or the token.",
            )
        return CredentialSource("token", token=token)
    proxy = [k for k in ("x509_proxy", "x509_proxy_pem") if k in extra]
    cert = [k for k in ("x509_cert", "x509_cert_pem", "x509_key", "x509_key_pem") if k in extra]
    if len(proxy) > 1 or (proxy and cert):
        first, second = (proxy + cert)[:2]
        raise FTSValidationError(
            f"extra {second!r}",
            f"is set together with {first!r}; a connection uses one credential.",
            "Keep either a proxy or a certificate and key.",
        )
    for path_key in ("x509_cert", "x509_key"):
        if path_key in extra and f"{path_key}_pem" in extra:
            raise FTSValidationError(
                f"extra '{path_key}_pem'",
                f"is set together with {path_key!r}.",
                "Give a path or the PEM text, not both.",
            )
    passphrase = extra.get("x509_key_passphrase")
    if "x509_proxy" in extra:
        return CredentialSource("proxy_file", proxy_path=str(extra["x509_proxy"]))
    if "x509_proxy_pem" in extra:
        return CredentialSource("pem", proxy_pem=str(extra["x509_proxy_pem"]))
    if "x509_cert" in extra and "x509_key_pem" not in extra:
        return CredentialSource(
            "cert_files",
            cert_path=str(extra["x509_cert"]),
            key_path=extra.get("x509_key"),
            passphrase=passphrase,
        )
    if "x509_cert_pem" in extra:
        return CredentialSource(
            "pem",
            cert_pem=str(extra["x509_cert_pem"]),
            key_pem=extra.get("x509_key_pem"),
            passphrase=passphrase,
        )
    if cert or passphrase:
        orphan = (cert or ["x509_key_passphrase"])[0]
        raise FTSValidationError(
            f"extra {orphan!r}",
            "is set but no certificate is.",
            "Add 'x509_cert' (a path) or 'x509_cert_pem' (the PEM text).",
        )
    return CredentialSource("environment")


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
            with open(path, encoding="ascii", errors="replace") as pem:
                keys += _PRIVATE_KEY_BLOCK.findall(pem.read())
    return keys


def _is_not_found(entry: dict) -> bool:
    return is_job_error_entry(entry) and isinstance(error_from_job_entry(entry), NotFound)


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


class FTSHook(BaseHook):
    """Talk to one FTS3 server through an Airflow connection of type ``fts``.

    :param fts_conn_id: The Airflow connection to use (type ``fts``).
    """

    conn_name_attr = "fts_conn_id"
    default_conn_name = "fts_default"
    conn_type = "fts"
    hook_name = "CERN FTS3"

    def __init__(self, fts_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fts_conn_id = fts_conn_id

    @cached_property
    def settings(self) -> FTSConnectionSettings:
        """The validated connection (no request is made)."""
        conn = self.get_connection(self.fts_conn_id)
        settings = FTSConnectionSettings.from_connection(
            conn.host, conn.port, conn.password, conn.extra_dejson
        )
        for secret in settings.credential.inline_secrets:
            mask_secret(secret)
        return settings

    async def asettings(self) -> FTSConnectionSettings:
        """The validated connection, resolved without blocking the event loop."""
        from airflow.providers.common.compat.connection import (
            get_async_connection,
            get_async_extra_dejson,
        )

        conn = await get_async_connection(self.fts_conn_id, hook=self)
        extra = await get_async_extra_dejson(conn)
        settings = FTSConnectionSettings.from_connection(conn.host, conn.port, conn.password, extra)
        for secret in settings.credential.inline_secrets:
            await amask_secret(secret)
        return settings

    def get_client(self) -> FTSClient:
        """The FTS client of this hook (one per hook; it caches identity and delegation)."""
        return self._client

    @cached_property
    def _client(self) -> FTSClient:
        from airflow_provider_fts.client.client import FTSClient

        settings = self.settings
        credentials, file_keys = settings.credential.load()
        for key in file_keys:
            mask_secret(key)
        return FTSClient(
            settings.endpoint,
            credentials,
            trust=settings.trust(),
            delegation_lifetime=settings.delegation_lifetime,
            renew_below=settings.renew_below,
            timeout=(min(MAX_CONNECT_TIMEOUT, settings.timeout), settings.timeout),
        )

    async def aget_poller(self) -> JobPoller:
        """The poller this process shares among triggers of the same endpoint and credential.

        Nothing here blocks the event loop: the connection comes from the async helpers,
        and reading credential files (maybe decrypting a key) runs in a thread.
        """
        from airflow_provider_fts.client.poller import shared_poller

        settings = await self.asettings()
        key = await asyncio.to_thread(settings.poller_key)
        return await shared_poller(key, lambda: self._new_poller(settings))

    @staticmethod
    async def _new_poller(settings: FTSConnectionSettings) -> JobPoller:
        from airflow_provider_fts.client.poller import JobPoller

        credentials, file_keys = await asyncio.to_thread(settings.credential.load)
        for key in file_keys:
            await amask_secret(key)
        context = await asyncio.to_thread(credentials.ssl_context, settings.trust())
        return JobPoller(
            settings.endpoint,
            ssl_context=context,
            token=credentials.token,
            timeout=settings.timeout,
        )

    def job_url(self, job_id: str) -> str:
        """The job's page in FTS web monitoring."""
        return self.settings.job_url(job_id)

    def whoami(self) -> dict:
        return self.get_client().whoami()

    def get_delegation(self) -> dict | None:
        return self.get_client().get_delegation()

    def delegate(self, lifetime: timedelta | None = None, force: bool = False) -> str:
        """Delegate a proxy to FTS (X.509 only); returns the delegation id."""
        return self.get_client().delegate(lifetime=lifetime, force=force)

    def submit_job(self, transfers: Iterable[Any], **job_params: Any) -> str:
        """Submit one job; with ``sid=`` the id is deterministic and a resubmission is harmless.

        Sources and destinations are reported to Airflow's hook-level lineage (read by
        OpenLineage when it is installed; a no-op otherwise).
        """
        from airflow_provider_fts.client.submission import Transfer

        planned = [Transfer.coerce(transfer, index) for index, transfer in enumerate(transfers)]
        job_id = self.get_client().submit(planned, **job_params)
        self._report_lineage(planned)
        return job_id

    def _report_lineage(self, transfers: Sequence[Transfer]) -> None:
        from airflow_provider_fts.assets import report_submitted

        report_submitted(self, transfers)

    def expected_job_id(self, sid: str) -> str:
        """The id of the job submitted with ``sid``, computed without asking FTS."""
        return self.get_client().expected_job_id(sid)

    def get_job(self, job_id: str, files: bool | Sequence[str] = False) -> dict:
        return self.get_client().get_job(job_id, files=files)

    def get_jobs(self, job_ids: Sequence[str], files: bool | Sequence[str] = False) -> list[dict]:
        """Many jobs in requests of up to 100 ids; a missing job is an error entry, not a raise."""
        return self.get_client().get_jobs(job_ids, files=files)

    def get_jobs_or_archived(
        self, job_ids: Sequence[str], files: bool | Sequence[str] = False
    ) -> list[dict]:
        """Like :meth:`get_jobs`, but a job FTS purged from ``/jobs`` (404 there, days after
        it ended) comes from ``/archive/<id>`` with all its files. A job in neither place
        stays its 404 error entry."""
        return [
            self._archived_or(entry) if _is_not_found(entry) else entry
            for entry in self.get_jobs(job_ids, files=files)
        ]

    def _archived_or(self, entry: dict) -> dict:
        try:
            return self.get_archived_job(entry["job_id"])
        except NotFound:
            return entry

    def get_job_files(self, job_id: str) -> list[dict]:
        return self.get_client().get_job_files(job_id)

    def get_file_retries(self, job_id: str, file_id: int) -> list[dict]:
        return self.get_client().get_file_retries(job_id, file_id)

    def get_archived_job(self, job_id: str) -> dict:
        return self.get_client().get_archived_job(job_id)

    def list_jobs(self, **filters: Any) -> list[dict]:
        return self.get_client().list_jobs(**filters)

    def cancel_job(self, job_id: str) -> dict:
        return self.get_client().cancel_job(job_id)

    def cancel_jobs(self, job_ids: Sequence[str]) -> list[dict]:
        return self.get_client().cancel_jobs(job_ids)

    def cancel_files(self, job_id: str, file_ids: Sequence[int]) -> list[str]:
        return self.get_client().cancel_files(job_id, file_ids)

    def set_priority(self, job_id: str, priority: int) -> dict:
        return self.get_client().set_priority([job_id], priority)[0]

    def test_connection(self) -> tuple[bool, str]:
        """Ask the server who we are and about our delegation; never raises."""
        try:
            identity = self.whoami()
            user = identity.get("user_dn", "?")
            vos = ", ".join(identity.get("vos") or []) or "no VO"
            if identity.get("method") == "oauth2":
                delegation = "token authentication, no delegation needed"
            else:
                current = self.get_delegation()
                delegation = (
                    f"delegation valid until {current['termination_time']:%Y-%m-%d %H:%M} UTC"
                    if current
                    else "no delegation yet (made at the first submission)"
                )
            return True, f"Connected to {self.settings.endpoint} as {user} ({vos}); {delegation}."
        except Exception as error:  # the contract: report, never raise
            return False, f"{type(error).__name__}: {error}"
