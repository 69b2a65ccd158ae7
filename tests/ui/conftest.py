"""The view's tests: an isolated Airflow in this process (set before anything imports it)."""

from __future__ import annotations

from tests.airflow_env import isolate_airflow

isolate_airflow()
