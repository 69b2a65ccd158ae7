"""The token connection end to end: the real IdP, the emulator trusting it, real Airflow.

The identity provider and its fixtures come from ``tests/tokens/conftest.py`` (imported,
not copied). ``token_emulator`` is an emulator of its own that trusts the IdP as a
``[providers]`` entry (its JWKS fetched over HTTPS), with the default authorised audience:
its own ``https://host:port``, which is also the connection's default ``oidc_audience``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_provider_fts.client.oidc import on_new_secret
from airflow_provider_fts.testing.environment import FTSTestPKI
from airflow_provider_fts.testing.server import FTSEmulator
from airflow_provider_fts.testing.tokens import TrustedIssuer
from tests.airflow.conftest import EXAMPLE_DAGS  # noqa: F401  (AIRFLOW_HOME before Airflow)
from tests.tokens import conftest as idp_fixtures
from tests.tokens.conftest import ROBOT_SECRET, IdP

# The IdP's fixtures, registered here by name (pytest finds fixtures in conftest globals).
idp = idp_fixtures.idp
fresh_token_sources = idp_fixtures.fresh_token_sources


def token_server(idp: IdP, fts_pki: FTSTestPKI, fts_storage: dict[str, Path]) -> FTSEmulator:
    """An emulator (not started) that trusts the IdP, with the default audience."""
    return FTSEmulator(
        ca=fts_pki.ca,
        host_credential=fts_pki.host,
        ca_dir=fts_pki.ca_dir,
        storage=fts_storage,
        token_issuers=[TrustedIssuer(idp.issuer)],
        token_prep_delay=0.2,
    )


@pytest.fixture(scope="session")
def token_emulator_session(
    idp: IdP, fts_pki: FTSTestPKI, fts_storage: dict[str, Path]
) -> Iterator[FTSEmulator]:
    with token_server(idp, fts_pki, fts_storage) as emulator:
        yield emulator


@pytest.fixture
def token_emulator(token_emulator_session: FTSEmulator, idp: IdP) -> Iterator[FTSEmulator]:
    """The emulator with request counts at zero, and the IdP's counts at zero."""
    token_emulator_session.faults.clear()
    token_emulator_session.reset_counts()
    idp.reset_counts()
    yield token_emulator_session
    token_emulator_session.faults.clear()


@pytest.fixture
def oidc_connection(
    token_emulator: FTSEmulator, idp: IdP, fts_pki: FTSTestPKI, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., dict]:
    """Point ``fts_default`` at the token emulator with a robot's OIDC extras (overridable)."""

    def define(**overrides: object) -> dict:
        extra: dict = {
            "ca_path": str(fts_pki.ca_dir),
            "oidc_issuer": idp.issuer,
            "oidc_client_id": "fts-robot",
            "oidc_client_secret": ROBOT_SECRET,
            "oidc_scope": "fts",
            "oidc_ca_file": idp.ca_file,
        }
        extra.update(overrides)
        extra = {key: value for key, value in extra.items() if value is not None}
        document = {
            "conn_type": "fts",
            "host": token_emulator.host,
            "port": token_emulator.port,
            "extra": extra,
        }
        monkeypatch.setenv("AIRFLOW_CONN_FTS_DEFAULT", json.dumps(document))
        return extra

    return define


def slow_clock(factor: float = 10.0) -> Callable[[], float]:
    """A client clock running ``factor`` times slower than the server's: a token the client
    believes valid is expired for FTS, which then ignores it (answers as for anonymous)."""
    origin = time.time()
    return lambda: origin + (time.time() - origin) / factor


class FetchedSecrets(list):
    """Every access token (and rotated refresh token) fetched while a test runs."""

    active = False

    def __call__(self, secret: str) -> None:
        if self.active:
            self.append(secret)


_FETCHED = FetchedSecrets()
on_new_secret(_FETCHED)


@pytest.fixture
def fetched_secrets() -> Iterator[FetchedSecrets]:
    _FETCHED.clear()
    _FETCHED.active = True
    yield _FETCHED
    _FETCHED.active = False
