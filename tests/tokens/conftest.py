"""A real OpenID provider (panva's oidc-provider on Node) for the token tests.

``idp`` starts ``tests/tokens/idp/server.mjs`` once per session over HTTPS with a host
certificate of the test PKI, after ``npm ci`` if its ``node_modules`` is missing (``.ci/run``
installs it ahead). Without ``node``/``npm`` on the PATH the tests FAIL, saying so: CI has
Node, and a silent skip would hide every token test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from airflow_provider_fts.client.oidc import OIDCSettings, reset_token_sources
from airflow_provider_fts.testing.environment import FTSTestPKI

IDP_DIR = Path(__file__).parent / "idp"
ROBOT_SECRET = "robot-secret-for-tests"  # a throw-away secret of the test IdP
SHORT_TTL = 10  # seconds: the lifetime of fts-robot-short's tokens (the expiry tests)
FTS_AUDIENCE = "https://localhost:8446"


@dataclass(frozen=True)
class IdP:
    """The running identity provider and what a test needs to talk to it."""

    issuer: str
    ca_file: str
    process: subprocess.Popen

    def robot_whoami(self) -> dict:
        """The ``GET /whoami`` FTS 3.13.4 answers for a token of ``fts-robot``."""
        digest = hashlib.sha1((self.issuer.rstrip("/") + "fts-robot").encode()).hexdigest()
        return {
            "user_dn": "fts-robot",
            "dn": ["fts-robot"],
            "base_id": "01874efb-4735-4595-bc9c-591aef8240c9",
            "voms_cred": ["fts"],
            "vos": ["localhost"],
            "vos_id": ["5438ed99-c278-543c-bcf8-f23b29e9eb84"],  # measured on the real server
            "roles": [],
            "level": dict.fromkeys(
                ("transfer", "deleg", "config", "admin", "datamanagement"), "all"
            ),
            "delegation_id": digest[:16],
            "method": "oauth2",
            "is_root": False,
            "oauth2_scope": "fts",
            "wlcg_profile": True,
            "get_granted_level_for_overriden": {},
            "get_granted_level_for": {},
        }

    def get(self, path: str) -> dict:
        return requests.get(self.issuer + path, verify=self.ca_file, timeout=10).json()

    def token_requests(self) -> int:
        """``POST /token`` requests the provider has answered since the last reset."""
        return self.get("/test/counts")["token"]

    def reset_counts(self) -> None:
        requests.post(self.issuer + "/test/reset", verify=self.ca_file, timeout=10)

    def user_refresh_token(
        self, resource: str | list[str] = FTS_AUDIENCE, scope: str = "fts", client: str = "fts-user"
    ) -> str:
        """A fresh refresh token of user ``test-user`` for ``client``.

        :param resource: the audience (or audiences) the user consented to.
        :param scope: the scopes the user consented to (for each audience).
        :param client: ``fts-user`` (public) or ``fts-user-confidential`` (needs its secret).
        """
        answer = requests.post(
            self.issuer + "/test/refresh-token",
            data=json.dumps({"resource": resource, "scope": scope, "client": client}),
            verify=self.ca_file,
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()["refresh_token"]

    def user(self, refresh_token: str, **overrides: object) -> OIDCSettings:
        values: dict = {
            "issuer": self.issuer,
            "client_id": "fts-user",
            "refresh_token": refresh_token,
            "scope": "fts",
            "audience": FTS_AUDIENCE,
            "verify": self.ca_file,
        }
        values.update(overrides)
        return OIDCSettings(**values)

    def robot(self, client_id: str = "fts-robot", **overrides: object) -> OIDCSettings:
        values: dict = {
            "issuer": self.issuer,
            "client_id": client_id,
            "client_secret": ROBOT_SECRET,
            "scope": "fts",
            "audience": FTS_AUDIENCE,
            "verify": self.ca_file,
        }
        values.update(overrides)
        return OIDCSettings(**values)


def _install(npm: str) -> None:
    if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=IDP_DIR, check=True, capture_output=True
        )


@pytest.fixture(scope="session")
def idp(fts_pki: FTSTestPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdP]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail(
            "the token tests need Node.js 18+ (node and npm on the PATH) to run their identity "
            "provider, panva's oidc-provider: install Node.js, then `npm ci --prefix "
            "tests/tokens/idp` (.ci/run does both ahead)",
            pytrace=False,
        )
    _install(npm)
    directory = tmp_path_factory.mktemp("idp")
    host = fts_pki.host  # a localhost host certificate of the session's test CA
    env = dict(
        os.environ,
        IDP_CERT=str(host.chain_pem.write_to_path(directory / "cert.pem")),
        IDP_KEY=str(host.key_pem.write_to_path(directory / "key.pem")),
        IDP_ROBOT_SECRET=ROBOT_SECRET,
        IDP_SHORT_TTL=str(SHORT_TTL),
    )
    ca_file = str(fts_pki.ca.cert_pem.write_to_path(directory / "ca.pem", mode=0o644))
    process = subprocess.Popen(
        [node, "server.mjs"], cwd=IDP_DIR, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line:
            raise RuntimeError(f"the test IdP did not start (exit code {process.poll()})")
        yield IdP(json.loads(line)["issuer"], ca_file, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(autouse=True)
def fresh_token_sources() -> Iterator[None]:
    """Every test starts without cached tokens or discovery documents."""
    reset_token_sources()
    yield
    reset_token_sources()
