"""The emulator's HTTPS server: TLS with grid client certificates, Apache's wire manners.

Each connection does its TLS handshake in its own thread and derives the caller's
:class:`~.identity.Identity` once from the verified chain (RFC 3820 proxies allowed).
Every request is counted, may meet an armed fault (reset, HTML 503, slow answer, lost
answer, truncated JSON), then is resolved in the route table and answered by the service.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509

from airflow_provider_fts.testing.faults import Faults, RequestInfo
from airflow_provider_fts.testing.identity import identity_from_chain
from airflow_provider_fts.testing.records import INTERNAL_ERROR, HTTPError, reason_phrase
from airflow_provider_fts.testing.routes import (
    JSON,
    Call,
    Reply,
    allow_header,
    error_reply,
    html_error_reply,
    resolve,
)

if TYPE_CHECKING:
    from airflow_provider_fts.testing.service import FTSService

__all__ = ["TLSServer", "server_context"]

log = logging.getLogger(__name__)

_NOT_FOUND = (
    "The requested URL was not found on the server. If you entered the URL manually "
    "please check your spelling and try again."
)
_NOT_ALLOWED = "The method is not allowed for the requested URL."
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


class _Drop(Exception):
    """Close the connection without answering."""


def server_context(host_credential, ca, ca_dir) -> ssl.SSLContext:
    """The server side of TLS: the host credential, client certificates optional, proxies ok."""
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


class Emulated(Protocol):
    """What the HTTP layer asks of the emulator it serves (:class:`~.server.FTSEmulator`)."""

    host_dn: str
    faults: Faults
    service: FTSService

    def count(self, route_key: str) -> None: ...


class TLSServer(ThreadingHTTPServer):
    """Accepts in one thread, does each TLS handshake in the connection's own thread."""

    daemon_threads = True
    request_queue_size = 128
    handshake_timeout = 10.0

    def __init__(self, address, context: ssl.SSLContext, emulator: Emulated) -> None:
        self.emulator = emulator
        self.context = context
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def finish_request(self, request, client_address) -> None:
        # Headers and body go out in separate writes: without NODELAY, Nagle's algorithm
        # and delayed ACKs would add 40 ms to every keep-alive request.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(self.handshake_timeout)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
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

    server: TLSServer

    def setup(self) -> None:
        super().setup()
        # The chain cannot change on a connection, so derive the identity once.
        self.cert_identity = identity_from_chain(
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
        emulator.count_sent(route_key, len(reply.body))
        self._send(reply)

    def _faulted_or_handled(
        self, emulator, info, handler_name, allowed, path, query, headers, body, params
    ) -> Reply:
        fault = emulator.faults.take(info, ("reset", "html_503", "answer", "slow"))
        if fault is not None and fault.kind == "reset":
            raise _Drop
        if fault is not None and fault.kind == "html_503":
            return Reply(503, _APACHE_503, "text/html; charset=iso-8859-1")
        if fault is not None and fault.reply is not None:
            status, body, content_type = fault.reply
            return Reply(status, body, content_type)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        reply = self._answer(emulator, handler_name, allowed, path, query, headers, body, params)
        if emulator.faults.take(info, ("ambiguous",)) is not None:
            raise _Drop
        if emulator.faults.take(info, ("malformed_json",)) is not None:
            reply.body = reply.body[: len(reply.body) // 2] or b"{"
            reply.content_type = JSON
        return reply

    def _answer(self, emulator, handler_name, allowed, path, query, headers, body, params) -> Reply:
        try:
            identity = emulator.service.authenticate(headers, self.cert_identity)
            if not _origin_matches(headers):
                raise HTTPError(403, "Host and Origin do not match")
        except HTTPError as error:
            # Refused by the authentication middleware: Werkzeug's HTML page, not JSON.
            return html_error_reply(error.status, error.message)
        if self.command == "OPTIONS" and allowed:
            return Reply(200, b"", "text/html; charset=utf-8", {"Allow": allow_header(allowed)})
        if handler_name is None:
            if allowed:
                reply = error_reply(405, _NOT_ALLOWED)
                reply.headers["Allow"] = allow_header(allowed)
                return reply
            return error_reply(404, _NOT_FOUND)
        call = Call(self.command, path, dict(parse_qsl(query)), headers, body, identity, params)
        try:
            return emulator.service.dispatch(handler_name, call)
        except Exception:
            log.exception("emulator failure on %s %s", self.command, path)
            return error_reply(500, INTERNAL_ERROR)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        status = reply.status
        self.send_response(status, reason_phrase(status).upper())
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
