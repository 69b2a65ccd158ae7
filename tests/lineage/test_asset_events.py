"""Asset events for what moved, recorded in the metadata DB by real ``dag.test()`` runs."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from airflow.sdk import DAG, Asset, AssetAlias

from airflow_provider_fts.assets import add_replica_events
from airflow_provider_fts.operators.fts import FTSSubmitOperator
from airflow_provider_fts.sensors.fts import FTSJobSensor
from tests.lineage.conftest import asset_events, register

ALIAS = AssetAlias("fts-lineage-tests")


def transfers(prefix: str) -> list[dict]:
    """Two files that finish (one with a token in its query) and one that cannot."""
    return [
        {
            "source": f"mock://src.example/{prefix}/a",
            "destination": f"mock://dst.example/{prefix}/a",
        },
        {
            "source": f"mock://src.example/{prefix}/b?size=4096",
            "destination": f"mock://dst.example/{prefix}/b?authz=SECRET-TOKEN",
            "checksum": "ADLER32:0badc0de",
        },
        {
            "source": f"mock://src.example/{prefix}/c",
            "destination": f"mock://dst.example/{prefix}/c?transfer_errno=13",
        },
    ]


def make_dag(prefix: str, *, deferrable: bool, sensor: bool) -> DAG:
    with DAG(dag_id=f"lineage_{prefix}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        submit = FTSSubmitOperator(
            task_id="submit",
            transfers=transfers(prefix),
            wait_for_completion=not sensor,
            allow_partial=True,
            deferrable=deferrable,
            poll_interval=0.2,
            outlets=[] if sensor else [ALIAS],
        )
        if sensor:
            submit >> FTSJobSensor(
                task_id="wait",
                job_id="{{ ti.xcom_pull(task_ids='submit') }}",
                allow_partial=True,
                deferrable=deferrable,
                poke_interval=0.2,
                outlets=[ALIAS],
            )
    return register(dag)


@pytest.mark.parametrize(
    ("deferrable", "sensor"), [(False, False), (True, False), (True, True), (False, True)]
)
def test_finished_destinations_get_one_event_each_with_the_job_id(
    airflow_db, fts_connection, fts_emulator, monkeypatch, deferrable, sensor
):
    monkeypatch.setattr(fts_emulator.engine, "default_duration", 0.5)  # still running at 1st poll
    prefix = f"p{uuid.uuid4().hex[:8]}"
    dag = make_dag(prefix, deferrable=deferrable, sensor=sensor)

    run = dag.test()

    assert run.state == "success"
    (job,) = [j for j in fts_emulator.store.stored_jobs() if prefix in j.files[0]["dest_surl"]]
    events = asset_events(dag.dag_id, run.run_id)
    a, b = f"mock://dst.example/{prefix}/a", f"mock://dst.example/{prefix}/b"
    assert set(events) == {(a, a), (b, b)}  # c FAILED: no event; b's token is gone
    assert events[(b, b)] == {
        "fts_job_id": job.record["job_id"],
        "source": f"mock://src.example/{prefix}/b",
        "size": 4096,
        "checksum": "ADLER32:0badc0de",
    }
    assert events[(a, a)] == {  # no size known, and a bare "ADLER32" is no checksum
        "fts_job_id": job.record["job_id"],
        "source": f"mock://src.example/{prefix}/a",
    }
    assert "SECRET-TOKEN" not in repr(events)


def test_no_alias_means_no_event(airflow_db, fts_connection, fts_emulator):
    prefix = f"p{uuid.uuid4().hex[:8]}"
    with DAG(dag_id=f"lineage_{prefix}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        FTSSubmitOperator(
            task_id="submit",
            transfers=transfers(prefix)[:1],
            wait_for_completion=True,
            poll_interval=0.2,
        )
    register(dag)

    run = dag.test()

    assert run.state == "success"
    assert asset_events(dag.dag_id, run.run_id) == {}


def test_without_an_alias_nothing_is_fetched():
    hook = None  # nothing to ask

    assert add_replica_events(hook, [Asset("davs://b.example/x")], {}, ["job"]) == 0


def test_a_retry_announces_the_files_an_earlier_try_finished(
    airflow_db, fts_connection, fts_emulator
):
    prefix = f"p{uuid.uuid4().hex[:8]}"
    a, b = f"mock://dst.example/{prefix}/a", f"mock://dst.example/{prefix}/b"
    with DAG(dag_id=f"lineage_{prefix}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        FTSSubmitOperator(
            task_id="submit",
            transfers=[
                (f"mock://src.example/{prefix}/a", a),
                (f"mock://src.example/{prefix}/b", f"{b}?transfer_errno=110&fail_jobs=1"),
            ],
            wait_for_completion=True,
            poll_interval=0.2,
            retries=1,
            retry_delay=timedelta(0),
            outlets=[ALIAS],
        )
    register(dag)

    run = dag.test()

    assert run.state == "success"
    jobs = [j for j in fts_emulator.store.stored_jobs() if prefix in j.files[0]["dest_surl"]]
    first, second = (j.record["job_id"] for j in jobs)  # try 1 (b failed), try 2 (b only)
    events = asset_events(dag.dag_id, run.run_id)
    assert {key: extra["fts_job_id"] for key, extra in events.items()} == {
        (a, a): first,
        (b, b): second,
    }


def test_a_directory_grain_adds_one_event_per_destination_directory(
    airflow_db, fts_connection, fts_emulator
):
    prefix = f"p{uuid.uuid4().hex[:8]}"
    with DAG(dag_id=f"lineage_{prefix}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        FTSSubmitOperator(
            task_id="submit",
            transfers=transfers(prefix),
            wait_for_completion=True,
            allow_partial=True,
            poll_interval=0.2,
            asset_grain="directory",
            outlets=[ALIAS],
        )
    register(dag)

    run = dag.test()

    assert run.state == "success"
    (job,) = [j for j in fts_emulator.store.stored_jobs() if prefix in j.files[0]["dest_surl"]]
    directory = f"mock://dst.example/{prefix}"
    assert asset_events(dag.dag_id, run.run_id) == {
        (directory, directory): {
            "fts_job_ids": [job.record["job_id"]],
            "fts_job_id": job.record["job_id"],
            "files": 2,
            "bytes": 4096,
        }
    }


@pytest.mark.parametrize("task", [FTSSubmitOperator, FTSJobSensor])
def test_a_wrong_asset_grain_is_refused_when_the_dag_is_parsed(task):
    from airflow_provider_fts.client.errors import FTSValidationError

    with pytest.raises(FTSValidationError, match=r"asset_grain.*'directory'"):
        kwargs = {"transfers": []} if task is FTSSubmitOperator else {"job_id": "j"}
        task(task_id="t", asset_grain="files", **kwargs)


@pytest.mark.parametrize("status", ["timeout", "error"])
def test_a_sensors_timeout_or_error_event_still_keeps_what_lineage_needs(status):
    """The job ids are kept before the verdict on the event, for the sensor too."""
    from tests.tasks import TaskTry

    sensor = FTSJobSensor(task_id="wait", job_id="job-1")
    event = {"status": status, "job_ids": ["job-1"], "message": "over"}

    with pytest.raises(Exception, match="over"):
        sensor.execute_complete({"ti": TaskTry(task_id="wait")}, event)

    assert sensor.fts_job_ids == ["job-1"]
