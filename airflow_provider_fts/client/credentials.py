"""Who we are to FTS (proxy, certificate or token) and how we check who FTS is.

Every credential problem is found here, before any request, and reported as an
:class:`FTSCredentialError` naming the setting to fix: a missing or malformed file, a key
that does not belong to its certificate, a wrong passphrase, an expired proxy, or one too
short-lived to submit (FTS refuses submissions whose delegated proxy has under an hour left).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from airflow_provider_fts.client.bearer import Bearer, StaticToken
from airflow_provider_fts.client.certs import (
    PrivateKey,
    chain_not_after,
    dn_string,
    end_entity,
    is_proxy,
    key_matches,
    load_pem_chain,
)
from airflow_provider_fts.client.errors import FTSCredentialError

__all__ = [
    "CERT_FILE",
    "CERT_PEM",
    "GRID_CA_DIR",
    "KEY_FILE",
    "KEY_PEM",
    "MIN_SUBMIT_LIFETIME",
    "PROXY_FILE",
    "PROXY_PEM",
    "Credentials",
    "Trust",
    "format_duration",
    "private_key_blocks",
    "private_temp_file",
]

# The connection fields a credential comes from; errors name them so the user knows what
# to change. No path field contains a word Airflow treats as secret ("proxy", "token",
# "private_key", ...), so paths are never masked; the PEM key's name does, so it is.
PROXY_FILE = "x509up_file"
PROXY_PEM = "x509_proxy_pem"
CERT_FILE = "x509_cert"
CERT_PEM = "x509_cert_pem"
KEY_FILE = "x509_key"
KEY_PEM = "x509_private_key_pem"

GRID_CA_DIR = "/etc/grid-security/certificates"
# FTS answers 419 to submissions whose delegated proxy has less than this left.
MIN_SUBMIT_LIFETIME = timedelta(hours=1)

_RENEW_PROXY = (
    "create a new proxy with `voms-proxy-init --voms <vo> --valid 96:00` "
    "(or `grid-proxy-init -rfc` without VOMS)."
)
_RENEW_CERTIFICATE = (
    "renew the certificate with its certification authority, or use a proxy made with "
    "`voms-proxy-init --voms <vo> --valid 96:00`."
)
_PRIVATE_KEY_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.DOTALL
)

Kind = Literal["proxy", "certificate", "token"]
Purpose = Literal["status", "submit"]


@dataclass(frozen=True)
class Trust:
    """How the FTS server's certificate is verified.

    Grid servers carry certificates from IGTF CAs, found in a hashed CA directory
    (``ca_path``), not in the system bundle; ``ca_file`` is a PEM bundle instead.
    """

    verify: bool = True
    ca_path: str | None = None
    ca_file: str | None = None

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] = os.environ, *, grid_ca_dir: str = GRID_CA_DIR
    ) -> Trust:
        """``$X509_CERT_DIR``, else the grid CA directory if it exists, else system CAs."""
        if environ.get("X509_CERT_DIR"):
            return cls(ca_path=environ["X509_CERT_DIR"])
        if os.path.isdir(grid_ca_dir):
            return cls(ca_path=grid_ca_dir)
        return cls()

    @classmethod
    def named(
        cls, *, verify: bool = True, ca_path: str | None = None, ca_file: str | None = None
    ) -> Trust:
        """The CAs a setting names; naming none, the default of :meth:`from_environment`."""
        if verify and not ca_path and not ca_file:
            return cls.from_environment()
        return cls(verify=verify, ca_path=ca_path, ca_file=ca_file)

    def apply(self, ctx: ssl.SSLContext) -> None:
        """Configure server verification on ``ctx``."""
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
        if self.ca_path and not os.path.isdir(self.ca_path):
            raise FTSCredentialError(
                "ca_path",
                f"{self.ca_path} is not a directory.",
                "point it to a hashed CA directory such as /etc/grid-security/certificates.",
            )
        if self.ca_file and not os.path.isfile(self.ca_file):
            raise FTSCredentialError(
                "ca_file", f"{self.ca_file} does not exist.", "point it to a PEM CA bundle."
            )
        if self.ca_path or self.ca_file:
            ctx.load_verify_locations(cafile=self.ca_file, capath=self.ca_path)
        else:
            ctx.load_default_certs()


class Credentials:
    """A client identity: an X.509 proxy or certificate with its key, or a bearer token.

    ``field`` names the setting the credential came from, so later errors (expiry) point
    at what to change. ``repr()`` never shows the key or the token.
    """

    def __init__(
        self,
        kind: Kind,
        *,
        chain: list[x509.Certificate] | None = None,
        private_key: PrivateKey | None = None,
        token: str | None = None,
        bearer: Bearer | None = None,
        field: str,
    ) -> None:
        self.kind = kind
        self.chain = chain or []
        self.private_key = private_key
        self.token = token
        #: Where each request's bearer token comes from (None for X.509 credentials).
        self.bearer = bearer if bearer is not None else (StaticToken(token) if token else None)
        self.field = field

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def from_proxy_file(cls, path: str | os.PathLike[str], field: str = PROXY_FILE) -> Credentials:
        """A grid proxy file: certificate, key, then the issuer chain, in one PEM file."""
        data = _read_file(path, field)
        return cls._from_pem_data(data, data, None, cert_field=field, key_field=field)

    @classmethod
    def from_cert_key(
        cls,
        cert_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str] | None = None,
        passphrase: str | bytes | None = None,
    ) -> Credentials:
        """A certificate file (with its chain) and a key file (default: the same file)."""
        return cls.from_certificate(cert_path=cert_path, key_path=key_path, passphrase=passphrase)

    @classmethod
    def from_certificate(
        cls,
        *,
        cert_path: str | os.PathLike[str] | None = None,
        cert_pem: str | bytes | None = None,
        key_path: str | os.PathLike[str] | None = None,
        key_pem: str | bytes | None = None,
        passphrase: str | bytes | None = None,
    ) -> Credentials:
        """A certificate and its key, each from a file or PEM text.

        Without a key the certificate's own file or text must hold it.
        """
        if cert_path is not None:
            cert_data, cert_field = _read_file(cert_path, CERT_FILE), CERT_FILE
        elif cert_pem:
            cert_data, cert_field = _as_bytes(cert_pem), CERT_PEM
        else:
            raise FTSCredentialError(
                CERT_PEM, "no proxy or certificate PEM was given.", "give one of them."
            )
        if key_path is not None:
            key_data, key_field = _read_file(key_path, KEY_FILE), KEY_FILE
        elif key_pem:
            key_data, key_field = _as_bytes(key_pem), KEY_PEM
        else:
            key_data, key_field = cert_data, cert_field
        return cls._from_pem_data(
            cert_data, key_data, passphrase, cert_field=cert_field, key_field=key_field
        )

    @classmethod
    def from_pem(
        cls,
        *,
        proxy_pem: str | bytes | None = None,
        cert_pem: str | bytes | None = None,
        key_pem: str | bytes | None = None,
        passphrase: str | bytes | None = None,
    ) -> Credentials:
        """Inline PEM text: a whole proxy, or a certificate and a key (default: in cert_pem)."""
        if proxy_pem:
            data = _as_bytes(proxy_pem)
            return cls._from_pem_data(data, data, None, cert_field=PROXY_PEM, key_field=PROXY_PEM)
        return cls.from_certificate(cert_pem=cert_pem, key_pem=key_pem, passphrase=passphrase)

    @classmethod
    def from_token(cls, token: str) -> Credentials:
        """An OIDC/OAuth2 access token, sent as ``Authorization: Bearer``; no client cert."""
        token = (token or "").strip()
        if not token:
            raise FTSCredentialError("token", "the access token is empty.", "give a token.")
        return cls("token", token=token, field="token")

    @classmethod
    def from_oidc(cls, source: Bearer) -> Credentials:
        """Tokens fetched from an OIDC issuer and renewed before they expire.

        :param source: the process's :class:`~.oidc.TokenSource` of the issuer, client and
            grant (``oidc.token_source(settings)``: one per credential key, so every client
            of this credential asks the issuer once per token lifetime).
        """
        return cls("token", bearer=source, field="oidc_client_secret")

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] = os.environ,
        *,
        default_proxy: str | os.PathLike[str] | None = None,
    ) -> Credentials:
        """Find a credential the way grid tools do.

        Order: ``$X509_USER_PROXY``, the default proxy ``/tmp/x509up_u<uid>`` if it
        exists, then ``$X509_USER_CERT`` with ``$X509_USER_KEY`` (or the key in the same file).
        """
        if environ.get("X509_USER_PROXY"):
            return cls.from_proxy_file(environ["X509_USER_PROXY"], field="$X509_USER_PROXY")
        default_proxy = default_proxy or f"/tmp/x509up_u{os.geteuid()}"
        if os.path.isfile(default_proxy):
            return cls.from_proxy_file(default_proxy, field="the default proxy")
        if environ.get("X509_USER_CERT"):
            return cls.from_cert_key(
                environ["X509_USER_CERT"], environ.get("X509_USER_KEY") or None
            )
        raise FTSCredentialError(
            "credentials",
            f"no credential found: $X509_USER_PROXY is not set, {default_proxy} does not "
            "exist and $X509_USER_CERT is not set.",
            f"set $X509_USER_PROXY to a proxy file, or {_RENEW_PROXY}",
        )

    @classmethod
    def _from_pem_data(
        cls,
        cert_data: bytes,
        key_data: bytes,
        passphrase: str | bytes | None,
        *,
        cert_field: str,
        key_field: str,
    ) -> Credentials:
        chain = _parse_chain(cert_data, cert_field)
        key = _parse_key(key_data, passphrase, key_field)
        if not key_matches(chain[0], key):
            raise FTSCredentialError(
                key_field,
                "the private key does not belong to the certificate "
                f"{dn_string(chain[0].subject)}.",
                "use the key that was created with this certificate.",
            )
        kind: Kind = "proxy" if is_proxy(chain[0]) else "certificate"
        return cls(kind, chain=chain, private_key=key, field=cert_field)

    # -- inspection --------------------------------------------------------------------

    @property
    def dn(self) -> str | None:
        """The user's DN (of the end-entity certificate, as FTS reports ``user_dn``)."""
        if not self.chain:
            return None
        try:
            return dn_string(end_entity(self.chain).subject)
        except ValueError:  # a proxy file without its user certificate
            return dn_string(self.chain[-1].subject)

    @property
    def not_after(self) -> datetime | None:
        """When the credential stops working: the earliest expiry in its chain (UTC)."""
        return chain_not_after(self.chain) if self.chain else None

    def time_left(self, now: datetime | None = None) -> timedelta | None:
        """How long the credential works: until its chain's earliest expiry, or a token's
        (the current one, for a renewed token); None when unknown (e.g. no JWT)."""
        now = now or datetime.now(UTC)
        if self.not_after is not None:
            return self.not_after - now
        expires_at = self.bearer.expires_at if self.bearer is not None else None
        return None if expires_at is None else datetime.fromtimestamp(expires_at, UTC) - now

    def check_usable(self, purpose: Purpose, now: datetime | None = None) -> None:
        """Refuse an expired certificate or proxy, and for ``submit`` one with under an hour
        left (tokens are FTS's to judge, and an OIDC token is renewed)."""
        left = self.time_left(now)
        if left is None or self.not_after is None:
            return
        expiry = f"{self.not_after:%Y-%m-%d %H:%M:%S} UTC"
        fix = _RENEW_PROXY if self.kind == "proxy" else _RENEW_CERTIFICATE
        if left <= timedelta(0):
            raise FTSCredentialError(
                self.field,
                f"the {self.kind} of {self.dn} expired at {expiry} ({format_duration(-left)} ago).",
                fix,
            )
        if purpose == "submit" and left < MIN_SUBMIT_LIFETIME:
            raise FTSCredentialError(
                self.field,
                f"the {self.kind} of {self.dn} expires at {expiry}, in {format_duration(left)}; "
                "FTS refuses submissions and delegations with less than one hour left.",
                fix,
            )

    def signing_chain_pem(self) -> str:
        """The certificate chain (signing certificate first) as PEM, for a delegation PUT."""
        return "".join(
            cert.public_bytes(serialization.Encoding.PEM).decode() for cert in self.chain
        )

    # -- TLS ---------------------------------------------------------------------------

    def ssl_context(self, trust: Trust) -> ssl.SSLContext:
        """A TLS >= 1.2 client context verifying the server per ``trust``, with our chain.

        The whole chain is loaded so the server can verify a proxy up to the user's CA.
        ``load_cert_chain`` only reads files, so the chain and key go through a private
        temporary file that is removed at once; the key in it is encrypted with a
        one-time password, so no usable key ever touches the disk.
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        trust.apply(ctx)
        if self.kind != "token":
            self._load_into(ctx)
        return ctx

    def _load_into(self, ctx: ssl.SSLContext) -> None:
        one_time_password = secrets.token_bytes(32)
        key_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(one_time_password),
        )
        with private_temp_file(self.signing_chain_pem().encode() + key_pem) as path:
            ctx.load_cert_chain(path, password=one_time_password)

    def __repr__(self) -> str:
        if self.kind == "token":
            return "Credentials(kind='token')"
        return f"Credentials(kind={self.kind!r}, dn={self.dn!r}, not_after='{self.not_after}')"

    __str__ = __repr__


@contextlib.contextmanager
def private_temp_file(data: bytes, directory: str | None = None) -> Iterator[Path]:
    """A 0600 temporary file holding ``data``, removed when the block ends (even on error)."""
    fd, name = tempfile.mkstemp(prefix="fts-cred-", suffix=".pem", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        yield Path(name)
    finally:
        os.unlink(name)


def private_key_blocks(data: bytes) -> list[str]:
    """The private-key PEM blocks in ``data`` (to mask them, or to refuse them where they
    do not belong)."""
    return [m.group(0).decode("ascii", "replace") for m in _PRIVATE_KEY_BLOCK.finditer(data)]


def _read_file(path: str | os.PathLike[str], field: str) -> bytes:
    # A wrong path is the likely cause (a typo, or a file on another machine than the
    # worker), so the path comes first; renewing a proxy would not help.
    fix = (
        f"check the path in {field!r} first: it must name a readable file "
        "on the machine that runs the task."
    )
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise FTSCredentialError(field, f"{path} does not exist.", fix) from None
    except OSError as exc:
        raise FTSCredentialError(field, f"cannot read {path}: {exc.strerror}.", fix) from None


def _parse_chain(data: bytes, field: str) -> list[x509.Certificate]:
    try:
        return load_pem_chain(data)
    except ValueError:
        raise FTSCredentialError(
            field,
            "no valid PEM certificate found (malformed PEM).",
            "give a PEM file starting with -----BEGIN CERTIFICATE-----.",
        ) from None


def _parse_key(data: bytes, passphrase: str | bytes | None, field: str) -> PrivateKey:
    block = _PRIVATE_KEY_BLOCK.search(data)
    if block is None:
        raise FTSCredentialError(
            field, "no PEM private key found.", "give the key that belongs to the certificate."
        )
    # Base64 has no space or colon, so these markers cannot occur by chance in the body.
    encrypted = block.group(1) == b"ENCRYPTED " or b"Proc-Type: 4,ENCRYPTED" in block.group(0)
    if encrypted and not passphrase:
        raise FTSCredentialError(
            field,
            "the private key is encrypted and no passphrase was given.",
            "give the passphrase.",
        )
    password = _as_bytes(passphrase) if encrypted and passphrase else None
    try:
        # Skipping OpenSSL's RSA consistency check saves ~40 ms per load; the key is the
        # user's own and is checked against its certificate right after loading.
        key = serialization.load_pem_private_key(
            block.group(0), password=password, unsafe_skip_rsa_key_validation=True
        )
    except ValueError:
        problem = "wrong passphrase for the private key." if encrypted else "malformed private key."
        raise FTSCredentialError(field, problem, "check the key and its passphrase.") from None
    return key  # type: ignore[return-value]


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def format_duration(delta: timedelta) -> str:
    """``2d 3h 5m``: how long a credential has left (or has been expired)."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours or days else []
    parts.append(f"{minutes}m")
    return " ".join(parts)
