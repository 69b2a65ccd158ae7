"""Retry-managed bulk copy: thousands of files in jobs of 200, then a second pass that
resubmits only the files worth retrying.

1. ``plan`` reads the manifest (one ``source destination`` pair per line) and cuts it into
   batches of :data:`BATCH_SIZE`.
2. ``copy`` is mapped over the batches: one FTS job per batch, each its own task instance,
   so an Airflow retry of one batch never touches the others (and never submits twice).
3. ``wait`` is mapped over the job ids: deferrable sensors, so a thousand waiting jobs hold
   no worker slot. ``allow_partial=True`` lets a FINISHEDDIRTY job (some files failed)
   succeed; a FAILED job (every file of the batch failed) still fails its sensor, which
   is the truth. Either way the sensor publishes its summary (XCom ``fts_summary``).
4. ``retry_plan`` runs once every sensor is done, failed or not (``trigger_rule=all_done``),
   reads those summaries and keeps the failed files FTS marked recoverable (timeouts,
   overloaded storage); a permanent error (no permission, no such file) is not retried.
5. ``second_pass`` resubmits only those, with more retries and a delay, and waits.
6. ``report`` fails the run, naming each file, if any file did not end up copied.

Why "copy" and not "move": FTS has no job that deletes the sources after a verified copy
(deletion jobs are refused with 405 since FTS 3.12.3), and this DAG does not pretend to.
``report`` returns the sources whose copy FINISHED with the checksum verified at both ends:
deleting them is left to the storage's owner and tools.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from airflow.sdk import DAG, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_fts.operators.fts import FTSSubmitOperator
from airflow_provider_fts.sensors.fts import FTSJobSensor

log = logging.getLogger(__name__)

BATCH_SIZE = 200
POLL_SECONDS = float(os.environ.get("FTS_EXAMPLE_POLL_SECONDS", "60"))
FIRST_PASS = {"verify_checksum": "both", "overwrite": True, "retry": 1}
RETRY_DELAY_SECONDS = int(os.environ.get("FTS_EXAMPLE_RETRY_DELAY_SECONDS", "300"))
SECOND_PASS = {**FIRST_PASS, "retry": 3, "retry_delay": RETRY_DELAY_SECONDS}


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
def retry_plan() -> list[list[list[str]]]:
    """The recoverable failures of the first pass, in batches (none: no second pass)."""
    failed = [f for summary in summaries_of("wait") for f in summary["failed_files"]]
    return batches_of([[f["source"], f["destination"]] for f in failed if f["recoverable"]])


@task(trigger_rule="all_done")
def report(batches: list[list[list[str]]]) -> list[str]:
    """The sources now safe to delete (copied, checksums verified); fail, naming every
    file that was not copied, unless that is all of them."""
    first, second = summaries_of("wait"), summaries_of("second_pass")
    retried = {f["destination"] for s in first for f in s["failed_files"] if f["recoverable"]}
    lost = [f for s in first for f in s["failed_files"] if f["destination"] not in retried]
    lost += [f for s in second for f in s["failed_files"]]
    sources = [source for batch in batches for source, _ in batch]
    copied = sum(s["file_states"].get("FINISHED", 0) for s in first + second)
    for failed in lost:
        log.error("Not copied: %(source)s -> %(destination)s: %(reason)s", failed)
    if lost or copied != len(sources):
        raise AirflowFailException(f"Copied {copied} of {len(sources)} files; {len(lost)} failed.")
    log.info("All %d files copied and verified at both ends.", copied)
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
        task_id="copy", job_params=FIRST_PASS, max_files_per_job=BATCH_SIZE
    ).expand(transfers=batches)
    wait = FTSJobSensor.partial(
        task_id="wait", allow_partial=True, deferrable=True, poke_interval=POLL_SECONDS
    ).expand(job_id=copy.output)
    retries = retry_plan()
    second_pass = FTSSubmitOperator.partial(
        task_id="second_pass",
        job_params=SECOND_PASS,
        max_files_per_job=BATCH_SIZE,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=POLL_SECONDS,
    ).expand(transfers=retries)
    wait >> retries
    second_pass >> report(batches)
