"""The lifecycle suite's DAG on a connection with two FTS servers (``fts_failover``, which
the test creates through the REST API): Airflow's clears and retries across a failover.

Like every DAG of the suite, its files live under ``/<dag_id>/``; ``davs://flaky.example``
fails with ETIMEDOUT (recoverable) until the test maps it on a server.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_fts.operators.fts import FTSSubmitOperator

SETTLE = 10  # seconds each transfer takes (see lifecycle_dags.SETTLE)
ETIMEDOUT = 110

with DAG(
    "lc_failover",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lifecycle"],
):
    FTSSubmitOperator(
        task_id="transfer",
        fts_conn_id="fts_failover",
        transfers=[
            (
                "mock://mock-a.example/lc_failover/f1",
                f"mock://mock-b.example/lc_failover/f1?time={SETTLE}",
            ),
            (
                "davs://site-a.example/lc_failover/f2",
                f"davs://flaky.example/lc_failover/f2?transfer_errno={ETIMEDOUT}&time={SETTLE}",
            ),
        ],
        wait_for_completion=True,
        poll_interval=1,
        deferrable=True,
        retries=2,
        retry_delay=timedelta(seconds=1),
    )
