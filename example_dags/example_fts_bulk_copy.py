"""Retry-managed bulk copy: thousands of files in jobs of 200, failures retried by Airflow.

1. ``plan`` reads the manifest (one ``source destination`` pair per line) and cuts it into
   batches of :data:`BATCH_SIZE`.
2. ``copy`` is mapped over the batches: one FTS job per batch, each its own task instance
   that submits and waits (deferred, so a thousand waiting jobs hold no worker slot). It is
   the unit Airflow retries: when files fail that FTS marks recoverable (timeouts,
   overloaded storage), the task fails *retryably*, and after ``retry_delay`` the next
   try resubmits only the files no earlier job finished. A permanent error (no
   permission, no such file) is never resent; once only those are left, the task fails
   without retrying. Every try publishes its summary (XCom ``fts_summary``), which also
   names the permanent failures of earlier tries.
3. ``report`` runs once every batch is done, failed or not (``trigger_rule=all_done``), and
   fails the run, naming each file, if any file did not end up copied.

Why "copy" and not "move": FTS has no job that deletes the sources after a verified copy
(deletion jobs are refused with 405 since FTS 3.12.3), and this DAG does not pretend to.
``report`` returns the sources whose copy FINISHED with the checksum verified at both ends:
deleting them is left to the storage's owner and tools.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_fts.operators.fts import FTSSubmitOperator

log = logging.getLogger(__name__)

BATCH_SIZE = 200
POLL_SECONDS = float(os.environ.get("FTS_EXAMPLE_POLL_SECONDS", "60"))
#: FTS retries a transient failure inside the job first (``retry``); what still fails is
#: left to Airflow's retries, ``RETRY_DELAY_SECONDS`` later.
JOB_PARAMS = {"verify_checksum": "both", "overwrite": True, "retry": 1}
AIRFLOW_RETRIES = 3
RETRY_DELAY_SECONDS = int(os.environ.get("FTS_EXAMPLE_RETRY_DELAY_SECONDS", "300"))


def batches_of(pairs: list[list[str]]) -> list[list[list[str]]]:
    return [pairs[start : start + BATCH_SIZE] for start in range(0, len(pairs), BATCH_SIZE)]


def summaries_of(task_id: str) -> list[dict]:
    """The ``fts_summary`` of every map index of a task (failed instances included)."""
    pulled = get_current_context()["ti"].xcom_pull(task_ids=[task_id], key="fts_summary")
    return [summary for summary in pulled or [] if summary]


@task
def plan() -> list[list[list[str]]]:
    """The manifest's transfers, in batches of BATCH_SIZE (one FTS job each)."""
    manifest = get_current_context()["params"]["manifest"]
    with open(manifest, encoding="utf-8") as lines:
        pairs = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    malformed = [pair for pair in pairs if len(pair) != 2]
    if malformed:
        raise AirflowFailException(f"{manifest}: not 'source destination': {malformed[:5]}")
    return batches_of(pairs)


@task(trigger_rule="all_done")
def report(batches: list[list[list[str]]]) -> list[str]:
    """The sources now safe to delete (copied, checksums verified); fail, naming every
    file that was not copied.

    The last try of each batch summarizes it whole: its failed files include the
    permanent failures of earlier tries, and every other file of the batch FINISHED.
    """
    summaries = summaries_of("copy")
    if len(summaries) != len(batches):
        raise AirflowFailException(
            f"Only {len(summaries)} of {len(batches)} batches reported an outcome; "
            "see the failed copy tasks."
        )
    # Each summary counts every failed file and names the first 50 (FTSHook.iter_files
    # lists every one of a task's jobs).
    lost = [f for summary in summaries for f in summary["failed_files"]]
    for failed in lost:
        log.error("Not copied: %(source)s -> %(destination)s: %(reason)s", failed)
    not_copied = sum(summary["failed_count"] for summary in summaries)
    sources = [source for batch in batches for source, _ in batch]
    if not_copied:
        raise AirflowFailException(f"Copied {len(sources) - not_copied} of {len(sources)} files.")
    log.info("All %d files copied and verified at both ends.", len(sources))
    return sources


with DAG(
    dag_id="example_fts_bulk_copy",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"manifest": Param("/data/manifests/bulk-copy.txt", type="string")},
    tags=["fts", "example"],
) as dag:
    batches = plan()
    copy = FTSSubmitOperator.partial(
        task_id="copy",
        job_params=JOB_PARAMS,
        max_files_per_job=BATCH_SIZE,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        retries=AIRFLOW_RETRIES,
        retry_delay=timedelta(seconds=RETRY_DELAY_SECONDS),
    ).expand(transfers=batches)
    copy >> report(batches)
