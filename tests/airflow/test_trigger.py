"""FTSJobTrigger and the shared poller, against the emulator over real HTTPS."""

from __future__ import annotations

import asyncio
import time

from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.triggers.fts import FTSJobTrigger

SLOW = "mock://dst.example/slow-{n}"
STAGED = "mock://src.example/f?staging_time=120"  # unfinished, yet holds no slot
STAGING = {"bring_online": 600}


def wait_finished(hook: FTSHook, job_id: str) -> None:
    deadline = time.monotonic() + 10
    while hook.get_job(job_id)["job_state"] != "FINISHED":
        assert time.monotonic() < deadline
        time.sleep(0.05)


async def only_event(trigger: FTSJobTrigger) -> dict:
    events = [event async for event in trigger.run()]
    assert len(events) == 1
    return events[0].payload


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
    await asyncio.to_thread(wait_finished, hook, job_id)
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


async def test_on_kill_cancels_the_job(hook):
    job_id = await asyncio.to_thread(hook.submit_job, [(STAGED, SLOW.format(n=1))], **STAGING)

    await FTSJobTrigger(job_ids=[job_id]).on_kill()

    job = await asyncio.to_thread(hook.get_job, job_id)
    assert job["job_state"] == "CANCELED"


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
