"""Who is calling: the identity FTS derives from a client certificate chain or a token.

Mirrors mod_gridsite + ``fts3auth/credentials.py`` (REFERENCE section 1): ``user_dn`` is
the end-entity DN even when a proxy is presented, ``dn`` lists it and every proxy DN, the
VO comes from the VOMS FQANs or is the delegation id itself (a "virtual VO"), and the
delegation id is the first 16 hex digits of SHA-1(user DN + FQANs).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from airflow_provider_fts.client.certs import dn_string, is_proxy
from airflow_provider_fts.testing.voms import read_voms

__all__ = ["ANONYMOUS", "BASE_ID", "Caller", "caller_from_chain", "caller_from_token"]

BASE_ID = uuid.UUID("01874efb-4735-4595-bc9c-591aef8240c9")

_USER_LEVEL = {"transfer": "vo", "datamanagement": "all"}
_ALL_LEVEL = {op: "all" for op in ("transfer", "deleg", "config", "admin", "datamanagement")}


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request (or one TLS connection)."""

    user_dn: str
    dn: tuple[str, ...]
    voms_cred: tuple[str, ...]
    vos: tuple[str, ...]
    delegation_id: str | None
    method: str  # "certificate", "oauth2" or "unauthenticated"
    is_root: bool = False
    chain: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    scope: str = ""

    @property
    def is_anonymous(self) -> bool:
        return self.method == "unauthenticated"

    @property
    def has_certificate(self) -> bool:
        return self.method == "certificate"

    @property
    def key_bits(self) -> int:
        """Key size of the presented certificate: the size of the CSR FTS hands out."""
        if self.chain:
            return self.chain[0].public_key().key_size
        return 2048

    @property
    def chain_pem(self) -> bytes:
        """The client certificates as presented (leaf first), like ``SSL_CLIENT_CERT*``."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def whoami(self) -> dict:
        """The ``GET /whoami`` document."""
        body = {
            "user_dn": self.user_dn,
            "dn": list(self.dn),
            "base_id": str(BASE_ID),
            "voms_cred": list(self.voms_cred),
            "vos": list(self.vos),
            "vos_id": [str(uuid.uuid5(BASE_ID, vo)) for vo in self.vos],
            "roles": _roles(self.voms_cred),
            "level": self._level(),
            "delegation_id": self.delegation_id,
            "method": self.method,
            "is_root": self.is_root,
        }
        if self.method == "oauth2":
            body["oauth2_scope"] = self.scope
            body["wlcg_profile"] = True
        return body

    def _level(self) -> dict | list:
        if self.is_anonymous:
            return []
        if self.is_root or self.method == "oauth2":
            return dict(_ALL_LEVEL)
        return dict(_USER_LEVEL)


ANONYMOUS = Caller("anon", ("anon",), (), (), None, "unauthenticated")


def delegation_id_for(user_dn: str, fqans: Sequence[str]) -> str:
    return hashlib.sha1((user_dn + "".join(fqans)).encode()).hexdigest()[:16]


def caller_from_chain(chain: Sequence[x509.Certificate], host_dn: str | None = None) -> Caller:
    """The identity of a verified client chain (leaf first; CA certificates are ignored)."""
    presented = [cert for cert in chain if not _is_ca(cert)]
    if not presented:
        return ANONYMOUS
    proxies: list[x509.Certificate] = []
    for cert in presented:
        if not is_proxy(cert):
            eec = cert
            break
        proxies.append(cert)
    else:
        return ANONYMOUS
    user_dn = dn_string(eec.subject)
    fqans = _fqans(proxies)
    delegation_id = delegation_id_for(user_dn, fqans)
    return Caller(
        user_dn=user_dn,
        dn=(user_dn, *(dn_string(p.subject) for p in reversed(proxies))),
        voms_cred=tuple(fqans),
        vos=tuple(_vos(fqans)) or (delegation_id,),
        delegation_id=delegation_id,
        method="certificate",
        is_root=user_dn == host_dn,
        chain=tuple(presented[: len(proxies) + 1]),
    )


def caller_from_token(claims: Mapping[str, str]) -> Caller:
    """The identity of a bearer-token user (claims ``sub``, ``iss``, optional ``vo``, ``scope``)."""
    subject, issuer = claims["sub"], claims["iss"]
    vo = claims.get("vo") or urlsplit(issuer).hostname or issuer
    return Caller(
        user_dn=subject,
        dn=(subject,),
        voms_cred=(),
        vos=(vo,),
        delegation_id=hashlib.sha1((issuer + subject).encode()).hexdigest()[:16],
        method="oauth2",
        scope=claims.get("scope", ""),
    )


def _fqans(proxies: list[x509.Certificate]) -> list[str]:
    # The newest proxy carrying an attribute certificate wins, as in voms-proxy-info.
    for proxy in proxies:
        _, fqans = read_voms(proxy)
        if fqans:
            return fqans
    return []


def _vos(fqans: Sequence[str]) -> list[str]:
    vos: list[str] = []
    for fqan in fqans:
        vo = fqan.split("/Role=")[0].strip("/")
        if vo and vo not in vos:
            vos.append(vo)
    return vos


def _roles(fqans: Sequence[str]) -> list[str]:
    roles: list[str] = []
    for fqan in fqans:
        role = fqan.partition("/Role=")[2].split("/")[0]
        if role and role != "NULL" and role not in roles:
            roles.append(role)
    return roles


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return cert.subject == cert.issuer
