"""One sending policy, two transports: the same answers, sent through the sync client's
transport (requests) and the triggers' poller transport (httpx) over real HTTPS against the
emulator, end the same way.

Each row arms the emulator's fault switches, sends one request through each transport, and
requires the same outcome (the decoded entries, or the error's class, status and message)
after the same number of requests the server received.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_fts.client import protocol, sending
from airflow_provider_fts.client.client import FTSClient
from airflow_provider_fts.client.credentials import Credentials, Trust
from airflow_provider_fts.client.errors import (
    FTSConnectionError,
    FTSError,
    FTSHTTPError,
    ServerCertificateError,
    ServerError,
    TryAgain,
)
from airflow_provider_fts.client.sending import RetryPolicy
from airflow_provider_fts.client.transport import AsyncTransport, Transport
from airflow_provider_fts.testing.environment import TOKEN_USER

FAST = RetryPolicy(retries=3, backoff=0.001)
JSON_404 = '{"status": "404 Not Found", "message": "No job with the id given"}'
JSON_400 = '{"status": "400 Bad Request", "message": "Badly formatted JSON request"}'
JSON_500 = '{"status": "500 Internal Server Error", "message": "The server encountered an error"}'
APACHE_503 = (  # the message of the emulator's Apache 503 page
    "The server is temporarily unable to service your request due to maintenance downtime or "
    "capacity problems. Please try again later."
)
HTML_403 = "<html><title>403 Forbidden</title><p>Invalid credentials (bad scope)</p></html>"


class Renewing:
    """A renewable bearer (as an OIDC token source is) whose tokens are minted here: the first
    is one FTS ignores, each renewal gives the next of ``renewed``."""

    renewable = True

    def __init__(self, first: str, renewed: list[str], worked: bool) -> None:
        self.current, self.renewed, self.worked = first, list(renewed), worked
        self.renewals = 0

    def token(self) -> str:
        return self.current

    def renew(self, used: str) -> str:
        self.renewals += 1
        self.current = self.renewed.pop(0)
        return self.current

    async def token_async(self) -> str:
        return self.token()

    async def renew_async(self, used: str) -> str:
        return self.renew(used)


@dataclass(frozen=True)
class Row:
    arm: Callable[[Any], Any]  # arms the emulator's faults
    method: str = "GET"
    unknown: bool = False  # ask for an unknown job too (a 207)
    token: str | None = None  # "ignored-worked", "ignored-new", "ignored-twice"


ROWS = {
    "200": Row(lambda f: None),
    "207-mixed": Row(lambda f: None, unknown=True),
    "404-json": Row(lambda f: f.answer(404, JSON_404)),
    "400-json": Row(lambda f: f.answer(400, JSON_400)),
    "403-html": Row(lambda f: f.answer(403, HTML_403, "text/html")),
    "500": Row(lambda f: f.answer(500, JSON_500)),
    "502": Row(lambda f: f.answer(502, JSON_500.replace("500", "502"))),
    "503": Row(lambda f: f.answer(503, JSON_500.replace("500", "503"))),
    "504": Row(lambda f: f.answer(504, "", "text/plain")),
    "503-html-twice": Row(lambda f: f.html_503(count=2)),
    "503-always": Row(lambda f: f.html_503(count=None)),
    "garbled-json": Row(lambda f: f.malformed_json()),
    "reset": Row(lambda f: f.reset_connection()),
    "post-200": Row(lambda f: None, method="POST"),
    "post-503": Row(lambda f: f.html_503(), method="POST"),
    "post-garbled-json": Row(lambda f: f.malformed_json(), method="POST"),
    "post-reset": Row(lambda f: f.reset_connection(), method="POST"),
    "ignored-token-that-worked": Row(lambda f: None, token="ignored-worked"),
    "ignored-token-never-worked": Row(lambda f: None, token="ignored-new"),
    "ignored-token-renewed-and-ignored": Row(lambda f: None, token="ignored-twice"),
    "post-ignored-token-that-worked": Row(lambda f: None, method="POST", token="ignored-worked"),
}

#: (outcome, requests the server received); the same for both transports.
EXPECTED = {
    "200": (("ok", "job"), 1),
    "207-mixed": (("ok", "job", "404"), 1),
    "404-json": (("NotFound", 404, "No job with the id given"), 1),
    "400-json": (("BadRequest", 400, "Badly formatted JSON request"), 1),
    "403-html": (("NotAuthorised", 403, "Invalid credentials (bad scope)"), 1),
    "500": (("ServerError", 500, "The server encountered an error"), 1),
    "502": (("ok", "job"), 2),
    "503": (("ok", "job"), 2),
    "504": (("ok", "job"), 2),
    "503-html-twice": (("ok", "job"), 3),
    "503-always": (("TryAgain", 503, APACHE_503), 4),
    "garbled-json": (("ok", "job"), 2),
    "reset": (("ok", "job"), 2),
    "post-200": (("ok", "job"), 1),
    "post-503": (("TryAgain", 503, APACHE_503), 1),
    "post-garbled-json": (("FTSConnectionError", "maybe sent"), 1),
    "post-reset": (("FTSConnectionError", "maybe sent"), 1),
    "ignored-token-that-worked": (("ok", "job", "renewed 1"), 2),
    "ignored-token-never-worked": (("ServerError", 500, "renewed 0"), 1),
    "ignored-token-renewed-and-ignored": (("ServerError", 500, "renewed 1"), 2),
    "post-ignored-token-that-worked": (("ok", "job", "renewed 1"), 2),
}


@pytest.fixture(scope="module")
def job_id(fts_emulator_session, fts_pki) -> Any:
    """A job that stays unfinished (staging) while the table runs."""
    credentials = Credentials.from_proxy_file(fts_pki.voms_proxy_path)
    with FTSClient(fts_emulator_session.url, credentials, trust=trust_of(fts_pki)) as client:
        name = uuid.uuid4().hex
        job_id = client.submit_job(
            [(f"mock://src.example/{name}?staging_time=120", f"mock://dst.example/{name}")],
            bring_online=600,
        )
        yield job_id
        client.cancel_job(job_id)


def trust_of(pki: Any) -> Trust:
    return Trust(ca_path=str(pki.ca_dir))


def request_of(row: Row, job_id: str) -> protocol.Request:
    ids = [job_id, str(uuid.uuid4())] if row.unknown else [job_id]
    if row.method == "POST":
        (request,) = protocol.by_ids("POST", ids, json_body=protocol.priority_body(3))
    else:
        (request,) = protocol.by_ids("GET", ids, params=protocol.files_params(True))
    return request


def bearer_of(row: Row, issuer: Any, audience: str) -> Renewing | None:
    if row.token is None:
        return None
    ignored = issuer.mint(TOKEN_USER, "https://elsewhere.example")  # FTS ignores it
    valid = issuer.mint(TOKEN_USER, audience)
    renewed = [ignored] if row.token == "ignored-twice" else [valid]
    return Renewing(ignored, renewed, worked=row.token != "ignored-new")


def outcome(run: Callable[[], Any], bearer: Renewing | None) -> tuple:
    try:
        entries = protocol.entries(run())
    except FTSHTTPError as error:
        found: tuple = (type(error).__name__, error.status, error.message)
        if bearer is not None:
            found = found[:2]
    except FTSConnectionError as error:
        found = (type(error).__name__, "maybe sent" if error.maybe_sent else "never sent")
    except FTSError as error:  # pragma: no cover - a failure shows the unexpected error
        found = (type(error).__name__, str(error))
    else:
        found = ("ok", *("job" if "job_state" in e else e["http_status"][:3] for e in entries))
    return (*found, f"renewed {bearer.renewals}") if bearer is not None else found


@pytest.mark.parametrize("name", ROWS)
def test_both_transports_end_each_answer_the_same_way(
    name, job_id, fts_emulator, fts_pki, fts_token_issuer
):
    row = ROWS[name]
    request = request_of(row, job_id)
    route = f"{row.method} /jobs/{{id}}"

    def through(make: Callable[..., Any], send: Callable[[Any], Any]) -> tuple:
        bearer = bearer_of(row, fts_token_issuer, fts_emulator.url)
        credentials = (
            Credentials.from_token("unused")
            if bearer
            else Credentials.from_proxy_file(fts_pki.voms_proxy_path)
        )
        context = credentials.ssl_context(trust_of(fts_pki))
        transport = make(
            fts_emulator.url, context, trust=trust_of(fts_pki), bearer=bearer, retry=FAST
        )
        fts_emulator.faults.clear()
        fts_emulator.reset_counts()
        row.arm(fts_emulator.faults)
        found = outcome(lambda: send(transport), bearer)
        return found, fts_emulator.requests[route]

    sync = through(Transport, lambda t: t.send(request))
    in_loop = through(AsyncTransport, lambda t: asyncio.run(_send_and_close(t, request)))

    assert (sync, in_loop) == (EXPECTED[name], EXPECTED[name])


async def _send_and_close(transport: AsyncTransport, request: protocol.Request) -> Any:
    try:
        return await transport.send(request)
    finally:
        await transport.aclose()


@pytest.mark.parametrize("make", [Transport, AsyncTransport], ids=["sync", "async"])
def test_a_server_that_is_down_names_host_and_port_and_the_fix(make, fts_pki) -> None:
    context = Credentials.from_proxy_file(fts_pki.voms_proxy_path).ssl_context(trust_of(fts_pki))
    transport = make("https://127.0.0.1:9", context, retry=RetryPolicy(retries=1, backoff=0.01))
    (request,) = protocol.by_ids("GET", ["some-job"])

    with pytest.raises(FTSConnectionError) as raised:
        if make is Transport:
            transport.send(request)
        else:
            asyncio.run(_send_and_close(transport, request))

    message = str(raised.value)
    assert message.startswith("Cannot connect to FTS at 127.0.0.1:9 (Connection refused).")
    assert "Fix: check the host and port" in message
    assert "Max retries" not in message and "Errno" not in message
    assert not raised.value.maybe_sent


RETRY_RULE = {
    "read after a 503": ("GET", TryAgain(503, "busy"), True),
    "cancel after a reset": ("DELETE", FTSConnectionError("reset"), True),
    "read after a 500": ("GET", ServerError(500, "bug"), False),
    "read with a bad server certificate": ("GET", ServerCertificateError("bad"), False),
    "submission after a 503": ("POST", TryAgain(503, "busy"), False),
    "submission after a reset": ("POST", FTSConnectionError("reset"), False),
    "submission never sent": ("POST", FTSConnectionError("refused", maybe_sent=False), True),
    "delegation never sent": ("PUT", FTSConnectionError("refused", maybe_sent=False), True),
}


@pytest.mark.parametrize("case", RETRY_RULE.values(), ids=RETRY_RULE.keys())
def test_a_request_is_sent_again_only_when_a_second_copy_can_do_no_harm(case) -> None:
    method, error, again = case

    assert sending.may_retry(protocol.Request(method, "/jobs"), error) is again


def test_an_anonymous_whoami_does_not_count_as_a_token_that_worked(
    fts_emulator, fts_pki, fts_token_issuer
) -> None:
    ignored = fts_token_issuer.mint(TOKEN_USER, "https://elsewhere.example")
    bearer = Renewing(ignored, [], worked=False)
    context = Credentials.from_token("unused").ssl_context(trust_of(fts_pki))
    transport = Transport(fts_emulator.url, context, trust=trust_of(fts_pki), bearer=bearer)

    identity = transport.send(protocol.Request("GET", "/whoami"))

    assert identity["method"] == "unauthenticated"
    assert not bearer.worked  # a later anonymous answer is reported, not renewed
