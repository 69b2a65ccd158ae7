"""Scheduled replication: every day, copy the day's files from site A to site B.

FTS verifies checksums at both ends (``verify_checksum="both"``). The submit task returns
at once; the sensor waits in the triggerer (``deferrable=True``) and returns a summary.
On success the sensor adds one asset event per replica that FINISHED to the
``fts-replicas`` alias (asset ``davs://site-b.example/replica/<day>/<file>``, extra with the
FTS job id, source, size): ``example_fts_replica_consumer`` is scheduled on it.

The day in the destination is the run's logical date, or, for a run triggered without one
(Airflow 3's default for the REST API and the UI), the time it was asked to run: every run
has ``dag_run.run_after``, while ``{{ ds }}`` is undefined without a logical date.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, AssetAlias

from airflow_provider_fts.operators.fts import FTSSubmitOperator
from airflow_provider_fts.sensors.fts import FTSJobSensor

SOURCE = "davs://site-a.example/data"
DESTINATION = "davs://site-b.example/replica/{{ (dag_run.logical_date or dag_run.run_after) | ds }}"
FILES = ["run-001.root", "run-002.root", "run-003.root"]
POLL_SECONDS = float(os.environ.get("FTS_EXAMPLE_POLL_SECONDS", "60"))
REPLICAS = AssetAlias("fts-replicas")

with DAG(
    dag_id="example_fts_replication",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["fts", "example"],
) as dag:
    submit = FTSSubmitOperator(
        task_id="submit",
        transfers=[{"source": f"{SOURCE}/{f}", "destination": f"{DESTINATION}/{f}"} for f in FILES],
        job_params={"verify_checksum": "both", "overwrite": True, "retry": 2},
    )
    wait = FTSJobSensor(
        task_id="wait",
        job_id="{{ ti.xcom_pull(task_ids='submit') }}",
        poke_interval=POLL_SECONDS,
        deferrable=True,
        outlets=[REPLICAS],
    )
    submit >> wait
