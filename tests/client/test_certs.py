"""Grid DN formatting and proxy recognition, as mod_gridsite and FTS see certificates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from airflow_provider_fts.client.certs import dn_string, end_entity, is_proxy, name_from_dn
from airflow_provider_fts.testing.environment import USER_DN, FTSTestPKI


def test_dn_keeps_the_encoded_order(fts_pki: FTSTestPKI) -> None:
    # cryptography's rfc4514_string() would print CN first; grid tools print DC first.
    assert dn_string(fts_pki.user.certificate.subject) == USER_DN


def test_dn_uses_openssl_short_names() -> None:
    name = x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "CH")]),
            x509.RelativeDistinguishedName(
                [x509.NameAttribute(NameOID.EMAIL_ADDRESS, "jane@example.org")]
            ),
        ]
    )

    assert dn_string(name) == "/C=CH/emailAddress=jane@example.org"


@pytest.mark.parametrize(
    "dn",
    [
        USER_DN,
        "/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=jdoe/CN=123456/CN=John Doe",
        "/DC=org/DC=example/CN=Robot: transfers a/b",
        "/C=CH/O=CERN/CN=host.cern.ch/emailAddress=ops@cern.ch",
    ],
)
def test_dn_round_trips(dn: str) -> None:
    assert dn_string(name_from_dn(dn)) == dn


def test_a_dn_must_start_with_a_slash() -> None:
    with pytest.raises(ValueError, match="starts with '/'"):
        name_from_dn("CN=Jane,DC=org")


def test_rfc_proxies_are_proxies(fts_pki: FTSTestPKI) -> None:
    assert [is_proxy(cert) for cert in fts_pki.plain_proxy.chain] == [True, False]


def test_legacy_globus_proxies_are_proxies(fts_pki: FTSTestPKI) -> None:
    # Given a pre-RFC proxy: issuer's subject + CN=proxy, no proxyCertInfo
    user = fts_pki.user.certificate
    now = datetime.now(UTC)
    legacy = (
        x509.CertificateBuilder()
        .issuer_name(user.subject)
        .subject_name(
            x509.Name(
                [
                    *user.subject.rdns,
                    x509.RelativeDistinguishedName(
                        [x509.NameAttribute(NameOID.COMMON_NAME, "proxy")]
                    ),
                ]
            )
        )
        .public_key(fts_pki.user.private_key.public_key())
        .serial_number(user.serial_number)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(hours=1))
        .sign(fts_pki.user.private_key, hashes.SHA256())
    )

    assert is_proxy(legacy)


def test_a_user_named_proxy_is_not_a_proxy(fts_pki: FTSTestPKI) -> None:
    robot = fts_pki.ca.issue_user_cert("/DC=org/DC=example/CN=proxy")

    assert not is_proxy(robot.certificate)


def test_end_entity_is_the_first_non_proxy(fts_pki: FTSTestPKI) -> None:
    chain = fts_pki.plain_proxy.make_proxy().chain

    assert end_entity(chain) == fts_pki.plain_proxy.chain[1]
    with pytest.raises(ValueError, match="only proxy"):
        end_entity(chain[:2])
