"""Clear and mark a deferred task through the REST API, as a user does in the UI.

A clear never cancels the job (the new try reconnects to it); marking failed cancels it
(``cancel_on_kill``); marking success never cancels it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from .actions import Run, describe_jobs, jobs_of, wait_jobs
from .dags.lifecycle_dags import MARKED_AT_ONCE

ACTIVE = {"SUBMITTED", "READY", "ACTIVE", "STAGING", "QUEUED"}
ENDED = {"FINISHED", "FINISHEDDIRTY", "FAILED", "CANCELED"}


def active_job(emulator, run: Run) -> dict:
    """The run's only job, once it is transferring."""
    jobs = wait_jobs(
        emulator, run, "a job to be active", lambda jobs: jobs and jobs[-1]["state"] == "ACTIVE"
    )
    assert len(jobs) == 1, describe_jobs(jobs)
    return jobs[0]


@pytest.mark.parametrize(
    ("dag_id", "task_id"),
    [("lc_clear_operator", "transfer"), ("lc_clear_sensor", "wait")],
    ids=["operator", "sensor"],
)
def test_clearing_a_deferred_task_keeps_its_job_and_the_new_try_finishes_on_it(
    airflow_stack, emulator, dag_id: str, task_id: str
):
    run = Run.trigger(airflow_stack, dag_id)
    run.wait_deferred(task_id)
    job = active_job(emulator, run)

    run.clear(task_id)
    run.wait_ti(task_id, {"running", "deferred", "success", "failed"}, try_number=2)
    ti = run.wait_ti_done(task_id, timeout=120)

    jobs = jobs_of(emulator, run)
    assert not any(j["cancel_job"] for j in jobs), f"the clear canceled: {describe_jobs(jobs)}"
    assert [j["job_id"] for j in jobs] == [job["job_id"]], describe_jobs(jobs)
    assert jobs[0]["state"] == "FINISHED", describe_jobs(jobs)
    assert (ti["state"], ti["try_number"]) == ("success", 2), (
        f"{run.describe()}; log of try 2:\n{_tail(run.log(task_id, 2))}"
    )
    assert job["job_id"] in run.log(task_id, 2) or job["job_id"][:8] in run.log(task_id, 2)


def test_marking_a_deferred_sensor_failed_cancels_its_job(airflow_stack, emulator):
    run = Run.trigger(airflow_stack, "lc_mark")
    run.wait_deferred("wait")
    job = active_job(emulator, run)

    run.mark("wait", "failed")

    jobs = wait_jobs(emulator, run, "its job to end", lambda jobs: jobs[0]["state"] in ENDED)
    assert jobs[0]["job_id"] == job["job_id"]
    assert jobs[0]["state"] == "CANCELED", describe_jobs(jobs)
    assert run.ti("wait")["state"] == "failed"


def test_marking_a_deferred_sensor_success_leaves_its_job_running(airflow_stack, emulator):
    run = Run.trigger(airflow_stack, "lc_mark")
    run.wait_deferred("wait")
    job = active_job(emulator, run)

    run.mark("wait", "success")

    jobs = wait_jobs(
        emulator, run, "its job to end", lambda jobs: jobs[0]["state"] in ENDED, timeout=90
    )
    assert jobs[0]["job_id"] == job["job_id"]
    assert not jobs[0]["cancel_job"], f"marking success canceled: {describe_jobs(jobs)}"
    assert jobs[0]["state"] == "FINISHED", describe_jobs(jobs)
    assert run.ti("wait")["state"] == "success"


def test_several_user_actions_at_once_each_mark_failed_cancels_only_its_job(
    airflow_stack, emulator
):
    """Six mapped deferred sensors: four marked failed, one marked success and one cleared,
    all at the same moment through the REST API."""
    run = Run.trigger(airflow_stack, "lc_mark_mapped")
    indexes = range(MARKED_AT_ONCE)
    for index in indexes:
        run.wait_deferred("wait", map_index=index, timeout=150)
    wait_jobs(
        emulator,
        run,
        "every job to be active",
        lambda jobs: len(jobs) == MARKED_AT_ONCE and all(j["state"] in ACTIVE for j in jobs),
    )
    job_of = {index: run.xcom_mapped("submit", index) for index in indexes}
    actions = {0: "failed", 1: "failed", 2: "success", 3: "failed", 4: "clear", 5: "failed"}
    together = threading.Barrier(MARKED_AT_ONCE)

    def act(index: int) -> None:
        together.wait()
        if actions[index] == "clear":
            run.clear("wait", map_index=index)
        else:
            run.mark("wait", actions[index], map_index=index)

    with ThreadPoolExecutor(MARKED_AT_ONCE) as pool:
        list(pool.map(act, indexes))

    jobs = wait_jobs(
        emulator,
        run,
        "every job to end",
        lambda jobs: all(j["state"] in ENDED for j in jobs),
        timeout=120,
    )
    by_id = {job["job_id"]: job for job in jobs}
    outcome = {index: by_id[job_of[index]]["state"] for index in indexes}
    logs = "\n".join(run.log("wait", 1, map_index=index)[-1500:] for index in indexes)
    expected = {i: "CANCELED" if a == "failed" else "FINISHED" for i, a in actions.items()}
    assert outcome == expected, f"{describe_jobs(jobs)}\n{logs}"
    assert run.wait_ti_done("wait", map_index=4)["state"] == "success"  # the cleared one


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])
