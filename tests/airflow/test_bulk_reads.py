"""What a task asks FTS at size: a retry reads files only of jobs that did not finish, a wait
reads each job's files once, and what it publishes stays small. Against the emulator."""

from __future__ import annotations

import asyncio
import json

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_fts.client.states import (
    FINISHED_FILE_FIELDS,
    OUTCOME_FILE_FIELDS,
    ProgressLog,
)
from airflow_provider_fts.operators.fts import (
    EARLIER_FAILURES_KEY,
    EARLIER_JOBS_PER_READ,
    FTSSubmitOperator,
)
from airflow_provider_fts.triggers.fts import FTSJobTrigger
from airflow_provider_fts.verdict import FTSRecoverableFailure
from tests.targets import job_reads, record_targets
from tests.tasks import TaskTry, only_event

FINISHED_FIELDS = ",".join(FINISHED_FILE_FIELDS)
OUTCOME_FIELDS = ",".join(OUTCOME_FILE_FIELDS)


def run(operator: FTSSubmitOperator, try_number: int, run_id: str):
    ti = TaskTry(try_number, run_id=run_id, task_id=operator.task_id)
    try:
        return operator.execute({"ti": ti}), ti
    except Exception as error:
        return error, ti


def test_a_retry_reads_the_files_only_of_jobs_that_did_not_finish(hook, fts_emulator):
    operator = FTSSubmitOperator(
        task_id="bulk-retry",
        transfers=[
            ("mock://s.example/ok", "mock://d.example/bulk-retry/ok"),
            ("mock://s.example/r", "mock://d.example/bulk-retry/r?transfer_errno=110"),
        ],
        max_files_per_job=1,
        wait_for_completion=True,
        poll_interval=0.05,
    )
    error, _ = run(operator, 1, "bulk-retry")
    assert isinstance(error, FTSRecoverableFailure)
    finished, failed = operator._job_ids
    seen = record_targets(fts_emulator)

    error, ti = run(operator, 2, "bulk-retry")

    lookup = job_reads(seen)[:2]
    assert lookup == [({finished, failed}, None), ({failed}, OUTCOME_FIELDS)]
    assert [(ids, files) for ids, files in job_reads(seen) if finished in ids and files] == [
        ({finished}, FINISHED_FIELDS)  # once, by the wait, for counts and bytes
    ]
    assert isinstance(error, FTSRecoverableFailure)  # the resent file fails again
    assert ti.xcoms["fts_summary"]["file_states"] == {"FAILED": 1, "FINISHED": 1}


def test_a_retry_reads_earlier_files_a_few_jobs_per_request(hook, fts_emulator):
    """45 one-file jobs failed once: the retry asks their records in one request, then
    their files 20 jobs at a time, and resends each file once."""
    operator = FTSSubmitOperator(
        task_id="bulk-groups",
        transfers=[
            (f"mock://s.example/{n}", f"mock://d.example/groups/{n}?transfer_errno=110&fail_jobs=1")
            for n in range(45)
        ],
        max_files_per_job=1,
        wait_for_completion=True,
        poll_interval=0.05,
    )
    error, _ = run(operator, 1, "bulk-groups")
    assert isinstance(error, FTSRecoverableFailure)
    earlier = set(operator._job_ids)
    seen = record_targets(fts_emulator)

    result, ti = run(operator, 2, "bulk-groups")

    reads = [(ids, files) for ids, files in job_reads(seen) if ids <= earlier]
    assert reads[0] == (earlier, None)
    assert [len(ids) for ids, files in reads[1:]] == [EARLIER_JOBS_PER_READ] * 2 + [5]
    assert {files for _, files in reads[1:]} == {OUTCOME_FIELDS}
    assert len(result) == 45 and not set(result) & earlier
    assert ti.xcoms["fts_summary"]["file_states"] == {"FINISHED": 45}


def test_a_deferred_retry_carries_what_earlier_tries_lost_to_its_end(hook, fts_emulator):
    """Try 2 reads try 1's files before it defers; it resumes (a fresh task object, as in
    a new process) with the file try 1 failed for good from XCom, reading no file again."""

    def operator() -> FTSSubmitOperator:
        return FTSSubmitOperator(
            task_id="carry",
            transfers=[
                ("mock://s.example/ok", "mock://d.example/carry/ok"),
                (
                    "mock://s.example/o",
                    "mock://d.example/carry/once?transfer_errno=110&fail_jobs=1",
                ),
                ("mock://s.example/f", "mock://d.example/carry/fatal?transfer_errno=13"),
            ],
            wait_for_completion=True,
            deferrable=True,
            poll_interval=0.05,
        )

    def try_(number: int) -> tuple[TaskTry, dict]:
        ti = TaskTry(number, run_id="carry", task_id="carry")
        with pytest.raises(TaskDeferred) as deferred:
            operator().execute({"ti": ti})
        return ti, asyncio.run(only_event(deferred.value.trigger))

    ti, event = try_(1)
    with pytest.raises(FTSRecoverableFailure):
        operator().execute_complete({"ti": ti}, event)
    ti, event = try_(2)
    assert ti.xcoms[EARLIER_FAILURES_KEY]["failed_count"] == 1
    seen = record_targets(fts_emulator)

    with pytest.raises(Exception, match="failures for good of earlier tries"):
        operator().execute_complete({"ti": ti}, event)

    assert all(files is None for _, files in job_reads(seen))  # records only
    summary = ti.xcoms["fts_summary"]
    assert summary["file_states"] == {"FAILED": 1, "FINISHED": 1}
    assert [f["destination"] for f in summary["failed_files"]] == [
        "mock://d.example/carry/fatal?transfer_errno=13"
    ]


def test_a_wait_reads_each_jobs_files_once_when_it_ends(hook, fts_emulator):
    operator = FTSSubmitOperator(
        task_id="bulk-wait",
        transfers=[(f"mock://s.example/{n}", f"mock://d.example/w/{n}?time=0.3") for n in range(6)],
        max_files_per_job=2,
        wait_for_completion=True,
        poll_interval=0.05,
    )
    seen = record_targets(fts_emulator)

    _, ti = run(operator, 1, "bulk-wait")

    reads = job_reads(seen)
    assert len(reads) > 6  # several rounds
    with_files = [(ids, files) for ids, files in reads if files]
    assert sorted(i for ids, _ in with_files for i in ids) == sorted(operator._job_ids)
    assert {files for _, files in with_files} == {FINISHED_FIELDS}
    assert ti.xcoms["fts_summary"]["file_states"] == {"FINISHED": 6}


async def test_ten_thousand_files_with_9950_failures_give_a_small_summary_and_short_lines(
    hook, fts_emulator
):
    """50 jobs of 200 files: 50 files finish, then the jobs are canceled (9,950 files
    CANCELED: failed, for the summary). The sync wait and the trigger's event alike."""

    def submit(n: int) -> str:
        quick = 50 if n == 0 else 0
        return hook.submit_job(
            [
                (f"mock://s.example/big/{n}/{i}", f"mock://d.example/big/{n}/{i}?time=3600")
                if i >= quick
                else (f"mock://s.example/big/{n}/{i}?size=10", f"mock://d.example/big/{n}/{i}")
                for i in range(200)
            ]
        )

    job_ids = [await asyncio.to_thread(submit, n) for n in range(50)]
    while await asyncio.to_thread(finished_files, hook, job_ids[0]) < 50:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(hook.cancel_jobs, job_ids)
    lines: list[str] = []

    summary = await asyncio.to_thread(
        hook.wait_for_jobs, job_ids, 0.05, None, ProgressLog(lines.append)
    )
    event = await only_event(FTSJobTrigger(job_ids=job_ids, poll_interval=0.05))

    assert event["summary"] == summary
    assert len(json.dumps(summary)) < 64 * 1024
    assert summary["file_states"] == {"CANCELED": 9950, "FINISHED": 50}
    assert (summary["failed_count"], summary["bytes"]) == (9950, 500)
    assert len(summary["failed_files"]) == 50
    assert summary["failure_reasons"] == [
        {"reason": "Job canceled by the user", "files": 9950, "recoverable": 0}
    ]
    assert lines == [
        "FTS: 50 jobs (50 CANCELED); 50 of 10000 files finished, 9950 failed; 500 bytes, "
        f"{summary['throughput_mib_s']} MiB/s"
    ]


def finished_files(hook, job_id: str) -> int:
    files = hook.get_job(job_id, file_fields=["file_state"])["files"]
    return sum(f["file_state"] == "FINISHED" for f in files)


def test_a_sensor_reads_an_ended_jobs_files_once_across_its_pokes(hook, fts_emulator):
    from airflow_provider_fts.sensors.fts import FTSJobSensor

    done = hook.submit_job([("mock://s.example/p", "mock://d.example/poke/done")])
    running = hook.submit_job([("mock://s.example/p", "mock://d.example/poke/slow?time=30")])
    while hook.get_job(done)["job_state"] != "FINISHED":
        pass
    sensor = FTSJobSensor(task_id="wait", job_id=[done, running])
    seen = record_targets(fts_emulator)

    for _ in range(3):
        assert not sensor.poke({"ti": TaskTry(task_id="wait")}).is_done

    assert job_reads(seen) == [
        ({done, running}, None),
        ({done}, FINISHED_FIELDS),
        ({running}, None),
        ({running}, None),
    ]
    hook.cancel_job(running)
