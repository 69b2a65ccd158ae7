"""When FTS or the network misbehaves, every path ends right, with exactly one job per submission.

Faults come from the emulator's switches over real HTTPS. Each test counts the jobs the
emulator stored (``store.job_count()`` before and after) and the requests it received.

Where the whole task path matters, the example DAG runs under ``dag.test()`` with the
fault armed beforehand (submit task, first sensor poke, then the deferred trigger run
inline). Faults that must hit one precise moment (between a submit and its XCom push, in
the middle of a deferred wait, in a task's first try only) drive ``operator.execute`` or
``trigger.run()`` directly: ``dag.test()`` has no hook at those moments and does not retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.serde import deserialize, serialize

from airflow_provider_fts.client.client import FTSClient
from airflow_provider_fts.client.credentials import Credentials, Trust
from airflow_provider_fts.client.poller import JobPoller
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.operators.fts import FTSSubmitOperator
from airflow_provider_fts.sensors.fts import FTSJobSensor
from airflow_provider_fts.triggers.fts import FTSJobTrigger
from tests.airflow_env import load_example_dag
from tests.reliability.conftest import TaskTry
from tests.tasks import only_event, wait_terminal

REPLICATED = ("run-001.root", "run-002.root", "run-003.root")
QUICK = ("mock://src.example/q?size=1024", "mock://dst.example/q-{n}?time=0.2")
# Staging for two minutes keeps a job unfinished without taking a transfer slot.
STAGED = ("mock://src.example/s?staging_time=120", "mock://dst.example/s-{n}")
STAGING = {"bring_online": 600}
READ_TIMEOUT = 0.3
SLOWER_THAN_TIMEOUT = 1.0


@pytest.fixture
def hook(connect) -> FTSHook:
    connect()
    return FTSHook()


@pytest.fixture
def client(fts_emulator, fts_pki):
    """A client with a short read timeout, so that a slow answer counts as lost."""
    with FTSClient(
        fts_emulator.url,
        Credentials.from_proxy_file(fts_pki.voms_proxy_path),
        trust=Trust(ca_path=str(fts_pki.ca_dir)),
        timeout=(5.0, READ_TIMEOUT),
        backoff=0.05,
    ) as client:
        yield client


@pytest.fixture
def new_jobs(fts_emulator) -> Callable[[], int]:
    """How many jobs the emulator stored since the test began."""
    before = fts_emulator.store.job_count()
    return lambda: fts_emulator.store.job_count() - before


def quick(n: str) -> tuple[str, str]:
    return QUICK[0], QUICK[1].format(n=n)


def staged(n: str) -> tuple[str, str]:
    return STAGED[0], STAGED[1].format(n=n)


# --------------------------------------------------------------------------- whole DAG runs

DAG_FAULTS = {
    "503-burst-on-every-read": lambda f: f.html_503(count=3, route="GET /jobs/{id}"),
    "503-on-identity": lambda f: f.html_503(count=2, route="GET /whoami"),
    "resets-on-reads": lambda f: f.reset_connection(count=3, route="GET /jobs/{id}"),
    "reset-before-submit": lambda f: f.reset_connection(count=1, route="POST /jobs"),
    "ambiguous-submit": lambda f: f.ambiguous_submit(count=1),
    "malformed-json-on-reads": lambda f: f.malformed_json(count=2, route="GET /jobs/{id}"),
}


@pytest.fixture
def replication(airflow_db, connect, fts_storage, monkeypatch):
    connect()
    monkeypatch.setenv("FTS_EXAMPLE_POLL_SECONDS", "0.2")
    source = fts_storage["davs://site-a.example"] / "data"
    source.mkdir(exist_ok=True)
    for name in REPLICATED:
        (source / name).write_bytes(name.encode() * 100)
    return load_example_dag("example_fts_replication")


@pytest.mark.parametrize("arm", DAG_FAULTS.values(), ids=DAG_FAULTS.keys())
def test_replication_dag_succeeds_with_one_job_despite(arm, replication, fts_emulator, new_jobs):
    fault = arm(fts_emulator.faults)

    run = replication.test()

    assert run.state == "success"
    assert fault.hits > 0 and fault.remaining == 0
    assert new_jobs() == 1
    (job,) = fts_emulator.store.jobs_snapshot()[-1:]
    assert job["job_state"] == "FINISHED"
    assert sorted(f["dest_surl"].rpartition("/")[2] for f in job["files"]) == list(REPLICATED)


# --------------------------------------------------------------------------- hook and client


def test_hook_read_survives_a_burst_of_503_pages(hook, fts_emulator):
    job_id = hook.submit_job([staged("h503")], **STAGING)
    fts_emulator.reset_counts()
    fts_emulator.faults.html_503(count=2, route="GET /jobs/{id}")

    job = hook.get_job(job_id)

    assert job["job_id"] == job_id
    assert fts_emulator.requests["GET /jobs/{id}"] == 3
    hook.cancel_job(job_id)


def test_hook_read_survives_connection_resets(hook, fts_emulator):
    job_id = hook.submit_job([staged("hreset")], **STAGING)
    fts_emulator.reset_counts()
    fts_emulator.faults.reset_connection(count=2, route="GET /jobs/{id}")

    job = hook.get_job(job_id)

    assert job["job_id"] == job_id
    assert fts_emulator.requests["GET /jobs/{id}"] == 3
    hook.cancel_job(job_id)


def test_submit_reset_before_handling_is_looked_up_then_sent_once_more(
    hook, fts_emulator, new_jobs
):
    fts_emulator.faults.reset_connection(count=1, route="POST /jobs")

    job_id = hook.submit_job([quick("hpost-reset")], sid="reset-before-handling")

    assert job_id == hook.expected_job_id("reset-before-handling")
    assert new_jobs() == 1
    assert fts_emulator.requests["POST /jobs"] == 2
    assert fts_emulator.requests["GET /jobs/{id}"] == 1  # the lookup of the expected id


def test_ambiguous_submit_is_found_by_its_deterministic_id(hook, fts_emulator, new_jobs):
    fault = fts_emulator.faults.ambiguous_submit(count=1)

    job_id = hook.submit_job([quick("hambiguous")], sid="stored-then-dropped")

    assert fault.hits == 1
    assert job_id == hook.expected_job_id("stored-then-dropped")
    assert new_jobs() == 1
    assert fts_emulator.requests["POST /jobs"] == 1


def test_submit_with_a_malformed_answer_is_found_by_its_deterministic_id(
    hook, fts_emulator, new_jobs
):
    fts_emulator.faults.malformed_json(count=1, route="POST /jobs")

    job_id = hook.submit_job([quick("hmalformed")], sid="stored-answer-garbled")

    assert job_id == hook.expected_job_id("stored-answer-garbled")
    assert new_jobs() == 1
    assert fts_emulator.requests["POST /jobs"] == 1


def test_hook_read_survives_malformed_json(hook, fts_emulator):
    job_id = hook.submit_job([staged("hjson")], **STAGING)
    fts_emulator.faults.malformed_json(count=1, route="GET /jobs/{id}")

    assert hook.get_job(job_id)["job_id"] == job_id
    hook.cancel_job(job_id)


def test_client_read_timeout_is_retried(client, fts_emulator):
    job_id = client.submit_job([staged("ctimeout")], **STAGING)
    fts_emulator.reset_counts()
    fts_emulator.faults.slow(SLOWER_THAN_TIMEOUT, count=1, route="GET /jobs/{id}")

    assert client.get_job(job_id)["job_id"] == job_id
    assert fts_emulator.requests["GET /jobs/{id}"] == 2
    client.cancel_job(job_id)


def test_submit_timing_out_while_the_server_stores_it_makes_one_job(client, fts_emulator, new_jobs):
    # The first POST is stored after the client gave up; the client's lookup comes first,
    # sends again, and the late first POST meets the sid already taken (409, unanswered).
    fts_emulator.faults.slow(SLOWER_THAN_TIMEOUT, count=1, route="POST /jobs")

    job_id = client.submit_job([quick("ctimeout-post")], sid="slow-submit")
    time.sleep(SLOWER_THAN_TIMEOUT)  # let the late POST land

    assert job_id == client.expected_job_id("slow-submit")
    assert new_jobs() == 1
    assert fts_emulator.requests["POST /jobs"] == 2


def test_expired_delegation_419_leads_to_one_redelegation_and_one_job(hook, fts_emulator, new_jobs):
    hook.submit_job([quick("d1")])  # delegates, and the client trusts that for a while
    client = hook.get_client()
    fts_emulator.expire_delegation(client.delegation_id)
    fts_emulator.reset_counts()

    job_id = hook.submit_job([quick("d2")], sid="after-expiry")

    assert job_id == hook.expected_job_id("after-expiry")
    assert new_jobs() == 2
    assert fts_emulator.requests["POST /jobs"] == 2  # 419, then accepted
    assert fts_emulator.requests["PUT /delegation/{dlg_id}/credential"] == 1
    assert hook.get_delegation()["termination_time"] > datetime.now(UTC) + timedelta(hours=1)


# --------------------------------------------------------------------------- operator


def test_submit_answered_503_makes_one_job_within_the_try(hook, fts_emulator, new_jobs):
    operator = FTSSubmitOperator(task_id="submit", transfers=[quick("o503")])
    fts_emulator.faults.html_503(count=1, route="POST /jobs")

    job_id = operator.execute({"ti": TaskTry(1, run_id="o503")})
    again = operator.execute({"ti": TaskTry(2, run_id="o503")})  # an Airflow retry

    assert again == job_id
    assert new_jobs() == 1
    assert fts_emulator.requests["POST /jobs"] == 2  # the 503, then the checked resend
    assert hook.get_job(job_id)["job_id"] == job_id


def test_retry_after_a_crash_between_submit_and_xcom_push_reuses_the_job(
    hook, fts_emulator, new_jobs
):
    operator = FTSSubmitOperator(task_id="submit", transfers=[staged("crash")], job_params=STAGING)
    crashing = TaskTry(1, run_id="crash")
    crashing.xcom_push = _crash  # the worker dies right after FTS accepted the job

    with pytest.raises(SystemExit):
        operator.execute({"ti": crashing})
    second = TaskTry(2, run_id="crash")
    job_id = FTSSubmitOperator(
        task_id="submit", transfers=[staged("crash")], job_params=STAGING
    ).execute({"ti": second})

    assert new_jobs() == 1
    assert fts_emulator.requests["POST /jobs"] == 1
    assert second.xcoms["fts_job_id"] == job_id
    hook.cancel_job(job_id)


def _crash(key, value):
    raise SystemExit("worker killed")


def test_operator_retry_finds_a_job_already_purged_to_the_archive(hook, fts_emulator, new_jobs):
    operator = FTSSubmitOperator(task_id="submit", transfers=[quick("purged-retry")])
    first = operator.execute({"ti": TaskTry(1, run_id="purged")})
    wait_terminal(hook, first)
    assert new_jobs() == 1
    fts_emulator.purge(first)

    second = operator.execute({"ti": TaskTry(2, run_id="purged")})

    assert second == first
    assert new_jobs() == 0  # the one job left /jobs for the archive; none came in
    assert fts_emulator.requests["POST /jobs"] == 1


# --------------------------------------------------------------------------- sensor


def test_sensor_reads_a_purged_job_from_the_archive(hook, fts_emulator):
    job_id = hook.submit_job([quick("purged-sensor")])
    wait_terminal(hook, job_id)
    fts_emulator.purge(job_id)
    ti = TaskTry(1, run_id="purged-sensor", task_id="wait")

    result = FTSJobSensor(task_id="wait", job_id=job_id).poke({"ti": ti})

    assert result.is_done
    assert result.xcom_value["job_states"] == {job_id: "FINISHED"}
    assert result.xcom_value["file_states"] == {"FINISHED": 1}
    assert fts_emulator.requests["GET /archive/{id}"] == 1


SENSOR_FAULTS = {
    "503-burst": lambda f: f.html_503(count=3, route="GET /jobs/{id}"),
    "resets": lambda f: f.reset_connection(count=3, route="GET /jobs/{id}"),
    "malformed-json": lambda f: f.malformed_json(count=2, route="GET /jobs/{id}"),
}


@pytest.mark.parametrize("arm", SENSOR_FAULTS.values(), ids=SENSOR_FAULTS.keys())
def test_sensor_poke_ends_right_despite(arm, hook, fts_emulator):
    job_id = hook.submit_job([quick("sensor-fault")])
    wait_terminal(hook, job_id)
    arm(fts_emulator.faults)
    ti = TaskTry(1, run_id="sensor-fault", task_id="wait")

    result = FTSJobSensor(task_id="wait", job_id=job_id).poke({"ti": ti})

    assert result.is_done
    assert result.xcom_value["job_states"] == {job_id: "FINISHED"}


# --------------------------------------------------------------------------- trigger

TRIGGER_FAULTS = {
    "503-burst": lambda f: f.html_503(count=3, route="GET /jobs/{id}"),
    "resets": lambda f: f.reset_connection(count=3, route="GET /jobs/{id}"),
    "malformed-json": lambda f: f.malformed_json(count=3, route="GET /jobs/{id}"),
}


@pytest.mark.parametrize("arm", TRIGGER_FAULTS.values(), ids=TRIGGER_FAULTS.keys())
async def test_trigger_ends_with_one_done_event_despite(arm, hook, fts_emulator, new_jobs):
    job_id = await asyncio.to_thread(hook.submit_job, [quick("trigger-fault")])
    fault = arm(fts_emulator.faults)

    event = await only_event(FTSJobTrigger(job_ids=[job_id], poll_interval=0.1))

    assert fault.hits == 3
    assert event["status"] == "done"
    assert event["summary"]["job_states"] == {job_id: "FINISHED"}
    assert new_jobs() == 1


async def test_trigger_reads_a_purged_job_from_the_archive(hook, fts_emulator):
    job_id = await asyncio.to_thread(hook.submit_job, [quick("purged-trigger")])
    await asyncio.to_thread(wait_terminal, hook, job_id)
    fts_emulator.purge(job_id)

    event = await only_event(FTSJobTrigger(job_ids=[job_id], poll_interval=0.1))

    assert event["status"] == "done"
    assert event["summary"]["job_states"] == {job_id: "FINISHED"}
    assert event["summary"]["files"] == 1


async def test_poller_read_timeout_is_asked_again(fts_emulator, fts_pki):
    job_id = await asyncio.to_thread(_submit_with_proxy, fts_emulator, fts_pki, "ptimeout")
    context = Credentials.from_proxy_file(fts_pki.voms_proxy_path).ssl_context(
        Trust(ca_path=str(fts_pki.ca_dir))
    )
    poller = JobPoller(fts_emulator.url, ssl_context=context, timeout=READ_TIMEOUT)
    fts_emulator.faults.slow(SLOWER_THAN_TIMEOUT, count=1, route="GET /jobs/{id}")

    summary = await poller.wait([job_id], interval=0.1)

    assert summary["job_states"] == {job_id: "FINISHED"}
    assert fts_emulator.requests["GET /jobs/{id}"] >= 2


def _submit_with_proxy(emulator, pki, name: str) -> str:
    credentials = Credentials.from_proxy_file(pki.voms_proxy_path)
    with FTSClient(emulator.url, credentials, trust=Trust(ca_path=str(pki.ca_dir))) as client:
        return client.submit_job([quick(name)])


async def test_restarted_trigger_resumes_and_sends_one_event(hook, fts_emulator, new_jobs):
    # As a triggerer restart does: the trigger row keeps only the serialized kwargs.
    job_id = await asyncio.to_thread(
        hook.submit_job, [("mock://src.example/r", "mock://dst.example/r?time=1.5")]
    )
    classpath, kwargs = FTSJobTrigger(job_ids=[job_id], poll_interval=0.1).serialize()
    stored = serialize(kwargs)
    first = asyncio.create_task(only_event(FTSJobTrigger(**deserialize(stored))))
    poller = await hook.aget_poller()
    while poller.rounds < 2:
        await asyncio.sleep(0.05)
    assert not first.done()

    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    event = await only_event(FTSJobTrigger(**deserialize(stored)))

    assert classpath == "airflow_provider_fts.triggers.fts.FTSJobTrigger"
    assert event["status"] == "done"
    assert event["summary"]["job_states"] == {job_id: "FINISHED"}
    assert new_jobs() == 1
