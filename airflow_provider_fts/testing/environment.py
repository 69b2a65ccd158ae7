"""A ready-made test world for the emulator: CA, host certificate, a user and its proxies,
and a built-in token issuer for token users.

Shared by the pytest plugin and ``python -m airflow_provider_fts.testing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airflow_provider_fts.testing.pki import CA, Credential, Voms
from airflow_provider_fts.testing.tokens import TestIssuer

__all__ = [
    "TEST_ISSUER_URL",
    "TOKEN_USER",
    "USER_DN",
    "FTSTestPKI",
    "make_test_issuer",
    "make_test_pki",
]

USER_DN = "/DC=org/DC=example/O=FTS Test/CN=Test User"
TOKEN_USER = "token-user"  # the ``sub`` of the built-in issuer's tokens
# With a trailing slash, as 3.13.4 needs to find the provider's configured VO.
TEST_ISSUER_URL = "https://iam.example.org/"


def make_test_issuer() -> TestIssuer:
    """The built-in token issuer: a fresh ES256 key, its users in VO ``dteam``."""
    return TestIssuer(TEST_ISSUER_URL, vo="dteam")


@dataclass(frozen=True)
class FTSTestPKI:
    """Everything a client of the emulator needs, in memory and on disk."""

    ca: CA
    host: Credential
    user: Credential
    voms_proxy: Credential
    plain_proxy: Credential
    ca_dir: Path
    voms_proxy_path: Path
    plain_proxy_path: Path
    usercert_path: Path
    userkey_path: Path
    host_proxy_path: Path  # the host certificate + key in one file: the "root" client


def make_test_pki(directory: Path, user_dn: str = USER_DN) -> FTSTestPKI:
    """A CA, host certificate, user certificate and two proxies, written under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CA()
    host = ca.issue_host_cert("localhost", "127.0.0.1")
    user = ca.issue_user_cert(user_dn)
    voms_proxy = user.make_proxy(voms=Voms("dteam", ["/dteam/Role=NULL/Capability=NULL"]))
    plain_proxy = user.make_proxy()
    usercert_path, userkey_path = user.write_cert_and_key(directory / "user")
    return FTSTestPKI(
        ca=ca,
        host=host,
        user=user,
        voms_proxy=voms_proxy,
        plain_proxy=plain_proxy,
        ca_dir=ca.write_ca_dir(directory / "certificates"),
        voms_proxy_path=voms_proxy.write_proxy(directory / "x509up_voms"),
        plain_proxy_path=plain_proxy.write_proxy(directory / "x509up_rfc"),
        usercert_path=usercert_path,
        userkey_path=userkey_path,
        host_proxy_path=host.write_proxy(directory / "hostcert_and_key.pem"),
    )
