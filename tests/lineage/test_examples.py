"""The replication example feeds the consumer example through asset events.

The replication run records one event per replica; the scheduler's queue then holds the
consumer (scheduled on the alias) and a DAG scheduled on a destination spelled as the
transfer spells it, not one spelled with the default port; the consumer reads the replicas
from site B's folder.
"""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime

from airflow.sdk import DAG, Asset
from airflow.sdk.bases.operator import BaseOperator

from tests.airflow_env import load_example_dag
from tests.lineage.conftest import asset_events, register

FILES = ("run-001.root", "run-002.root", "run-003.root")
DAY = datetime(2026, 1, 2, tzinfo=UTC)
REPLICA = "davs://site-b.example/replica/2026-01-02/run-001.root"


def scheduled_on(dag_id: str, asset: Asset) -> DAG:
    with DAG(dag_id=dag_id, schedule=asset, start_date=datetime(2026, 1, 1)) as dag:
        BaseOperator(task_id="noop")
    return register(dag)


def unpause_and_clear_queue(dag_ids: list[str]) -> None:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, update

    with create_session() as session:
        session.execute(
            update(DagModel).where(DagModel.dag_id.in_(dag_ids)).values(is_paused=False)
        )
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id.in_(dag_ids)))


def queued(dag_ids: list[str]) -> dict[str, set[str]]:
    """The scheduler's asset-triggered queue: DAG -> URIs of the assets waiting for it."""
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetDagRunQueue.target_dag_id, AssetModel.uri)
            .join(AssetModel, AssetModel.id == AssetDagRunQueue.asset_id)
            .where(AssetDagRunQueue.target_dag_id.in_(dag_ids))
        ).all()
    result: dict[str, set[str]] = {dag_id: set() for dag_id in dag_ids}
    for dag_id, uri in rows:
        result[dag_id].add(uri)
    return result


def return_value(run) -> object:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.key == "return_value",
            )
        )
    return json.loads(value) if isinstance(value, str) else value


def test_replicas_queue_the_consumer_which_reads_them_at_site_b(
    airflow_db, emulator_connection, fts_storage, monkeypatch
):
    site_a, site_b = fts_storage["davs://site-a.example"], fts_storage["davs://site-b.example"]
    monkeypatch.setenv("FTS_EXAMPLE_MOUNTS", json.dumps({"davs://site-b.example": str(site_b)}))
    (site_a / "data").mkdir(exist_ok=True)
    for name in FILES:
        (site_a / "data" / name).write_bytes(name.encode() * 100)
    consumer = register(load_example_dag("example_fts_replica_consumer"))
    scheduled_on("lineage_exact_spelling", Asset(REPLICA))
    scheduled_on("lineage_port_spelling", Asset(REPLICA.replace(".example/", ".example:443/")))
    targets = [consumer.dag_id, "lineage_exact_spelling", "lineage_port_spelling"]
    unpause_and_clear_queue(targets)

    replication = load_example_dag("example_fts_replication").test(logical_date=DAY)

    assert replication.state == "success"
    replicas = {f"davs://site-b.example/replica/2026-01-02/{name}" for name in FILES}
    events = asset_events(replication.dag_id, replication.run_id)
    assert {uri for _, uri in events} == replicas
    assert all(extra["size"] == 1200 for extra in events.values())
    assert queued(targets) == {
        consumer.dag_id: replicas,
        "lineage_exact_spelling": {REPLICA},
        "lineage_port_spelling": set(),  # another name: another asset (same URI)
    }

    run = consumer.test()

    assert run.state == "success"
    read = return_value(run)
    assert sorted(r["replica"] for r in read) == sorted(replicas)
    assert {r["bytes"] for r in read} == {1200}
    job_id = next(iter(events.values()))["fts_job_id"]
    assert {r["fts_job_id"] for r in read} == {job_id}


def test_the_consumer_reads_each_event_once_though_airflow_lists_it_twice(tmp_path, monkeypatch):
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    monkeypatch.setenv("FTS_EXAMPLE_MOUNTS", json.dumps({"davs://site-b.example": str(tmp_path)}))
    data = b"x" * 10
    (tmp_path / "run-001.root").write_bytes(data)
    uri = "davs://site-b.example/run-001.root"
    event = AssetEventDagRunReferenceResult(
        asset={"name": uri, "uri": uri, "extra": {}},
        extra={"fts_job_id": "job-1", "size": 10},
        source_task_id="transfer",
        source_dag_id="example_fts_replication",
        source_run_id="run",
        source_map_index=-1,
        source_aliases=[{"name": "fts-replicas"}],
        timestamp=DAY,
    )
    # What the scheduler hands the task: the event under its asset and under the alias.
    events = TriggeringAssetEventsAccessor.build([event])
    consumer = load_example_dag("example_fts_replica_consumer")

    read = consumer.get_task("read_replicas").python_callable(triggering_asset_events=events)

    assert len(list(events)) == 2
    adler32 = f"{zlib.adler32(data):08x}"
    assert read == [{"replica": uri, "fts_job_id": "job-1", "bytes": 10, "adler32": adler32}]
