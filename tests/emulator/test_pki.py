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
from airflow_provider_fts.testing.environment import USER_DN, FTSTestPKI
from airflow_provider_fts.testing.voms import VOMS_EXTENSION_OID, read_voms
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
def test_ca_dir_is_found_by_openssl(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    assert (fts_pki.ca_dir / f"{fts_pki.ca.subject_hash}.0").is_file()

    output = openssl_verify(fts_pki.user, tmp_path, "-CApath", str(fts_pki.ca_dir))

    assert output.strip().endswith(": OK"), output


@needs_openssl
@pytest.mark.parametrize("which", ["plain_proxy", "voms_proxy", "proxy_of_proxy"])
def test_proxies_verify_with_openssl(which: str, fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    # Given a proxy (or a proxy of a proxy) from the test PKI
    if which == "proxy_of_proxy":
        proxy = fts_pki.voms_proxy.make_proxy()
    else:
        proxy = getattr(fts_pki, which)
    ca_file = fts_pki.ca.cert_pem.write_to_path(tmp_path / "ca.pem")

    # When openssl verifies it with proxy support
    output = openssl_verify(proxy, tmp_path, "-CAfile", str(ca_file))

    # Then it is accepted
    assert output.strip().endswith(": OK"), output


def test_proxy_follows_the_rfc_3820_recipe(fts_pki: FTSTestPKI) -> None:
    proxy = fts_pki.user.make_proxy().certificate

    assert proxy.issuer == fts_pki.user.certificate.subject
    assert proxy.subject.rdns[:-1] == fts_pki.user.certificate.subject.rdns
    assert proxy.subject.rdns[-1] == x509.RelativeDistinguishedName(
        [x509.NameAttribute(NameOID.COMMON_NAME, str(proxy.serial_number))]
    )
    info = proxy.extensions.get_extension_for_oid(PROXY_CERT_INFO_OID)
    assert info.critical
    assert info.value.value == PROXY_CERT_INFO_INHERIT_ALL
    assert not proxy.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert proxy.extensions.get_extension_for_class(x509.KeyUsage).critical


def test_proxy_chain_runs_from_leaf_to_user(fts_pki: FTSTestPKI) -> None:
    proxy_of_proxy = fts_pki.plain_proxy.make_proxy()

    assert proxy_of_proxy.chain == [proxy_of_proxy.certificate, *fts_pki.plain_proxy.chain]
    assert [is_proxy(cert) for cert in proxy_of_proxy.chain] == [True, True, False]
    assert proxy_of_proxy.dn.startswith(USER_DN + "/CN=")


def test_default_proxy_lifetime_is_capped_by_its_issuer(fts_pki: FTSTestPKI) -> None:
    # Given a user certificate expiring in 2 hours
    user = fts_pki.ca.issue_user_cert(USER_DN, lifetime=timedelta(hours=2))

    # When a 12-hour proxy is requested
    proxy = user.make_proxy(lifetime=timedelta(hours=12))

    # Then it ends with the user certificate
    assert proxy.certificate.not_valid_after_utc == user.certificate.not_valid_after_utc


def test_explicit_validity_builds_an_expired_proxy(fts_pki: FTSTestPKI) -> None:
    now = datetime.now(UTC).replace(microsecond=0)

    expired = fts_pki.user.make_proxy(
        not_before=now - timedelta(hours=13), not_after=now - timedelta(hours=1)
    )

    assert expired.certificate.not_valid_after_utc == now - timedelta(hours=1)
    assert expired.certificate.not_valid_before_utc == now - timedelta(hours=13)


def test_voms_proxy_carries_the_fqans(fts_pki: FTSTestPKI) -> None:
    assert read_voms(fts_pki.voms_proxy.certificate) == (
        "dteam",
        ["/dteam/Role=NULL/Capability=NULL"],
    )


def test_plain_certificates_have_no_voms(fts_pki: FTSTestPKI) -> None:
    assert read_voms(fts_pki.plain_proxy.certificate) == (None, [])
    assert read_voms(fts_pki.plain_proxy.chain[1]) == (None, [])


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
def test_read_voms_rejects_a_malformed_extension(value: bytes, fts_pki: FTSTestPKI) -> None:
    # Given a certificate whose VOMS extension is not an attribute certificate list
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(fts_pki.user.certificate.subject)
        .issuer_name(fts_pki.user.certificate.subject)
        .public_key(fts_pki.user.private_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.UnrecognizedExtension(VOMS_EXTENSION_OID, value), critical=False)
        .sign(fts_pki.user.private_key, hashes.SHA256())
    )

    # When / Then reading it fails loudly rather than returning no FQANs
    with pytest.raises(ValueError):
        read_voms(cert)


def test_proxy_pem_has_the_grid_proxy_file_layout(fts_pki: FTSTestPKI) -> None:
    text = fts_pki.voms_proxy.proxy_pem.decode()

    blocks = [line for line in text.splitlines() if line.startswith("-----BEGIN")]

    assert blocks == [
        "-----BEGIN CERTIFICATE-----",
        "-----BEGIN PRIVATE KEY-----",
        "-----BEGIN CERTIFICATE-----",
    ]
    assert load_pem_chain(text) == fts_pki.voms_proxy.chain


def test_written_proxy_is_private(fts_pki: FTSTestPKI, tmp_path: Path) -> None:
    path = fts_pki.plain_proxy.write_proxy(tmp_path / "x509up_u1000")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == fts_pki.plain_proxy.proxy_pem.bytes()


def test_cert_and_key_are_written_with_an_encrypted_key(
    fts_pki: FTSTestPKI, tmp_path: Path
) -> None:
    cert_path, key_path = fts_pki.user.write_cert_and_key(tmp_path, passphrase="s3cret")

    key = serialization.load_pem_private_key(key_path.read_bytes(), password=b"s3cret")
    assert key.public_key() == fts_pki.user.certificate.public_key()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert load_pem_chain(cert_path.read_bytes()) == fts_pki.user.chain


def test_host_cert_names_every_host(fts_pki: FTSTestPKI) -> None:
    names = fts_pki.host.certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value

    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_reprs_never_show_key_material(fts_pki: FTSTestPKI) -> None:
    key_text = fts_pki.voms_proxy.key_pem.decode()
    key_body = key_text.splitlines()[1]

    assert key_body not in repr(fts_pki.voms_proxy)
    assert key_body not in repr(fts_pki.voms_proxy.proxy_pem)
    assert key_body not in repr(fts_pki.voms_proxy.key_pem)
