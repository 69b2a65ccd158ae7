"""Run one DAG of FTS tasks under ``dag.test()`` with OpenLineage writing to a file.

Run as ``python -m tests.lineage.ol_run <prefix> <events.jsonl>`` by the OpenLineage tests:
a fresh process, so OpenLineage reads its transport from the environment set here and no
other test pays for it. Tasks: ``partial`` (2 of 3 files finish, ``allow_partial``),
``failing`` (the same, without it), ``deferred`` (like ``failing``, waiting in the
trigger), and ``submit`` -> ``wait`` (a deferrable sensor).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime

PREFIX, EVENTS = sys.argv[1], sys.argv[2]
os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
    {"type": "file", "log_file_path": EVENTS, "append": True}
)
os.environ["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "fts-tests"

from airflow.sdk import DAG  # noqa: E402

from airflow_provider_fts.operators.fts import FTSSubmitOperator  # noqa: E402
from airflow_provider_fts.sensors.fts import FTSJobSensor  # noqa: E402
from tests.lineage.conftest import register  # noqa: E402


def transfers(name: str) -> list[dict]:
    """Two files finish (a, b), one fails (c); a lasts long enough for every wait to defer."""
    base = f"{PREFIX}/{name}"
    seconds = 6 if name == "sensed" else 2
    return [
        {
            "source": f"davs://site-a.example:443/{base}/a",
            "destination": f"mock://dst.example/{base}/a?authz=TOKEN&time={seconds}",
        },
        {
            "source": f"mock://src.example/{base}/b?size=1000",
            "destination": f"root://Eos.Example:1094/{base}/b",
        },
        {
            "source": f"mock://src.example/{base}/c",
            "destination": f"mock://dst.example/{base}/c?transfer_errno=13",
        },
    ]


with DAG(dag_id=f"ol_{PREFIX}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    waits = [
        FTSSubmitOperator(
            task_id=name,
            transfers=transfers(name),
            wait_for_completion=True,
            allow_partial=partial,
            deferrable=deferrable,
            poll_interval=0.2,
        )
        for name, partial, deferrable in (
            ("partial", True, False),
            ("failing", False, False),
            ("deferred", False, True),
        )
    ]
    # Last, so that the sensor starts right after the submission and finds the job running.
    submit = FTSSubmitOperator(
        task_id="submit", transfers=transfers("sensed"), trigger_rule="all_done"
    )
    (
        waits
        >> submit
        >> FTSJobSensor(
            task_id="wait",
            job_id="{{ ti.xcom_pull(task_ids='submit') }}",
            allow_partial=True,
            deferrable=True,
            poke_interval=0.2,
        )
    )

register(dag)
run = dag.test()
print("STATES", json.dumps({ti.task_id: ti.state for ti in run.get_task_instances()}))
