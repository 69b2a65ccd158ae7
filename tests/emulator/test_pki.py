"""The test PKI produces what grid tools accept: openssl verifies its proxies and CA dir."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from airflow_provider_fts.client.certs import (
    PROXY_CERT_INFO_INHERIT_ALL,
    PROXY_CERT_INFO_OID,
    is_proxy,
    load_pem_chain,
)
from airflow_provider_fts.testing import pki
from airflow_provider_fts.testing.voms import VOMS_EXTENSION_OID, read_voms
from tests.conftest import USER_DN
from tests.recorded import RECORDED

needs_openssl = pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")


def openssl_verify(credential: pki.Credential, tmp_path: Path, *trust: str) -> str:
    leaf = credential.cert_pem.write_to_path(tmp_path / "leaf.pem")
    chain = credential.chain_pem.write_to_path(tmp_path / "chain.pem")
    result = subprocess.run(
        ["openssl", "verify", "-allow_proxy_certs", *trust, "-untrusted", chain, leaf],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout + result.stderr


@needs_openssl
@pytest.mark.parametrize(
    "subject",
    [
        "/DC=org/DC=example/CN=FTS Test CA",
        "/DC=org/DC=Example/O=  Mixed   CASE\tOrg /CN=Ünïcödé CA",
        "/C=CH/O=CERN/OU=Grid/CN=CERN Grid Certification Authority/emailAddress=a@b.ch",
    ],
)
def test_subject_hash_equals_openssl(subject: str, tmp_path: Path) -> None:
    # Given a CA with this subject
    ca = pki.CA(subject)
    pem = ca.cert_pem.write_to_path(tmp_path / "ca.pem")

    # When openssl computes the subject hash
    result = subprocess.run(
        ["openssl", "x509", "-noout", "-subject_hash", "-in", pem],
        capture_output=True,
        text=True,
        check=True,
    )

    # Then ours is the same
    assert ca.subject_hash == result.stdout.strip()


@needs_openssl
def test_ca_dir_is_found_by_openssl(
    pki_ca: pki.CA, pki_ca_dir: Path, pki_user: pki.Credential, tmp_path: Path
) -> None:
    assert (pki_ca_dir / f"{pki_ca.subject_hash}.0").is_file()

    output = openssl_verify(pki_user, tmp_path, "-CApath", str(pki_ca_dir))

    assert output.strip().endswith(": OK"), output


@needs_openssl
@pytest.mark.parametrize("which", ["pki_proxy", "pki_voms_proxy", "proxy_of_proxy"])
def test_proxies_verify_with_openssl(
    which: str, request: pytest.FixtureRequest, pki_ca: pki.CA, tmp_path: Path
) -> None:
    # Given a proxy (or a proxy of a proxy) from the test PKI
    if which == "proxy_of_proxy":
        proxy = request.getfixturevalue("pki_voms_proxy").make_proxy()
    else:
        proxy = request.getfixturevalue(which)
    ca_file = pki_ca.cert_pem.write_to_path(tmp_path / "ca.pem")

    # When openssl verifies it with proxy support
    output = openssl_verify(proxy, tmp_path, "-CAfile", str(ca_file))

    # Then it is accepted
    assert output.strip().endswith(": OK"), output


def test_proxy_follows_the_rfc_3820_recipe(pki_user: pki.Credential) -> None:
    proxy = pki_user.make_proxy().certificate

    assert proxy.issuer == pki_user.certificate.subject
    assert proxy.subject.rdns[:-1] == pki_user.certificate.subject.rdns
    assert proxy.subject.rdns[-1] == x509.RelativeDistinguishedName(
        [x509.NameAttribute(NameOID.COMMON_NAME, str(proxy.serial_number))]
    )
    info = proxy.extensions.get_extension_for_oid(PROXY_CERT_INFO_OID)
    assert info.critical
    assert info.value.value == PROXY_CERT_INFO_INHERIT_ALL
    assert not proxy.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert proxy.extensions.get_extension_for_class(x509.KeyUsage).critical


def test_proxy_chain_runs_from_leaf_to_user(pki_proxy: pki.Credential) -> None:
    proxy_of_proxy = pki_proxy.make_proxy()

    assert proxy_of_proxy.chain == [proxy_of_proxy.certificate, *pki_proxy.chain]
    assert [is_proxy(cert) for cert in proxy_of_proxy.chain] == [True, True, False]
    assert proxy_of_proxy.dn.startswith(USER_DN + "/CN=")


def test_default_proxy_lifetime_is_capped_by_its_issuer(pki_ca: pki.CA) -> None:
    # Given a user certificate expiring in 2 hours
    user = pki_ca.issue_user_cert(USER_DN, lifetime=timedelta(hours=2))

    # When a 12-hour proxy is requested
    proxy = user.make_proxy(lifetime=timedelta(hours=12))

    # Then it ends with the user certificate
    assert proxy.certificate.not_valid_after_utc == user.certificate.not_valid_after_utc


def test_explicit_validity_builds_an_expired_proxy(pki_user: pki.Credential) -> None:
    now = datetime.now(UTC).replace(microsecond=0)

    expired = pki_user.make_proxy(
        not_before=now - timedelta(hours=13), not_after=now - timedelta(hours=1)
    )

    assert expired.certificate.not_valid_after_utc == now - timedelta(hours=1)
    assert expired.certificate.not_valid_before_utc == now - timedelta(hours=13)


def test_voms_proxy_carries_the_fqans(pki_voms_proxy: pki.Credential) -> None:
    assert read_voms(pki_voms_proxy.certificate) == ("dteam", ["/dteam/Role=NULL/Capability=NULL"])


def test_plain_certificates_have_no_voms(pki_proxy: pki.Credential) -> None:
    assert read_voms(pki_proxy.certificate) == (None, [])
    assert read_voms(pki_proxy.chain[1]) == (None, [])


def test_read_voms_understands_a_proxy_from_a_real_voms_setup() -> None:
    # Given the chain a real FTS server saw (recorded: proxy with a VOMS AC, then the user)
    case = json.loads((RECORDED / "005-whoami-certificate.json").read_text())
    proxy, user = load_pem_chain(case["response"]["body"])

    assert read_voms(proxy) == ("dteam", ["/dteam/Role=NULL/Capability=NULL"])
    assert read_voms(user) == (None, [])


@pytest.mark.parametrize(
    "value",
    [bytes.fromhex("3005300330"), bytes.fromhex("300430023000")],
    ids=["truncated DER", "empty attribute certificate"],
)
def test_read_voms_rejects_a_malformed_extension(value: bytes, pki_user: pki.Credential) -> None:
    # Given a certificate whose VOMS extension is not an attribute certificate list
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(pki_user.certificate.subject)
        .issuer_name(pki_user.certificate.subject)
        .public_key(pki_user.private_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.UnrecognizedExtension(VOMS_EXTENSION_OID, value), critical=False)
        .sign(pki_user.private_key, hashes.SHA256())
    )

    # When / Then reading it fails loudly rather than returning no FQANs
    with pytest.raises(ValueError):
        read_voms(cert)


def test_proxy_pem_has_the_grid_proxy_file_layout(pki_voms_proxy: pki.Credential) -> None:
    text = pki_voms_proxy.proxy_pem.decode()

    blocks = [line for line in text.splitlines() if line.startswith("-----BEGIN")]

    assert blocks == [
        "-----BEGIN CERTIFICATE-----",
        "-----BEGIN PRIVATE KEY-----",
        "-----BEGIN CERTIFICATE-----",
    ]
    assert load_pem_chain(text) == pki_voms_proxy.chain


def test_written_proxy_is_private(pki_proxy: pki.Credential, tmp_path: Path) -> None:
    path = pki_proxy.write_proxy(tmp_path / "x509up_u1000")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == pki_proxy.proxy_pem.bytes()


def test_cert_and_key_are_written_with_an_encrypted_key(
    pki_user: pki.Credential, tmp_path: Path
) -> None:
    cert_path, key_path = pki_user.write_cert_and_key(tmp_path, passphrase="s3cret")

    key = serialization.load_pem_private_key(key_path.read_bytes(), password=b"s3cret")
    assert key.public_key() == pki_user.certificate.public_key()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert load_pem_chain(cert_path.read_bytes()) == pki_user.chain


def test_host_cert_names_every_host(pki_host: pki.Credential) -> None:
    names = pki_host.certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value

    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_reprs_never_show_key_material(pki_voms_proxy: pki.Credential) -> None:
    key_text = pki_voms_proxy.key_pem.decode()
    key_body = key_text.splitlines()[1]

    assert key_body not in repr(pki_voms_proxy)
    assert key_body not in repr(pki_voms_proxy.proxy_pem)
    assert key_body not in repr(pki_voms_proxy.key_pem)
