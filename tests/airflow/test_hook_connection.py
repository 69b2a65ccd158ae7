"""How an ``fts`` connection is read: endpoint, credential choice, extras, masking.

No server is needed: every mistake must be reported before any request.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.hooks.fts import FTSHook


@pytest.fixture
def connection(monkeypatch):
    """Define connection ``fts_test`` from an AIRFLOW_CONN_* variable; return a hook on it."""

    def define(**fields) -> FTSHook:
        document = {"conn_type": "fts", **fields}
        monkeypatch.setenv("AIRFLOW_CONN_FTS_TEST", json.dumps(document))
        return FTSHook("fts_test")

    return define


def test_host_without_scheme_and_a_port_make_an_https_endpoint(connection):
    hook = connection(host="fts.example.org", port=8446)

    assert hook.settings.endpoint == "https://fts.example.org:8446"


def test_host_with_https_scheme_and_port_is_accepted(connection):
    hook = connection(host="https://fts.example.org:9446/")

    assert hook.settings.endpoint == "https://fts.example.org:9446"


def test_missing_port_defaults_to_8446(connection):
    hook = connection(host="fts.example.org")

    assert hook.settings.endpoint == "https://fts.example.org:8446"


def test_plain_http_is_refused(connection):
    hook = connection(host="http://fts.example.org")

    with pytest.raises(FTSValidationError, match="https"):
        hook.settings  # noqa: B018


def test_a_misspelled_extra_is_named_with_its_fix(connection):
    hook = connection(host="fts.example.org", extra={"x509_proxi": "/tmp/x509up_u1000"})

    with pytest.raises(FTSValidationError) as raised:
        hook.settings  # noqa: B018

    assert raised.value.field == "extra 'x509_proxi'"
    assert "x509_proxy" in raised.value.fix


def test_non_numeric_delegation_hours_are_refused(connection):
    hook = connection(host="fts.example.org", extra={"delegation_lifetime_hours": "twelve"})

    with pytest.raises(FTSValidationError, match="delegation_lifetime_hours"):
        hook.settings  # noqa: B018


def test_renewal_threshold_must_stay_below_the_lifetime(connection):
    extra = {"delegation_lifetime_hours": 4, "delegation_renew_hours": 6}
    hook = connection(host="fts.example.org", extra=extra)

    with pytest.raises(FTSValidationError, match="delegation_lifetime_hours"):
        hook.settings  # noqa: B018


def test_delegation_hours_given_as_strings_are_read(connection):
    extra = {"delegation_lifetime_hours": "24", "delegation_renew_hours": "3"}
    hook = connection(host="fts.example.org", extra=extra)

    assert hook.settings.delegation_lifetime == timedelta(hours=24)
    assert hook.settings.renew_below == timedelta(hours=3)


def test_proxy_and_certificate_together_are_refused(connection):
    extra = {"x509_proxy": "/tmp/x509up_u1000", "x509_cert": "/home/u/usercert.pem"}
    hook = connection(host="fts.example.org", extra=extra)

    with pytest.raises(FTSValidationError, match="x509_cert"):
        hook.settings  # noqa: B018


def test_a_key_without_a_certificate_is_refused(connection):
    hook = connection(host="fts.example.org", extra={"x509_key": "/home/u/userkey.pem"})

    with pytest.raises(FTSValidationError, match="x509_key"):
        hook.settings  # noqa: B018


def test_token_and_x509_together_are_refused(connection):
    extra = {"x509_proxy": "/tmp/x509up_u1000"}
    hook = connection(host="fts.example.org", password="eyJhbGciOi.token.sig", extra=extra)

    with pytest.raises(FTSValidationError, match="bearer token"):
        hook.settings  # noqa: B018


@pytest.mark.parametrize(("text", "expected"), [("false", False), ("False", False), ("1", True)])
def test_verify_accepts_boolean_strings(connection, text, expected):
    hook = connection(host="fts.example.org", extra={"verify": text})

    assert hook.settings.verify is expected


def test_verify_refuses_other_strings(connection):
    hook = connection(host="fts.example.org", extra={"verify": "sometimes"})

    with pytest.raises(FTSValidationError, match="verify"):
        hook.settings  # noqa: B018


def test_job_url_defaults_to_ftsmon_on_port_8449_of_the_host(connection):
    hook = connection(host="fts.example.org", port=8446)

    assert hook.job_url("abc") == "https://fts.example.org:8449/fts3/ftsmon/#/job/abc"


def test_job_url_follows_the_configured_template(connection):
    extra = {"monitoring_url": "https://mon.example.org/job/{job_id}?x=1"}
    hook = connection(host="fts.example.org", extra=extra)

    assert hook.job_url("abc") == "https://mon.example.org/job/abc?x=1"


def test_monitoring_url_without_placeholder_is_refused(connection):
    hook = connection(host="fts.example.org", extra={"monitoring_url": "https://mon/job/"})

    with pytest.raises(FTSValidationError, match="job_id"):
        hook.settings  # noqa: B018


def test_token_in_the_password_field_is_masked_and_kept_out_of_reprs(connection):
    from airflow.sdk.log import redact

    token = "eyJhbGciOiJSUzI1NiJ9.payload-of-the-token.signature-part"
    hook = connection(host="fts.example.org", password=token)

    settings = hook.settings

    assert settings.credential.kind == "token"
    assert token not in repr(settings)
    assert token not in redact(f"Authorization: Bearer {token}")


def test_inline_key_and_passphrase_are_masked(connection):
    from airflow.sdk.log import redact

    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    extra = {"x509_cert_pem": "CERT", "x509_key_pem": key, "x509_key_passphrase": "open sesame"}
    hook = connection(host="fts.example.org", extra=extra)

    settings = hook.settings

    assert settings.credential.kind == "pem"
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in redact(f"loaded {key}")
    assert "open sesame" not in redact("passphrase is open sesame")


def test_timeout_extra_reaches_the_client(connection, fts_pki):
    hook = connection(
        host="fts.example.org",
        extra={"x509_proxy": str(fts_pki.voms_proxy_path), "ca_path": str(fts_pki.ca_dir),
               "timeout_seconds": "5"},
    )  # fmt: skip

    assert hook.get_client().transport.timeout == (5.0, 5.0)


@pytest.mark.parametrize("value", ["soon", "0", "-3", "nan"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(connection, value: str) -> None:
    hook = connection(host="fts.example.org", extra={"timeout_seconds": value})

    with pytest.raises(FTSValidationError, match="timeout_seconds") as raised:
        hook.settings  # noqa: B018

    assert "Fix:" in str(raised.value)
