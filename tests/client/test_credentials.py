"""Credentials: every way to load one, every way it can be unusable, and real TLS with it."""

from __future__ import annotations

import _ssl
import contextlib
import os
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from airflow_provider_fts.client.certs import dn_string
from airflow_provider_fts.client.credentials import Credentials, Trust, private_temp_file
from airflow_provider_fts.client.errors import FTSCredentialError
from airflow_provider_fts.testing import pki
from airflow_provider_fts.testing.environment import USER_DN, FTSTestPKI
from airflow_provider_fts.testing.voms import read_voms

RENEW_HINT = "voms-proxy-init --voms <vo> --valid 96:00"


def key_body(credential: pki.Credential) -> str:
    """A line of the base64 key, to look for leaks."""
    return credential.key_pem.decode().splitlines()[1]


# -- loading ------------------------------------------------------------------------------


def test_proxy_file_loads_as_a_proxy(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    path = fts_pki.voms_proxy.write_proxy(tmp_path / "x509up")

    credentials = Credentials.from_proxy_file(path)

    assert credentials.kind == "proxy"
    assert credentials.chain == fts_pki.voms_proxy.chain
    assert credentials.dn == USER_DN
    assert credentials.not_after == fts_pki.voms_proxy.certificate.not_valid_after_utc


def test_cert_and_separate_key_load_as_a_certificate(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    cert_path, key_path = fts_pki.user.write_cert_and_key(tmp_path)

    credentials = Credentials.from_cert_key(cert_path, key_path)

    assert credentials.kind == "certificate"
    assert credentials.dn == USER_DN


def test_key_defaults_to_the_certificate_file(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    both = tmp_path / "both.pem"
    both.write_bytes(fts_pki.user.cert_pem.bytes() + fts_pki.user.key_pem.bytes())

    credentials = Credentials.from_cert_key(both)

    assert credentials.kind == "certificate"


def test_encrypted_key_loads_with_its_passphrase(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    cert_path, key_path = fts_pki.user.write_cert_and_key(tmp_path, passphrase="s3cret")

    credentials = Credentials.from_cert_key(cert_path, key_path, passphrase="s3cret")

    assert credentials.private_key.public_key() == fts_pki.user.certificate.public_key()


def test_inline_proxy_pem_loads(fts_pki: FTSTestPKI) -> None:
    credentials = Credentials.from_pem(proxy_pem=fts_pki.plain_proxy.proxy_pem.decode())

    assert credentials.kind == "proxy"
    assert credentials.field == "x509_proxy_pem"


def test_inline_cert_and_encrypted_key_load(fts_pki: FTSTestPKI) -> None:
    credentials = Credentials.from_pem(
        cert_pem=fts_pki.user.cert_pem.bytes(),
        key_pem=fts_pki.user.encrypted_key_pem("pw").decode(),
        passphrase="pw",
    )

    assert credentials.kind == "certificate"


def test_token_has_no_certificate() -> None:
    credentials = Credentials.from_token("eyJhbGciOi.payload.signature")

    assert credentials.kind == "token"
    assert credentials.chain == []
    assert credentials.not_after is None
    credentials.check_usable("submit")


# -- loading failures ---------------------------------------------------------------------


def test_missing_proxy_file_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(FTSCredentialError) as caught:
        Credentials.from_proxy_file(tmp_path / "nope")

    assert caught.value.field == "x509up_file"
    assert f"{tmp_path / 'nope'} does not exist" in caught.value.problem
    # A wrong path is the likely cause: check it first; a new proxy would not help.
    assert caught.value.fix.startswith("check the path in 'x509up_file' first")
    assert "voms-proxy-init" not in str(caught.value)


def test_key_of_another_certificate_is_refused(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    # Given the user's certificate with the key of another certificate
    other = fts_pki.ca.issue_user_cert("/DC=org/DC=example/CN=Someone Else")
    cert_path, _ = fts_pki.user.write_cert_and_key(tmp_path / "user")
    _, other_key = other.write_cert_and_key(tmp_path / "other")

    # When loading them together
    with pytest.raises(FTSCredentialError) as caught:
        Credentials.from_cert_key(cert_path, other_key)

    # Then the key is blamed
    assert caught.value.field == "x509_key"
    assert "does not belong to the certificate" in str(caught.value)


def test_wrong_passphrase_is_reported(fts_pki: FTSTestPKI) -> None:
    with pytest.raises(FTSCredentialError) as caught:
        Credentials.from_pem(
            cert_pem=fts_pki.user.cert_pem.bytes(),
            key_pem=fts_pki.user.encrypted_key_pem("right").bytes(),
            passphrase="wrong",
        )

    assert caught.value.field == "x509_private_key_pem"
    assert "wrong passphrase" in str(caught.value)


def test_encrypted_key_without_passphrase_is_reported(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    cert_path, key_path = fts_pki.user.write_cert_and_key(tmp_path, passphrase="pw")

    with pytest.raises(FTSCredentialError) as caught:
        Credentials.from_cert_key(cert_path, key_path)

    assert caught.value.field == "x509_key"
    assert "no passphrase" in str(caught.value)


def test_malformed_pem_is_reported() -> None:
    with pytest.raises(FTSCredentialError) as caught:
        Credentials.from_pem(cert_pem="-----BEGIN CERTIFICATE-----\nnot base64\n")

    assert caught.value.field == "x509_cert_pem"
    assert "malformed" in str(caught.value)


def test_certificate_without_key_is_reported(fts_pki: FTSTestPKI) -> None:
    with pytest.raises(FTSCredentialError) as caught:
        Credentials.from_pem(cert_pem=fts_pki.user.cert_pem.decode())

    assert caught.value.field == "x509_cert_pem"
    assert "no PEM private key" in str(caught.value)


def test_empty_token_is_refused() -> None:
    with pytest.raises(FTSCredentialError) as caught:
        Credentials.from_token("  ")

    assert caught.value.field == "token"


# -- discovery ----------------------------------------------------------------------------


def test_discovery_prefers_x509_user_proxy(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    env_proxy = fts_pki.voms_proxy.write_proxy(tmp_path / "env_proxy")
    default_proxy = fts_pki.plain_proxy.write_proxy(tmp_path / "x509up_u1000")

    credentials = Credentials.from_environment(
        {"X509_USER_PROXY": str(env_proxy), "X509_USER_CERT": "/nonexistent"},
        default_proxy=default_proxy,
    )

    assert credentials.chain == fts_pki.voms_proxy.chain


def test_discovery_falls_back_to_the_default_proxy(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    default_proxy = fts_pki.plain_proxy.write_proxy(tmp_path / "x509up_u1000")

    credentials = Credentials.from_environment(
        {"X509_USER_CERT": "/nonexistent"}, default_proxy=default_proxy
    )

    assert credentials.chain == fts_pki.plain_proxy.chain


def test_discovery_then_uses_x509_user_cert_and_key(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    cert_path, key_path = fts_pki.user.write_cert_and_key(tmp_path)

    credentials = Credentials.from_environment(
        {"X509_USER_CERT": str(cert_path), "X509_USER_KEY": str(key_path)},
        default_proxy=tmp_path / "absent",
    )

    assert credentials.kind == "certificate"
    assert credentials.dn == USER_DN


def test_discovery_failure_lists_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(FTSCredentialError) as caught:
        Credentials.from_environment({}, default_proxy=tmp_path / "x509up_u1000")

    message = str(caught.value)
    assert "$X509_USER_PROXY" in message
    assert str(tmp_path / "x509up_u1000") in message
    assert "$X509_USER_CERT" in message
    assert RENEW_HINT in message


# -- expiry -------------------------------------------------------------------------------


def test_expired_proxy_is_refused_even_for_status(fts_pki: FTSTestPKI) -> None:
    # Given a proxy that expired a minute ago
    proxy = Credentials.from_pem(proxy_pem=fts_pki.user.make_proxy().proxy_pem.bytes())
    after_expiry = proxy.not_after + timedelta(minutes=1)

    # When it is checked for a status request
    with pytest.raises(FTSCredentialError) as caught:
        proxy.check_usable("status", now=after_expiry)

    # Then the error says when it expired and how to renew it
    message = str(caught.value)
    assert caught.value.field == "x509_proxy_pem"
    assert f"expired at {proxy.not_after:%Y-%m-%d %H:%M:%S} UTC" in message
    assert RENEW_HINT in message
    assert "grid-proxy-init -rfc" in message


def test_a_really_expired_proxy_is_refused_now(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    expired = fts_pki.user.make_proxy(
        not_before=now - timedelta(hours=12), not_after=now - timedelta(seconds=5)
    )
    credentials = Credentials.from_proxy_file(expired.write_proxy(tmp_path / "x509up"))

    with pytest.raises(FTSCredentialError, match="expired at"):
        credentials.check_usable("status")


def test_under_an_hour_left_allows_status_but_not_submit(fts_pki: FTSTestPKI) -> None:
    # Given a proxy with 30 minutes left
    proxy = Credentials.from_pem(proxy_pem=fts_pki.plain_proxy.proxy_pem.bytes())
    half_hour_before = proxy.not_after - timedelta(minutes=30)

    # Then status requests may go on
    proxy.check_usable("status", now=half_hour_before)
    # But a submission is refused, saying when it expires and how to renew
    with pytest.raises(FTSCredentialError) as caught:
        proxy.check_usable("submit", now=half_hour_before)
    message = str(caught.value)
    assert "less than one hour left" in message
    assert f"expires at {proxy.not_after:%Y-%m-%d %H:%M:%S} UTC, in 30m" in message
    assert RENEW_HINT in message


def test_more_than_an_hour_left_allows_submit(fts_pki: FTSTestPKI) -> None:
    proxy = Credentials.from_pem(proxy_pem=fts_pki.plain_proxy.proxy_pem.bytes())

    proxy.check_usable("submit", now=proxy.not_after - timedelta(hours=2))

    assert proxy.time_left(proxy.not_after - timedelta(hours=2)) == timedelta(hours=2)


def test_chain_expiry_is_the_earliest_in_the_chain(fts_pki: FTSTestPKI) -> None:
    # Given a user certificate expiring before the proxy it signed
    user = fts_pki.ca.issue_user_cert(USER_DN, lifetime=timedelta(hours=3))
    proxy = user.make_proxy(not_after=datetime.now(UTC) + timedelta(hours=12))

    credentials = Credentials.from_pem(proxy_pem=proxy.proxy_pem.bytes())

    assert credentials.not_after == user.certificate.not_valid_after_utc


# -- secrets hygiene ----------------------------------------------------------------------


def test_repr_shows_neither_key_nor_token(fts_pki: FTSTestPKI) -> None:
    proxy = Credentials.from_pem(proxy_pem=fts_pki.plain_proxy.proxy_pem.bytes())
    token = Credentials.from_token("very-secret-token")

    assert key_body(fts_pki.plain_proxy) not in repr(proxy) + str(proxy)
    assert USER_DN in repr(proxy)
    assert "very-secret-token" not in repr(token) + str(token)


def test_private_temp_file_is_0600_and_removed(tmp_path: Path) -> None:
    with private_temp_file(b"secret", directory=str(tmp_path)) as path:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes() == b"secret"

    assert list(tmp_path.iterdir()) == []


def test_private_temp_file_is_removed_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), private_temp_file(b"secret", directory=str(tmp_path)):
        raise RuntimeError("load failed")

    assert list(tmp_path.iterdir()) == []


def test_ssl_context_leaves_no_file_behind(
    fts_pki: FTSTestPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    credentials = Credentials.from_pem(proxy_pem=fts_pki.voms_proxy.proxy_pem.bytes())

    credentials.ssl_context(Trust(verify=False))

    assert list(tmp_path.iterdir()) == []


# -- trust --------------------------------------------------------------------------------


def test_trust_prefers_x509_cert_dir(tmp_path: Path) -> None:
    trust = Trust.from_environment({"X509_CERT_DIR": "/some/dir"}, grid_ca_dir=str(tmp_path))

    assert trust == Trust(ca_path="/some/dir")


def test_trust_then_uses_the_grid_ca_dir(tmp_path: Path) -> None:
    assert Trust.from_environment({}, grid_ca_dir=str(tmp_path)) == Trust(ca_path=str(tmp_path))


def test_trust_otherwise_uses_system_cas(tmp_path: Path) -> None:
    assert Trust.from_environment({}, grid_ca_dir=str(tmp_path / "absent")) == Trust()


@pytest.mark.parametrize("field", ["ca_path", "ca_file"])
def test_missing_ca_location_names_the_field(field: str, tmp_path: Path) -> None:
    trust = Trust(**{field: str(tmp_path / "absent")})

    with pytest.raises(FTSCredentialError) as caught:
        trust.apply(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))

    assert caught.value.field == field


def test_context_requires_tls_12_and_checks_the_hostname(fts_pki: FTSTestPKI) -> None:
    ctx = Credentials.from_token("t").ssl_context(Trust(ca_path=str(fts_pki.ca_dir)))

    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.check_hostname
    assert ctx.verify_mode == ssl.CERT_REQUIRED


# -- real TLS handshakes ------------------------------------------------------------------


@contextlib.contextmanager
def grid_tls_server(
    host: pki.Credential, ca: pki.CA, tmp_path: Path
) -> Iterator[tuple[int, Future[list[str]]]]:
    """A one-connection TLS server that accepts proxies, like mod_ssl+mod_gridsite.

    The future resolves to the DNs of the client chain the server verified.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(
        host.chain_pem.write_to_path(tmp_path / "hostcert.pem"),
        host.key_pem.write_to_path(tmp_path / "hostkey.pem"),
    )
    ctx.load_verify_locations(cadata=ca.cert_pem.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.verify_flags |= ssl.VERIFY_ALLOW_PROXY_CERTS

    def serve_one(listener: socket.socket) -> list[str]:
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            chain = tls._sslobj.get_verified_chain()
            tls.sendall(b"ok")
        return [
            dn_string(x509.load_der_x509_certificate(cert.public_bytes(_ssl.ENCODING_DER)).subject)
            for cert in chain
        ]

    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        ThreadPoolExecutor(1) as pool,
    ):
        listener.settimeout(10)
        yield listener.getsockname()[1], pool.submit(serve_one, listener)


def connect(port: int, ctx: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.recv(2)


def test_server_sees_the_whole_proxy_chain(
    fts_pki: FTSTestPKI,
    tmp_path: Path,
) -> None:
    # Given a grid server and a client holding a VOMS proxy, trusting the CA directory
    credentials = Credentials.from_pem(proxy_pem=fts_pki.voms_proxy.proxy_pem.bytes())
    ctx = credentials.ssl_context(Trust(ca_path=str(fts_pki.ca_dir)))

    with grid_tls_server(fts_pki.host, fts_pki.ca, tmp_path) as (port, verified):
        # When the client connects
        answer = connect(port, ctx)

        # Then the server verified proxy -> user -> CA
        assert answer == b"ok"
        assert verified.result(timeout=10) == [
            fts_pki.voms_proxy.dn,
            USER_DN,
            dn_string(fts_pki.ca.certificate.subject),
        ]


def test_unverified_mode_accepts_an_unknown_server(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    # Given a client that trusts nothing but does not verify
    ctx = Credentials.from_pem(proxy_pem=fts_pki.plain_proxy.proxy_pem.bytes()).ssl_context(
        Trust(verify=False)
    )

    with grid_tls_server(fts_pki.host, fts_pki.ca, tmp_path) as (port, verified):
        assert connect(port, ctx) == b"ok"
        assert verified.result(timeout=10)[0] == fts_pki.plain_proxy.dn


def test_server_from_another_ca_is_rejected(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    # Given a client trusting only an unrelated CA
    other_dir = pki.CA("/DC=org/DC=other/CN=Other CA").write_ca_dir(tmp_path / "other")
    ctx = Credentials.from_pem(proxy_pem=fts_pki.plain_proxy.proxy_pem.bytes()).ssl_context(
        Trust(ca_path=str(other_dir))
    )

    with grid_tls_server(fts_pki.host, fts_pki.ca, tmp_path) as (port, verified):
        # When it connects, then the server certificate is refused
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(port, ctx)
        with pytest.raises(ssl.SSLError):
            verified.result(timeout=10)


# -- proxies made by the real grid tools --------------------------------------------------


def grid_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (CI installs it)")
    return path


def test_grid_proxy_init_proxy_loads(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    # Given a proxy made by Globus grid-proxy-init from our user certificate
    cert_path, key_path = fts_pki.user.write_cert_and_key(tmp_path)
    out = tmp_path / "x509up"
    subprocess.run(
        [grid_tool("grid-proxy-init"), "-rfc", "-cert", cert_path, "-key", key_path, "-out", out],
        check=True,
        capture_output=True,
        env={**os.environ, "X509_CERT_DIR": str(fts_pki.ca_dir)},
    )

    # When it is loaded
    credentials = Credentials.from_proxy_file(out)

    # Then it is an RFC proxy of our user
    assert credentials.kind == "proxy"
    assert credentials.dn == USER_DN
    assert credentials.chain[1] == fts_pki.user.certificate


def test_voms_proxy_fake_proxy_loads_with_its_fqans(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    # Given a VOMS proxy made by voms-proxy-fake, its AC signed by a "VOMS server" cert
    cert_path, key_path = fts_pki.user.write_cert_and_key(tmp_path / "user")
    voms_host = fts_pki.ca.issue_host_cert("voms.example.org")
    host_cert, host_key = voms_host.write_cert_and_key(tmp_path / "voms")
    out = tmp_path / "x509up"
    fqans = ["/dteam/Role=NULL/Capability=NULL", "/dteam/cern/Role=NULL/Capability=NULL"]
    command = [grid_tool("voms-proxy-fake"), "-rfc", "-hours", "2", "-voms", "dteam"]
    command += ["-cert", cert_path, "-key", key_path, "-hostcert", host_cert, "-hostkey", host_key]
    for fqan in fqans:
        command += ["-fqan", fqan]
    subprocess.run(
        [*command, "-out", out],
        check=True,
        capture_output=True,
        env={**os.environ, "X509_CERT_DIR": str(fts_pki.ca_dir)},
    )

    # When it is loaded
    credentials = Credentials.from_proxy_file(out)

    # Then it is our user's proxy and its FQANs are readable
    assert credentials.kind == "proxy"
    assert credentials.dn == USER_DN
    assert read_voms(credentials.chain[0]) == ("dteam", fqans)
