"""Delegation: the proxy we sign for FTS is a correct RFC 3820 proxy; expiry is read leniently."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from airflow_provider_fts.client.certs import (
    PROXY_CERT_INFO_INHERIT_ALL,
    PROXY_CERT_INFO_OID,
    load_pem_chain,
)
from airflow_provider_fts.client.credentials import Credentials
from airflow_provider_fts.client.delegation import (
    DelegationPolicy,
    parse_termination_time,
    sign_proxy_request,
)
from airflow_provider_fts.client.errors import FTSCredentialError, FTSError, FTSValidationError
from airflow_provider_fts.testing import pki
from airflow_provider_fts.testing.environment import FTSTestPKI
from tests.recorded import RECORDED

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def server_key() -> rsa.RSAPrivateKey:
    """The key FTS keeps for the delegated proxy."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def csr_pem(server_key: rsa.RSAPrivateKey) -> str:
    """A request shaped like FTS's (subject O=Dummy, SHA-256)."""
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dummy")]))
        .sign(server_key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def credentials_of(credential: pki.Credential) -> Credentials:
    return Credentials.from_pem(
        cert_pem=credential.chain_pem.bytes(), key_pem=credential.key_pem.bytes()
    )


def signed_proxy(body: str) -> x509.Certificate:
    return load_pem_chain(body)[0]


# -- the proxy verifies -------------------------------------------------------------------


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
@pytest.mark.parametrize("signer", ["user", "plain_proxy", "proxy_of_proxy"])
def test_delegated_proxy_verifies_with_openssl(
    signer: str, csr_pem: str, fts_pki: FTSTestPKI, tmp_path: Path
) -> None:
    # Given a signing credential: a user certificate, a proxy, or a proxy of a proxy
    if signer == "proxy_of_proxy":
        credential = fts_pki.voms_proxy.make_proxy()
    else:
        credential = getattr(fts_pki, signer)

    # When we sign the server's request
    body = sign_proxy_request(csr_pem, credentials_of(credential), timedelta(hours=12))

    # Then openssl accepts the proxy with the chain we send along
    proxy, *chain = load_pem_chain(body)
    leaf = tmp_path / "proxy.pem"
    leaf.write_bytes(proxy.public_bytes(serialization.Encoding.PEM))
    untrusted = tmp_path / "chain.pem"
    untrusted.write_text(
        "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
    )
    ca_file = fts_pki.ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    command = ["openssl", "verify", "-allow_proxy_certs", "-CAfile", ca_file]
    result = subprocess.run(
        [*command, "-untrusted", untrusted, leaf],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == f"{leaf}: OK", result.stderr


def test_body_is_the_proxy_then_the_signing_chain(
    csr_pem: str, server_key: rsa.RSAPrivateKey, fts_pki: FTSTestPKI
) -> None:
    body = sign_proxy_request(csr_pem, credentials_of(fts_pki.voms_proxy), timedelta(hours=12))

    proxy, *chain = load_pem_chain(body)
    assert chain == fts_pki.voms_proxy.chain
    assert proxy.public_key() == server_key.public_key()
    assert "PRIVATE KEY" not in body


def test_proxy_has_the_rfc_3820_extensions(csr_pem: str, fts_pki: FTSTestPKI) -> None:
    proxy = signed_proxy(
        sign_proxy_request(csr_pem, credentials_of(fts_pki.user), timedelta(hours=12))
    )

    info = proxy.extensions.get_extension_for_oid(PROXY_CERT_INFO_OID)
    assert info.critical
    assert info.value.value == PROXY_CERT_INFO_INHERIT_ALL
    constraints = proxy.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert not constraints.value.ca
    usage = proxy.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.key_encipherment
    assert proxy.signature_hash_algorithm.name == "sha256"


def test_subject_is_the_issuer_plus_the_serial(csr_pem: str, fts_pki: FTSTestPKI) -> None:
    proxy = signed_proxy(
        sign_proxy_request(csr_pem, credentials_of(fts_pki.user), timedelta(hours=12))
    )

    assert proxy.issuer == fts_pki.user.certificate.subject
    assert proxy.subject == x509.Name(
        [
            *fts_pki.user.certificate.subject.rdns,
            x509.RelativeDistinguishedName(
                [x509.NameAttribute(NameOID.COMMON_NAME, str(proxy.serial_number))]
            ),
        ]
    )


def test_authority_key_id_only_when_the_issuer_has_one(
    csr_pem: str,
    fts_pki: FTSTestPKI,
) -> None:
    # The user certificate has a subject key id; our proxies, like VOMS proxies, do not.
    from_user = signed_proxy(
        sign_proxy_request(csr_pem, credentials_of(fts_pki.user), timedelta(hours=1, minutes=5))
    )
    from_proxy = signed_proxy(
        sign_proxy_request(
            csr_pem, credentials_of(fts_pki.plain_proxy), timedelta(hours=1, minutes=5)
        )
    )

    user_ski = fts_pki.user.certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value
    aki = from_user.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == user_ski.digest
    with pytest.raises(x509.ExtensionNotFound):
        from_proxy.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)


def test_serial_is_fresh_each_time(csr_pem: str, fts_pki: FTSTestPKI) -> None:
    credentials = credentials_of(fts_pki.plain_proxy)

    serials = {
        signed_proxy(sign_proxy_request(csr_pem, credentials, timedelta(hours=2))).serial_number
        for _ in range(3)
    }

    assert len(serials) == 3
    assert all(0 < serial < 2**63 for serial in serials)


# -- lifetime -----------------------------------------------------------------------------


def test_lifetime_runs_from_now_backdated_five_minutes(csr_pem: str, fts_pki: FTSTestPKI) -> None:
    proxy = signed_proxy(
        sign_proxy_request(csr_pem, credentials_of(fts_pki.user), timedelta(hours=12), now=NOW)
    )

    assert proxy.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert proxy.not_valid_after_utc == NOW + timedelta(hours=12)


def test_lifetime_is_capped_by_every_certificate_of_the_chain(
    csr_pem: str, fts_pki: FTSTestPKI
) -> None:
    # Given a user certificate ending in 3 hours, and a proxy of it claiming 24 hours
    user = fts_pki.ca.issue_user_cert(not_after=NOW + timedelta(hours=3))
    proxy = user.make_proxy(not_after=NOW + timedelta(hours=24))

    # When a 12-hour delegation is signed with the proxy
    delegated = signed_proxy(
        sign_proxy_request(csr_pem, credentials_of(proxy), timedelta(hours=12), now=NOW)
    )

    # Then it ends with the user certificate, not with the proxy
    assert delegated.not_valid_after_utc == NOW + timedelta(hours=3)


# -- refusals -----------------------------------------------------------------------------


def test_signing_with_under_an_hour_left_is_refused(csr_pem: str, fts_pki: FTSTestPKI) -> None:
    credentials = credentials_of(fts_pki.plain_proxy)

    with pytest.raises(FTSCredentialError, match="less than one hour left"):
        sign_proxy_request(
            csr_pem,
            credentials,
            timedelta(hours=12),
            now=credentials.not_after - timedelta(minutes=59),
        )


def test_a_token_cannot_sign(csr_pem: str) -> None:
    with pytest.raises(FTSCredentialError, match="token"):
        sign_proxy_request(csr_pem, Credentials.from_token("t"), timedelta(hours=12))


def test_a_request_with_a_bad_signature_is_refused(csr_pem: str, fts_pki: FTSTestPKI) -> None:
    # Given a CSR whose last signature byte was altered
    der = bytearray(
        x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER)
    )
    der[-1] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)

    with pytest.raises(FTSError, match="signature does not verify"):
        sign_proxy_request(tampered, credentials_of(fts_pki.user), timedelta(hours=12))


def test_a_request_that_is_not_pem_is_refused(fts_pki: FTSTestPKI) -> None:
    with pytest.raises(FTSError, match="not a PEM CSR"):
        sign_proxy_request("<html>503</html>", credentials_of(fts_pki.user), timedelta(hours=2))


# -- termination time ---------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, [], {}, "null", "[]", b"{}", {"termination_time": None}])
def test_no_delegation_shapes_mean_none(body: object) -> None:
    assert parse_termination_time(body) is None


def test_recorded_termination_time_is_naive_utc() -> None:
    case = json.loads((RECORDED / "019-delegation-view-exists.json").read_text())

    moment = parse_termination_time(case["response"]["body"])

    assert moment == datetime(2026, 11, 26, 5, 53, 40, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    ["2026-11-26T05:53:40+0000", "2026-11-26T06:53:40+01:00", "2026-11-26 05:53:40"],
)
def test_termination_time_tolerates_zones_and_spaces(text: str) -> None:
    assert parse_termination_time({"termination_time": text}) == datetime(
        2026, 11, 26, 5, 53, 40, tzinfo=UTC
    )


def test_unreadable_termination_time_is_an_error() -> None:
    with pytest.raises(FTSError, match="termination_time"):
        parse_termination_time({"termination_time": "tomorrow"})


# -- renewal policy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "renew"),
    [
        (None, True),
        (timedelta(hours=10), False),
        (timedelta(hours=6), False),
        (timedelta(hours=5), True),
        (timedelta(minutes=30), True),
    ],
)
def test_policy_renews_below_the_threshold(left: timedelta | None, renew: bool) -> None:
    policy = DelegationPolicy(lifetime=timedelta(hours=12), renew_below=timedelta(hours=6))

    termination = None if left is None else NOW + left

    assert policy.needs_renewal(termination, NOW) is renew


def test_policy_does_not_renew_when_the_credential_cannot_do_better() -> None:
    # Given a delegation that already lasts as long as our own proxy
    policy = DelegationPolicy()
    ours_end = NOW + timedelta(hours=4)

    assert not policy.needs_renewal(ours_end, NOW, credential_not_after=ours_end)
    assert policy.needs_renewal(ours_end, NOW, credential_not_after=ours_end + timedelta(hours=1))


@pytest.mark.parametrize(
    ("lifetime", "renew_below", "field"),
    [
        # under an hour, FTS refuses submissions anyway: renewing then is not a choice
        (timedelta(hours=12), timedelta(minutes=30), "renew_below"),
        (timedelta(minutes=30), timedelta(minutes=10), "renew_below"),
        (timedelta(hours=12), timedelta(hours=12), "delegation_lifetime"),
        (timedelta(hours=4), timedelta(hours=6), "delegation_lifetime"),
    ],
)
def test_policy_rejects_settings_that_cannot_work(
    lifetime: timedelta, renew_below: timedelta, field: str
) -> None:
    with pytest.raises(FTSValidationError) as caught:
        DelegationPolicy(lifetime=lifetime, renew_below=renew_below)

    assert caught.value.field == field


def test_policy_accepts_the_smallest_working_settings() -> None:
    policy = DelegationPolicy(
        lifetime=timedelta(hours=1, minutes=1), renew_below=timedelta(hours=1)
    )

    assert policy.needs_renewal(NOW + timedelta(minutes=59), NOW)


def test_policy_check_names_the_fields_as_the_caller_calls_them() -> None:
    with pytest.raises(FTSValidationError) as caught:
        DelegationPolicy.check(
            timedelta(hours=3), timedelta(hours=3), fields=("extra 'a'", "extra 'b'")
        )

    assert caught.value.field == "extra 'a'"
