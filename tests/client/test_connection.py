"""How a connection's fields become settings, without Airflow: every mistake is named with
its fix before any request, and every allowed credential combination loads for real."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from airflow_provider_fts.client.connection import (
    CREDENTIAL_COMBINATIONS,
    RENAMED_FIELDS,
    FTSConnectionSettings,
)
from airflow_provider_fts.client.errors import FTSCredentialError, FTSValidationError

HOST = "fts.example.org"
CREDENTIAL_FIELDS = (
    "access_token",
    "x509up_file",
    "x509_proxy_pem",
    "x509_cert",
    "x509_cert_pem",
    "x509_key",
    "x509_private_key_pem",
    "x509_key_passphrase",
)


def settings(password: str | None = None, port: int | None = None, **extra):
    return FTSConnectionSettings.from_connection(HOST, port, password, extra)


def refusal(password: str | None = None, **extra) -> FTSValidationError:
    with pytest.raises(FTSValidationError) as raised:
        settings(password, **extra)
    assert raised.value.fix, "every refusal says how to fix it"
    return raised.value


# -- endpoint -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "endpoint"),
    [
        ("fts.example.org", 8446, "https://fts.example.org:8446"),
        ("https://fts.example.org:9446/", None, "https://fts.example.org:9446"),
        ("fts.example.org", None, "https://fts.example.org:8446"),
        ("fts.example.org", 0, "https://fts.example.org:8446"),  # Airflow's empty port
    ],
)
def test_host_and_port_make_an_https_endpoint(host: str, port: int | None, endpoint: str):
    assert FTSConnectionSettings.from_connection(host, port, None, {}).endpoint == endpoint


def test_plain_http_is_refused():
    with pytest.raises(FTSValidationError, match="https"):
        FTSConnectionSettings.from_connection("http://fts.example.org", None, None, {})


# -- the credential table -------------------------------------------------------------------


def _allowed_extras(pki) -> list[tuple[dict[str, str], str, str]]:
    """Each allowed combination, with real files and PEM texts: (extras, kind, DN)."""
    user, host_dn = pki.user, pki.host.dn
    return [
        ({"x509up_file": str(pki.voms_proxy_path)}, "proxy_file", user.dn),
        ({"x509_proxy_pem": pki.voms_proxy.proxy_pem.decode()}, "proxy_pem", user.dn),
        (
            {"x509_cert": str(pki.usercert_path), "x509_key": str(pki.userkey_path)},
            "certificate",
            user.dn,
        ),
        ({"x509_cert": str(pki.host_proxy_path)}, "certificate", host_dn),  # key in the file
        (
            {
                "x509_cert_pem": user.chain_pem.decode(),
                "x509_private_key_pem": user.key_pem.decode(),
            },
            "certificate",
            user.dn,
        ),
        (
            {"x509_cert": str(pki.usercert_path), "x509_private_key_pem": user.key_pem.decode()},
            "certificate",
            user.dn,
        ),
        (
            {"x509_cert_pem": user.chain_pem.decode(), "x509_key": str(pki.userkey_path)},
            "certificate",
            user.dn,
        ),
    ]


def test_every_allowed_x509_combination_loads_the_right_credential(fts_pki):
    for extra, kind, dn in _allowed_extras(fts_pki):
        source = settings(**extra).credential

        credentials, _ = source.load()

        assert source.kind == kind, extra.keys()
        assert credentials.dn == dn, extra.keys()
        assert credentials.private_key is not None


def test_a_key_path_given_with_a_pem_certificate_is_used(fts_pki, tmp_path):
    # The key path used to be dropped; a wrong key file must now be read and refused.
    other = fts_pki.host.key_pem.write_to_path(tmp_path / "otherkey.pem")
    extra = {"x509_cert_pem": fts_pki.user.chain_pem.decode(), "x509_key": str(other)}

    with pytest.raises(FTSCredentialError) as raised:
        settings(**extra).credential.load()

    assert raised.value.field == "x509_key"
    assert "does not belong" in raised.value.problem


def test_the_table_rows_are_the_documented_combinations():
    assert {frozenset(k) for k in CREDENTIAL_COMBINATIONS} == {
        frozenset({"access_token"}),
        frozenset({"oidc_issuer", "oidc_client_id", "oidc_client_secret"}),
        frozenset({"oidc_issuer", "oidc_client_id", "oidc_refresh_token"}),
        frozenset({"oidc_issuer", "oidc_client_id", "oidc_client_secret", "oidc_refresh_token"}),
        frozenset({"x509up_file"}),
        frozenset({"x509_proxy_pem"}),
        frozenset({"x509_cert", "x509_key"}),
        frozenset({"x509_cert"}),
        frozenset({"x509_cert_pem", "x509_private_key_pem"}),
        frozenset({"x509_cert", "x509_private_key_pem"}),
        frozenset({"x509_cert_pem", "x509_key"}),
        frozenset(),
    }


def test_a_token_in_the_password_or_the_extra_is_a_token_credential():
    assert settings("eyJ.a.b").credential.kind == "token"
    assert settings(access_token="eyJ.a.b").credential.token == "eyJ.a.b"
    assert settings("eyJ.a.b", access_token="eyJ.a.b").credential.kind == "token"


def test_two_different_tokens_are_refused():
    error = refusal("eyJ.one.x", access_token="eyJ.two.y")

    assert error.field == "extra 'access_token'"


def test_no_credential_fields_means_the_grid_environment():
    assert settings().credential.kind == "environment"


def test_a_passphrase_goes_with_a_certificate_and_key():
    extra = {"x509_cert": "/c.pem", "x509_key": "/k.pem", "x509_key_passphrase": "secret!"}

    assert settings(**extra).credential.passphrase == "secret!"


@pytest.mark.parametrize(
    ("password", "extra", "field", "words"),
    [
        ("tok", {"x509up_file": "/p"}, "x509up_file", "access token"),
        (None, {"access_token": "t", "x509_key_passphrase": "pw"}, "x509_key_passphrase", "token"),
        (None, {"x509up_file": "/p", "x509_proxy_pem": "P"}, "x509_proxy_pem", "x509up_file"),
        (None, {"x509up_file": "/p", "x509_cert": "/c"}, "x509_cert", "proxy"),
        (None, {"x509_proxy_pem": "P", "x509_key": "/k"}, "x509_key", "proxy"),
        (None, {"x509up_file": "/p", "x509_key_passphrase": "pw"}, "x509_key_passphrase", "proxy"),
        (None, {"x509_cert": "/c", "x509_cert_pem": "C"}, "x509_cert_pem", "x509_cert"),
        (
            None,
            {"x509_cert": "/c", "x509_key": "/k", "x509_private_key_pem": "K"},
            "x509_private_key_pem",
            "x509_key",
        ),
        (None, {"x509_key": "/k"}, "x509_key", "no certificate"),
        (None, {"x509_private_key_pem": "K"}, "x509_private_key_pem", "no certificate"),
        (None, {"x509_key_passphrase": "pw"}, "x509_key_passphrase", "no certificate"),
        (None, {"x509_cert_pem": "C"}, "x509_cert_pem", "no private key"),
    ],
)
def test_each_disallowed_combination_names_its_field_and_rule(password, extra, field, words):
    error = refusal(password, **extra)

    assert error.field == f"extra {field!r}"
    assert words in error.problem


def test_a_path_certificate_with_a_pem_key_is_allowed_not_an_orphan_key():
    extra = {"x509_cert": "/c.pem", "x509_private_key_pem": "KEY"}

    source = settings(**extra).credential

    assert (source.kind, source.cert_path, source.key_pem) == ("certificate", "/c.pem", "KEY")


def test_every_combination_of_credential_fields_is_allowed_or_refused_by_a_rule():
    for size in range(len(CREDENTIAL_FIELDS) + 1):
        for fields in itertools.combinations(CREDENTIAL_FIELDS, size):
            extra = dict.fromkeys(fields, "/value")
            try:
                settings(**extra)
            except FTSValidationError as error:
                assert error.field.removeprefix("extra ").strip("'") in fields, fields
                assert error.fix


def test_a_private_key_pasted_into_the_certificate_field_is_refused(fts_pki):
    pem = fts_pki.user.chain_pem.decode() + fts_pki.user.key_pem.decode()

    error = refusal(x509_cert_pem=pem, x509_private_key_pem=fts_pki.user.key_pem.decode())

    assert error.field == "extra 'x509_cert_pem'"
    assert "x509_private_key_pem" in error.fix
    assert "PRIVATE KEY" not in str(error)


# -- field names ----------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), sorted(RENAMED_FIELDS.items()))
def test_a_renamed_field_says_its_new_name(old: str, new: str):
    error = refusal(**{old: "/tmp/x509up_u1000"})

    assert error.field == f"extra {old!r}"
    assert "renamed" in error.problem
    assert new in error.fix


# -- Airflow's placeholder "***", saved by its form in place of a hidden value ------------

OIDC_ROBOT = {"oidc_issuer": "https://iam.example.org/", "oidc_client_id": "robot"}


@pytest.mark.parametrize(
    "extra",
    [
        {"x509up_file": "/tmp/x509up_u1000", "storage_tokens": "***"},  # the form's old field
        {"x509up_file": "/tmp/x509up_u1000", "oidc_storage_access": "***"},
        {"x509up_file": "/tmp/x509up_u1000", "access_token": "***", "oidc_client_secret": "***"},
        {**OIDC_ROBOT, "oidc_client_secret": "s", "x509_key_passphrase": "***"},
    ],
)
def test_a_placeholder_in_a_field_the_credential_does_not_read_is_no_value(extra):
    source = settings(**extra).credential

    assert source.kind in ("proxy_file", "oidc")
    assert not source.storage_tokens
    assert "***" not in source.inline_secrets


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"access_token": "***"}, "access_token"),
        ({**OIDC_ROBOT, "oidc_client_secret": "***"}, "oidc_client_secret"),
        ({**OIDC_ROBOT, "oidc_client_secret": "s", "oidc_storage_access": "***"},
         "oidc_storage_access"),
        ({"x509_cert": "/c.pem", "x509_private_key_pem": "***"}, "x509_private_key_pem"),
        ({"x509up_file": "/tmp/x509up_u1000", "verify": "***"}, "verify"),
    ],
)  # fmt: skip
def test_a_placeholder_in_a_field_the_connection_reads_is_named_with_its_fix(extra, field):
    error = refusal(**extra)

    assert error.field == f"extra {field!r}"
    assert "'***', the text Airflow shows in place of a hidden value" in error.problem
    assert "Type the value again" in error.fix


def test_a_misspelled_extra_is_named_with_its_fix():
    error = refusal(x509up_fille="/tmp/x509up_u1000")

    assert error.field == "extra 'x509up_fille'"
    assert "x509up_file" in error.fix


# -- other extras ---------------------------------------------------------------------------


def test_delegation_defaults_are_the_policy_defaults():
    from airflow_provider_fts.client.delegation import DelegationPolicy

    assert settings().delegation == DelegationPolicy()
    assert settings().delegation_lifetime == timedelta(hours=12)
    assert settings().renew_below == timedelta(hours=6)


def test_delegation_hours_given_as_strings_are_read():
    chosen = settings(delegation_lifetime_hours="24", delegation_renew_hours="3")

    assert (chosen.delegation_lifetime, chosen.renew_below) == (
        timedelta(hours=24),
        timedelta(hours=3),
    )


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"delegation_lifetime_hours": "twelve"}, "delegation_lifetime_hours"),
        (
            {"delegation_lifetime_hours": 4, "delegation_renew_hours": 6},
            "delegation_lifetime_hours",
        ),
        ({"delegation_lifetime_hours": 4}, "delegation_lifetime_hours"),  # default renew 6
        ({"delegation_renew_hours": 0.5}, "delegation_renew_hours"),  # FTS's own hour
        ({"delegation_renew_hours": 12}, "delegation_lifetime_hours"),  # default lifetime 12
    ],
)
def test_delegation_settings_the_policy_refuses_name_the_extra(extra, field):
    assert refusal(**extra).field == f"extra {field!r}"


@pytest.mark.parametrize(("text", "expected"), [("false", False), ("False", False), ("1", True)])
def test_verify_accepts_boolean_strings(text: str, expected: bool):
    assert settings(verify=text).verify is expected


def test_verify_defaults_to_true_and_refuses_other_strings():
    assert settings().verify is True
    assert refusal(verify="sometimes").field == "extra 'verify'"


def test_job_url_defaults_to_ftsmon_on_port_8449_of_the_host():
    assert settings(port=8446).job_url("abc") == f"https://{HOST}:8449/fts3/ftsmon/#/job/abc"


def test_job_url_follows_the_configured_template():
    chosen = settings(monitoring_url="https://mon.example.org/job/{job_id}?x=1")

    assert chosen.job_url("abc") == "https://mon.example.org/job/abc?x=1"


def test_monitoring_url_without_placeholder_is_refused():
    assert "job_id" in refusal(monitoring_url="https://mon/job/").problem


def test_timeout_sets_read_and_caps_connect_at_ten_seconds():
    assert settings(timeout_seconds="5").client_timeout == (5.0, 5.0)
    assert settings(timeout_seconds=120).client_timeout == (10.0, 120.0)


@pytest.mark.parametrize("value", ["soon", "0", "-3", "nan"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(value: str):
    assert refusal(timeout_seconds=value).field == "extra 'timeout_seconds'"


def test_secrets_stay_out_of_the_settings_repr():
    token = "eyJhbGciOiJSUzI1NiJ9.payload-of-the-token.signature-part"

    assert token not in repr(settings(token))
    assert "open sesame" not in repr(
        settings(x509_cert="/c", x509_key="/k", x509_key_passphrase="open sesame")
    )
