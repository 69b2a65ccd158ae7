"""A DAG run's FTS job of many files, held by an emulator that does not run it.

The job is submitted through :class:`FTSHook` with the id the operator's first try gives
its first chunk, then its files are given outcomes as FTS would record them (most copied
over an hour, every tenth failed for one of three reasons), so the view reads the job
exactly as it would read a real run's.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.plugins.report import FTSTask
from airflow_provider_fts.testing.environment import make_test_pki
from airflow_provider_fts.testing.records import iso
from airflow_provider_fts.testing.server import FTSEmulator

CONN_ID = "fts_many"
REASONS = [
    ("TRANSFER [110] Connection timed out", True),
    ("SOURCE [2] No such file or directory", False),
    ("DESTINATION [17] Destination file exists and overwrite is not enabled", False),
]


def start_emulator(directory: Path) -> tuple[FTSEmulator, str]:
    """An emulator that keeps jobs as the test sets them, and its Airflow connection."""
    pki = make_test_pki(directory)
    emulator = FTSEmulator(
        ca=pki.ca, host_credential=pki.host, ca_dir=pki.ca_dir, run_engine=False
    ).start()
    return emulator, emulator.connection_json(pki.voms_proxy_path, ca_path=pki.ca_dir)


def many_files_run(emulator: FTSEmulator, run_id: str, files: int) -> FTSTask:
    """Submit a job of ``files`` files as try 1, chunk 0 of a task, and end it."""
    task = FTSTask("many", run_id, "submit", -1, 1, CONN_ID, pushed=())
    transfers = [
        (f"mock://src.example/{run_id}/f{n}", f"mock://dst.example/{run_id}/f{n}?sig=s3cr3t")
        for n in range(files)
    ]
    job_id = FTSHook(CONN_ID).submit_job(transfers, sid=task.sid(1, 0))
    start = time.time() - 3600
    with emulator.store.lock:
        (job,) = [j for j in emulator.store.stored_jobs() if j.job_id == job_id]
        for n, row in enumerate(job.files):
            finish = start + 3600 * (n + 1) / files
            row.update(start_time=iso(finish - 5), finish_time=iso(finish), filesize=1000 + n)
            if n % 10 == 9:
                reason, recoverable = REASONS[n // 10 % 3]
                row.update(file_state="FAILED", reason=reason, recoverable=recoverable)
            else:
                row.update(file_state="FINISHED")
        job.finish("FINISHEDDIRTY", None, start + 3600)
    return replace(task, pushed=(job_id,))
