"""Shared pieces of the asset and lineage suites.

``tests.airflow.conftest`` sets AIRFLOW_HOME (and the DAG folder) before anything imports
Airflow; importing it first gives these suites the same isolated Airflow.
"""

from __future__ import annotations

import pytest

from tests.airflow.conftest import EXAMPLE_DAGS  # noqa: F401  (AIRFLOW_HOME before Airflow)


@pytest.fixture
def emulator_connection(fts_connection, monkeypatch):
    """``fts_default`` on the emulator; example DAGs poll every 0.2 s."""
    monkeypatch.setenv("FTS_EXAMPLE_POLL_SECONDS", "0.2")
    monkeypatch.setenv("FTS_EXAMPLE_RETRY_DELAY_SECONDS", "0")
    return fts_connection


def register(dag):
    """Write a DAG defined in a test to the metadata DB, as the DAG processor would, so
    ``dag.test()`` can run it (it only parses the DAG folder itself)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    DagBundlesManager().sync_bundles_to_db()
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session
        )
    return dag


def asset_events(dag_id: str, run_id: str) -> dict[tuple[str, str], dict]:
    """The asset events a DAG run recorded in the metadata DB: (name, URI) -> extra."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent).where(
                AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id
            )
        ).all()
        return {(row.asset.name, row.asset.uri): dict(row.extra) for row in rows}
