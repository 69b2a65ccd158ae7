"""A throw-away grid PKI for tests: CA, host and user certificates, RFC 3820 and VOMS proxies.

Modelled on ``trustme``: a reader learns it in a minute::

    ca = CA()
    host = ca.issue_host_cert("localhost", "127.0.0.1")
    user = ca.issue_user_cert("/DC=org/DC=example/O=FTS Test/CN=Test User")
    proxy = user.make_proxy(voms=Voms("dteam", ["/dteam/Role=NULL/Capability=NULL"]))
    proxy.write_proxy(tmp_path / "x509up")
    ca.write_ca_dir(tmp_path / "certificates")

Everything is generated in memory (RSA 2048) and nothing is cached between CAs, so tests
never share key material by accident. Grid tools find CAs by OpenSSL subject hash in a
directory (``/etc/grid-security/certificates/<hash>.0``); :meth:`CA.write_ca_dir` builds one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from airflow_provider_fts.testing.voms import (
    VOMS_EXTENSION_OID,
    der,
    der_children,
    encode_voms_extension,
)
from airflow_provider_fts.testing.x509 import end_entity, name_of, new_serial, oneline, sign_proxy

__all__ = ["CA", "Blob", "Credential", "Voms", "subject_hash"]

_KEY_SIZE = 2048
_CLOCK_SKEW = timedelta(minutes=5)
_DN_BASE = "/DC=org/DC=example"
_VOMS_SERVER = "voms.example.org"

# ASN.1 string types OpenSSL canonicalises before hashing a name (ASN1_MASK_CANON).
_CANONICAL_STRING_TAGS = frozenset({0x0C, 0x13, 0x14, 0x16, 0x1A, 0x1C, 0x1E})
_ASCII_SPACE = frozenset(b" \t\n\v\f\r")


class Blob:
    """PEM bytes that know how to write themselves to a file (private by default)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def bytes(self) -> bytes:
        return self._data

    def __bytes__(self) -> bytes:
        return self._data

    def decode(self) -> str:
        return self._data.decode("ascii")

    def write_to_path(self, path: str | os.PathLike[str], mode: int = 0o600) -> Path:
        """Write the blob with exactly ``mode`` (applied before any byte is written)."""
        path = Path(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(self._data)
        return path

    def __repr__(self) -> str:
        # PEM blobs may hold private keys: never show the content.
        return f"<Blob {len(self._data)} bytes>"


@dataclass(frozen=True)
class Voms:
    """VOMS attributes a proxy should carry (what ``voms-proxy-init --voms dteam`` adds)."""

    vo: str
    fqans: Sequence[str] = ()
    server_uri: str = f"{_VOMS_SERVER}:15000"

    def fqan_list(self) -> list[str]:
        return list(self.fqans) or [f"/{self.vo}/Role=NULL/Capability=NULL"]


@dataclass(eq=False)
class Credential:
    """A certificate (host, user or proxy) with its private key and issuer chain."""

    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey = field(repr=False)
    chain: list[x509.Certificate]  # leaf first, then issuers, CA excluded
    ca: CA = field(repr=False)

    @property
    def dn(self) -> str:
        return oneline(self.certificate.subject)

    @property
    def cert_pem(self) -> Blob:
        return Blob(_pem(self.certificate))

    @property
    def chain_pem(self) -> Blob:
        return Blob(b"".join(_pem(cert) for cert in self.chain))

    @property
    def key_pem(self) -> Blob:
        return Blob(_key_pem(self.private_key, serialization.NoEncryption()))

    def encrypted_key_pem(self, passphrase: str | bytes) -> Blob:
        if isinstance(passphrase, str):
            passphrase = passphrase.encode()
        return Blob(_key_pem(self.private_key, serialization.BestAvailableEncryption(passphrase)))

    @property
    def proxy_pem(self) -> Blob:
        """The grid proxy file layout: leaf certificate, its key, then the rest of the chain."""
        rest = b"".join(_pem(cert) for cert in self.chain[1:])
        return Blob(self.cert_pem.bytes() + self.key_pem.bytes() + rest)

    def write_proxy(self, path: str | os.PathLike[str]) -> Path:
        return self.proxy_pem.write_to_path(path)

    def write_cert_and_key(
        self, directory: str | os.PathLike[str], passphrase: str | bytes | None = None
    ) -> tuple[Path, Path]:
        """``usercert.pem`` (the whole chain) and ``userkey.pem`` (0600) in ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        key = self.key_pem if passphrase is None else self.encrypted_key_pem(passphrase)
        cert_path = self.chain_pem.write_to_path(directory / "usercert.pem", mode=0o644)
        key_path = key.write_to_path(directory / "userkey.pem", mode=0o600)
        return cert_path, key_path

    def make_proxy(
        self,
        lifetime: timedelta = timedelta(hours=12),
        *,
        voms: Voms | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> Credential:
        """An RFC 3820 proxy signed by this credential, optionally with VOMS attributes.

        Without explicit validity the proxy starts 5 minutes ago (clock skew) and ends
        after ``lifetime``, but never after its issuers; explicit ``not_before`` and
        ``not_after`` are used exactly (to build expired or nearly expired proxies).
        """
        now = datetime.now(UTC)
        not_before = not_before or now - _CLOCK_SKEW
        chain_ends = min(cert.not_valid_after_utc for cert in self.chain)
        not_after = not_after or min(now + lifetime, chain_ends)
        key = _new_key()
        extensions = []
        if voms is not None:
            extensions.append(
                self.ca.voms_extension(
                    voms, end_entity(self.chain), not_before=not_before, not_after=not_after
                )
            )
        proxy = sign_proxy(
            self.certificate,
            self.private_key,
            key.public_key(),
            not_before=not_before,
            not_after=not_after,
            extensions=extensions,
        )
        return Credential(proxy, key, [proxy, *self.chain], self.ca)


class CA:
    """A self-signed grid-style certification authority."""

    def __init__(
        self,
        subject: str = f"{_DN_BASE}/CN=FTS Test CA",
        *,
        lifetime: timedelta = timedelta(days=3650),
    ) -> None:
        self._key = _new_key()
        now = datetime.now(UTC)
        name = name_of(subject)
        public_key = self._key.public_key()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public_key)
            .serial_number(new_serial())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self._voms_server: Credential | None = None

    @property
    def cert_pem(self) -> Blob:
        return Blob(_pem(self.certificate))

    @property
    def subject_hash(self) -> str:
        return subject_hash(self.certificate.subject)

    def write_ca_dir(self, path: str | os.PathLike[str]) -> Path:
        """A hashed CA directory (like ``/etc/grid-security/certificates``) trusting this CA."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.cert_pem.write_to_path(path / f"{self.subject_hash}.0", mode=0o644)
        return path

    def issue_host_cert(
        self, *hostnames: str, lifetime: timedelta = timedelta(days=365)
    ) -> Credential:
        """A server (and client) certificate for DNS names and IP addresses."""
        if not hostnames:
            raise ValueError("issue_host_cert needs at least one hostname or IP address")
        alt_names = [_general_name(host) for host in hostnames]
        return self._issue(
            name_of(f"{_DN_BASE}/CN={hostnames[0]}"),
            lifetime=lifetime,
            usages=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            alt_names=alt_names,
        )

    def issue_user_cert(
        self,
        dn: str = f"{_DN_BASE}/O=FTS Test/CN=Test User",
        *,
        lifetime: timedelta = timedelta(days=365),
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> Credential:
        """A personal grid certificate (client authentication) with subject ``dn``."""
        return self._issue(
            name_of(dn),
            lifetime=lifetime,
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
            not_before=not_before,
            not_after=not_after,
        )

    def voms_extension(
        self, voms: Voms, holder: x509.Certificate, *, not_before: datetime, not_after: datetime
    ) -> x509.UnrecognizedExtension:
        """A VOMS attribute-certificate extension signed by this CA's VOMS server."""
        if self._voms_server is None:
            self._voms_server = self.issue_host_cert(_VOMS_SERVER)
        value = encode_voms_extension(
            voms.vo,
            voms.fqan_list(),
            holder=holder,
            signer=self._voms_server.certificate,
            signer_key=self._voms_server.private_key,
            not_before=not_before,
            not_after=not_after,
            serial=new_serial(),
            server_uri=voms.server_uri,
        )
        return x509.UnrecognizedExtension(VOMS_EXTENSION_OID, value)

    def _issue(
        self,
        subject: x509.Name,
        *,
        lifetime: timedelta,
        usages: list[x509.ObjectIdentifier],
        alt_names: list[x509.GeneralName] | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> Credential:
        now = datetime.now(UTC)
        key = _new_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(new_serial())
            .not_valid_before(not_before or now - _CLOCK_SKEW)
            .not_valid_after(not_after or now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True, key_encipherment=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        return Credential(certificate, key, [certificate], self)

    def __repr__(self) -> str:
        return f"<CA {oneline(self.certificate.subject)}>"


def subject_hash(name: x509.Name) -> str:
    """OpenSSL's ``X509_NAME_hash`` (``openssl x509 -subject_hash``), the CA dir file name.

    SHA-1 over the canonical encoding of the name: each RDN's SET with string values
    converted to UTF8String, trimmed, ASCII-lowercased and inner whitespace collapsed;
    the first four digest bytes read little-endian.
    """
    canonical = b"".join(_canonical_rdn(rdn) for rdn in name.rdns)
    digest = hashlib.sha1(canonical).digest()
    return f"{int.from_bytes(digest[:4], 'little'):08x}"


def _canonical_rdn(rdn: x509.RelativeDistinguishedName) -> bytes:
    entries = sorted(_canonical_attribute(attribute) for attribute in rdn)
    return der(0x31, b"".join(entries))


def _canonical_attribute(attribute: x509.NameAttribute) -> bytes:
    """The AttributeTypeAndValue DER as OpenSSL canonicalises it for hashing."""
    encoded = x509.Name([x509.RelativeDistinguishedName([attribute])]).public_bytes()
    ((_, rdn_set),) = der_children(encoded)
    ((_, rdn),) = der_children(rdn_set)
    ((_, type_and_value),) = der_children(rdn)
    (oid_tag, oid), (value_tag, value) = der_children(type_and_value)
    if value_tag in _CANONICAL_STRING_TAGS:
        value_tag, value = 0x0C, _canonical_text(attribute.value)
    return der(0x30, der(oid_tag, oid) + der(value_tag, value))


def _canonical_text(value: str | bytes) -> bytes:
    text = value.encode() if isinstance(value, str) else value
    text = text.strip(bytes(_ASCII_SPACE))
    out = bytearray()
    previous_space = False
    for byte in text:
        if byte in _ASCII_SPACE:
            if not previous_space:
                out.append(0x20)
            previous_space = True
            continue
        previous_space = False
        out.append(byte + 32 if 0x41 <= byte <= 0x5A else byte)
    return bytes(out)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _key_usage(**enabled: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    return x509.KeyUsage(**(flags | enabled))


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey, encryption: serialization.KeySerializationEncryption) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
