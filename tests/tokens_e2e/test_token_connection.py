"""An OIDC token connection through the hook: fetched, renewed, refused by name, minted.

Every test talks to the real identity provider (panva's oidc-provider) and to an emulator
that validates the IdP's JWTs as FTS 3.13 does, over real HTTPS.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest

from airflow_provider_fts.client.errors import FTSCredentialError, FTSHTTPError
from airflow_provider_fts.client.oidc import OIDCSettings, jwt_claims, token_source
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.testing.tokens import token_id
from tests.tokens.conftest import ROBOT_SECRET, SHORT_TTL
from tests.tokens_e2e.conftest import slow_clock


def transfer(name: str, src_dir: str = "in", dst_dir: str = "out", dst="dst.example") -> dict:
    return {
        "sources": [f"mock://src.example/{src_dir}/{name}"],
        "destinations": [f"mock://{dst}/{dst_dir}/{name}"],
    }


def fts_requests(emulator) -> int:
    return sum(emulator.requests.values())


def test_whoami_and_submit_with_a_robot_token(oidc_connection, token_emulator, idp):
    oidc_connection()
    hook = FTSHook()

    identity = hook.whoami()
    job_id = hook.submit_job([transfer("robot-1")], sid="robot-submit-1")
    job = hook.get_job(job_id)

    assert (identity["user_dn"], identity["method"]) == ("fts-robot", "oauth2")
    assert (job["user_dn"], job["job_id"]) == ("fts-robot", job_id)
    assert idp.token_requests() == 1  # one token for every call of its lifetime


def test_the_test_button_says_how_long_the_fetched_token_has_left(oidc_connection, idp):
    oidc_connection()

    ok, message = FTSHook().test_connection()

    assert ok, message
    left = re.search(r"; token valid for (.+?) \(renewed before it expires\); ", message)
    assert left, message


def test_the_default_audience_is_the_endpoint_and_the_token_never_shows(oidc_connection, idp):
    oidc_connection()
    hook = FTSHook()

    hook.whoami()
    source = hook.get_client().credentials.bearer
    claims = jwt_claims(source.token())

    assert claims["aud"] == hook.settings.endpoint
    assert claims["scope"] == "fts"
    shown = " ".join(repr(x) for x in (hook.settings, hook.get_client(), source))
    assert source.token() not in shown
    assert "robot-secret" not in shown


def test_every_fetched_token_is_masked_before_it_is_used(
    oidc_connection, token_emulator, fetched_secrets
):
    from airflow.sdk.log import redact

    oidc_connection(oidc_storage_access=True)
    hook = FTSHook()

    hook.submit_job([transfer("masked-1")], sid="masked")

    assert len(fetched_secrets) == 3  # the FTS token, a read and a modify token
    for token in fetched_secrets:
        assert token not in redact(f"Authorization: Bearer {token}")
    assert ROBOT_SECRET not in redact(f"secret={ROBOT_SECRET}")


def test_a_wrong_secret_fails_before_any_fts_request_naming_the_field(
    oidc_connection, token_emulator
):
    oidc_connection(oidc_client_secret="not-the-robot-secret")
    hook = FTSHook()

    with pytest.raises(FTSCredentialError) as raised:
        hook.submit_job([transfer("never")], sid="wrong-secret")
    ok, message = FTSHook().test_connection()

    assert raised.value.field == "oidc_client_secret"
    assert "not-the-robot-secret" not in str(raised.value)
    assert not ok and "oidc_client_secret" in message
    assert fts_requests(token_emulator) == 0


def test_a_token_of_another_audience_is_reported_as_the_audience_field(
    oidc_connection, token_emulator
):
    oidc_connection(oidc_audience="https://another-fts.example.org:8446")

    with pytest.raises(FTSCredentialError) as raised:
        FTSHook().submit_job([transfer("elsewhere")], sid="other-audience")
    ok, message = FTSHook().test_connection()

    assert raised.value.field == "oidc_audience"
    assert not ok and "oidc_audience" in message
    assert token_emulator.requests["POST /jobs"] == 0


def test_a_token_expiring_mid_dag_is_renewed_once_per_lifetime_not_per_call(
    oidc_connection, token_emulator, idp
):
    oidc_connection(oidc_client_id="fts-robot-short")
    job_id = FTSHook().submit_job([transfer("short-1")], sid="short-lived")
    started, calls = time.monotonic(), 0

    while time.monotonic() - started < 2.2 * SHORT_TTL:  # tasks of a DAG, each its own hook
        assert FTSHook().get_job(job_id)["user_dn"] == "fts-robot-short"
        calls += 1
        time.sleep(0.25)

    elapsed = time.monotonic() - started
    fetched = idp.token_requests()
    # Renewed at half its lifetime (the margin is capped there): never per call.
    assert 3 <= fetched <= elapsed / (SHORT_TTL / 2) + 2
    assert calls > 5 * fetched


def short_settings(hook: FTSHook) -> OIDCSettings:
    return hook.settings.credential.oidc


def test_an_ignored_token_that_worked_is_renewed_once_and_the_call_sent_once_more(
    oidc_connection, token_emulator, idp
):
    oidc_connection(oidc_client_id="fts-robot-short")
    hook = FTSHook()
    token_source(short_settings(hook), clock=slow_clock())  # what the hook's client will use
    job_id = hook.submit_job([transfer("ignored-1")], sid="ignored-once")
    time.sleep(SHORT_TTL + 1)  # expired for FTS, not for the slow client clock
    token_emulator.reset_counts()

    job = FTSHook().get_job(job_id)

    assert job["job_id"] == job_id
    assert idp.token_requests() == 2  # the first token, and one renewal
    assert token_emulator.requests["GET /jobs/{id}"] == 2  # ignored once, then answered


def test_an_ignored_token_is_renewed_only_once(oidc_connection, token_emulator, idp, monkeypatch):
    oidc_connection()
    hook = FTSHook()
    job_id = hook.submit_job([transfer("skewed-1")], sid="skewed-server")
    # The server's clock jumps two hours ahead: every token, even a fresh one, is expired.
    validator = token_emulator.token_validator
    monkeypatch.setattr(validator, "_clock", lambda: time.time() + 7200)
    token_emulator.reset_counts()

    with pytest.raises(FTSHTTPError) as raised:
        hook.cancel_job(job_id)

    assert raised.value.status == 500  # what FTS answers an anonymous cancel
    assert idp.token_requests() == 2
    assert token_emulator.requests["DELETE /jobs/{id}"] == 2


def storage_endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"https://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def test_storage_tokens_have_the_right_audience_and_scope_one_request_per_directory(
    oidc_connection, token_emulator, idp
):
    oidc_connection(oidc_storage_access=True)
    transfers = [
        transfer(f"f{i}", src_dir=f"in{i % 2}", dst_dir=f"out{i % 3}", dst=dst)
        for i in range(12)
        for dst in (("dst.example:8443" if i % 4 == 0 else "dst.example"),)
    ]
    hook = FTSHook()

    job_id = hook.submit_job(transfers, sid="storage-tokens")

    rows = {row["token_id"]: row for row in token_emulator.stored_tokens()}
    files = hook.get_job_files(job_id)
    assert len(files) == 12
    for entry in files:
        source, destination = entry["source_surl"], entry["dest_surl"]
        read, write = rows[entry["src_token_id"]], rows[entry["dst_token_id"]]
        assert read["audience"] == storage_endpoint(source)
        assert read["scope"] == "storage.read:" + urlsplit(source).path.rsplit("/", 1)[0]
        assert write["audience"] == storage_endpoint(destination)
        assert write["scope"] == "storage.modify:" + urlsplit(destination).path.rsplit("/", 1)[0]
    reads = {
        (storage_endpoint(f["source_surl"]), f["source_surl"].rsplit("/", 1)[0]) for f in files
    }
    writes = {(storage_endpoint(f["dest_surl"]), f["dest_surl"].rsplit("/", 1)[0]) for f in files}
    assert idp.token_requests() == 1 + len(reads) + len(writes)  # the FTS token + one each


def test_a_users_own_storage_tokens_are_kept(oidc_connection, token_emulator, idp):
    oidc_connection(oidc_storage_access=True)
    own = token_source(
        OIDCSettings(
            idp.issuer,
            "fts-robot",
            client_secret=ROBOT_SECRET,
            scope="storage.read:/own",
            audience="https://src.example",
            verify=idp.ca_file,
        )
    ).token()
    mine = {**transfer("own"), "source_tokens": [own], "destination_tokens": [own]}

    job_id = FTSHook().submit_job([mine, transfer("minted")], sid="own-tokens")

    files = {f["source_surl"]: f for f in FTSHook().get_job_files(job_id)}
    kept = files["mock://src.example/in/own"]
    minted = files["mock://src.example/in/minted"]
    assert kept["src_token_id"] == kept["dst_token_id"] == token_id(own)
    assert token_id(own) not in (minted["src_token_id"], minted["dst_token_id"])


def test_a_users_refresh_token_connection_submits_as_the_user(oidc_connection, token_emulator, idp):
    refresh_token = idp.user_refresh_token(resource=token_emulator.url)
    oidc_connection(
        oidc_client_id="fts-user", oidc_client_secret=None, oidc_refresh_token=refresh_token
    )
    hook = FTSHook()

    job_id = hook.submit_job([transfer("user-1")], sid="user-submit")

    assert hook.whoami()["user_dn"] == "test-user"
    assert hook.get_job(job_id)["user_dn"] == "test-user"
    assert idp.token_requests() == 1
