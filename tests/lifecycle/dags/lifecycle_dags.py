"""DAGs of the lifecycle suite: one per scenario, each with polls of a second or two.

Every file of a DAG lives under ``/<dag_id>/`` so the suite finds a run's jobs in the
emulator by the job's ``sid`` (which names DAG, task and run) and its URLs by DAG id.
``mock://`` URLs script the outcome (gfal2 mock plugin: ``time=`` seconds,
``errno=``/``transfer_errno=`` failures); ``davs://site-a.example`` and
``davs://site-b.example`` are local directories the emulator really copies between;
``davs://flaky.example`` is not mapped until the test "repairs" it, so until then it
behaves like ``mock://`` and fails with the scripted errno.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetAlias, task

from airflow_provider_fts.operators.fts import FTSSubmitOperator
from airflow_provider_fts.sensors.fts import FTSJobSensor

START = pendulum.datetime(2024, 1, 1, tz="UTC")
SLOW = 25  # seconds a "long" transfer takes: long enough to act on it while it runs
# Jobs that end within a second or two of the task deferring meet Airflow 3.3's race
# (apache/airflow#72716: the scheduler may fail or retry the running task); scenarios not
# about that race give every transfer ten seconds.
SETTLE = 10
ETIMEDOUT, ENOENT, EACCES = 110, 2, 13


def dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, tags=["lifecycle"])


def mock_pair(dag_id: str, name: str, **destination_query: object) -> tuple[str, str]:
    query = "&".join(f"{key}={value}" for key, value in destination_query.items())
    destination = f"mock://mock-b.example/{dag_id}/{name}" + (f"?{query}" if query else "")
    return f"mock://mock-a.example/{dag_id}/{name}", destination


def submit_and_wait(transfers: list, **kwargs: object) -> FTSSubmitOperator:
    """The retry unit: submit, then wait in the same task."""
    return FTSSubmitOperator(
        task_id="transfer",
        transfers=transfers,
        wait_for_completion=True,
        poll_interval=1,
        **kwargs,
    )


def submit_then_sensor(transfers: list, **sensor_kwargs: object) -> None:
    submit = FTSSubmitOperator(task_id="submit", transfers=transfers)
    sensor = FTSJobSensor(
        task_id="wait",
        job_id=submit.output,
        poke_interval=1,
        timeout=600,
        **sensor_kwargs,
    )
    submit >> sensor


# A recoverable failure (ETIMEDOUT) of one file in three on try 1; Airflow retries.
with dag("lc_retry"):
    submit_and_wait(
        [
            (
                "davs://site-a.example/lc_retry/f1",
                f"davs://site-b.example/lc_retry/f1?time={SETTLE}",
            ),
            (
                "davs://site-a.example/lc_retry/f2",
                f"davs://site-b.example/lc_retry/f2?time={SETTLE}",
            ),
            (
                "davs://site-a.example/lc_retry/f3",
                f"davs://flaky.example/lc_retry/f3?transfer_errno={ETIMEDOUT}&time={SETTLE}",
            ),
        ],
        deferrable=True,
        retries=2,
        retry_delay=timedelta(seconds=4),
    )

# A source that does not exist: no retry can help.
with dag("lc_fatal"):
    submit_and_wait(
        [
            mock_pair("lc_fatal", "ok", time=SETTLE),
            (
                f"mock://mock-a.example/lc_fatal/missing?errno={ENOENT}",
                f"mock://mock-b.example/lc_fatal/missing?time={SETTLE}",
            ),
        ],
        deferrable=True,
        retries=2,
        retry_delay=timedelta(seconds=1),
    )

# Cleared while deferred: the operator waits itself, the sensor waits for a submit task.
with dag("lc_clear_operator"):
    submit_and_wait([mock_pair("lc_clear_operator", "f1", time=SLOW)], deferrable=True)

with dag("lc_clear_sensor"):
    submit_then_sensor([mock_pair("lc_clear_sensor", "f1", time=SLOW)], deferrable=True)

# Marked failed (one run) or success (another run) while the sensor is deferred.
with dag("lc_mark"):
    submit_then_sensor([mock_pair("lc_mark", "f1", time=SLOW)], deferrable=True)

# Three jobs, three mapped deferred sensors: each log must name its own job only.
with dag("lc_mapped"):
    submit = FTSSubmitOperator.partial(task_id="submit").expand(
        transfers=[[mock_pair("lc_mapped", f"f{n}", time=8)] for n in range(3)]
    )
    FTSJobSensor.partial(task_id="wait", poke_interval=1, timeout=600, deferrable=True).expand(
        job_id=submit.output
    )

# Six mapped deferred sensors on jobs of a minute, all marked failed at the same moment (the
# suite's SQLite makes Airflow take many seconds to act on six marks at once).
MARKED_AT_ONCE = 6
with dag("lc_mark_mapped"):
    submit = FTSSubmitOperator.partial(task_id="submit").expand(
        transfers=[[mock_pair("lc_mark_mapped", f"f{n}", time=60)] for n in range(MARKED_AT_ONCE)]
    )
    FTSJobSensor.partial(task_id="wait", poke_interval=1, timeout=600, deferrable=True).expand(
        job_id=submit.output
    )

# A permission error (EACCES, not recoverable) fails try 1 for good; the user fixes the
# site and clears the task: the new try sends that file again.
with dag("lc_fix"):
    submit_and_wait(
        [
            (
                "davs://site-a.example/lc_fix/f1",
                f"davs://site-b.example/lc_fix/f1?time={SETTLE}",
            ),
            (
                "davs://site-a.example/lc_fix/f2",
                f"davs://flaky.example/lc_fix/f2?transfer_errno={EACCES}&time={SETTLE}",
            ),
        ],
        deferrable=True,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )

# Try 1: `once` fails recoverably (in its first job only), `fatal` for good (EACCES).
# Try 2 resends `once` alone and defers; it resumes in a new process and fails for
# `fatal`, which it knows from XCom (`fts_earlier_failures`), not from reading try 1 again.
with dag("lc_carry"):
    submit_and_wait(
        [
            mock_pair("lc_carry", "ok", time=SETTLE),
            mock_pair("lc_carry", "once", time=SETTLE, transfer_errno=ETIMEDOUT, fail_jobs=1),
            mock_pair("lc_carry", "fatal", time=SETTLE, transfer_errno=EACCES),
        ],
        deferrable=True,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )

# The worker waits in its own process (not deferred); the test kills it with SIGKILL.
with dag("lc_kill"):
    submit_and_wait(
        [mock_pair("lc_kill", "f1", time=SLOW)],
        deferrable=False,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )

# Twelve one-file jobs sent two at a time: the worker is killed while it sends them.
with dag("lc_kill_submitting"):
    submit_and_wait(
        [mock_pair("lc_kill_submitting", f"f{n}", time=SETTLE) for n in range(12)],
        max_files_per_job=1,
        submit_concurrency=2,
        deferrable=False,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )

# Fast jobs, for the "FTS job" link on the operator and on the sensor.
with dag("lc_links"):
    submit_then_sensor([mock_pair("lc_links", "f1", time=SETTLE)])


# A replication announces what moved: `ok` FINISHES, `lost` fails for good (EACCES), the job
# ends FINISHEDDIRTY and, with allow_partial, the task succeeds and adds one event per
# FINISHED destination to its alias. Each consumer is scheduled on one destination, spelled
# as a DAG author writes it: the URL without its query.
ASSET_FINISHING = mock_pair("lc_assets", "ok", time=SETTLE)
ASSET_FAILING = mock_pair("lc_assets", "lost", time=SETTLE, transfer_errno=EACCES)

with dag("lc_assets"):
    submit_and_wait(
        [ASSET_FINISHING, ASSET_FAILING],
        deferrable=True,
        allow_partial=True,
        outlets=[AssetAlias("lc-replicas")],
    )


def asset_consumer(dag_id: str, destination: str) -> None:
    replica = Asset(destination.partition("?")[0])
    with DAG(dag_id, schedule=[replica], start_date=START, catchup=False, tags=["lifecycle"]):

        @task
        def triggered_by(triggering_asset_events: Any = None) -> list[dict]:
            """What the run sees of the events that started it, by asset and by alias (an
            event added through an alias is listed under both)."""
            return [
                {
                    "key": f"{type(key).__name__}:{key.name}",
                    "events": [[e.asset.uri, e.extra.get("fts_job_id")] for e in events],
                }
                for key, events in (triggering_asset_events or {}).items()
            ]

        triggered_by()


asset_consumer("lc_asset_consumer", ASSET_FINISHING[1])
asset_consumer("lc_asset_consumer_of_failed", ASSET_FAILING[1])
