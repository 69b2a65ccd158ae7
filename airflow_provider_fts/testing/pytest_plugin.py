"""pytest fixtures for testing against the FTS emulator.

Enable them in a ``conftest.py``::

    pytest_plugins = ["airflow_provider_fts.testing.pytest_plugin"]

``fts_pki`` (session) holds a CA, the host certificate and a user with a VOMS proxy
(VO ``dteam``) and a plain RFC 3820 proxy, all written to files. ``fts_emulator`` is a
running emulator shared by the session, with faults cleared and request counts reset for
every test. ``fts_connection`` points ``AIRFLOW_CONN_FTS_DEFAULT`` at it.

The emulator trusts a built-in token issuer, ``fts_token_issuer`` (a
:class:`~airflow_provider_fts.testing.tokens.TestIssuer`), and checks its tokens as a real
FTS server does; ``fts_token`` is a fresh signed JWT of user ``token-user`` (VO ``dteam``)
for that emulator. Mint others with ``fts_token_issuer.mint(subject, audience, ...)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_fts.testing.environment import (
    TOKEN_USER,
    FTSTestPKI,
    make_test_issuer,
    make_test_pki,
)
from airflow_provider_fts.testing.server import FTSEmulator
from airflow_provider_fts.testing.tokens import TestIssuer


@pytest.fixture(scope="session")
def fts_pki(tmp_path_factory: pytest.TempPathFactory) -> FTSTestPKI:
    return make_test_pki(tmp_path_factory.mktemp("fts-pki"))


@pytest.fixture(scope="session")
def fts_storage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two local directories served as the storage endpoints ``davs://site-a|site-b.example``."""
    root = tmp_path_factory.mktemp("fts-storage")
    sites = {"davs://site-a.example": root / "site-a", "davs://site-b.example": root / "site-b"}
    for directory in sites.values():
        directory.mkdir()
    return sites


@pytest.fixture(scope="session")
def fts_token_issuer() -> TestIssuer:
    """The built-in token issuer the session's emulator trusts."""
    return make_test_issuer()


@pytest.fixture(scope="session")
def fts_emulator_session(
    fts_pki: FTSTestPKI, fts_storage: dict[str, Path], fts_token_issuer: TestIssuer
) -> Iterator[FTSEmulator]:
    emulator = FTSEmulator(
        ca=fts_pki.ca,
        host_credential=fts_pki.host,
        ca_dir=fts_pki.ca_dir,
        storage=fts_storage,
        token_issuers=[fts_token_issuer],
    )
    with emulator:
        yield emulator


@pytest.fixture
def fts_emulator(fts_emulator_session: FTSEmulator) -> Iterator[FTSEmulator]:
    """The session's emulator, with no armed fault and request counts at zero."""
    fts_emulator_session.faults.clear()
    fts_emulator_session.reset_counts()
    yield fts_emulator_session
    fts_emulator_session.faults.clear()


@pytest.fixture
def fts_connection(
    fts_emulator: FTSEmulator, fts_pki: FTSTestPKI, monkeypatch: pytest.MonkeyPatch
) -> str:
    """``AIRFLOW_CONN_FTS_DEFAULT`` set (for this test) to the VOMS proxy user's connection."""
    value = fts_emulator.connection_json(fts_pki.voms_proxy_path, ca_path=fts_pki.ca_dir)
    monkeypatch.setenv("AIRFLOW_CONN_FTS_DEFAULT", value)
    return value


@pytest.fixture
def fts_token(fts_emulator: FTSEmulator, fts_token_issuer: TestIssuer) -> str:
    """A fresh access token (one hour, scope ``fts``) of ``token-user`` for the emulator."""
    return fts_token_issuer.mint(TOKEN_USER, fts_emulator.url, scope="fts")
