"""A connection's OIDC extras against the real identity provider: how the secret is sent
(``oidc_client_auth``), and the issuer's failures named by the extra to change.

The credential is read from the connection's fields as the hook reads it
(``FTSConnectionSettings.from_connection``) and fetches its token over real HTTPS, by the
sync path and by the triggerer's async path.
"""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_fts.client.connection import FTSConnectionSettings
from airflow_provider_fts.client.errors import FTSCredentialError, FTSValidationError
from airflow_provider_fts.client.oidc import jwt_claims
from tests.tokens.conftest import FTS_AUDIENCE, ROBOT_SECRET, IdP


def credential(idp: IdP, **extra: object):
    """The bearer of a connection with these OIDC extras (the issuer's CA unless overridden)."""
    fields = {"oidc_issuer": idp.issuer, "oidc_ca_file": idp.ca_file, "oidc_scope": "fts", **extra}
    fields = {key: value for key, value in fields.items() if value is not None}
    settings = FTSConnectionSettings.from_connection(FTS_AUDIENCE, None, None, fields)
    credentials, _ = settings.credential.load()
    return credentials.bearer


def fetch_both_ways(bearer) -> list[FTSCredentialError]:
    """The error of a sync fetch and of an async one (the triggerer's path)."""
    errors = []
    for fetch in (bearer.token, lambda: asyncio.run(bearer.token_async())):
        with pytest.raises(FTSCredentialError) as raised:
            fetch()
        errors.append(raised.value)
    return errors


ROBOT = {"oidc_client_id": "fts-robot", "oidc_client_secret": ROBOT_SECRET}
POST_ROBOT = {"oidc_client_id": "fts-robot-post", "oidc_client_secret": ROBOT_SECRET}


@pytest.mark.parametrize(
    ("client", "auth"),
    [(ROBOT, None), (ROBOT, "client_secret_basic"), (POST_ROBOT, "client_secret_post")],
)
def test_the_secret_is_sent_the_way_the_client_is_registered(idp: IdP, client, auth):
    bearer = credential(idp, **client, oidc_client_auth=auth)

    assert jwt_claims(bearer.token())["sub"] == client["oidc_client_id"]
    bearer.invalidate()
    assert jwt_claims(asyncio.run(bearer.token_async()))["sub"] == client["oidc_client_id"]


def test_the_wrong_way_of_sending_the_secret_names_the_secret_and_oidc_client_auth(idp: IdP):
    for error in fetch_both_ways(credential(idp, **POST_ROBOT)):
        assert error.field == "oidc_client_secret"
        assert "(client_secret_basic)" in error.problem
        assert "oidc_client_auth" in error.fix
        assert ROBOT_SECRET not in str(error)


def test_an_unknown_way_of_sending_the_secret_is_refused_before_any_request(idp: IdP):
    with pytest.raises(FTSValidationError) as raised:
        credential(idp, **ROBOT, oidc_client_auth="basic")

    assert raised.value.field == "extra 'oidc_client_auth'"
    assert "client_secret_post" in raised.value.fix


def test_a_missing_ca_file_names_oidc_ca_file_before_any_request(idp: IdP, tmp_path):
    idp.reset_counts()
    missing = str(tmp_path / "no-such-ca.pem")

    for error in fetch_both_ways(credential(idp, **ROBOT, oidc_ca_file=missing)):
        assert error.field == "oidc_ca_file"
        assert f"{missing} does not exist" in error.problem
    assert idp.get("/test/counts") == {"token": 0, "discovery": 0}


def test_an_issuer_whose_ca_is_not_trusted_names_oidc_ca_file(idp: IdP):
    # No oidc_ca_file: the system CAs, which do not hold the test CA.
    for error in fetch_both_ways(credential(idp, **ROBOT, oidc_ca_file=None)):
        assert error.field == "oidc_ca_file"
        assert "failed verification" in error.problem
        assert "the system CAs (oidc_ca_file is not set)" in error.problem
        assert "Set oidc_ca_file" in error.fix


def test_a_refresh_token_of_a_confidential_client_without_its_secret_names_the_secret(
    idp: IdP,
):
    refresh = idp.user_refresh_token(client="fts-user-confidential")
    user = {"oidc_client_id": "fts-user-confidential", "oidc_refresh_token": refresh}

    for error in fetch_both_ways(credential(idp, **user)):
        assert error.field == "oidc_client_secret"
        assert "needs its secret" in error.problem
        assert refresh not in str(error)
