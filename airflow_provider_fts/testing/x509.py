"""The emulator's own grid X.509 code: names as mod_gridsite prints them, and proxies.

The emulator checks the credentials the client builds, so it must not share the client's
implementation of the same rules: a bug written once would pass on both sides. What is
here follows the server side (mod_gridsite's identity, ``X509_NAME_oneline``) and the grid
tools that make proxies (``grid-proxy-init``), not ``airflow_provider_fts.client.certs``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

__all__ = [
    "PROXY_POLICY_OID",
    "end_entity",
    "is_proxy",
    "name_of",
    "new_serial",
    "oneline",
    "sign_proxy",
]

#: id-pe-proxyCertInfo (RFC 3820) and the GT3 pre-standard OID servers still accept.
PROXY_POLICY_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.14")
_GT3_PROXY_OID = ObjectIdentifier("1.3.6.1.4.1.3536.1.222")
# DER of ProxyCertInfo { proxyPolicy { policyLanguage id-ppl-inheritAll (1.3.6.1.5.5.7.21.1) } }
_INHERIT_ALL = b"\x30\x0c\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x15\x01"

# The labels OpenSSL's X509_NAME_oneline uses where they differ from RFC 4514's.
_ONELINE_LABELS = {NameOID.EMAIL_ADDRESS: "emailAddress", NameOID.SERIAL_NUMBER: "serialNumber"}
_LABEL_OIDS = {
    "dc": NameOID.DOMAIN_COMPONENT,
    "c": NameOID.COUNTRY_NAME,
    "st": NameOID.STATE_OR_PROVINCE_NAME,
    "l": NameOID.LOCALITY_NAME,
    "o": NameOID.ORGANIZATION_NAME,
    "ou": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "cn": NameOID.COMMON_NAME,
    "uid": NameOID.USER_ID,
    "emailaddress": NameOID.EMAIL_ADDRESS,
    "serialnumber": NameOID.SERIAL_NUMBER,
}
_NEXT_RDN = re.compile(r"/(?=[A-Za-z][\w.]*=)")


def oneline(name: x509.Name) -> str:
    """``/DC=org/CN=Jane``: the subject as mod_gridsite hands it to FTS (encoded RDN order)."""
    return "".join(
        f"/{_ONELINE_LABELS.get(attr.oid, attr.rfc4514_attribute_name)}={attr.value}"
        for rdn in name.rdns
        for attr in rdn
    )


def name_of(dn: str) -> x509.Name:
    """The Name a test PKI puts in a certificate for a slash DN (one attribute per RDN)."""
    if not dn.startswith("/"):
        raise ValueError(f"a grid DN starts with '/': {dn!r}")
    rdns = []
    for part in _NEXT_RDN.split(dn[1:]):
        label, _, value = part.partition("=")
        oid = _LABEL_OIDS.get(label.lower()) or ObjectIdentifier(label)
        rdns.append(x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)]))
    return x509.Name(rdns)


def is_proxy(cert: x509.Certificate) -> bool:
    """Whether the server treats ``cert`` as a proxy: a ProxyCertInfo extension, or a
    legacy Globus proxy (the issuer's subject plus ``CN=proxy`` or ``CN=limited proxy``)."""
    oids = {ext.oid for ext in cert.extensions}
    if PROXY_POLICY_OID in oids or _GT3_PROXY_OID in oids:
        return True
    *head, last = cert.subject.rdns or [None]
    if last is None or x509.Name(head) != cert.issuer:
        return False
    values = [attr.value for attr in last if attr.oid == NameOID.COMMON_NAME]
    return values in (["proxy"], ["limited proxy"])


def end_entity(chain: Sequence[x509.Certificate]) -> x509.Certificate:
    """The user's own certificate: the first of the chain that is not a proxy."""
    return next(cert for cert in chain if not is_proxy(cert))


def new_serial() -> int:
    """A positive 63-bit serial, as grid tools give proxies (fits a signed 64-bit integer)."""
    return max(1, x509.random_serial_number() >> 96)


def sign_proxy(
    issuer: x509.Certificate,
    issuer_key: rsa.RSAPrivateKey,
    public_key: rsa.RSAPublicKey,
    *,
    not_before: datetime,
    not_after: datetime,
    extensions: Iterable[x509.ExtensionType] = (),
) -> x509.Certificate:
    """An RFC 3820 impersonation proxy, as ``grid-proxy-init -rfc`` makes one.

    Its subject is the issuer's plus ``CN=<serial>``; it carries a critical ProxyCertInfo
    (inherit all) and the key usages a TLS client needs.
    """
    serial = new_serial()
    cn = x509.NameAttribute(NameOID.COMMON_NAME, str(serial))
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder(
            issuer_name=issuer.subject,
            subject_name=x509.Name([*issuer.subject.rdns, x509.RelativeDistinguishedName([cn])]),
            public_key=public_key,
            serial_number=serial,
            not_valid_before=not_before,
            not_valid_after=not_after,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.UnrecognizedExtension(PROXY_POLICY_OID, _INHERIT_ALL), critical=True)
    )
    try:
        key_id = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        key_id = None
    if key_id is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_id)
        builder = builder.add_extension(aki, critical=False)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())
