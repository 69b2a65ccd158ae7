"""Each task's log holds its own job only; a worker killed mid-wait loses nothing."""

from __future__ import annotations

import os
import signal

import psutil

from .actions import Run, describe_jobs, jobs_of, wait_jobs
from .stack import wait_for


def test_three_mapped_deferred_waits_each_log_only_their_own_job(airflow_stack, emulator):
    run = Run.trigger(airflow_stack, "lc_mapped")
    tis = [run.wait_ti_done("wait", map_index=index, timeout=150) for index in range(3)]
    assert [ti["state"] for ti in tis] == ["success"] * 3, run.describe()
    job_ids = [run.xcom_mapped("submit", index) for index in range(3)]
    assert sorted(job_ids) == sorted(j["job_id"] for j in jobs_of(emulator, run))

    for index, own in enumerate(job_ids):
        log = run.log("wait", 1, map_index=index)
        assert own[:8] in log, f"wait[{index}] never names its job {own}:\n{log[-3000:]}"
        strangers = [other for other in job_ids if other != own and other[:8] in log]
        assert not strangers, (
            f"wait[{index}] (job {own}) logs other tasks' jobs {strangers}:\n{log[-3000:]}"
        )


def test_worker_killed_after_submission_the_retry_reuses_the_job(airflow_stack, emulator):
    run = Run.trigger(airflow_stack, "lc_kill")
    ti = run.wait_ti("transfer", {"running"}, try_number=1, timeout=90)
    job = wait_jobs(
        emulator, run, "a job to be active", lambda jobs: jobs and jobs[0]["state"] == "ACTIVE"
    )[0]
    worker = wait_for(
        f"the task process 'airflow worker -- {ti['id']}'", lambda: task_process(ti["id"]), 30
    )

    os.kill(worker.pid, signal.SIGKILL)

    ti = run.wait_ti_done("transfer", timeout=150)
    jobs = jobs_of(emulator, run)
    assert (ti["state"], ti["try_number"]) == ("success", 2), (
        f"{run.describe()}; {describe_jobs(jobs)}"
    )
    assert [j["job_id"] for j in jobs] == [job["job_id"]], describe_jobs(jobs)
    assert jobs[0]["state"] == "FINISHED" and not jobs[0]["cancel_job"], describe_jobs(jobs)
    assert job["job_id"] in run.log("transfer", 2), "try 2 does not name the job it waited for"


def task_process(ti_id: str) -> psutil.Process | None:
    """The process running this task instance: its title is ``airflow worker -- <ti id>``."""
    for process in psutil.process_iter(["cmdline"]):
        if f"airflow worker -- {ti_id}" in " ".join(process.info["cmdline"] or ()):
            return process
    return None


def test_worker_killed_while_submitting_chunks_leaves_one_job_per_chunk(airflow_stack, emulator):
    # Every POST takes a second and one answer is lost: the kill lands mid-way.
    slow = emulator.faults.post_delay(1.0)
    lost = emulator.faults.ambiguous_submit(count=1)
    try:
        run = Run.trigger(airflow_stack, "lc_kill_submitting")
        ti = run.wait_ti("transfer", {"running"}, try_number=1, timeout=90)
        worker = wait_for(
            f"the task process 'airflow worker -- {ti['id']}'", lambda: task_process(ti["id"]), 30
        )
        wait_jobs(emulator, run, "try 1's first job", lambda jobs: bool(jobs))

        os.kill(worker.pid, signal.SIGKILL)

        ti = run.wait_ti_done("transfer", timeout=240)
    finally:
        slow.remaining = lost.remaining = 0
    jobs = jobs_of(emulator, run)
    chunks = sorted(int(job["sid"].rsplit(":", 1)[1]) for job in jobs)
    tries = {job["sid"].split(":")[-2] for job in jobs}
    assert (ti["state"], ti["try_number"]) == ("success", 2), (
        f"{run.describe()}; {describe_jobs(jobs)}"
    )
    assert chunks == list(range(12)), describe_jobs(jobs)
    assert tries == {"1", "2"}, f"the kill did not land mid-way: {describe_jobs(jobs)}"
    assert lost.hits == 1
