"""Every answer recorded from a real FTS server is parsed by the client.

A replay server plays back each recorded response over real TLS with client
certificates. The client is driven through the public method a DAG would use for that
request; the replay server refuses any request that differs from the recorded one (so
the client also proves it asks exactly what the real server was asked). Successful
answers come back as data, errors as the exception class of their status with the
server's message, and requests the client refuses to send fail locally.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from airflow_provider_fts.client.client import FTSClient
from airflow_provider_fts.client.credentials import Credentials, Trust
from airflow_provider_fts.client.errors import (
    FTSHTTPError,
    FTSValidationError,
    error_class_for,
    message_from_body,
)
from airflow_provider_fts.testing.environment import FTSTestPKI
from tests.recorded import RECORDED

CASES = sorted(RECORDED.glob("[0-9]*.json"))
WHOAMI = RECORDED / "003-whoami-voms.json"


JOB_IDS = re.compile(r"^/jobs/([^/]+)$")
UNSENDABLE = {
    # The client refuses these before sending anything, naming the field (an unknown
    # list_jobs filter is Python's own TypeError: the filters are keyword arguments).
    "111-list-jobs-limit-invalid.json": "limit",
    "112-list-jobs-unknown-param.json": "foo",
    "136-modify-priority-invalid.json": "priority",
    "137-modify-priority-out-of-range.json": "priority",
}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def normalised(method: str, path: str) -> tuple[str, str, dict]:
    """Method, path and query of a request, ignoring what is equivalent on FTS."""
    parts = urlsplit(re.sub(r"^/+", "/", path))  # "//x" would otherwise read as a host
    route = unquote(parts.path)
    if JOB_IDS.match(route):
        route = route.rstrip(",")  # our client lists ids with a trailing comma
    return method, route, parse_qs(parts.query)


class Replay:
    """An HTTPS server that answers recorded requests with their recorded responses."""

    def __init__(self, host_cert: Path, host_key: Path, ca_dir: Path) -> None:
        self.answers: dict[tuple, dict] = {}
        self.seen: list[tuple[str, str]] = []
        self.unexpected: list[str] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(host_cert, host_key)
        context.load_verify_locations(capath=str(ca_dir))
        context.verify_mode = ssl.CERT_OPTIONAL
        context.verify_flags |= ssl.VERIFY_ALLOW_PROXY_CERTS
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                replay.seen.append((self.command, self.path))
                key = normalised(self.command, self.path)
                key = (key[0], key[1], json.dumps(key[2], sort_keys=True))
                response = replay.answers.get(key)
                if response is None:
                    replay.unexpected.append(f"{self.command} {self.path}")
                    response = {"status": 599, "headers": {}, "body": "unexpected request"}
                body = response["body"]
                content_type = response["headers"].get("content-type")
                if content_type and "json" in content_type:
                    payload = json.dumps(body).encode()
                else:
                    payload = (body or "").encode()
                self.send_response(response["status"])
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://localhost:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def play(self, *cases: dict) -> None:
        self.answers.clear()
        self.seen.clear()
        self.unexpected.clear()
        for case in cases:
            method, route, query = normalised(case["request"]["method"], case["request"]["path"])
            key = (method, route, json.dumps(query, sort_keys=True))
            self.answers[key] = case["response"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def replay(tmp_path_factory, fts_pki: FTSTestPKI) -> Iterator[Replay]:
    folder = tmp_path_factory.mktemp("replay")
    cert, key = fts_pki.host.write_cert_and_key(folder)
    server = Replay(cert, key, fts_pki.ca.write_ca_dir(folder / "ca"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(replay, tmp_path_factory, fts_pki: FTSTestPKI) -> Iterator[FTSClient]:
    folder = tmp_path_factory.mktemp("client")
    proxy = fts_pki.user.make_proxy().write_proxy(folder / "x509up")
    trust = Trust(ca_path=str(fts_pki.ca.write_ca_dir(folder / "ca")))
    with FTSClient(replay.url, Credentials.from_proxy_file(proxy), trust=trust, retries=0) as c:
        yield c


def call_for(case: dict, client: FTSClient) -> tuple[Callable[[], Any], Any]:
    """The public client call that sends this recorded request, and what it should return."""
    method, body = case["request"]["method"], case["response"]["body"]
    _, route, query = normalised(method, case["request"]["path"])
    single = {key: values[0] for key, values in query.items()}
    file_fields = single["files"].split(",") if "files" in single else None
    segments = route.strip("/").split("/")
    ids = segments[1].split(",") if len(segments) > 1 else []
    as_list = body if isinstance(body, list) else [body]
    own_delegation = load(WHOAMI)["response"]["body"]["delegation_id"]
    if method == "GET":
        if route == "/":
            return client.server_info, body
        if route == "/whoami":
            return (lambda: client.whoami(refresh=True)), body
        if route == f"/delegation/{own_delegation}":
            return client.get_delegation, delegation_value(body)
        if route == "/jobs":
            filters = {k: int(v) if k == "limit" else v for k, v in single.items()}
            return (lambda: client.list_jobs(**filters)), body
        if segments[0] == "jobs" and len(segments) == 2:
            if len(ids) == 1:
                return (lambda: client.get_job(ids[0], file_fields=file_fields)), body
            return (lambda: client.get_jobs(ids, file_fields=file_fields)), as_list
        if segments[0] == "jobs" and segments[2:] == ["files"]:
            return (lambda: client.get_job_files(ids[0])), body
        if segments[0] == "jobs" and segments[-1] == "retries":
            return (lambda: client.get_file_retries(ids[0], segments[3])), body
        if segments[0] == "jobs" and len(segments) == 3:
            return (lambda: client.get_job_field(ids[0], segments[2])), body
        if segments[0] == "archive" and len(segments) == 2:
            return (lambda: client.get_archived_job(ids[0])), body
    if method == "DELETE" and segments[0] == "jobs":
        if "files" in segments:
            return (lambda: client.cancel_files(ids[0], segments[3].split(","))), as_list
        if len(ids) == 1:
            return (lambda: client.cancel_job(ids[0])), body
        return (lambda: client.cancel_jobs(ids)), as_list
    if method == "POST" and segments[0] == "jobs" and len(segments) == 2:
        priority = case["request"]["body"]["params"]["priority"]
        return (lambda: client.set_priority(ids, priority)), as_list
    raw, sent = case["request"]["path"], case["request"]["body"]
    answer = body if body != "" else None
    if isinstance(sent, dict | list):
        return (lambda: client.transport.request(method, raw, json_body=sent)), answer
    return (lambda: client.transport.request(method, raw, data=sent)), answer


def delegation_value(body: Any) -> dict | None:
    if not body:
        return None
    termination = datetime.fromisoformat(body["termination_time"]).replace(tzinfo=UTC)
    return {"termination_time": termination, "voms_attrs": body["voms_attrs"]}


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_recorded_answer_is_parsed(path: Path, replay: Replay, client: FTSClient) -> None:
    case = load(path)
    replay.play(load(WHOAMI))
    client.whoami(refresh=True)  # the identity the recording was made with
    replay.play(load(WHOAMI), case)
    call, expected = call_for(case, client)
    status = case["response"]["status"]

    if path.name in UNSENDABLE:
        with pytest.raises((FTSValidationError, TypeError), match=UNSENDABLE[path.name]):
            call()
        assert not [seen for seen in replay.seen if "whoami" not in seen[1]]
        return
    if status >= 400:
        with pytest.raises(FTSHTTPError) as raised:
            call()
        assert type(raised.value) is error_class_for(status)
        assert raised.value.status == status
        headers = case["response"]["headers"]
        expected = message_from_body(json.dumps(case["response"]["body"]), headers["content-type"])
        assert raised.value.message == expected
    else:
        assert call() == expected
    assert replay.unexpected == []
