"""Who is calling: the one identity model of the emulator, from a certificate chain or a token.

Mirrors mod_gridsite and fts-rest-flask's ``fts3auth`` credentials: ``user_dn`` is the
end-entity DN even when a proxy is presented, ``dn`` lists it and every proxy DN, the VO
comes from the VOMS FQANs or is the delegation id itself (a "virtual VO"), and the
delegation id is the first 16 hex digits of SHA-1(user DN + FQANs). The same
:class:`Identity` answers ``/whoami`` and decides job access, so the two cannot disagree.

A bearer token is checked by a :class:`~.tokens.TokenValidator` and, when it fails any
check, ignored as a real FTS 3.13.4 server does: the caller is then anonymous, or its
client certificate. A valid token wins over a certificate.

Root is the caller presenting the host certificate's DN. Root is granted every level: its
``/whoami`` says so, it may read ``/status/hosts`` and it reads and changes any job, like a
token user (a real FTS server grants token users "all" for every operation). The admin
endpoints (``/config``, ``/ban``, cancelling all jobs) are not emulated: they refuse everyone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from airflow_provider_fts.testing.records import HTTPError
from airflow_provider_fts.testing.voms import read_voms
from airflow_provider_fts.testing.whoami import whoami_document
from airflow_provider_fts.testing.x509 import is_proxy, oneline

if TYPE_CHECKING:
    from airflow_provider_fts.testing.tokens import TokenValidator

__all__ = [
    "ANONYMOUS",
    "Identity",
    "authenticate",
    "identity_from_chain",
    "identity_from_token",
]

_USER_LEVEL = {"transfer": "vo", "datamanagement": "all"}
_ALL_LEVEL = {op: "all" for op in ("transfer", "deleg", "config", "admin", "datamanagement")}
_BEARER = "Bearer "


@dataclass(frozen=True)
class Identity:
    """The authenticated caller of one request (or one TLS connection).

    :param user_dn: the end-entity DN, the token's ``sub`` or ``"anon"``.
    :param dn: the DNs presented (end entity first, then each proxy).
    :param voms_cred: the VOMS FQANs (certificates) in the order presented.
    :param vos: the caller's VOs; the first one owns the jobs it submits.
    :param delegation_id: the id of the caller's delegated credential (None: anonymous).
    :param method: ``"certificate"``, ``"oauth2"`` or ``"unauthenticated"``.
    :param is_root: the caller presented the host certificate.
    :param chain: the certificates presented, leaf first (certificate callers).
    :param scope: the token's scopes, space-separated (token callers).
    :param wlcg_profile: the token carries a ``wlcg.ver`` claim (token callers).
    :param token: the bearer token itself (token callers; stored with their jobs).
    :param claims: the validated claims of that token (token callers).
    """

    user_dn: str
    dn: Sequence[str]
    voms_cred: Sequence[str]
    vos: Sequence[str]
    delegation_id: str | None
    method: str
    is_root: bool = False
    chain: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    scope: str = ""
    wlcg_profile: bool = False
    token: str | None = field(default=None, repr=False, compare=False)
    claims: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Tuples: an identity is shared by every request of a connection and never changes.
        for name in ("dn", "voms_cred", "vos"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def is_anonymous(self) -> bool:
        return self.method == "unauthenticated"

    @property
    def has_certificate(self) -> bool:
        return self.method == "certificate"

    @property
    def level(self) -> dict[str, str] | list:
        """Granted levels under the default ``[roles]`` config (``[]`` for anonymous)."""
        if self.is_anonymous:
            return []
        if self.is_root or self.method == "oauth2":
            return dict(_ALL_LEVEL)
        return dict(_USER_LEVEL)

    @property
    def transfer_level(self) -> str | None:
        level = self.level
        return level.get("transfer") if isinstance(level, dict) else None

    def may_access(self, user_dn: str, vo_name: str) -> bool:
        """Whether the caller may read or change a job of ``user_dn`` in ``vo_name``."""
        level = self.transfer_level
        if level == "all":
            return True
        return level == "vo" and (vo_name in self.vos or user_dn == self.user_dn)

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
        return whoami_document(
            user_dn=self.user_dn,
            dn=self.dn,
            voms_cred=self.voms_cred,
            vos=self.vos,
            roles=[] if self.method == "oauth2" else _roles(self.voms_cred),
            level=self.level,
            delegation_id=self.delegation_id,
            method=self.method,
            is_root=self.is_root,
            oauth2_scope=self.scope,
            wlcg_profile=self.wlcg_profile,
        )


ANONYMOUS = Identity("anon", ("anon",), (), (), None, "unauthenticated")


def authenticate(
    headers: Mapping[str, str], cert_identity: Identity, validator: TokenValidator | None
) -> Identity:
    """The caller of one request: a valid bearer token wins over the connection's certificate.

    :param headers: the request headers.
    :param cert_identity: the identity of the connection's client certificate chain.
    :param validator: the token checks (None: the server has ``OAuth2 = False``).
    :raises HTTPError: 400 for a bearer token sent to a server without OAuth2.
    """
    authorization = headers.get("Authorization", "")
    if not authorization.startswith(_BEARER):  # "bearer" in lower case is not recognised
        return cert_identity
    if validator is None:
        raise HTTPError(400, "Unsupported authentication method: method=OAuth2")
    token = authorization[len(_BEARER) :].strip()
    verdict = validator.check(token)
    if verdict.ignored:  # expired, wrong audience, unknown issuer...: as if never sent
        return cert_identity
    return identity_from_token(token, verdict.claims, validator.identity(verdict.claims))


def delegation_id_for(user_dn: str, fqans: Sequence[str]) -> str:
    return hashlib.sha1((user_dn + "".join(fqans)).encode()).hexdigest()[:16]


def identity_from_chain(chain: Sequence[x509.Certificate], host_dn: str | None = None) -> Identity:
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
    user_dn = oneline(eec.subject)
    fqans = _fqans(proxies)
    delegation_id = delegation_id_for(user_dn, fqans)
    return Identity(
        user_dn=user_dn,
        dn=(user_dn, *(oneline(p.subject) for p in reversed(proxies))),
        voms_cred=tuple(fqans),
        vos=tuple(_vos(fqans)) or (delegation_id,),
        delegation_id=delegation_id,
        method="certificate",
        is_root=user_dn == host_dn,
        chain=tuple(presented[: len(proxies) + 1]),
    )


def identity_from_token(
    token: str, claims: Mapping[str, Any], whoami: Mapping[str, Any]
) -> Identity:
    """The identity of a validated bearer token.

    :param token: the token.
    :param claims: its validated claims.
    :param whoami: its ``/whoami`` document (:meth:`~.tokens.TokenValidator.identity`).
    """
    return Identity(
        user_dn=whoami["user_dn"],
        dn=whoami["dn"],
        voms_cred=whoami["voms_cred"],
        vos=whoami["vos"],
        delegation_id=whoami["delegation_id"],
        method="oauth2",
        scope=whoami["oauth2_scope"],
        wlcg_profile=whoami["wlcg_profile"],
        token=token,
        claims=dict(claims),
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
