"""Server side of FTS proxy delegation: CSR cache, proxy checks, stored credentials.

Behaves like ``controllers/delegation.py`` of fts-rest-flask 3.13: the
CSR (subject ``O=Dummy``) is cached per delegation id until a PUT succeeds, the PUT body
is checked in the server's order with its exact messages, and the stored credential
terminates at the earliest ``notAfter`` of the PUT chain.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from airflow_provider_fts.testing.records import HTTPError

__all__ = ["Delegation", "DelegationStore", "subject_text"]

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s.+?-----END CERTIFICATE-----", re.DOTALL)
_MIN_LIFETIME = timedelta(hours=1)


@dataclass
class Delegation:
    """A stored delegated credential (the server's ``t_credential`` row)."""

    delegation_id: str
    user_dn: str
    termination_time: datetime  # naive UTC, like the server's DB
    voms_attrs: str  # FQANs joined by spaces, "" without VOMS
    proxy_pem: bytes  # proxy + private key + issuer chain: never log it

    def __repr__(self) -> str:
        return (
            f"Delegation({self.delegation_id!r}, {self.user_dn!r}, "
            f"termination_time={self.termination_time.isoformat()})"
        )


@dataclass
class _PendingRequest:
    user_dn: str
    csr_pem: str
    key: rsa.RSAPrivateKey
    voms_attrs: str

    def __repr__(self) -> str:
        return f"_PendingRequest({self.user_dn!r})"


class DelegationStore:
    """Thread-safe delegation state of one emulator."""

    def __init__(self, clock=None) -> None:
        self._clock = clock or _utcnow
        self._lock = threading.Lock()
        self._pending: dict[str, _PendingRequest] = {}
        self._stored: dict[str, Delegation] = {}

    def request(self, delegation_id: str, user_dn: str, fqans: list[str], key_bits: int) -> str:
        """The CSR to sign; the same one again until a credential PUT succeeds."""
        with self._lock:
            pending = self._pending.get(delegation_id)
            if pending and pending.user_dn == user_dn and pending.key.key_size == key_bits:
                return pending.csr_pem
        key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dummy")]))
            .sign(key, hashes.SHA256())
        )
        pending = _PendingRequest(
            user_dn, csr.public_bytes(serialization.Encoding.PEM).decode(), key, " ".join(fqans)
        )
        with self._lock:
            self._pending[delegation_id] = pending
        return pending.csr_pem

    def put_credential(self, delegation_id: str, user_dn: str, body: bytes) -> Delegation:
        """Check and store a signed proxy chain, in the server's order and with its messages."""
        with self._lock:
            pending = self._pending.get(delegation_id)
        if pending is None or pending.user_dn != user_dn:
            raise HTTPError(400, "No credential cache found")
        try:
            chain = _validate_proxy(body, pending.key)
        except ValueError as problem:
            raise HTTPError(400, f"Could not process the proxy: {problem}") from None
        key_pem = pending.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        pems = [c.public_bytes(serialization.Encoding.PEM) for c in chain]
        delegation = Delegation(
            delegation_id=delegation_id,
            user_dn=user_dn,
            termination_time=min(c.not_valid_after_utc for c in chain).replace(tzinfo=None),
            voms_attrs=pending.voms_attrs,
            proxy_pem=pems[0] + key_pem + b"".join(pems[1:]),
        )
        with self._lock:
            self._stored[delegation_id] = delegation
            self._pending.pop(delegation_id, None)
        return delegation

    def get(self, delegation_id: str) -> Delegation | None:
        with self._lock:
            return self._stored.get(delegation_id)

    def delete(self, delegation_id: str) -> bool:
        with self._lock:
            return self._stored.pop(delegation_id, None) is not None

    def forget_request(self, delegation_id: str) -> None:
        """Drop a pending certificate request (as if none had been asked for)."""
        with self._lock:
            self._pending.pop(delegation_id, None)

    def add(
        self,
        delegation_id: str,
        user_dn: str,
        lifetime: timedelta = timedelta(hours=12),
        fqans: list[str] | tuple[str, ...] = (),
    ) -> Delegation:
        """Store a delegation directly, without the protocol (test setup)."""
        delegation = Delegation(
            delegation_id, user_dn, self._now() + lifetime, " ".join(fqans), proxy_pem=b""
        )
        with self._lock:
            self._stored[delegation_id] = delegation
        return delegation

    def set_lifetime(self, delegation_id: str, remaining: timedelta) -> None:
        """Make a stored delegation end ``remaining`` from now (negative: already expired)."""
        with self._lock:
            self._stored[delegation_id].termination_time = self._now() + remaining

    def check_for_submit(self, delegation_id: str, user_dn: str) -> None:
        """Raise the 419 a real server gives a certificate user without a usable delegation."""
        delegation = self.get(delegation_id)
        if delegation is None or delegation.user_dn != user_dn:
            raise HTTPError(419, f'No delegation found for "{user_dn}"')
        remaining = delegation.termination_time - self._now()
        if remaining <= timedelta(0):
            seconds = int(-remaining.total_seconds())
            raise HTTPError(
                419, f"The delegated credentials expired {seconds} seconds ago ({delegation_id})"
            )
        if remaining < _MIN_LIFETIME:
            raise HTTPError(
                419, f"The delegated credentials has less than one hour left ({delegation_id})"
            )

    def _now(self) -> datetime:
        return self._clock().replace(tzinfo=None, microsecond=0)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def subject_text(name: x509.Name) -> str:
    """A name as OpenSSL's one-line text (``DC=org, O=Test, CN=x``), forward order."""
    parts = []
    for rdn in name.rdns:
        for attribute in rdn:
            label = attribute.rfc4514_attribute_name
            parts.append(f"{label}={attribute.value}")
    return ", ".join(parts)


def _validate_proxy(body: bytes, key: rsa.RSAPrivateKey) -> list[x509.Certificate]:
    chain = []
    for block in _PEM_CERT.findall(body or b""):
        try:
            chain.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            break
    if len(chain) < 2:
        raise ValueError("Malformed proxy")
    proxy, issuer = chain[0], chain[1]
    if proxy.public_key().public_numbers() != key.public_key().public_numbers():
        raise ValueError("The proxy does not match the stored associated private key")
    if not _signed_by(proxy, issuer):
        raise ValueError("Failed to verify the proxy, maybe signed with the wrong private key?")
    subject, issuer_name = subject_text(proxy.subject), subject_text(proxy.issuer)
    if subject.split(", ")[:-1] != issuer_name.split(", "):
        raise ValueError(
            f"The subject and the issuer of the proxy do not match: {subject} != {issuer_name}"
        )
    if not subject.split(", ")[-1].startswith("CN="):
        raise ValueError("Missing trailing Common Name in the proxy")
    return chain


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    public_key = issuer.public_key()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(
                cert.signature,
                cert.tbs_certificate_bytes,
                padding.PKCS1v15(),
                cert.signature_hash_algorithm,
            )
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(
                cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
            )
        else:
            return False
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True
