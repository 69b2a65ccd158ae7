"""An isolated Airflow for these tests: its own AIRFLOW_HOME, and example_dags as the DAG folder.

Set before anything imports Airflow (its configuration is read once per process).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"

os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="fts-airflow-home-")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(EXAMPLE_DAGS)

import pytest  # noqa: E402

from airflow_provider_fts.hooks.fts import FTSHook  # noqa: E402


@pytest.fixture
def hook(fts_connection: str) -> FTSHook:
    """A hook on ``fts_default``, pointed at the emulator as its VOMS proxy user."""
    return FTSHook()
