"""The emulator's token rules with the built-in test issuer (no identity provider needed).

The answers against a real identity provider are in ``tests/tokens/test_emulator_https.py``;
here: the job store's token table on a hand-moved clock, the engine's token exchange, a
server without OAuth2, and the plugin's ``fts_token``.
"""

from __future__ import annotations

import pytest
import requests

from airflow_provider_fts.client.oidc import jwt_claims
from airflow_provider_fts.testing.environment import FTSTestPKI
from airflow_provider_fts.testing.identity import Identity, authenticate
from airflow_provider_fts.testing.records import HTTPError
from airflow_provider_fts.testing.server import FTSEmulator
from airflow_provider_fts.testing.store import JobStore
from airflow_provider_fts.testing.token_table import TokenTable
from airflow_provider_fts.testing.tokens import TestIssuer, TokenValidator, token_id
from tests.emulator.conftest import DST, SRC, Clock

FTS = "https://fts.example.org:8446"
ONE_FILE = {"sources": [f"{SRC}/f"], "destinations": [f"{DST}/f"]}
ANONYMOUS = Identity("anon", ["anon"], [], [], None, "unauthenticated")


@pytest.fixture
def issuer() -> TestIssuer:
    return TestIssuer("https://iam.example.org/", vo="dteam")


@pytest.fixture
def validator(issuer: TestIssuer) -> TokenValidator:
    return TokenValidator([issuer.trusted], [FTS])


@pytest.fixture
def token_store(clock: Clock, validator: TokenValidator) -> JobStore:
    return JobStore(clock=clock, tokens=TokenTable(validator))


def caller(validator: TokenValidator, token: str) -> Identity:
    return authenticate({"Authorization": f"Bearer {token}"}, ANONYMOUS, validator)


def test_a_token_identity_answers_whoami_as_the_validator_derives_it(
    issuer: TestIssuer, validator: TokenValidator
) -> None:
    token = issuer.mint("alice", FTS, scope="fts storage.read:/", **{"wlcg.ver": None})

    identity = caller(validator, token)

    claims = validator.check(token).claims
    assert identity.whoami() == validator.identity(claims)  # type: ignore[arg-type]
    assert identity.whoami()["wlcg_profile"] is False  # no wlcg.ver claim
    assert identity.voms_cred == ("fts", "storage.read:/")
    assert token not in repr(identity)


def test_multi_replica_rows_get_the_token_of_their_own_source(
    token_store: JobStore, issuer: TestIssuer, validator: TokenValidator, clock: Clock
) -> None:
    user = caller(validator, issuer.mint("alice", FTS))
    first, second, destination = (issuer.mint("alice", "https://se", s) for s in ("a", "b", "c"))
    entry = {
        "sources": [f"{SRC}/1", f"{SRC}/2"],
        "destinations": [f"{DST}/1"],
        "source_tokens": [first, second],
        "destination_tokens": [destination],
    }

    job_id = token_store.submit({"files": [entry], "params": {}}, user)

    rows = token_store.get_files(job_id, user)
    assert [(r["src_token_id"], r["dst_token_id"]) for r in rows] == [
        (token_id(first), token_id(destination)),
        (token_id(second), token_id(destination)),
    ]
    assert [(r["file_state"], r["file_state_initial"]) for r in rows] == [
        ("TOKEN_PREP", "SUBMITTED"),
        ("TOKEN_PREP", "NOT_USED"),  # the second replica waits, then stays unused
    ]
    assert len(token_store.tokens.rows()) == 3


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (
            {"source_tokens": ["a", "b"], "destination_tokens": ["c"]},
            "Length of source_tokens should be equal to the length of sources.",
        ),
        (
            {"source_tokens": ["a"], "destination_tokens": [""]},
            f"Token for destination '{DST}/f' is missing.",
        ),
        (
            {"destination_tokens": ["c"]},
            "Both source_tokens and destination_tokens are required if one of them is present.",
        ),
    ],
)
def test_token_lists_are_checked_for_every_caller(
    store: JobStore, user: Identity, tokens: dict, message: str
) -> None:
    entry = {"sources": [f"{SRC}/f"], "destinations": [f"{DST}/f"], **tokens}

    with pytest.raises(HTTPError) as refused:
        store.submit({"files": [entry]}, user)

    assert (refused.value.status, refused.value.message) == (400, message)


def test_the_engine_releases_token_prep_files_after_the_exchange_delay(
    fts_pki: FTSTestPKI, issuer: TestIssuer
) -> None:
    with FTSEmulator(
        ca=fts_pki.ca,
        host_credential=fts_pki.host,
        token_issuers=[issuer],
        token_prep_delay=30.0,
        run_engine=False,
    ) as emulator:
        assert emulator.token_validator is not None
        user = caller(emulator.token_validator, issuer.mint("alice", emulator.url))
        job_id = emulator.store.submit({"files": [ONE_FILE], "params": {}}, user)
        start = emulator.store.stored_jobs()[0].submitted_at

        emulator.engine.step(start + 29)
        early = emulator.store.get_files(job_id, user)[0]["file_state"]
        emulator.engine.step(start + 30)
        released = emulator.store.get_files(job_id, user)[0]["file_state"]

    assert early == "TOKEN_PREP"
    assert released == "ACTIVE"  # back to SUBMITTED, then started in the same pass


def test_a_token_prep_job_can_be_canceled(
    token_store: JobStore, issuer: TestIssuer, validator: TokenValidator
) -> None:
    user = caller(validator, issuer.mint("alice", FTS))
    job_id = token_store.submit({"files": [ONE_FILE], "params": {}}, user)

    status, record = token_store.cancel([job_id], user, multi=False)

    assert (status, record["job_state"]) == (200, "CANCELED")
    assert token_store.get_files(job_id, user)[0]["file_state"] == "CANCELED"


def test_a_server_without_oauth2_refuses_any_bearer_token(fts_pki: FTSTestPKI) -> None:
    with FTSEmulator(ca=fts_pki.ca, host_credential=fts_pki.host) as emulator:
        answer = requests.get(
            emulator.url + "/whoami",
            headers={"Authorization": "Bearer anything"},
            verify=str(fts_pki.ca_dir),
            timeout=10,
        )
        lower_case = requests.get(
            emulator.url + "/whoami",
            headers={"Authorization": "bearer anything"},
            verify=str(fts_pki.ca_dir),
            timeout=10,
        )

    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "Unsupported authentication method: method=OAuth2" in answer.text
    assert lower_case.json()["method"] == "unauthenticated"  # not recognised as a token


def test_the_plugin_token_is_a_signed_jwt_for_the_session_emulator(
    fts_token: str, fts_emulator: FTSEmulator
) -> None:
    claims = jwt_claims(fts_token)

    assert claims is not None
    assert (claims["sub"], claims["aud"], claims["iss"]) == (
        "token-user",
        fts_emulator.url,
        "https://iam.example.org/",
    )
    assert fts_emulator.token_validator is not None
    assert not fts_emulator.token_validator.check(fts_token).ignored
    head, payload, _ = fts_token.split(".")
    assert fts_emulator.token_validator.check(f"{head}.{payload}.AAAA").ignored
