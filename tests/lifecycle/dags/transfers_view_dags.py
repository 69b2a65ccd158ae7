"""DAGs of the "FTS transfers" view's tests (see ``lifecycle_dags.py`` for the URL scripts)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_fts.operators.fts import FTSSubmitOperator

ETIMEDOUT, ENOENT = 110, 2


def dag(dag_id: str) -> DAG:
    start = pendulum.datetime(2024, 1, 1, tz="UTC")
    return DAG(dag_id, schedule=None, start_date=start, catchup=False, tags=["lifecycle"])


# Six files copied at different times, one failing with a recoverable error (resent by the
# Airflow retry, failing again) and one whose source is missing (never resent).
with dag("lc_view"):
    FTSSubmitOperator(
        task_id="transfer",
        transfers=[
            (
                f"mock://mock-a.example/lc_view/f{n}?size={n * 3_000_000}",
                f"mock://mock-b.example/lc_view/f{n}?time={4 + n}",
            )
            for n in range(1, 7)
        ]
        + [
            (
                "mock://mock-a.example/lc_view/flaky",
                f"mock://mock-b.example/lc_view/flaky?transfer_errno={ETIMEDOUT}&time=10",
            ),
            (
                f"mock://mock-a.example/lc_view/missing?errno={ENOENT}",
                "mock://mock-b.example/lc_view/missing?time=10",
            ),
        ],
        wait_for_completion=True,
        poll_interval=1,
        deferrable=True,
        retries=1,
        retry_delay=timedelta(seconds=3),
    )

# One long transfer, submitted without waiting: an active job to read while FTS is down.
with dag("lc_view_down"):
    FTSSubmitOperator(
        task_id="submit",
        transfers=[("mock://mock-a.example/lc_view_down/f1", "mock://mock-b.example/x?time=120")],
    )
