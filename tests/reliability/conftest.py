"""Shared pieces of the reliability suites: the isolated Airflow, connections, task tries."""

from __future__ import annotations

from tests.airflow_env import isolate_airflow

isolate_airflow()  # before anything imports Airflow

import functools  # noqa: E402
import json  # noqa: E402

import pytest  # noqa: E402

from tests import tasks  # noqa: E402

#: Task tries of their own DAG id, so their deterministic job ids never meet tests/airflow's.
TaskTry = functools.partial(tasks.TaskTry, dag_id="reliability")


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
