"""A faithful FTS3 REST server for tests, demos and CI: HTTPS with grid client certificates.

Same endpoints, status codes, JSON shapes and error bodies as a real fts-rest-flask 3.13
server behind Apache + mod_gridsite. :class:`FTSEmulator` puts the parts together: the
HTTPS server (:mod:`.httpd`), the route table (:mod:`.routes`) and its handlers
(:mod:`.service`), the :class:`~.store.JobStore` moved along by an :class:`~.engine.Engine`,
the delegations, the bearer-token checks (:mod:`.tokens`, as a server with ``OAuth2 = True``
when ``token_issuers`` are given), request counting and fault injection::

    with FTSEmulator(ca=ca, host_credential=host, storage={"davs://site-a": dir}) as emu:
        requests.get(emu.url + "/whoami", cert=(proxy, proxy), verify=ca_dir)
        emu.faults.html_503(count=2)
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow_provider_fts.testing.delegations import DelegationStore
from airflow_provider_fts.testing.engine import Engine
from airflow_provider_fts.testing.faults import Faults
from airflow_provider_fts.testing.httpd import TLSServer, server_context
from airflow_provider_fts.testing.service import FTSService
from airflow_provider_fts.testing.store import JobStore
from airflow_provider_fts.testing.token_table import TokenTable
from airflow_provider_fts.testing.tokens import (
    WLCG_ANY_AUDIENCE,
    TestIssuer,
    TokenValidator,
    TrustedIssuer,
)
from airflow_provider_fts.testing.x509 import oneline

__all__ = ["FTSEmulator"]


class FTSEmulator:
    """An FTS3 REST server on loopback HTTPS (see the module docstring).

    :param ca: the test CA (``pki.CA``) whose users are trusted.
    :param host_credential: the server's certificate and key (``pki.Credential``); its
        DN is the "root" identity (``is_root``).
    :param ca_dir: a hashed CA directory, trusted in addition to (or instead of) ``ca``.
    :param storage: ``{"davs://site-a.example": directory}`` for the transfer engine.
    :param token_issuers: the trusted token issuers (``[providers]``); none: no OAuth2,
        a bearer token gets a 400. A :class:`~.tokens.TestIssuer` is trusted by its key.
    :param token_audiences: the ``AuthorizedAudiences`` (default: the emulator's own
        ``https://host:port`` and ``https://wlcg.cern.ch/jwt/v1/any``).
    :param jwks_verify: TLS verification of the JWKS fetches (default: ``ca_dir``, else on).
    :param token_prep_delay: seconds token files wait in ``TOKEN_PREP`` (None: the default).
    :param host: address to listen on; ``port`` 0 picks a free port.
    :param engine_tick: seconds between engine steps (None: the engine's default).
    :param run_engine: False keeps jobs in the states a test sets (call ``engine.step()``).
    """

    def __init__(
        self,
        *,
        ca=None,
        host_credential,
        ca_dir: str | Path | None = None,
        storage: Mapping[str, str | Path] | None = None,
        token_issuers: Sequence[TrustedIssuer | TestIssuer] = (),
        token_audiences: Sequence[str] | None = None,
        jwks_verify: bool | str | Path | None = None,
        token_prep_delay: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        engine_tick: float | None = None,
        run_engine: bool = True,
    ) -> None:
        if ca is None and ca_dir is None:
            raise ValueError("FTSEmulator needs a CA (ca=...) or a CA directory (ca_dir=...)")
        self.host = host
        self.faults = Faults()
        self.requests: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()  # answer bodies, per route like requests
        self._count_lock = threading.Lock()
        self._context = server_context(host_credential, ca, ca_dir)
        # Bound first: the default token audience is the emulator's own URL.
        self._httpd = TLSServer((host, port), self._context, self)
        self._thread: threading.Thread | None = None
        validator = None
        if token_issuers:
            verify = jwks_verify if jwks_verify is not None else ca_dir or True
            audiences = token_audiences or (self.url, WLCG_ANY_AUDIENCE)
            validator = _token_validator(token_issuers, audiences, verify)
        self.store = JobStore(tokens=TokenTable(validator))
        engine_options: dict[str, Any] = {"storage": dict(storage or {})}
        if engine_tick is not None:
            engine_options["tick"] = engine_tick
        if token_prep_delay is not None:
            engine_options["token_prep_delay"] = token_prep_delay
        self.engine = Engine(self.store, **engine_options)
        self.delegations = DelegationStore()
        self.service = FTSService(self.store, self.delegations)
        self.host_dn = oneline(host_credential.certificate.subject)
        self._run_engine = run_engine

    # ---- lifecycle

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> FTSEmulator:
        if self._thread is None:
            self._serve()
            if self._run_engine:
                self.engine.start()
        return self

    def stop(self) -> None:
        if self._thread is not None and self._run_engine:
            self.engine.stop()
        self.go_down()

    def _serve(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"fts-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def go_down(self) -> None:
        """Stop listening, as a server down for maintenance: connections are refused, open
        ones are cut; the jobs are kept and move on (see :meth:`come_back`)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.close_connections()
        self._httpd.server_close()

    def come_back(self) -> None:
        """Listen again on the same port, with the jobs the server had."""
        self._httpd = TLSServer((self.host, self.port), self._context, self)
        self._serve()

    def __enter__(self) -> FTSEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- test controls

    def reset_counts(self) -> None:
        with self._count_lock:
            self.requests.clear()
            self.bytes_sent.clear()

    def purge(self, job_id: str) -> None:
        """Move a job to the archive, as the FTS DB cleaner does with old jobs."""
        self.store.purge_to_archive(job_id)

    def delegate(
        self,
        delegation_id: str,
        user_dn: str,
        lifetime: timedelta = timedelta(hours=12),
        fqans: tuple[str, ...] | list[str] = (),
    ) -> None:
        """Store a delegation directly, skipping the CSR round trip (test setup)."""
        self.delegations.add(delegation_id, user_dn, lifetime, fqans)

    def expire_delegation(
        self, delegation_id: str, remaining: timedelta = timedelta(hours=-2)
    ) -> None:
        """Shorten a stored delegation: negative ``remaining`` = expired that long ago."""
        self.delegations.set_lifetime(delegation_id, remaining)

    def connection_json(
        self,
        x509up_file: str | Path | None = None,
        *,
        x509_cert: str | Path | None = None,
        x509_key: str | Path | None = None,
        token: str | None = None,
        ca_path: str | Path | None = None,
    ) -> str:
        """The ``AIRFLOW_CONN_FTS_DEFAULT`` value (JSON) for a user of this emulator."""
        extra: dict[str, str] = {}
        for key, value in (
            ("x509up_file", x509up_file),
            ("x509_cert", x509_cert),
            ("x509_key", x509_key),
            ("ca_path", ca_path),
        ):
            if value is not None:
                extra[key] = str(value)
        connection: dict[str, Any] = {
            "conn_type": "fts",
            "host": self.host,
            "port": self.port,
            "extra": extra,
        }
        if token is not None:
            connection["password"] = token
        return json.dumps(connection)

    @property
    def token_validator(self) -> TokenValidator | None:
        """The bearer-token checks (None: the emulator has no OAuth2)."""
        return self.store.tokens.validator

    def stored_tokens(self) -> list[dict[str, Any]]:
        """Copies of the ``t_token`` rows written by token submissions."""
        return self.store.tokens.rows()

    def count(self, route_key: str) -> None:
        """Count one request under ``"<METHOD> <route template>"`` (called by handler threads)."""
        with self._count_lock:
            self.requests[route_key] += 1

    def count_sent(self, route_key: str, size: int) -> None:
        """Count the body bytes of one answer under its route (called by handler threads)."""
        with self._count_lock:
            self.bytes_sent[route_key] += size


def _token_validator(
    issuers: Sequence[TrustedIssuer | TestIssuer],
    audiences: Sequence[str],
    verify: bool | str | Path,
) -> TokenValidator:
    """The server's ``[providers]`` and ``AuthorizedAudiences``; a test issuer by its key."""
    return TokenValidator(
        [i.trusted if isinstance(i, TestIssuer) else i for i in issuers],
        audiences,
        verify=verify if isinstance(verify, bool) else str(verify),
    )
