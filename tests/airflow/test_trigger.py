"""FTSJobTrigger and the shared poller, against the emulator over real HTTPS."""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_fts.triggers.fts import FTSJobTrigger
from tests.tasks import TaskTry, only_event, wait_terminal

SLOW = "mock://dst.example/slow-{n}"
STAGED = "mock://src.example/f?staging_time=120"  # unfinished, yet holds no slot
STAGING = {"bring_online": 600}


def test_trigger_kwargs_survive_airflow_serde(hook):
    from airflow.sdk.serde import deserialize, serialize

    trigger = FTSJobTrigger(job_ids=["a", "b"], poll_interval=5, end_time=123.5)

    classpath, kwargs = trigger.serialize()
    rebuilt = FTSJobTrigger(**deserialize(serialize(kwargs)))

    assert classpath == "airflow_provider_fts.triggers.fts.FTSJobTrigger"
    assert rebuilt.serialize() == trigger.serialize()


async def test_finished_job_gives_one_done_event_with_a_summary(hook):
    job_id = await asyncio.to_thread(
        hook.submit_job, [("mock://src.example/f?size=2048", "mock://dst.example/f")]
    )

    event = await only_event(FTSJobTrigger(job_ids=[job_id], poll_interval=0.1))

    assert event["status"] == "done"
    assert event["summary"]["job_states"] == {job_id: "FINISHED"}
    assert event["summary"]["bytes"] == 2048


async def test_failed_file_is_reported_with_its_reason(hook):
    job_id = await asyncio.to_thread(
        hook.submit_job, [("mock://src.example/f", "mock://dst.example/f?transfer_errno=13")]
    )

    event = await only_event(FTSJobTrigger(job_ids=[job_id], poll_interval=0.1))

    (failed,) = event["summary"]["failed_files"]
    assert event["summary"]["job_states"] == {job_id: "FAILED"}
    assert failed["reason"]


async def test_job_purged_to_the_archive_gives_a_done_event(hook, fts_emulator):
    job_id = await asyncio.to_thread(
        hook.submit_job, [("mock://src.example/f?size=512", "mock://dst.example/purged")]
    )
    await asyncio.to_thread(wait_terminal, hook, job_id)
    fts_emulator.purge(job_id)

    event = await only_event(FTSJobTrigger(job_ids=[job_id], poll_interval=0.1))

    assert event["status"] == "done"
    assert event["summary"]["job_states"] == {job_id: "FINISHED"}
    assert event["summary"]["bytes"] == 512


async def test_deadline_in_the_past_gives_a_timeout_event(hook):
    job_id = await asyncio.to_thread(hook.submit_job, [(STAGED, SLOW.format(n=0))], **STAGING)

    event = await only_event(FTSJobTrigger(job_ids=[job_id], end_time=time.time() - 1))

    assert event["status"] == "timeout"
    await asyncio.to_thread(hook.cancel_job, job_id)


async def test_unknown_job_gives_an_error_event(hook):
    event = await only_event(FTSJobTrigger(job_ids=["00000000-0000-0000-0000-000000000000"]))

    assert event["status"] == "error"
    assert "404" in event["message"]


def killed_trigger(job_id: str, state: str | None) -> FTSJobTrigger:
    """A deferred try's trigger, whose task instance the API server now reports as ``state``."""
    trigger = FTSJobTrigger(job_ids=[job_id])
    trigger.task_instance = TaskTry(1, run_id="kill", task_id="wait", state=state)
    return trigger


async def test_on_kill_after_mark_failed_cancels_the_job(hook):
    job_id = await asyncio.to_thread(hook.submit_job, [(STAGED, SLOW.format(n=1))], **STAGING)

    await killed_trigger(job_id, "failed").on_kill()

    job = await asyncio.to_thread(hook.get_job, job_id)
    assert job["job_state"] == "CANCELED"


@pytest.mark.parametrize(
    "state",
    [
        "success",  # marked success
        None,  # cleared, the new try not yet scheduled
        "restarting",  # cleared while a worker ran it
        "running",  # cleared, and the new try already reconnected to the job
        "deferred",  # ... and deferred again on it, before this on_kill arrived
        "up_for_retry",
    ],
)
async def test_on_kill_leaves_the_job_running_unless_the_task_is_failed(hook, state):
    job_id = await asyncio.to_thread(
        hook.submit_job, [(STAGED, SLOW.format(n=f"k-{state}"))], **STAGING
    )

    await killed_trigger(job_id, state).on_kill()

    job = await asyncio.to_thread(hook.get_job, job_id)
    assert job["job_state"] == "STAGING"
    await asyncio.to_thread(hook.cancel_job, job_id)


async def test_on_kill_without_a_task_instance_leaves_the_job_running(hook):
    job_id = await asyncio.to_thread(hook.submit_job, [(STAGED, SLOW.format(n="no-ti"))], **STAGING)

    await FTSJobTrigger(job_ids=[job_id]).on_kill()

    job = await asyncio.to_thread(hook.get_job, job_id)
    assert job["job_state"] == "STAGING"
    await asyncio.to_thread(hook.cancel_job, job_id)


async def test_a_job_that_ends_at_once_is_held_until_not_before(hook):
    job_id = await asyncio.to_thread(
        hook.submit_job, [("mock://src.example/f", "mock://dst.example/held")]
    )
    await asyncio.to_thread(wait_terminal, hook, job_id)
    not_before = time.time() + 0.5

    event = await only_event(FTSJobTrigger(job_ids=[job_id], not_before=not_before))

    assert event["status"] == "done"
    assert time.time() >= not_before


async def test_a_thousand_waiting_jobs_cost_ten_requests_per_round(hook, fts_emulator):
    client = hook.get_client()
    job_ids = await asyncio.to_thread(
        lambda: [client.submit_job([(STAGED, SLOW.format(n=n))], **STAGING) for n in range(1000)]
    )
    triggers = [FTSJobTrigger(job_ids=[j], poll_interval=0.5) for j in job_ids]
    tasks = [asyncio.create_task(only_event(t)) for t in triggers]
    poller = await hook.aget_poller()
    while poller.waiting < 1000:
        await asyncio.sleep(0.05)

    rounds = poller.rounds
    while poller.rounds == rounds:  # a round just ended: count the next one alone
        await asyncio.sleep(0.01)
    fts_emulator.reset_counts()
    while poller.rounds == rounds + 1:
        await asyncio.sleep(0.01)

    assert fts_emulator.requests["GET /jobs/{id}"] == 10
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.to_thread(client.cancel_jobs, job_ids)
