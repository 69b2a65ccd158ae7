"""Shared fixtures.

The test PKI is the pytest plugin's ``fts_pki`` (CA, host, user, a VOMS and a plain proxy,
written to files), built once per session: RSA key generation is the slow part.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The Airflow metadata DB that ``dag.test()`` records runs, XComs and templates in.

    Its AIRFLOW_HOME is the one ``tests.airflow_env.isolate_airflow`` sets before Airflow loads.
    """
    airflow_cli = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow_cli), "db", "migrate"], check=True, capture_output=True)


pytest_plugins = ["airflow_provider_fts.testing.pytest_plugin"]
