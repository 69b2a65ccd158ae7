"""What Airflow adds to a connection: reading it (sync and async), masking its secrets and
never its paths, and ``test_connection`` (the form's Test button) against the emulator.

The field rules themselves are framework-free: ``tests/client/test_connection.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_fts.client.connection_fields import CONNECTION_FIELDS
from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.testing.pki import Voms

DTEAM = Voms("dteam", ["/dteam/Role=NULL/Capability=NULL"])


@pytest.fixture
def connection(monkeypatch):
    """Define connection ``fts_test`` from an AIRFLOW_CONN_* variable; return a hook on it."""

    def define(**fields) -> FTSHook:
        document = {"conn_type": "fts", **fields}
        monkeypatch.setenv("AIRFLOW_CONN_FTS_TEST", json.dumps(document))
        return FTSHook("fts_test")

    return define


@pytest.fixture
def emulated(connection, fts_emulator, fts_pki):
    """A hook on the emulator (trusting its CA) with the given password and extras."""

    def define(password: str | None = None, **extra) -> FTSHook:
        fields = {"host": fts_emulator.host, "port": fts_emulator.port}
        return connection(
            **fields, password=password, extra={"ca_path": str(fts_pki.ca_dir), **extra}
        )

    return define


def test_the_airflow_connection_reaches_the_settings(connection):
    extra = {"x509up_file": "/tmp/x509up_u1000", "delegation_renew_hours": "3"}
    hook = connection(host="fts.example.org", port=9446, extra=extra)

    settings = hook.settings

    assert settings.endpoint == "https://fts.example.org:9446"
    assert settings.credential.proxy_path == "/tmp/x509up_u1000"
    assert settings.renew_below == timedelta(hours=3)


def test_the_async_path_reads_the_same_settings(connection):
    hook = connection(host="fts.example.org", password="a-token", extra={"timeout_seconds": 7})

    settings = asyncio.run(hook.asettings())

    assert settings == hook.settings
    assert settings.credential.kind == "token"


def test_a_bad_field_is_refused_when_the_settings_are_read(connection):
    hook = connection(host="fts.example.org", extra={"x509_proxy": "/tmp/x509up_u1000"})

    with pytest.raises(FTSValidationError, match="renamed 'x509up_file'"):
        hook.settings  # noqa: B018


def test_airflow_masks_every_secret_field_and_shows_every_path():
    # Airflow masks an extra by its name, in logs and in what its API sends to the form.
    from airflow.sdk._shared.secrets_masker import should_hide_value_for_key

    paths = {"x509up_file", "x509_cert", "x509_key", "ca_path", "ca_file"}
    secrets = {"x509_proxy_pem", "x509_private_key_pem", "x509_key_passphrase", "access_token"}

    assert paths | secrets <= set(CONNECTION_FIELDS)
    assert [name for name in sorted(paths) if should_hide_value_for_key(name)] == []
    assert [name for name in sorted(secrets) if not should_hide_value_for_key(name)] == []


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
    extra = {
        "x509_cert_pem": "CERT",
        "x509_private_key_pem": key,
        "x509_key_passphrase": "open sesame",
    }
    hook = connection(host="fts.example.org", extra=extra)

    settings = hook.settings

    assert settings.credential.kind == "certificate"
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in redact(f"loaded {key}")
    assert "open sesame" not in redact("passphrase is open sesame")


def test_timeout_extra_reaches_the_client(connection, fts_pki):
    hook = connection(
        host="fts.example.org",
        extra={"x509up_file": str(fts_pki.voms_proxy_path), "ca_path": str(fts_pki.ca_dir),
               "timeout_seconds": "5"},
    )  # fmt: skip

    assert hook.get_client().transport.timeout == (5.0, 5.0)


# -- test_connection: can this connection submit? -------------------------------------------


def _proxy(fts_pki, tmp_path, left: timedelta, voms: Voms | None = None) -> str:
    now = datetime.now(UTC)
    proxy = fts_pki.user.make_proxy(
        not_before=now - timedelta(hours=13), not_after=now + left, voms=voms
    )
    return str(proxy.write_proxy(tmp_path / "x509up"))


def test_a_good_proxy_says_who_we_are_and_how_long_it_lasts(emulated, fts_pki, tmp_path):
    proxy = _proxy(fts_pki, tmp_path, timedelta(hours=5), voms=DTEAM)

    ok, message = emulated(x509up_file=proxy).test_connection()

    assert ok, message
    assert f"as {fts_pki.user.dn} (dteam)" in message
    assert re.search(r"; proxy valid for 4h 5\dm; ", message), message


def test_a_proxy_without_voms_shows_no_vo_instead_of_its_virtual_vo(emulated, fts_pki):
    hook = emulated(x509up_file=str(fts_pki.plain_proxy_path))

    ok, message = hook.test_connection()

    assert ok, message
    virtual_vo = hook.whoami()["delegation_id"]
    assert hook.whoami()["vos"] == [virtual_vo]  # what FTS answers for a VO-less proxy
    assert "(no VO)" in message
    assert virtual_vo not in message


def test_an_expired_proxy_cannot_submit(emulated, fts_pki, tmp_path):
    hook = emulated(x509up_file=_proxy(fts_pki, tmp_path, -timedelta(minutes=5)))

    ok, message = hook.test_connection()

    assert not ok
    assert "x509up_file: the proxy" in message
    assert "expired" in message
    assert "Fix: create a new proxy" in message


def test_a_proxy_with_under_an_hour_left_cannot_submit(emulated, fts_pki, tmp_path):
    hook = emulated(x509up_file=_proxy(fts_pki, tmp_path, timedelta(minutes=28)))

    ok, message = hook.test_connection()

    assert not ok
    assert "in 27m" in message
    assert "less than one hour left" in message
    assert "Fix:" in message


def test_a_key_that_is_not_the_certificates_cannot_submit(emulated, fts_pki):
    extra = {"x509_cert": str(fts_pki.usercert_path)}
    hook = emulated(**extra, x509_private_key_pem=fts_pki.host.key_pem.decode())

    ok, message = hook.test_connection()

    assert not ok
    assert "x509_private_key_pem: the private key does not belong" in message


def test_a_missing_proxy_file_names_the_path_to_check(emulated):
    ok, message = emulated(x509up_file="/nonexistent/x509up_u1000").test_connection()

    assert not ok
    assert "/nonexistent/x509up_u1000 does not exist" in message
    assert "check the path in 'x509up_file' first" in message
    assert "voms-proxy-init" not in message


def test_without_ca_path_the_hook_trusts_x509_cert_dir(
    connection, fts_emulator, fts_pki, monkeypatch
):
    # The default the README documents, as the plain FTSClient applies it.
    monkeypatch.setenv("X509_CERT_DIR", str(fts_pki.ca_dir))
    extra = {"x509up_file": str(fts_pki.voms_proxy_path)}
    hook = connection(host=fts_emulator.host, port=fts_emulator.port, extra=extra)

    ok, message = hook.test_connection()

    assert ok, message
    assert hook.get_conn().trust.ca_path == str(fts_pki.ca_dir)


def test_a_token_needs_no_delegation(emulated, fts_token):
    ok, message = emulated(fts_token).test_connection()

    assert ok, message
    assert "token authentication, no delegation needed" in message
    assert re.search(r"; token valid for (59m|1h 0m); ", message), message  # minted for 1 h


def test_a_bad_field_is_reported_not_raised(connection):
    hook = connection(host="fts.example.org", extra={"verify": "sometimes"})

    ok, message = hook.test_connection()

    assert not ok
    assert message.startswith("FTSValidationError: extra 'verify'")
