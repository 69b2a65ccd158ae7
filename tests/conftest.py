"""Shared fixtures. The test PKI is built once per session: RSA key generation is the slow part."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_fts.testing import pki

USER_DN = "/DC=org/DC=example/O=FTS Test/CN=Test User"
DTEAM = pki.Voms("dteam", ["/dteam/Role=NULL/Capability=NULL"])


@pytest.fixture(scope="session")
def pki_ca() -> pki.CA:
    return pki.CA()


@pytest.fixture(scope="session")
def pki_ca_dir(pki_ca: pki.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hashed CA directory (like /etc/grid-security/certificates) trusting ``pki_ca``."""
    return pki_ca.write_ca_dir(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="session")
def pki_host(pki_ca: pki.CA) -> pki.Credential:
    return pki_ca.issue_host_cert("localhost", "127.0.0.1")


@pytest.fixture(scope="session")
def pki_user(pki_ca: pki.CA) -> pki.Credential:
    return pki_ca.issue_user_cert(USER_DN)


@pytest.fixture(scope="session")
def pki_proxy(pki_user: pki.Credential) -> pki.Credential:
    """A plain RFC 3820 proxy (no VOMS), valid 12 hours."""
    return pki_user.make_proxy()


@pytest.fixture(scope="session")
def pki_voms_proxy(pki_user: pki.Credential) -> pki.Credential:
    """An RFC 3820 proxy with VOMS attributes for ``dteam``."""
    return pki_user.make_proxy(voms=DTEAM)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The Airflow metadata DB that ``dag.test()`` records runs, XComs and templates in.

    Its AIRFLOW_HOME is the one ``tests.airflow_env.isolate_airflow`` sets before Airflow loads.
    """
    airflow_cli = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow_cli), "db", "migrate"], check=True, capture_output=True)


pytest_plugins = ["airflow_provider_fts.testing.pytest_plugin"]
