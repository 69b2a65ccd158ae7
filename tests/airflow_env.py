"""The isolated Airflow every Airflow test runs in: its own AIRFLOW_HOME, example_dags as
the DAG folder, no example DAGs of Airflow's own.

Airflow reads its configuration once per process, so :func:`isolate_airflow` must run
before anything imports Airflow: each conftest that needs Airflow calls it first thing.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "example_dags"

_home: list[str] = []  # one AIRFLOW_HOME per test process, however many conftests ask


def isolate_airflow() -> Path:
    """Point Airflow at a fresh temporary home (once per process); returns the DAG folder."""
    if not _home:
        _home.append(tempfile.mkdtemp(prefix="fts-airflow-home-"))
        os.environ["AIRFLOW_HOME"] = _home[0]
        os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
        os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
        os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(EXAMPLE_DAGS)
        # dag.test() runs no scheduler, so it has no #72716 race to guard against.
        os.environ["AIRFLOW__FTS__RESUME_GUARD_SECONDS"] = "0"
    return EXAMPLE_DAGS


def load_example_dag(name: str):
    """An example DAG, loaded from its file as the DAG processor would (after isolation)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLE_DAGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(v for v in vars(module).values() if type(v).__name__ == "DAG")
