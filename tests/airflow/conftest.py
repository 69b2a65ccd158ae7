"""The Airflow-layer tests: an isolated Airflow (set before anything imports it) and a hook."""

from __future__ import annotations

from tests.airflow_env import isolate_airflow

EXAMPLE_DAGS = isolate_airflow()

import pytest  # noqa: E402

from airflow_provider_fts.hooks.fts import FTSHook  # noqa: E402


@pytest.fixture
def hook(fts_connection: str) -> FTSHook:
    """A hook on ``fts_default``, pointed at the emulator as its VOMS proxy user."""
    return FTSHook()
