"""X.509 helpers shared by the client and the emulator (grid DNs, RFC 3820 proxies).

Grid services name users in OpenSSL's legacy one-line format (``/DC=org/CN=Jane``) and
authenticate them with proxy certificates (RFC 3820): short-lived certificates signed by
the user's own certificate, whose subject is the issuer's subject plus one ``CN``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

__all__ = [
    "PROXY_CERT_INFO_INHERIT_ALL",
    "PROXY_CERT_INFO_OID",
    "build_proxy",
    "chain_not_after",
    "dn_string",
    "end_entity",
    "is_proxy",
    "key_matches",
    "load_pem_chain",
    "name_from_dn",
    "not_after",
    "random_serial",
]

PROXY_CERT_INFO_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.14")
# Globus Toolkit 3 "draft" proxies used this OID before RFC 3820 was published.
_DRAFT_PROXY_CERT_INFO_OID = ObjectIdentifier("1.3.6.1.4.1.3536.1.222")
# ProxyCertInfo ::= SEQUENCE { proxyPolicy SEQUENCE { policyLanguage id-ppl-inheritAll } }
PROXY_CERT_INFO_INHERIT_ALL = bytes.fromhex("300C300A06082B06010505071501")

_LEGACY_PROXY_CNS = ("proxy", "limited proxy")

# OpenSSL short names (what X509_NAME_oneline, hence mod_gridsite, prints).
_SHORT_NAMES: dict[ObjectIdentifier, str] = {
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.USER_ID: "UID",
    NameOID.STREET_ADDRESS: "street",
    NameOID.TITLE: "title",
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
}
_OIDS_BY_SHORT_NAME = {name.lower(): oid for oid, name in _SHORT_NAMES.items()}
# A new RDN starts at a slash followed by "<attribute>=", so values may contain slashes.
_RDN_START = re.compile(r"/(?=[A-Za-z][A-Za-z0-9.]*=)")

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def dn_string(name: x509.Name) -> str:
    """The DN in slash format, RDNs in encoded order, as mod_gridsite and FTS print it."""
    parts = []
    for rdn in name.rdns:
        for attribute in rdn:
            label = _SHORT_NAMES.get(attribute.oid, attribute.oid.dotted_string)
            value = attribute.value
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            parts.append(f"/{label}={value}")
    return "".join(parts)


def name_from_dn(dn: str) -> x509.Name:
    """Parse a slash-format DN (``/DC=org/CN=Jane``) into a Name, keeping the RDN order."""
    if not dn.startswith("/"):
        raise ValueError(f"a grid DN starts with '/': {dn!r}")
    rdns = []
    for part in _RDN_START.split(dn[1:]):
        label, _, value = part.partition("=")
        oid = _OIDS_BY_SHORT_NAME.get(label.lower())
        if oid is None:
            try:
                oid = ObjectIdentifier(label)
            except ValueError:
                raise ValueError(f"unknown DN attribute {label!r} in {dn!r}") from None
        rdns.append(x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)]))
    return x509.Name(rdns)


def is_proxy(cert: x509.Certificate) -> bool:
    """True for an RFC 3820 (or draft) proxy, or a legacy Globus ``CN=proxy`` proxy."""
    for extension in cert.extensions:
        if extension.oid in (PROXY_CERT_INFO_OID, _DRAFT_PROXY_CERT_INFO_OID):
            return True
    rdns = cert.subject.rdns
    if len(rdns) < 2 or x509.Name(rdns[:-1]) != cert.issuer:
        return False
    last = list(rdns[-1])
    return (
        len(last) == 1 and last[0].oid == NameOID.COMMON_NAME and last[0].value in _LEGACY_PROXY_CNS
    )


def end_entity(chain: Sequence[x509.Certificate]) -> x509.Certificate:
    """The first certificate that is not a proxy: the one that carries the user's identity."""
    for cert in chain:
        if not is_proxy(cert):
            return cert
    raise ValueError("the chain holds only proxy certificates, no end-entity certificate")


def load_pem_chain(data: bytes | str) -> list[x509.Certificate]:
    """Every certificate of a PEM text, in order (other PEM blocks, such as keys, are skipped).

    Raises ValueError when there is no certificate or one does not parse.
    """
    if isinstance(data, str):
        data = data.encode()
    return x509.load_pem_x509_certificates(data)


def not_after(cert: x509.Certificate) -> datetime:
    """When the certificate expires (aware, UTC)."""
    return cert.not_valid_after_utc


def chain_not_after(chain: Iterable[x509.Certificate]) -> datetime:
    """When the first certificate of a chain expires: a proxy is no better than its issuers."""
    return min(not_after(cert) for cert in chain)


def key_matches(cert: x509.Certificate, private_key: PrivateKey) -> bool:
    """Whether the private key belongs to the certificate's public key."""
    return cert.public_key() == private_key.public_key()


def random_serial() -> int:
    """A fresh positive 63-bit serial (fits a signed 64-bit integer, as RFC 5280 suggests)."""
    return secrets.randbelow(2**63 - 1) + 1


def build_proxy(
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    public_key: PublicKey,
    *,
    not_before: datetime,
    not_after: datetime,
    serial: int | None = None,
    extra_extensions: Iterable[x509.ExtensionType] = (),
) -> x509.Certificate:
    """An RFC 3820 proxy of ``issuer_cert`` for ``public_key``, as grid tools and FTS make one.

    The subject reuses the issuer's RDNs as they are (keeping their string encodings, so
    servers comparing names byte-wise accept it) plus ``CN=<serial>``.
    """
    serial = serial or random_serial()
    subject = x509.Name(
        [
            *issuer_cert.subject.rdns,
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, str(serial))]),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .issuer_name(issuer_cert.subject)
        .subject_name(subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.UnrecognizedExtension(PROXY_CERT_INFO_OID, PROXY_CERT_INFO_INHERIT_ALL),
            critical=True,
        )
    )
    issuer_ski = _subject_key_identifier(issuer_cert)
    if issuer_ski is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
            critical=False,
        )
    for extension in extra_extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, _signature_hash(issuer_key))


def _subject_key_identifier(cert: x509.Certificate) -> x509.SubjectKeyIdentifier | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | None:
    # Ed25519/Ed448 sign without a separate digest.
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()
