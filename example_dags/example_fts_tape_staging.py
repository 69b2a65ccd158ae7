"""Tape recall: bring files online from a tape endpoint, then copy them to disk.

FTS does both in one job: with ``bring_online`` set, each file is first staged (file
states STAGING -> STARTED, the job is STAGING), then copied (SUBMITTED -> ACTIVE ->
FINISHED). ``bring_online`` is how long FTS waits for the tape system, and
``copy_pin_lifetime`` how long the staged disk copy stays pinned. Each file's
``staging_metadata`` is passed to the tape system (here a hint that keeps one dataset's
files together).

One task submits and waits (``wait_for_completion=True``) in the triggerer
(``deferrable=True``): a recall can take hours and must not hold a worker slot meanwhile.

Tape requests need an X.509 credential: FTS refuses ``bring_online`` with token
authentication (400).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, get_current_context, task

from airflow_provider_fts.operators.fts import FTSSubmitOperator

POLL_SECONDS = float(os.environ.get("FTS_EXAMPLE_POLL_SECONDS", "300"))
STAGING = {
    "bring_online": timedelta(hours=8),
    "copy_pin_lifetime": timedelta(hours=24),
    "verify_checksum": "both",
    "overwrite": True,
    "retry": 2,
}


@task
def recall_list() -> list[dict]:
    """One transfer per file, tagged with its dataset for the tape system."""
    params = get_current_context()["params"]
    return [
        {
            "source": f"{params['tape']}/{params['dataset']}/{name}",
            "destination": f"{params['disk']}/{params['dataset']}/{name}",
            "staging_metadata": {"dataset": params["dataset"]},
        }
        for name in params["files"]
    ]


with DAG(
    dag_id="example_fts_tape_staging",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={
        "tape": Param("davs://site-a.example/tape", type="string"),
        "disk": Param("davs://site-b.example/recalled", type="string"),
        "dataset": Param("run-2025-11", type="string"),
        "files": Param(["raw-001.dat", "raw-002.dat"], type="array"),
    },
    tags=["fts", "example"],
) as dag:
    FTSSubmitOperator(
        task_id="recall",
        transfers=recall_list(),
        job_params=STAGING,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=POLL_SECONDS,
    )
