"""A faithful FTS3 REST server for tests, demos and CI: HTTPS with grid client certificates.

Same endpoints, status codes, JSON shapes and error bodies as a real fts-rest-flask 3.13
server behind Apache + mod_gridsite (``shared/fts-api/recorded``). Jobs live in a
:class:`~airflow_provider_fts.testing.jobs.JobStore` moved along by an
:class:`~airflow_provider_fts.testing.engine.Engine`; this module owns transport,
identity, delegation, routing, error shapes, request counting and fault injection::

    with FTSEmulator(ca=ca, host_credential=host, storage={"davs://site-a": dir}) as emu:
        requests.get(emu.url + "/whoami", cert=(proxy, proxy), verify=ca_dir)
        emu.faults.html_503(count=2)
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509

from airflow_provider_fts.client.certs import dn_string
from airflow_provider_fts.testing.delegations import DelegationError, DelegationStore
from airflow_provider_fts.testing.engine import Engine
from airflow_provider_fts.testing.faults import Faults, RequestInfo
from airflow_provider_fts.testing.identity import (
    Caller,
    caller_from_chain,
    caller_from_token,
)
from airflow_provider_fts.testing.jobs import HTTPError, Identity, JobStore
from airflow_provider_fts.testing.submit_schema import SUBMIT_SCHEMA

__all__ = ["FTSEmulator"]

log = logging.getLogger(__name__)

_NOT_FOUND = (
    "The requested URL was not found on the server. If you entered the URL manually "
    "please check your spelling and try again."
)
_NOT_ALLOWED = "The method is not allowed for the requested URL."
_INTERNAL = (
    "The server encountered an internal error and was unable to complete your request. "
    "Either the server is overloaded or there is an error in the application."
)
_REASONS = {207: "Multi-Status", 419: "Authentication Timeout"}
_FTS_CLIENT_UA = re.compile(r"fts-.+/(\d+)\.(\d+)")
_JSON = "application/json"
_SUBMIT_HOST = "localhost"

_ROOT_DOC = {
    "delegation": {"major": 1, "minor": 0, "patch": 0},
    "api": {"major": 3, "minor": 13, "patch": 4},
    "core": None,
    "schema": {"major": 9, "minor": 1, "patch": 0},
    "_links": {
        "curies": [{"name": "fts", "href": "https://gitlab.cern.ch/fts/fts3"}],
        "fts:whoami": {"href": "/whoami", "title": "Check user certificate"},
        "fts:joblist": {
            "href": "/jobs{?vo_name,user_dn,dlg_id,state_in}",
            "title": "List of active jobs",
            "templated": True,
        },
        "fts:job": {
            "href": "/jobs/{id}",
            "title": "Job information",
            "templated": True,
            "hints": {"allow": ["GET", "DELETE"]},
        },
        "fts:configaudit": {"href": "/config/audit", "title": "Configuration"},
        "fts:submitschema": {
            "href": "/api-docs/schema/submit",
            "title": "JSON schema of messages",
        },
        "fts:apidocs": {"href": "/api-docs/", "title": "API Documentation"},
        "fts:jobsubmit": {
            "href": "/jobs",
            "hints": {"allow": ["POST"], "representations": ["fts:submitschema"]},
        },
        "fts:optimizer": {"href": "/optimizer/", "title": "Optimizer"},
        "fts:archive": {"href": "/archive/", "title": "Archive"},
    },
}
_ARCHIVE_DOC = {
    "_links": {
        "curies": [{"name": "fts", "href": "https://gitlab.cern.ch/fts/fts3"}],
        "fts:archivedJob": {
            "href": "/archive/{id}",
            "title": "Archived job information",
            "templated": True,
        },
    }
}
_APACHE_503 = b"""<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>503 Service Unavailable</title>
</head><body>
<h1>Service Unavailable</h1>
<p>The server is temporarily unable to service your
request due to maintenance downtime or capacity
problems. Please try again later.</p>
</body></html>
"""


# --------------------------------------------------------------------------- replies


@dataclass
class Reply:
    """One HTTP answer."""

    status: int
    body: bytes = b""
    content_type: str | None = _JSON
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(value: Any, status: int = 200) -> Reply:
    return Reply(status, _dumps(value))


def error_reply(status: int, message: str) -> Reply:
    """The generic Flask error body: ``{"status": "404 Not Found", "message": ...}``."""
    return json_reply({"status": f"{status} {_reason(status)}", "message": message}, status)


def html_error_reply(status: int, message: str) -> Reply:
    """A Werkzeug HTML error page, as the authentication middleware sends."""
    reason = _reason(status)
    page = (
        f"<!doctype html>\n<html lang=en>\n<title>{status} {reason}</title>\n"
        f"<h1>{reason}</h1>\n<p>{message}</p>\n"
    )
    return Reply(status, page.encode(), "text/html; charset=utf-8")


def _reason(status: int) -> str:
    if status in _REASONS:
        return _REASONS[status]
    return HTTPStatus(status).phrase


def _dumps(value: Any) -> bytes:
    return json.dumps(value, default=_json_default).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class _Drop(Exception):
    """Close the connection without answering."""


# --------------------------------------------------------------------------- routing


@dataclass
class Call:
    """One request as the route handlers see it."""

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    caller: Caller
    params: dict[str, str]


@dataclass(frozen=True)
class _Route:
    template: str
    methods: dict[str, str]  # HTTP method -> FTSEmulator method name
    pattern: re.Pattern[str]


def _route(template: str, **methods: str) -> _Route:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template.rstrip("/") or "/"))
    return _Route(template, methods, re.compile(f"^{regex}/?$" if regex != "/" else "^/$"))


_ADMIN = {m: "_admin_only" for m in ("GET", "POST", "PUT", "DELETE")}

# Order matters where templates overlap: literal segments first, as Werkzeug does.
_ROUTES = [
    _route("/", GET="_root"),
    _route("/whoami", GET="_whoami"),
    _route("/whoami/certificate", GET="_whoami_certificate"),
    _route("/api-docs/schema/submit", GET="_submit_schema"),
    _route("/optimizer", GET="_optimizer"),
    _route("/optimizer/current", GET="_empty_list"),
    _route("/optimizer/evolution", GET="_empty_list"),
    _route("/delegation/{dlg_id}", GET="_delegation_view", DELETE="_delegation_delete"),
    _route("/delegation/{dlg_id}/request", GET="_delegation_request"),
    _route(
        "/delegation/{dlg_id}/credential",
        PUT="_delegation_credential",
        POST="_delegation_credential",
    ),
    _route("/jobs", GET="_list_jobs", POST="_submit", PUT="_submit"),
    _route("/jobs/all", DELETE="_root_only"),
    _route("/jobs/vo/{vo}", DELETE="_root_only"),
    _route("/jobs/{id}", GET="_get_jobs", DELETE="_cancel", POST="_modify"),
    _route("/jobs/{id}/files", GET="_get_files"),
    _route("/jobs/{id}/files/{file_id}/retries", GET="_get_retries"),
    _route("/jobs/{id}/files/{file_ids}", DELETE="_cancel_files"),
    _route("/jobs/{id}/dm", GET="_get_dm"),
    _route("/jobs/{id}/{field}", GET="_get_job_field"),
    _route("/files", GET="_list_files"),
    _route("/archive", GET="_archive_index"),
    _route("/archive/{id}", GET="_get_archived"),
    _route("/archive/{id}/{field}", GET="_get_archived_field"),
    _route("/status/hosts", GET="_status_hosts"),
    _route("/config", **_ADMIN),
    _route("/config/{section}", **_ADMIN),
    _route("/config/{section}/{item}", **_ADMIN),
    _route("/ban/se", **_ADMIN),
    _route("/ban/dn", **_ADMIN),
    _route("/autocomplete/{kind}", GET="_admin_only"),
    _route("/admin/force-start", POST="_admin_only"),
]


def resolve(method: str, path: str) -> tuple[str, str | None, dict[str, str], list[str]]:
    """(template, handler name or None, path params, allowed methods) for a request."""
    allowed: list[str] = []
    template = None
    lookup = "GET" if method == "HEAD" else method
    for route in _ROUTES:
        match = route.pattern.match(path)
        if not match:
            continue
        template = template or route.template
        if lookup in route.methods:
            return route.template, route.methods[lookup], match.groupdict(), []
        allowed.extend(m for m in route.methods if m not in allowed)
    return template or path, None, {}, allowed


def _allow_header(methods: list[str]) -> str:
    extra = ["HEAD"] if "GET" in methods else []
    return ", ".join(sorted({*methods, *extra, "OPTIONS"}))


# --------------------------------------------------------------------------- emulator


class FTSEmulator:
    """An FTS3 REST server on loopback HTTPS (see the module docstring).

    :param ca: the test CA (``pki.CA``) whose users are trusted.
    :param host_credential: the server's certificate and key (``pki.Credential``); its
        DN is the "root" identity (``is_root``).
    :param ca_dir: a hashed CA directory, trusted in addition to (or instead of) ``ca``.
    :param storage: ``{"davs://site-a.example": directory}`` for the transfer engine.
    :param tokens: accepted bearer tokens and their claims (``sub``, ``iss``, ``vo``).
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
        tokens: Mapping[str, Mapping[str, str]] | None = None,
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
        self.store = JobStore()
        engine_options: dict[str, Any] = {"storage": dict(storage or {})}
        if engine_tick is not None:
            engine_options["tick"] = engine_tick
        self.engine = Engine(self.store, **engine_options)
        self.delegations = DelegationStore()
        self.host_dn = dn_string(host_credential.certificate.subject)
        self._run_engine = run_engine
        self._tokens = {token: dict(claims) for token, claims in (tokens or {}).items()}
        self._count_lock = threading.Lock()
        self._context = _server_context(host_credential, ca, ca_dir)
        self._httpd = _TLSServer((host, port), _RequestHandler, self)
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> FTSEmulator:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.02},
                name=f"fts-emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
            if self._run_engine:
                self.engine.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            if self._run_engine:
                self.engine.stop()
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.close_connections()
        self._httpd.server_close()

    def __enter__(self) -> FTSEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- test controls

    def reset_counts(self) -> None:
        with self._count_lock:
            self.requests.clear()

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

    # ---- request pipeline (called by the handler thread)

    def count(self, route_key: str) -> None:
        with self._count_lock:
            self.requests[route_key] += 1

    def authenticate(self, headers: Mapping[str, str], cert_caller: Caller) -> Caller:
        authorization = headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            claims = self._tokens.get(authorization[len("Bearer ") :].strip())
            if claims is None:
                raise _MiddlewareError(
                    403, "Invalid credentials (the access token is not recognised)"
                )
            return caller_from_token(claims)
        return cert_caller

    def dispatch(self, handler_name: str, call: Call) -> Reply:
        try:
            return getattr(self, handler_name)(call)
        except HTTPError as error:
            return error_reply(error.status, error.message)
        except DelegationError as error:
            return error_reply(error.status, error.message)

    # ---- service

    def _root(self, call: Call) -> Reply:
        return json_reply(_ROOT_DOC)

    def _whoami(self, call: Call) -> Reply:
        return json_reply(call.caller.whoami())

    def _whoami_certificate(self, call: Call) -> Reply:
        _require_certificate(call.caller)
        return Reply(200, call.caller.chain_pem, "application/x-pem-file")

    def _submit_schema(self, call: Call) -> Reply:
        return json_reply(SUBMIT_SCHEMA)

    def _optimizer(self, call: Call) -> Reply:
        return json_reply(True)

    def _empty_list(self, call: Call) -> Reply:
        return json_reply([])

    def _admin_only(self, call: Call) -> Reply:
        raise HTTPError(403, "Not enough permissions")

    def _root_only(self, call: Call) -> Reply:
        raise HTTPError(403, "User does not have root privileges")

    def _status_hosts(self, call: Call) -> Reply:
        if not call.caller.is_root:
            raise HTTPError(403, "Not enough permissions")
        return json_reply(self._host_status())

    def _host_status(self) -> dict[str, dict[str, int]]:
        """Per host: files ACTIVE on it (transfer_host) and STARTED there (staging_host)."""
        counts: dict[str, Counter[str]] = {}
        with self.store.lock:
            for job in self.store.stored_jobs():
                for row in job.files:
                    if row["file_state"] == "ACTIVE" and row.get("transfer_host"):
                        counts.setdefault(row["transfer_host"], Counter())["active"] += 1
                    if row["file_state"] == "STARTED" and row.get("staging_host"):
                        counts.setdefault(row["staging_host"], Counter())["staging"] += 1
        return {host: dict(counter) for host, counter in counts.items()}

    # ---- delegation

    def _delegation_view(self, call: Call) -> Reply:
        self._check_delegation_id(call)
        delegation = self.delegations.get(call.params["dlg_id"])
        if delegation is None or delegation.user_dn != call.caller.user_dn:
            return json_reply(None if _wants_null(call.headers) else [])
        return json_reply(
            {
                "termination_time": delegation.termination_time,
                "voms_attrs": delegation.voms_attrs.split("\n"),
            }
        )

    def _delegation_delete(self, call: Call) -> Reply:
        _require_certificate(call.caller)
        self._check_delegation_id(call)
        if not self.delegations.delete(call.params["dlg_id"]):
            raise HTTPError(404, "Delegated credentials not found")
        return Reply(204, b"", None)

    def _delegation_request(self, call: Call) -> Reply:
        _require_certificate(call.caller)
        self._check_delegation_id(call)
        caller = call.caller
        csr = self.delegations.request(
            caller.delegation_id, caller.user_dn, list(caller.voms_cred), caller.key_bits
        )
        return Reply(
            200,
            csr.encode(),
            "text/plain; charset=utf-8",
            {"X-Delegation-ID": caller.delegation_id},
        )

    def _delegation_credential(self, call: Call) -> Reply:
        _require_certificate(call.caller)
        self._check_delegation_id(call)
        self.delegations.put_credential(call.caller.delegation_id, call.caller.user_dn, call.body)
        return Reply(201, b"", "text/html; charset=utf-8")

    def _check_delegation_id(self, call: Call) -> None:
        if call.params["dlg_id"] != call.caller.delegation_id:
            raise HTTPError(403, "The requested ID and the credentials ID do not match")

    # ---- jobs

    def _submit(self, call: Call) -> Reply:
        # Permission, then body, then delegation, then content: the server's order.
        if call.caller.is_anonymous:
            raise HTTPError(403, "Not enough permissions")
        document = _request_document(call)
        if call.caller.has_certificate:
            self.delegations.check_for_submit(call.caller.delegation_id, call.caller.user_dn)
        job_id = self.store.submit(document, _identity(call.caller), _SUBMIT_HOST)
        return json_reply({"job_id": job_id})

    def _list_jobs(self, call: Call) -> Reply:
        return json_reply(self.store.list_jobs(call.query, _identity(call.caller)))

    def _list_files(self, call: Call) -> Reply:
        return json_reply(self.store.list_files(call.query, _identity(call.caller)))

    def _get_jobs(self, call: Call) -> Reply:
        ids, multi = _job_ids(call.params["id"])
        fields = call.query.get("files")
        file_fields = [f for f in fields.split(",") if f] if fields is not None else None
        status, body = self.store.get_jobs(ids, _identity(call.caller), file_fields, multi)
        return json_reply(body, status)

    def _cancel(self, call: Call) -> Reply:
        ids, multi = _job_ids(call.params["id"])
        status, body = self.store.cancel(ids, _identity(call.caller), multi)
        return json_reply(body, status)

    def _modify(self, call: Call) -> Reply:
        ids, multi = _job_ids(call.params["id"])
        identity = _identity(call.caller)
        status, body = self.store.modify(ids, _request_document(call), identity, multi)
        return json_reply(body, status)

    def _get_files(self, call: Call) -> Reply:
        return json_reply(self.store.get_files(call.params["id"], _identity(call.caller)))

    def _get_retries(self, call: Call) -> Reply:
        identity = _identity(call.caller)
        return json_reply(
            self.store.get_retries(call.params["id"], call.params["file_id"], identity)
        )

    def _cancel_files(self, call: Call) -> Reply:
        file_ids = [f for f in call.params["file_ids"].split(",") if f]
        identity = _identity(call.caller)
        return json_reply(self.store.cancel_files(call.params["id"], file_ids, identity))

    def _get_dm(self, call: Call) -> Reply:
        return json_reply(self.store.get_dm(call.params["id"], _identity(call.caller)))

    def _get_job_field(self, call: Call) -> Reply:
        identity = _identity(call.caller)
        return json_reply(
            self.store.get_job_field(call.params["id"], call.params["field"], identity)
        )

    # ---- archive

    def _archive_index(self, call: Call) -> Reply:
        return json_reply(_ARCHIVE_DOC)

    def _get_archived(self, call: Call) -> Reply:
        return json_reply(self.store.get_archived(call.params["id"], _identity(call.caller)))

    def _get_archived_field(self, call: Call) -> Reply:
        identity = _identity(call.caller)
        return json_reply(
            self.store.get_archived(call.params["id"], identity, field=call.params["field"])
        )


class _MiddlewareError(Exception):
    """Refused by the authentication middleware: answered with an HTML page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _wants_null(headers: Mapping[str, str]) -> bool:
    """Old clients get ``null`` for "no delegation"; fts-* clients >= 3.12 get ``[]``."""
    match = _FTS_CLIENT_UA.search(headers.get("User-Agent", ""))
    if not match:
        return True
    return (int(match.group(1)), int(match.group(2))) < (3, 12)


def _require_certificate(caller: Caller) -> None:
    if not caller.has_certificate:
        raise HTTPError(403, "Certificate required")


def _identity(caller: Caller) -> Identity:
    return Identity(
        user_dn=caller.user_dn,
        dn=list(caller.dn),
        voms_cred=list(caller.voms_cred),
        vos=list(caller.vos),
        delegation_id=caller.delegation_id,
        method=caller.method,
        is_root=caller.is_root,
    )


def _job_ids(raw: str) -> tuple[list[str], bool]:
    return [i for i in raw.split(",") if i], "," in raw


def _request_document(call: Call) -> dict:
    """The JSON body as ``get_input_as_dict`` reads it (REFERENCE section 1)."""
    content_type = call.headers.get("Content-Type", "")
    if call.method == "POST" and not content_type.startswith(_JSON):
        if content_type.startswith("application/x-www-form-urlencoded"):
            # Accepted by the parser, but nested documents never survive a form (case 076).
            raise HTTPError(500, _INTERNAL)
        raise HTTPError(400, "Expecting application/json or application/x-www-form-urlencoded")
    try:
        document = json.loads(call.body.decode("utf-8") or "null")
    except (UnicodeDecodeError, ValueError):
        raise HTTPError(400, "Badly formatted JSON request") from None
    if not isinstance(document, dict):
        raise HTTPError(400, "Expecting a dictionary")
    return document


# --------------------------------------------------------------------------- HTTP/TLS


def _server_context(host_credential, ca, ca_dir) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain only reads files: keep the key in a private directory briefly.
    with tempfile.TemporaryDirectory(prefix="fts-emulator-") as directory:
        cert_path = host_credential.chain_pem.write_to_path(Path(directory) / "hostcert.pem")
        key_path = host_credential.key_pem.write_to_path(Path(directory) / "hostkey.pem")
        context.load_cert_chain(cert_path, key_path)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.verify_flags |= ssl.VERIFY_ALLOW_PROXY_CERTS
    if ca is not None:
        context.load_verify_locations(cadata=ca.cert_pem.decode())
    if ca_dir is not None:
        context.load_verify_locations(capath=str(ca_dir))
    return context


class _TLSServer(ThreadingHTTPServer):
    """Accepts in one thread, does each TLS handshake in the connection's own thread."""

    daemon_threads = True
    request_queue_size = 128
    handshake_timeout = 10.0

    def __init__(self, address, handler_class, emulator: FTSEmulator) -> None:
        self.emulator = emulator
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()
        super().__init__(address, handler_class)

    def finish_request(self, request, client_address) -> None:
        # Headers and body go out in separate writes: without NODELAY, Nagle's algorithm
        # and delayed ACKs would add 40 ms to every keep-alive request.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(self.handshake_timeout)
        try:
            connection = self.emulator._context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as error:
            log.debug("TLS handshake with %s failed: %s", client_address, error)
            return
        with self._live_lock:
            self._live.add(connection)
        try:
            self.RequestHandlerClass(connection, client_address, self)
        finally:
            with self._live_lock:
                self._live.discard(connection)
            _close_quietly(connection)

    def close_connections(self) -> None:
        with self._live_lock:
            live = list(self._live)
        for connection in live:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def _close_quietly(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.close()


def _peer_chain(connection: ssl.SSLSocket) -> list[x509.Certificate]:
    # SSLSocket.get_verified_chain() is public only from Python 3.13.
    sslobj = getattr(connection, "_sslobj", None)
    if sslobj is None or connection.getpeercert(binary_form=True) is None:
        return []
    return [
        x509.load_der_x509_certificate(cert.public_bytes(ssl._ssl.ENCODING_DER))
        for cert in sslobj.get_verified_chain()
    ]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Apache"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after this

    server: _TLSServer

    def setup(self) -> None:
        super().setup()
        # The chain cannot change on a connection, so derive the identity once.
        self.cert_caller = caller_from_chain(
            _peer_chain(self.connection), self.server.emulator.host_dn
        )

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def _handle(self) -> None:
        emulator = self.server.emulator
        body = self._read_body()
        split = urlsplit(self.path)
        path = re.sub(r"/{2,}", "/", split.path) or "/"
        template, handler_name, params, allowed = resolve(self.command, path)
        route_key = f"{self.command} {template}"
        emulator.count(route_key)
        headers = {k: v for k, v in self.headers.items()}
        info = RequestInfo(self.command, self.path, route_key, headers)
        try:
            reply = self._faulted_or_handled(
                emulator, info, handler_name, allowed, path, split.query, headers, body, params
            )
        except _Drop:
            self._drop()
            return
        self._send(reply)

    def _faulted_or_handled(
        self, emulator, info, handler_name, allowed, path, query, headers, body, params
    ) -> Reply:
        fault = emulator.faults.take(info, ("reset", "html_503", "slow"))
        if fault is not None and fault.kind == "reset":
            raise _Drop
        if fault is not None and fault.kind == "html_503":
            return Reply(503, _APACHE_503, "text/html; charset=iso-8859-1")
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        reply = self._answer(emulator, handler_name, allowed, path, query, headers, body, params)
        if emulator.faults.take(info, ("ambiguous",)) is not None:
            raise _Drop
        if emulator.faults.take(info, ("malformed_json",)) is not None:
            reply.body = reply.body[: len(reply.body) // 2] or b"{"
            reply.content_type = _JSON
        return reply

    def _answer(self, emulator, handler_name, allowed, path, query, headers, body, params) -> Reply:
        try:
            caller = emulator.authenticate(headers, self.cert_caller)
            if not _origin_matches(headers):
                raise _MiddlewareError(403, "Host and Origin do not match")
        except _MiddlewareError as error:
            return html_error_reply(error.status, error.message)
        if self.command == "OPTIONS" and allowed:
            return Reply(200, b"", "text/html; charset=utf-8", {"Allow": _allow_header(allowed)})
        if handler_name is None:
            if allowed:
                reply = error_reply(405, _NOT_ALLOWED)
                reply.headers["Allow"] = _allow_header(allowed)
                return reply
            return error_reply(404, _NOT_FOUND)
        call = Call(self.command, path, dict(parse_qsl(query)), headers, body, caller, params)
        try:
            return emulator.dispatch(handler_name, call)
        except Exception:
            log.exception("emulator failure on %s %s", self.command, path)
            return error_reply(500, _INTERNAL)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        status = reply.status
        self.send_response(status, _reason(status).upper())
        if reply.content_type is not None:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.body:
            self.wfile.write(reply.body)

    def _drop(self) -> None:
        # SO_LINGER 0: the close sends a TCP reset, like a crashed or killed worker.
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


def _origin_matches(headers: Mapping[str, str]) -> bool:
    origin = headers.get("Origin")
    if not origin:
        return True
    return urlsplit(origin).netloc == headers.get("Host", "")
