"""The emulator over real HTTPS with tokens of the real identity provider.

One emulator trusts the IdP (its JWKS fetched over HTTPS) and the built-in test issuer (for
tokens the IdP will not make: expired, without a scope). Every answer is compared with
what a real FTS 3.13.4 server gave, byte for byte where it matters.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from airflow_provider_fts.client.oidc import TokenSource, jwt_claims
from airflow_provider_fts.testing.environment import FTSTestPKI
from airflow_provider_fts.testing.records import INTERNAL_ERROR
from airflow_provider_fts.testing.server import FTSEmulator
from airflow_provider_fts.testing.tokens import (
    TestIssuer,
    TrustedIssuer,
    anonymous_whoami,
    token_id,
    token_record,
)
from tests.tokens.conftest import IdP

STORAGE_A = "https://storage-a.example.org:8443"
STORAGE_B = "https://storage-b.example.org"
FORBIDDEN = {"status": "403 Forbidden", "message": "Not enough permissions"}
SERVER_ERROR = {"status": "500 Internal Server Error", "message": INTERNAL_ERROR}


def transfer(name: str, **tokens: list[str]) -> dict:
    return {
        "sources": [f"mock://src.example/{name}"],
        "destinations": [f"mock://dst.example/{name}"],
        **tokens,
    }


def job(*files: dict) -> dict:
    # 3.13 reads params directly for its token checks: a token submission must carry them.
    return {"files": list(files) or [transfer("f")], "params": {}}


@pytest.fixture(scope="module")
def builtin() -> TestIssuer:
    return TestIssuer("https://builtin.example.org/")


@pytest.fixture(scope="module")
def emulator(idp: IdP, builtin: TestIssuer, fts_pki: FTSTestPKI) -> Iterator[FTSEmulator]:
    with FTSEmulator(
        ca=fts_pki.ca,
        host_credential=fts_pki.host,
        ca_dir=fts_pki.ca_dir,
        token_issuers=[TrustedIssuer(idp.issuer), builtin],
    ) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def quick_token_exchange(emulator: FTSEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulator.engine, "token_prep_delay", 0.0)


def token(idp: IdP, audience: str, scope: str = "fts", client: str = "fts-robot") -> str:
    return TokenSource(idp.robot(client, audience=audience, scope=scope)).token()


class Caller:
    """Requests to the emulator with one ``Authorization`` header and an optional proxy."""

    def __init__(
        self, emulator: FTSEmulator, pki: FTSTestPKI, authorization: str | None, proxy=None
    ) -> None:
        self.url = emulator.url
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(pki.ca_dir)
        if proxy is not None:
            self.session.cert = (str(proxy), str(proxy))
        if authorization is not None:
            self.session.headers["Authorization"] = authorization

    def __getattr__(self, method: str):
        return lambda path, **kwargs: self.session.request(method, self.url + path, **kwargs)


@pytest.fixture
def robot(emulator: FTSEmulator, fts_pki: FTSTestPKI, idp: IdP) -> Caller:
    return Caller(emulator, fts_pki, f"Bearer {token(idp, emulator.url)}")


def wait_for(caller: Caller, job_id: str, state: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = caller.get(f"/jobs/{job_id}").json()
        if record["job_state"] == state or time.monotonic() > deadline:
            return record
        time.sleep(0.05)


def test_a_robot_token_is_its_identity_on_whoami(robot: Caller, idp: IdP) -> None:
    whoami = robot.get("/whoami").json()

    assert whoami == idp.robot_whoami()


# ---- ignored tokens: every answer as for the anonymous user


def _ignored_authorization(case: str, idp: IdP, emulator: FTSEmulator, builtin: TestIssuer) -> str:
    if case == "expired":  # the built-in issuer is trusted: only the time is wrong
        return "Bearer " + builtin.mint("robot", emulator.url, lifetime=-60)
    if case == "wrong audience":
        return "Bearer " + token(idp, STORAGE_A)
    if case == "unknown issuer":
        return "Bearer " + TestIssuer("https://rogue.example.org/").mint("robot", emulator.url)
    valid = token(idp, emulator.url)
    if case == "bad signature":
        head, payload, signature = valid.split(".")
        return f"Bearer {head}.{payload}.{signature[:-8]}AAAAAAAA"
    if case == "not a JWT":
        return "Bearer an-opaque-access-token"
    assert case == "lower-case bearer"
    return f"bearer {valid}"


IGNORED = ["expired", "wrong audience", "unknown issuer", "bad signature", "not a JWT",
           "lower-case bearer"]  # fmt: skip


@pytest.mark.parametrize("case", IGNORED)
def test_an_ignored_token_gets_the_anonymous_answers(
    case: str,
    idp: IdP,
    emulator: FTSEmulator,
    builtin: TestIssuer,
    fts_pki: FTSTestPKI,
    robot: Caller,
) -> None:
    job_id = robot.post("/jobs", json=job()).json()["job_id"]
    authorization = _ignored_authorization(case, idp, emulator, builtin)
    caller = Caller(emulator, fts_pki, authorization)

    whoami = caller.get("/whoami")
    submitted = caller.post("/jobs", json=job())
    read = caller.get(f"/jobs/{job_id}")
    canceled = caller.delete(f"/jobs/{job_id}")
    listed = caller.get("/jobs")

    assert (whoami.status_code, whoami.json()) == (200, anonymous_whoami())
    assert (submitted.status_code, submitted.json()) == (403, FORBIDDEN)
    assert (read.status_code, read.json()) == (500, SERVER_ERROR)
    assert (canceled.status_code, canceled.json()) == (500, SERVER_ERROR)
    assert (listed.status_code, listed.json()) == (403, FORBIDDEN)
    assert robot.get(f"/jobs/{job_id}").json()["job_state"] != "CANCELED"


# ---- a token and a proxy together


def test_a_valid_token_wins_over_the_proxy_and_a_bad_one_leaves_the_certificate(
    idp: IdP, emulator: FTSEmulator, fts_pki: FTSTestPKI
) -> None:
    valid = f"Bearer {token(idp, emulator.url)}"
    wrong_audience = f"Bearer {token(idp, STORAGE_A)}"
    proxy = fts_pki.voms_proxy_path

    with_valid = Caller(emulator, fts_pki, valid, proxy).get("/whoami").json()
    with_bad = Caller(emulator, fts_pki, wrong_audience, proxy).get("/whoami").json()

    assert (with_valid["user_dn"], with_valid["method"]) == ("fts-robot", "oauth2")
    assert (with_bad["user_dn"], with_bad["method"]) == (fts_pki.user.dn, "certificate")
    assert with_bad["vos"] == ["dteam"]


def test_a_token_with_a_proxy_submits_as_the_token_without_delegation(
    idp: IdP, emulator: FTSEmulator, fts_pki: FTSTestPKI
) -> None:
    caller = Caller(
        emulator, fts_pki, f"Bearer {token(idp, emulator.url)}", fts_pki.plain_proxy_path
    )

    answer = caller.post("/jobs", json=job())

    assert answer.status_code == 200, answer.text
    record = caller.get(f"/jobs/{answer.json()['job_id']}").json()
    assert (record["user_dn"], record["job_metadata"]) == ("fts-robot", {"auth_method": "oauth2"})


def test_delegation_with_a_token_is_null_and_its_request_needs_a_certificate(
    robot: Caller,
) -> None:
    delegation_id = robot.get("/whoami").json()["delegation_id"]

    view = robot.get(f"/delegation/{delegation_id}")
    request = robot.get(f"/delegation/{delegation_id}/request")

    assert (view.status_code, view.json()) == (200, None)
    assert (request.status_code, request.json()) == (
        403,
        {"status": "403 Forbidden", "message": "Certificate required"},
    )


# ---- what a token submission stores


def test_a_token_job_waits_in_token_prep_then_finishes(
    idp: IdP, emulator: FTSEmulator, robot: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator.engine, "token_prep_delay", 3600.0)
    bearer = robot.session.headers["Authorization"].removeprefix("Bearer ")
    whoami = robot.get("/whoami").json()

    job_id = robot.post("/jobs", json=job(transfer("a"), transfer("b"))).json()["job_id"]
    time.sleep(0.2)  # a few engine passes: nothing may start before the token exchange
    waiting = robot.get(f"/jobs/{job_id}").json()
    files = robot.get(f"/jobs/{job_id}/files").json()
    emulator.engine.token_prep_delay = 0.0
    finished = wait_for(robot, job_id, "FINISHED")

    assert waiting["job_state"] == "SUBMITTED"
    assert waiting["job_metadata"] == {"auth_method": "oauth2"}
    assert (waiting["user_dn"], waiting["cred_id"]) == ("fts-robot", whoami["delegation_id"])
    assert waiting["vo_name"] == "localhost"
    assert [(f["file_state"], f["file_state_initial"]) for f in files] == [
        ("TOKEN_PREP", "SUBMITTED")
    ] * 2
    assert {(f["src_token_id"], f["dst_token_id"]) for f in files} == {
        (token_id(bearer), token_id(bearer))
    }
    assert finished["job_state"] == "FINISHED"
    rows = [r for r in emulator.stored_tokens() if r["token_id"] == token_id(bearer)]
    assert rows == [token_record(bearer, jwt_claims(bearer))]  # type: ignore[arg-type]
    assert rows[0]["issuer"] == idp.issuer + "/"


def test_per_file_storage_tokens_are_stored_once_each_and_not_checked_for_audience(
    idp: IdP, emulator: FTSEmulator, robot: Caller
) -> None:
    read = token(idp, STORAGE_A, "storage.read:/data")
    modify = token(idp, STORAGE_B, "storage.modify:/data")
    tokens = {"source_tokens": [read], "destination_tokens": [modify]}
    bearer = robot.session.headers["Authorization"].removeprefix("Bearer ")

    answer = robot.post("/jobs", json=job(transfer("x", **tokens), transfer("y", **tokens)))

    assert answer.status_code == 200, answer.text
    job_id = answer.json()["job_id"]
    files = robot.get(f"/jobs/{job_id}/files").json()
    assert [(f["src_token_id"], f["dst_token_id"]) for f in files] == [
        (token_id(read), token_id(modify))
    ] * 2
    stored = {r["token_id"]: r for r in emulator.stored_tokens()}
    assert stored[token_id(read)] == token_record(read, jwt_claims(read))  # type: ignore[arg-type]
    assert stored[token_id(modify)]["audience"] == STORAGE_B
    assert stored[token_id(modify)]["scope"] == "storage.modify:/data"
    again = robot.post("/jobs", json=job(transfer("z", **tokens)))
    assert again.status_code == 200
    ids = [r["token_id"] for r in emulator.stored_tokens()]
    assert ids.count(token_id(read)) == ids.count(token_id(modify)) == 1
    # The bearer token itself is stored only when it serves as the files' token.
    assert token_id(bearer) not in {token_id(read), token_id(modify)}
    assert wait_for(robot, job_id, "FINISHED")["job_state"] == "FINISHED"


def _bad_file_tokens(case: str, idp: IdP, builtin: TestIssuer) -> tuple[dict, str]:
    good = token(idp, STORAGE_A, "storage.read:/data")
    if case == "only source_tokens":
        return {"source_tokens": [good]}, (
            "Both source_tokens and destination_tokens are required if one of them is present."
        )
    bad = {
        "expired": builtin.mint("robot", STORAGE_A, "storage.read:/data", lifetime=-60),
        "unknown issuer": TestIssuer("https://rogue.example.org/").mint("robot", STORAGE_A),
        "not a JWT": "an-opaque-storage-token",
        "no scope": builtin.mint("robot", STORAGE_A, scope=None),
    }[case]
    message = {
        "not a JWT": "Token does not contain an iss claim",
        "no scope": "Token does not contain a scope claim",
    }.get(case, "Failed to validate access-token")
    return {"source_tokens": [good], "destination_tokens": [bad]}, message


@pytest.mark.parametrize(
    "case", ["only source_tokens", "expired", "unknown issuer", "not a JWT", "no scope"]
)
def test_a_bad_per_file_token_is_refused_with_the_servers_message(
    case: str, idp: IdP, builtin: TestIssuer, emulator: FTSEmulator, robot: Caller
) -> None:
    tokens, message = _bad_file_tokens(case, idp, builtin)
    before = len(emulator.stored_tokens())

    answer = robot.post("/jobs", json=job(transfer("bad", **tokens)))

    assert (answer.status_code, answer.json()) == (
        400,
        {"status": "400 Bad Request", "message": message},
    )
    assert len(emulator.stored_tokens()) == before  # a refused job stores no token


def test_a_bearer_token_without_scope_is_an_identity_but_may_not_submit(
    builtin: TestIssuer, emulator: FTSEmulator, fts_pki: FTSTestPKI
) -> None:
    caller = Caller(emulator, fts_pki, "Bearer " + builtin.mint("robot", emulator.url, scope=None))

    whoami = caller.get("/whoami")
    submitted = caller.post("/jobs", json=job())

    assert (whoami.status_code, whoami.json()["user_dn"]) == (200, "robot")
    assert (submitted.status_code, submitted.json()) == (
        400,
        {"status": "400 Bad Request", "message": "Token does not contain a scope claim"},
    )


def test_per_file_tokens_with_a_proxy_label_the_files_but_store_nothing(
    idp: IdP, emulator: FTSEmulator, fts_pki: FTSTestPKI
) -> None:
    caller = Caller(emulator, fts_pki, None, fts_pki.voms_proxy_path)
    whoami = caller.get("/whoami").json()
    emulator.delegate(whoami["delegation_id"], whoami["user_dn"], fqans=whoami["voms_cred"])
    read = token(idp, STORAGE_A, "storage.read:/x509")
    modify = token(idp, STORAGE_B, "storage.modify:/x509")
    tokens = {"source_tokens": [read], "destination_tokens": [modify]}

    answer = caller.post("/jobs", json=job(transfer("p", **tokens)))

    assert answer.status_code == 200, answer.text
    job_id = answer.json()["job_id"]
    record = caller.get(f"/jobs/{job_id}").json()
    files = caller.get(f"/jobs/{job_id}/files").json()
    assert record["job_metadata"] == {"auth_method": "certificate"}
    assert (files[0]["src_token_id"], files[0]["dst_token_id"]) == (
        token_id(read),
        token_id(modify),
    )
    # It never waited in TOKEN_PREP: no state was kept aside for after the token exchange.
    assert files[0]["file_state_initial"] == "" and files[0]["file_state"] != "TOKEN_PREP"
    stored = {r["token_id"] for r in emulator.stored_tokens()}
    assert not {token_id(read), token_id(modify)} & stored
