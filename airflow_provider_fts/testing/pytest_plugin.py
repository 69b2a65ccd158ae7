"""pytest fixtures for testing against the FTS emulator.

Enable them in a ``conftest.py``::

    pytest_plugins = ["airflow_provider_fts.testing.pytest_plugin"]

``fts_pki`` (session) holds a CA, the host certificate and a user with a VOMS proxy
(VO ``dteam``) and a plain RFC 3820 proxy, all written to files. ``fts_emulator`` is a
running emulator shared by the session, with faults cleared and request counts reset for
every test. ``fts_connection`` points ``AIRFLOW_CONN_FTS_DEFAULT`` at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_fts.testing.environment import (
    TEST_TOKEN,
    TEST_TOKEN_CLAIMS,
    FTSTestPKI,
    make_test_pki,
)
from airflow_provider_fts.testing.server import FTSEmulator


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
def fts_emulator_session(
    fts_pki: FTSTestPKI, fts_storage: dict[str, Path]
) -> Iterator[FTSEmulator]:
    emulator = FTSEmulator(
        ca=fts_pki.ca,
        host_credential=fts_pki.host,
        ca_dir=fts_pki.ca_dir,
        storage=fts_storage,
        tokens={TEST_TOKEN: TEST_TOKEN_CLAIMS},
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
