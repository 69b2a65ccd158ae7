"""Shared pieces of the reliability suites: the Airflow test environment, connections, task tries.

``tests.airflow.conftest`` sets AIRFLOW_HOME (and the DAG folder) before anything imports
Airflow; importing it first here gives these suites the same isolated Airflow, whether they
run alone or after ``tests/airflow``.
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass, field

import pytest

from airflow_provider_fts.client.states import JobState
from tests.airflow.conftest import EXAMPLE_DAGS  # sets AIRFLOW_HOME before Airflow is imported


@dataclass
class TaskTry:
    """The task-instance fields FTSSubmitOperator reads, for one try of one task."""

    try_number: int
    run_id: str
    dag_id: str = "reliability"
    task_id: str = "submit"
    map_index: int = -1
    xcoms: dict = field(default_factory=dict)

    def xcom_push(self, key, value):
        self.xcoms[key] = value


@pytest.fixture
def connect(fts_emulator, fts_pki, monkeypatch):
    """Point ``fts_default`` at the emulator with the given extras (default: the VOMS proxy)."""

    def define(password: str | None = None, **extra) -> str:
        extra = {"ca_path": str(fts_pki.ca_dir), **extra}
        if password is None and not any(k.startswith("x509") for k in extra):
            extra["x509up_file"] = str(fts_pki.voms_proxy_path)
        document = json.loads(fts_emulator.connection_json(token=password))
        document["extra"] = extra  # any extras, also inline PEMs the helper does not take
        value = json.dumps(document)
        monkeypatch.setenv("AIRFLOW_CONN_FTS_DEFAULT", value)
        return value

    return define


def load_example_dag(name: str):
    """An example DAG, loaded from its file as the DAG processor would."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLE_DAGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(v for v in vars(module).values() if type(v).__name__ == "DAG")


def wait_terminal(hook, job_id: str, timeout: float = 10.0) -> str:
    """The job's final state, polled until it has one."""
    deadline = time.monotonic() + timeout
    while not JobState.parse(state := hook.get_job(job_id)["job_state"]).is_terminal:
        assert time.monotonic() < deadline, f"job {job_id} stayed {state}"
        time.sleep(0.1)
    return state
