"""Bearer tokens as a real FTS 3.13.4 server checks them, for the emulator.

:class:`TokenValidator` trusts configured issuers, fetches their JWKS once (over HTTPS,
trusting the test CA) and validates a JWT offline: RS256/ES256 signature, ``exp``,
``nbf``, ``iat`` and an audience among the authorised ones. A token that fails any check
is *ignored* (:attr:`Verdict.ignored`): FTS then answers as for the anonymous user, never
with a 401. :meth:`TokenValidator.identity` derives the ``/whoami`` document of a token
user; :meth:`TokenValidator.transfer_token_error` checks a per-file storage token (no
audience check) and gives the 400 message FTS would. :class:`TestIssuer` is a built-in
issuer (a signing key the emulator trusts) for users without an identity provider.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from airflow_provider_fts.client.oidc_wire import b64url_decode, jwt_claims
from airflow_provider_fts.testing.whoami import whoami_document

__all__ = [
    "WLCG_ANY_AUDIENCE",
    "TestIssuer",
    "TokenValidator",
    "TrustedIssuer",
    "Verdict",
    "anonymous_whoami",
    "token_id",
    "token_record",
]

WLCG_ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"
_LEVELS = ("transfer", "deleg", "config", "admin", "datamanagement")
_REQUIRED_CLAIMS = ("iss", "nbf", "exp", "scope", "aud")  # what FTS stores in t_token
_JWKS_TTL = 24 * 3600.0  # FTS keeps a provider's keys a day
FAILED_TO_VALIDATE = "Failed to validate access-token"

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class TrustedIssuer:
    """One ``[providers]`` entry of the server.

    :param issuer: the issuer URL as the tokens carry it.
    :param vo: the VO configured for the provider (3.13.4 finds it only for an ``iss``
        with a trailing slash).
    :param keys: signing keys by ``kid``; None to fetch the issuer's JWKS.
    """

    issuer: str
    vo: str | None = None
    keys: Mapping[str, PublicKey] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one token check: claims when valid, else why it was ignored."""

    claims: Mapping[str, Any] | None = field(default=None, repr=False)
    reason: str | None = None  # "not a JWT", "unknown issuer", "bad signature", "expired", ...

    @property
    def ignored(self) -> bool:
        return self.claims is None


def token_id(token: str) -> str:
    """The ``t_token`` id (and ``src_token_id``/``dst_token_id``): SHA-1(token)[:16]."""
    return hashlib.sha1(token.encode()).hexdigest()[:16]


def token_record(token: str, claims: Mapping[str, Any]) -> dict[str, Any]:
    """The ``t_token`` row FTS writes for a submitted token (issuer WITH trailing slash)."""
    nbf, exp = int(claims["nbf"]), int(claims["exp"])
    issuer = str(claims["iss"])
    return {
        "token_id": token_id(token),
        "access_token": token,
        "nbf": nbf,
        "exp": exp,
        "refresh_after": nbf + (exp - nbf) // 2,
        "refresh_token": None,
        "issuer": issuer if issuer.endswith("/") else issuer + "/",
        "scope": claims["scope"],
        "audience": claims["aud"],
    }


def missing_claim_message(claims: Mapping[str, Any]) -> str | None:
    """FTS's 400 for a token lacking a claim it stores (``Token does not contain a(n) ...``)."""
    for claim in _REQUIRED_CLAIMS:
        if claims.get(claim) in (None, ""):
            article = "an" if claim[0] in "aeiou" else "a"
            return f"Token does not contain {article} {claim} claim"
    return None


def anonymous_whoami() -> dict[str, Any]:
    return whoami_document(
        user_dn="anon",
        dn=["anon"],
        voms_cred=[],
        vos=[],
        roles=[],
        level=[],
        delegation_id=None,
        method="unauthenticated",
    )


class TokenValidator:
    """Validates bearer tokens offline as FTS does with ``ValidateAccessTokenOffline``.

    :param issuers: the trusted providers.
    :param audiences: the ``AuthorizedAudiences`` (e.g. the FTS endpoint URL).
    :param verify: TLS verification for JWKS fetches: True or a CA file/directory.
    :param gridmap: token subjects mapped to a VO (the first VO rule).
    :param clock: wall-clock seconds.
    """

    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        audiences: Sequence[str] = (WLCG_ANY_AUDIENCE,),
        *,
        verify: bool | str = True,
        gridmap: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {i.issuer.rstrip("/"): i for i in issuers}
        self.audiences = tuple(audiences)
        self._verify = verify
        self._gridmap = dict(gridmap or {})
        self._clock = clock
        self._keys: dict[str, tuple[float, dict[str, PublicKey]]] = {}
        self.jwks_fetches = 0

    def check(self, token: str) -> Verdict:
        """The verdict on an ``Authorization: Bearer`` token (audience checked)."""
        verdict = self._validate(token)
        if verdict.ignored:
            return verdict
        audiences = _as_list(verdict.claims.get("aud"))  # type: ignore[union-attr]
        if not any(aud in self.audiences for aud in audiences):
            return Verdict(reason="wrong audience")
        return verdict

    def transfer_token_error(self, token: str) -> str | None:
        """FTS's 400 message for a per-file token, or None if it passes (no audience check)."""
        claims = jwt_claims(token)
        if claims is None or not claims.get("iss"):
            return "Token does not contain an iss claim"
        verdict = self._validate(token)
        if verdict.ignored:
            return FAILED_TO_VALIDATE
        return missing_claim_message(claims)

    def identity(self, claims: Mapping[str, Any]) -> dict[str, Any]:
        """The ``GET /whoami`` document of a validated token (the shape FTS 3.13.4 answers)."""
        subject, issuer = str(claims["sub"]), str(claims["iss"])
        scopes = str(claims.get("scope") or "").split()
        vos = self._vos(subject, issuer, claims.get("wlcg.groups"))
        return whoami_document(
            user_dn=subject,
            dn=[subject],
            voms_cred=scopes,
            vos=vos,
            roles=[],
            level=dict.fromkeys(_LEVELS, "all"),
            delegation_id=delegation_id(issuer, subject),
            method="oauth2",
            oauth2_scope=" ".join(scopes),
            wlcg_profile="wlcg.ver" in claims,
        )

    def _vos(self, subject: str, issuer: str, groups: Any) -> list[str]:
        if subject in self._gridmap:
            return [self._gridmap[subject]]
        # 3.13.4 looks the provider's VO up by the issuer as the token carries it, while
        # the configuration keys end in "/": only an iss with a trailing slash finds it.
        trusted = self._issuers.get(issuer.rstrip("/"))
        if trusted is not None and trusted.vo and issuer.endswith("/"):
            return [trusted.vo]
        if isinstance(groups, list) and groups:
            vos: list[str] = []
            for group in groups:
                vo = str(group).removeprefix("/")
                if vo not in vos:
                    vos.append(vo)
            return vos
        return [urlsplit(issuer).hostname or issuer]

    def _validate(self, token: str) -> Verdict:
        parts = token.split(".")
        header = _json_part(parts[0]) if len(parts) == 3 else None
        claims = jwt_claims(token)
        if header is None or claims is None:
            return Verdict(reason="not a JWT")
        trusted = self._issuers.get(str(claims.get("iss") or "").rstrip("/"))
        if trusted is None:
            return Verdict(reason="unknown issuer")
        key = self._key(trusted, header.get("kid"))
        if key is None or not _signature_ok(key, header.get("alg"), parts):
            return Verdict(reason="bad signature")
        return _time_verdict(claims, self._clock())

    def _key(self, trusted: TrustedIssuer, kid: Any) -> PublicKey | None:
        keys = trusted.keys if trusted.keys is not None else self._fetched_keys(trusted)
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        return keys.get(str(kid))

    def _fetched_keys(self, trusted: TrustedIssuer) -> Mapping[str, PublicKey]:
        cached = self._keys.get(trusted.issuer)
        now = self._clock()
        if cached is None or now - cached[0] > _JWKS_TTL:
            cached = (now, self._fetch_jwks(trusted.issuer))
            self._keys[trusted.issuer] = cached
        return cached[1]

    def _fetch_jwks(self, issuer: str) -> dict[str, PublicKey]:
        base = issuer.rstrip("/")
        discovery = requests.get(
            base + "/.well-known/openid-configuration", verify=self._verify, timeout=10
        ).json()
        jwks = requests.get(discovery["jwks_uri"], verify=self._verify, timeout=10).json()
        self.jwks_fetches += 1
        return keys_from_jwks(jwks)


def delegation_id(issuer: str, subject: str) -> str:
    """SHA-1(issuer without trailing slash + sub), first 16 hex digits."""
    return hashlib.sha1((issuer.rstrip("/") + subject).encode()).hexdigest()[:16]


def keys_from_jwks(jwks: Mapping[str, Any]) -> dict[str, PublicKey]:
    """The RSA and P-256 signing keys of a JWKS document, by ``kid``."""
    keys: dict[str, PublicKey] = {}
    for index, jwk in enumerate(jwks.get("keys", [])):
        key = _public_key(jwk)
        if key is not None and jwk.get("use", "sig") == "sig":
            keys[str(jwk.get("kid", index))] = key
    return keys


def _public_key(jwk: Mapping[str, Any]) -> PublicKey | None:
    if jwk.get("kty") == "RSA":
        n, e = _b64_int(jwk["n"]), _b64_int(jwk["e"])
        return rsa.RSAPublicNumbers(e, n).public_key()
    if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        x, y = _b64_int(jwk["x"]), _b64_int(jwk["y"])
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    return None


def _b64_int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def _json_part(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(b64url_decode(text))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _signature_ok(key: PublicKey, alg: Any, parts: Sequence[str]) -> bool:
    signed = f"{parts[0]}.{parts[1]}".encode("ascii")
    try:
        signature = b64url_decode(parts[2])
        if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            return True
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey) and len(signature) == 64:
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256()))
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def _time_verdict(claims: Mapping[str, Any], now: float) -> Verdict:
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    if not isinstance(exp, (int, float)) or exp <= now:
        return Verdict(reason="expired")
    if isinstance(nbf, (int, float)) and nbf > now:
        return Verdict(reason="not yet valid")
    if isinstance(iat, (int, float)) and iat > now:
        return Verdict(reason="issued in the future")
    return Verdict(claims=dict(claims))


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


class TestIssuer:
    """A built-in token issuer: an ES256 key the emulator trusts, and tokens signed with it.

    :param issuer: the issuer URL the tokens carry.
    :param vo: the VO configured for it (see :class:`TrustedIssuer`).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, issuer: str = "https://fts-emulator.invalid/", vo: str | None = None):
        self.issuer = issuer
        self.vo = vo
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.kid = hashlib.sha1(str(id(self._key)).encode()).hexdigest()[:8]

    def __repr__(self) -> str:
        return f"TestIssuer({self.issuer!r})"

    @property
    def trusted(self) -> TrustedIssuer:
        return TrustedIssuer(self.issuer, self.vo, {self.kid: self._key.public_key()})

    def mint(
        self,
        subject: str,
        audience: str | Sequence[str],
        scope: str = "fts",
        lifetime: float = 3600,
        **claims: Any,
    ) -> str:
        """A signed JWT access token (WLCG profile) for ``subject``.

        :param subject: the ``sub`` claim.
        :param audience: the ``aud`` claim (a URL or a list of them).
        :param scope: the ``scope`` claim; None leaves it out.
        :param lifetime: seconds from now to ``exp``.
        :param claims: more claims (``wlcg.groups=[...]``; a None value removes a claim).
        """
        now = int(time.time())
        payload: dict[str, Any] = {
            "wlcg.ver": "1.0",
            "iss": self.issuer,
            "sub": subject,
            "aud": audience if isinstance(audience, str) else list(audience),
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + int(lifetime),
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return self._sign(payload)

    def _sign(self, payload: Mapping[str, Any]) -> str:
        header = {"alg": "ES256", "typ": "at+jwt", "kid": self.kid}
        signed = f"{_b64_json(header)}.{_b64_json(payload)}"
        der = self._key.sign(signed.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signed}.{_b64(raw)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_json(value: Mapping[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())
