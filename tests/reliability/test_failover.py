"""Several FTS endpoints: a job goes to one server exactly once, whatever the first one does.

Two emulators over real HTTPS (the same CA signs both hosts), each with its own jobs; the
connection names the first as its host and the second in ``failover_endpoints``. The first
goes down (connections refused; :meth:`FTSEmulator.go_down`) or loses an answer, and comes
back with its jobs. Every test counts the jobs on both servers: exactly one per chunk.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from airflow_provider_fts.client import endpoints
from airflow_provider_fts.client.errors import AmbiguousSubmission, FTSConnectionError
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.operators.fts import FTSSubmitOperator
from airflow_provider_fts.testing.server import FTSEmulator
from airflow_provider_fts.triggers.fts import FTSJobTrigger
from tests.reliability.conftest import TaskTry
from tests.tasks import only_event, wait_terminal

# A copy of a few seconds, so that a server can go down while a task waits for it.
SLOW = ("mock://src.example/f?size=1024", "mock://dst.example/f-{n}?time=3")
QUICK = ("mock://src.example/f?size=1024", "mock://dst.example/f-{n}?time=0.2")
FAILOVER_WAIT = 20.0


def slow(n: str) -> tuple[str, str]:
    return SLOW[0], SLOW[1].format(n=n)


def quick(n: str) -> tuple[str, str]:
    return QUICK[0], QUICK[1].format(n=n)


def _emulator(fts_pki, fts_storage) -> FTSEmulator:
    return FTSEmulator(
        ca=fts_pki.ca, host_credential=fts_pki.host, ca_dir=fts_pki.ca_dir, storage=fts_storage
    )


@pytest.fixture(scope="module")
def servers(fts_pki, fts_storage) -> Iterator[tuple[FTSEmulator, FTSEmulator]]:
    with _emulator(fts_pki, fts_storage) as first, _emulator(fts_pki, fts_storage) as second:
        yield first, second


@pytest.fixture
def first(servers) -> Iterator[FTSEmulator]:
    server = servers[0]
    server.reset_counts()
    yield server
    server.faults.clear()
    if server._thread is None:  # a test that failed while it was down
        server.come_back()


@pytest.fixture
def second(servers) -> FTSEmulator:
    servers[1].reset_counts()
    return servers[1]


@pytest.fixture(autouse=True)
def fresh_process():
    """Each test starts as a new worker process: no server known to have failed, no job
    known to be anywhere."""
    endpoints.SHARED_HEALTH.clear()
    endpoints.SHARED_LOCATIONS.clear()


@pytest.fixture
def hook(first, second, fts_pki, monkeypatch) -> FTSHook:
    """``fts_default``: the first server as its host, the second as its failover."""
    extra = {
        "x509up_file": str(fts_pki.voms_proxy_path),
        "ca_path": str(fts_pki.ca_dir),
        "failover_endpoints": [at_localhost(second)],
        "failover_wait_seconds": FAILOVER_WAIT,
        "timeout_seconds": 2,
    }
    value = {"conn_type": "fts", "host": first.host, "port": first.port, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_FTS_DEFAULT", json.dumps(value))
    return FTSHook()


@pytest.fixture
def jobs(first, second) -> Callable[[], tuple[int, int]]:
    """How many jobs each server stored since the test began."""
    before = first.store.job_count(), second.store.job_count()
    return lambda: (
        first.store.job_count() - before[0],
        second.store.job_count() - before[1],
    )


def at_localhost(server: FTSEmulator) -> str:
    """The server's endpoint by another name of the same host (its certificate has both), so
    that each server of the connection has monitoring of its own: ``https://<host>:8449``."""
    return f"https://localhost:{server.port}"


def _down_for(server: FTSEmulator, seconds: float) -> threading.Thread:
    """The server goes down now and comes back ``seconds`` later, with its jobs."""
    server.go_down()

    def come_back() -> None:
        time.sleep(seconds)
        server.come_back()

    thread = threading.Thread(target=come_back, daemon=True)
    thread.start()
    return thread


def test_first_server_down_before_the_submission_puts_the_job_on_the_second(
    hook, first, second, jobs
):
    first.go_down()
    try:
        ti = TaskTry(1, dag_id="failover", run_id="first-down")
        job_id = FTSSubmitOperator(task_id="submit", transfers=[quick("down")]).execute({"ti": ti})
    finally:
        first.come_back()

    assert jobs() == (0, 1)
    assert ti.xcoms["fts_job_endpoints"] == {job_id: at_localhost(second)}
    assert ti.xcoms["fts_job_url"] == f"https://localhost:8449/fts3/ftsmon/#/job/{job_id}"
    assert wait_terminal(hook, job_id) == "FINISHED"  # read where it is
    assert second.requests["GET /jobs/{id}"] >= 1


def test_a_lost_answer_then_an_outage_waits_for_the_first_server_and_finds_the_job_there(
    hook, first, second, jobs
):
    dropped = threading.Event()
    first.faults.reset_connection(count=None, when=lambda request: dropped.is_set())
    first.faults.ambiguous_submit(when=lambda request: dropped.set() or True)

    def outage() -> None:
        dropped.wait()
        first.go_down()  # down for a while right after it stored the job
        time.sleep(4)
        first.faults.clear()
        first.come_back()

    threading.Thread(target=outage, daemon=True).start()
    started = time.monotonic()

    job_id = hook.submit_job([quick("lost")], sid="failover-lost-answer")

    assert jobs() == (1, 0)  # no job on the second server
    assert job_id == hook.expected_job_id("failover-lost-answer")
    assert time.monotonic() - started >= 4  # the task waited for the first server
    assert hook.job_endpoints([job_id]) == {job_id: first.url}
    assert second.requests["POST /jobs"] == 0


def test_a_first_server_silent_past_the_wait_fails_the_submission_without_a_second_job(
    hook, first, second, jobs, monkeypatch
):
    monkeypatch.setattr(hook.endpoints, "wait", 3.0)
    first.faults.reset_connection(count=None, route="/jobs/{id}")
    first.faults.ambiguous_submit()

    with pytest.raises(AmbiguousSubmission, match="may hold job") as raised:
        hook.submit_job([quick("silent")], sid="failover-silent")

    assert raised.value.expected_job_id == hook.expected_job_id("failover-silent")
    assert jobs() == (1, 0)
    assert second.requests["POST /jobs"] == 0


def test_the_first_server_down_mid_wait_keeps_the_wait_and_never_submits_elsewhere(
    hook, first, second, jobs
):
    operator = FTSSubmitOperator(
        task_id="submit", transfers=[slow("mid-wait")], wait_for_completion=True, poll_interval=0.5
    )
    ti = TaskTry(1, dag_id="failover", run_id="mid-wait")
    threading.Timer(1.0, _down_for, (first, 3.0)).start()

    job_id = operator.execute({"ti": ti})

    assert jobs() == (1, 0)
    assert ti.xcoms["fts_job_endpoints"] == {job_id: first.url}
    assert ti.xcoms["fts_job_url"] == f"https://127.0.0.1:8449/fts3/ftsmon/#/job/{job_id}"
    assert ti.xcoms["fts_summary"]["job_states"] == {job_id: "FINISHED"}
    assert second.requests["POST /jobs"] == 0


def test_a_retry_finds_the_job_its_first_try_submitted_to_the_second_server(
    hook, first, second, jobs
):
    first.go_down()
    try:
        first_try = TaskTry(1, dag_id="failover", run_id="retry")
        transfers = [slow("retry")]
        job_id = FTSSubmitOperator(task_id="submit", transfers=transfers).execute({"ti": first_try})
    finally:
        first.come_back()
    endpoints.SHARED_HEALTH.clear()
    endpoints.SHARED_LOCATIONS.clear()  # the retry runs in another process

    second_try = TaskTry(2, dag_id="failover", run_id="retry")
    again = FTSSubmitOperator(task_id="submit", transfers=transfers).execute({"ti": second_try})

    assert again == job_id
    assert jobs() == (0, 1)
    assert second_try.xcoms["fts_job_endpoints"] == {job_id: at_localhost(second)}
    assert hook.endpoint_of(job_id) == at_localhost(second)
    assert hook.cancel_jobs([job_id])[0]["job_state"] == "CANCELED"  # sent where it is


def test_a_retry_while_the_first_server_is_down_waits_rather_than_take_its_silence_for_no(
    hook, first, second, jobs
):
    """The first try's job is on the first server; the retry must not submit to the second."""
    first_try = TaskTry(1, dag_id="failover", run_id="retry-down")
    transfers = [slow("retry-down")]
    job_id = FTSSubmitOperator(task_id="submit", transfers=transfers).execute({"ti": first_try})
    endpoints.SHARED_LOCATIONS.clear()
    first.go_down()
    try:
        with pytest.raises(FTSConnectionError):
            FTSSubmitOperator(task_id="submit", transfers=transfers).execute(
                {"ti": TaskTry(2, dag_id="failover", run_id="retry-down")}
            )
    finally:
        first.come_back()

    assert jobs() == (1, 0)
    assert second.requests["POST /jobs"] == 0
    hook.cancel_job(job_id)


def test_a_server_that_failed_is_tried_last_for_a_while(hook, first, second, jobs, caplog):
    first.go_down()
    try:
        one = hook.submit_job([quick("cool-1")])
    finally:
        first.come_back()

    with caplog.at_level("INFO", logger=endpoints.__name__):
        two = FTSHook().submit_job([quick("cool-2")])  # another task of the same process

    assert jobs() == (0, 2)
    assert first.requests["POST /jobs"] == 0
    assert f"FTS endpoint {first.url} tried last: it failed" in caplog.text
    assert f"Submitted FTS job {two} to {at_localhost(second)}" in caplog.text
    assert one != two


def test_random_policy_spreads_submissions_over_both_servers(hook, first, second, jobs):
    hook.endpoints.policy = "random"

    ids = [hook.submit_job([quick(f"spread-{n}")]) for n in range(12)]

    assert len(set(ids)) == 12
    on_first, on_second = jobs()
    assert on_first + on_second == 12
    assert on_first and on_second


def test_test_connection_reports_every_endpoint(hook, first, second):
    first.go_down()
    try:
        ok, message = hook.test_connection()
    finally:
        first.come_back()

    assert ok
    assert f"{first.url}: FTSConnectionError" in message
    assert f"{at_localhost(second)}: Connected to {at_localhost(second)} as" in message


async def test_a_trigger_waits_for_jobs_on_both_servers_each_through_its_own_poller(
    hook, first, second, jobs
):
    on_first = await asyncio.to_thread(hook.submit_job, [quick("trigger-1")])
    first.go_down()
    try:
        on_second = await asyncio.to_thread(hook.submit_job, [quick("trigger-2")])
    finally:
        first.come_back()
    endpoints.SHARED_LOCATIONS.clear()  # the triggerer is another process
    first.reset_counts()
    second.reset_counts()

    event = await only_event(FTSJobTrigger(job_ids=[on_first, on_second], poll_interval=0.1))

    assert event["status"] == "done"
    assert event["summary"]["job_states"] == {on_first: "FINISHED", on_second: "FINISHED"}
    assert jobs() == (1, 1)
    assert first.requests["GET /jobs/{id}"] >= 1
    assert second.requests["GET /jobs/{id}"] >= 1


def test_reads_and_priorities_of_jobs_on_both_servers_go_where_each_job_is(
    hook, first, second, jobs
):
    on_first = hook.submit_job([slow("both-1")], bring_online=600)
    first.go_down()
    try:
        on_second = hook.submit_job([slow("both-2")], bring_online=600)
    finally:
        first.come_back()
    endpoints.SHARED_LOCATIONS.clear()  # another process: it asks the servers in order
    other = FTSHook()

    link = other.job_url(on_second)  # a sensor's link: the job is looked for
    records = other.get_jobs([on_second, on_first])
    answers = other.set_priority([on_second, on_first], 5)

    assert link == f"https://localhost:8449/fts3/ftsmon/#/job/{on_second}"
    assert [r["job_id"] for r in records] == [on_second, on_first]
    assert [a["job_id"] for a in answers] == [on_second, on_first]
    assert other.job_endpoints([on_first, on_second]) == {
        on_first: first.url,
        on_second: at_localhost(second),
    }
    assert (first.requests["POST /jobs/{id}"], second.requests["POST /jobs/{id}"]) == (1, 1)
    assert jobs() == (1, 1)
    other.cancel_jobs([on_first, on_second])


async def test_a_trigger_waits_through_an_outage_of_the_server_that_holds_the_job(
    hook, first, second, jobs
):
    job_id = await asyncio.to_thread(hook.submit_job, [slow("trigger-outage")])
    endpoints.SHARED_LOCATIONS.clear()  # the triggerer is another process
    trigger = FTSJobTrigger(job_ids=[job_id], poll_interval=0.2)
    waiting = asyncio.create_task(only_event(trigger))
    await asyncio.sleep(1.0)

    await asyncio.to_thread(_down_for, first, 6.0)  # longer than the poller's own retries
    event = await waiting

    assert event["status"] == "done", event
    assert event["summary"]["job_states"] == {job_id: "FINISHED"}
    assert jobs() == (1, 0)
    assert second.requests["POST /jobs"] == 0
