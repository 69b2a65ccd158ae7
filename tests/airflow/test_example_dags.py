"""Each example DAG parses with no network and runs end to end with ``dag.test()``.

``dag.test()`` runs deferred tasks inline: the trigger is rebuilt from its serialized
kwargs and run in-process, so the deferrable path is exercised for real.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.airflow.conftest import EXAMPLE_DAGS


def load_dag(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLE_DAGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(v for v in vars(module).values() if type(v).__name__ == "DAG")


@pytest.fixture(scope="session")
def airflow_db():
    airflow_cli = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow_cli), "db", "migrate"], check=True, capture_output=True)


@pytest.fixture
def emulator_connection(fts_emulator, fts_pki, monkeypatch):
    document = {
        "conn_type": "fts",
        "host": fts_emulator.host,
        "port": fts_emulator.port,
        "extra": {"x509_proxy": str(fts_pki.voms_proxy_path), "ca_path": str(fts_pki.ca_dir)},
    }
    monkeypatch.setenv("AIRFLOW_CONN_FTS_DEFAULT", json.dumps(document))
    monkeypatch.setenv("FTS_EXAMPLE_POLL_SECONDS", "0.2")


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLE_DAGS.glob("example_*.py")))
def test_example_dag_parses_without_network(name, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_FTS_DEFAULT", "fts://unreachable.invalid")

    dag = load_dag(name)

    assert dag.task_ids


def test_replication_copies_the_files_with_checksums(airflow_db, emulator_connection, fts_storage):
    site_a, site_b = fts_storage["davs://site-a.example"], fts_storage["davs://site-b.example"]
    (site_a / "data").mkdir(exist_ok=True)
    for name in ("run-001.root", "run-002.root", "run-003.root"):
        (site_a / "data" / name).write_bytes(name.encode() * 100)
    dag = load_dag("example_fts_replication")

    run = dag.test()

    assert run.state == "success"
    copied = sorted(p.name for p in site_b.glob("replica/*/*.root"))
    assert copied == ["run-001.root", "run-002.root", "run-003.root"]
