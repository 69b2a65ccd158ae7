"""The OIDC rows of the connection's credential table, and every refusal around them.

No request is made here: everything is checked while the settings are read.
"""

from __future__ import annotations

import itertools

import pytest

from airflow_provider_fts.client.connection import FTSConnectionSettings
from airflow_provider_fts.client.errors import FTSValidationError

ISSUER = "https://iam.example.org/"
ROBOT = {
    "oidc_issuer": ISSUER,
    "oidc_client_id": "fts-robot",
    "oidc_client_secret": "s3cret-of-the-robot",
}
USER = {"oidc_issuer": ISSUER, "oidc_client_id": "oidc-agent", "oidc_refresh_token": "rt-1"}
FIELDS = (
    "oidc_issuer",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_refresh_token",
    "oidc_scope",
    "oidc_audience",
    "oidc_storage_access",
    "access_token",
    "x509up_file",
    "x509_key_passphrase",
)
VALUES = {"oidc_issuer": ISSUER, "oidc_audience": "https://fts.example.org:8446"}


def settings(**extra) -> FTSConnectionSettings:
    return FTSConnectionSettings.from_connection("fts.example.org", None, None, extra)


def refusal(**extra) -> FTSValidationError:
    with pytest.raises(FTSValidationError) as raised:
        settings(**extra)
    return raised.value


def test_a_robot_gets_the_client_credentials_grant_for_the_endpoint():
    oidc = settings(**ROBOT, oidc_scope="fts  offline_access").credential.oidc

    assert (oidc.grant, oidc.client_id, oidc.scope) == (
        "client_credentials",
        "fts-robot",
        "fts offline_access",
    )
    assert oidc.audience == "https://fts.example.org:8446"  # the default: the endpoint
    assert oidc.verify is True


def test_a_users_refresh_token_gets_the_refresh_grant_and_a_given_audience():
    source = settings(**USER, oidc_audience="https://wlcg.cern.ch/jwt/v1/any").credential

    assert (source.kind, source.oidc.grant) == ("oidc", "refresh_token")
    assert source.oidc.audience == "https://wlcg.cern.ch/jwt/v1/any"
    assert source.inline_secrets == ["rt-1"]


def test_a_confidential_client_may_hold_a_refresh_token_too():
    source = settings(**ROBOT, oidc_refresh_token="rt-2").credential

    assert source.oidc.grant == "refresh_token"
    assert sorted(source.inline_secrets) == ["rt-2", "s3cret-of-the-robot"]


def test_the_identity_provider_is_verified_with_its_own_ca_file_or_not_at_all():
    assert settings(**ROBOT, oidc_ca_file="/ca.pem").credential.oidc.verify == "/ca.pem"
    assert settings(**ROBOT, oidc_ca_file="/ca.pem", verify="false").credential.oidc.verify is False


def test_oidc_storage_access_is_a_boolean_option_of_an_oidc_credential():
    assert settings(**ROBOT, oidc_storage_access="true").credential.storage_tokens is True
    assert settings(**ROBOT).credential.storage_tokens is False
    assert settings(oidc_storage_access=False).credential.kind == "environment"  # off: no option
    assert refusal(**ROBOT, oidc_storage_access="maybe").field == "extra 'oidc_storage_access'"


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"oidc_issuer": ISSUER, "oidc_client_secret": "s"}, "oidc_client_secret", "client_id"),
        ({**USER, "access_token": "eyJ.a.b"}, "oidc_client_id", "static access token"),
        ({"oidc_refresh_token": "r", "access_token": "t"}, "oidc_refresh_token", "static"),
        ({**ROBOT, "x509up_file": "/p"}, "oidc_client_id", "X.509"),
        ({"oidc_issuer": ISSUER, "x509up_file": "/p"}, "oidc_issuer", "X.509"),
        ({"oidc_storage_access": True}, "oidc_storage_access", "'oidc_issuer' is not"),
        ({"oidc_storage_access": True, "access_token": "t"}, "oidc_storage_access", "static"),
        ({"oidc_scope": "fts", "x509up_file": "/p"}, "oidc_scope", "X.509"),
        ({"oidc_issuer": ISSUER, "oidc_client_id": "c"}, "oidc_client_id", "neither"),
        ({"oidc_issuer": ISSUER}, "oidc_issuer", "'oidc_client_id' is not"),
        ({**ROBOT, "oidc_issuer": "http://iam.example.org"}, "oidc_issuer", "https"),
    ],
)
def test_each_invalid_combination_names_its_field_and_fix(extra, field, words):
    error = refusal(**extra)

    assert error.field == f"extra {field!r}"
    assert words in error.problem
    assert error.fix


def test_every_combination_of_token_fields_is_allowed_or_refused_by_name():
    allowed = 0
    for size in range(len(FIELDS) + 1):
        for fields in itertools.combinations(FIELDS, size):
            extra = {field: VALUES.get(field, "true") for field in fields}
            try:
                settings(**extra)
                allowed += 1
            except FTSValidationError as error:
                assert error.field.removeprefix("extra ").strip("'") in fields, fields
                assert error.fix
    assert allowed > 3


def test_the_poller_key_differs_per_credential_and_holds_no_secret():
    robot = settings(**ROBOT).poller_key()
    keys = {
        robot,
        settings(**ROBOT, oidc_scope="fts").poller_key(),
        settings(**{**ROBOT, "oidc_client_id": "other"}).poller_key(),
        settings(**USER).poller_key(),
        settings(**{**USER, "oidc_refresh_token": "rt-of-another-user"}).poller_key(),
    }

    assert len(keys) == 5
    # A new secret for the same client is adopted by its token source: the same poller.
    assert settings(**{**ROBOT, "oidc_client_secret": "rotated-secret"}).poller_key() == robot
    assert not [k for k in keys if "s3cret" in k or "rt-" in k]


def test_no_oidc_secret_shows_in_the_settings_repr():
    shown = repr(settings(**ROBOT, oidc_refresh_token="rt-hidden-value"))

    assert "s3cret-of-the-robot" not in shown
    assert "rt-hidden-value" not in shown
