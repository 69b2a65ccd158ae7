"""JobPoller against the emulator over real HTTPS: who hears of which jobs, and what a poller
leaves behind."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from pathlib import Path

import pytest

from airflow_provider_fts.client.client import FTSClient
from airflow_provider_fts.client.credentials import Credentials, Trust
from airflow_provider_fts.client.errors import ServerCertificateError, ServerError
from airflow_provider_fts.client.poller import JobPoller

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller")


@pytest.fixture
def new_poller(fts_emulator, fts_pki):
    """Pollers of the test proxy; ``new_poller(trust=...)`` to verify with other CAs."""

    def make(trust: Trust | None = None) -> JobPoller:
        trust = trust or Trust(ca_path=str(fts_pki.ca_dir))
        credentials = Credentials.from_proxy_file(fts_pki.voms_proxy_path)
        context = credentials.ssl_context(trust)
        return JobPoller(fts_emulator.url, ssl_context=context, trust=trust, timeout=10)

    return make


@pytest.fixture
def submit(fts_emulator, fts_pki):
    credentials = Credentials.from_proxy_file(fts_pki.voms_proxy_path)
    trust = Trust(ca_path=str(fts_pki.ca_dir))
    with FTSClient(fts_emulator.url, credentials, trust=trust) as client:

        def submit(seconds: float = 0.5) -> str:
            name = uuid.uuid4().hex
            destination = f"mock://dst.example/{name}?time={seconds}"
            return client.submit_job([(f"mock://src.example/{name}", destination)])

        yield submit


async def test_each_waiter_hears_of_its_own_jobs_in_its_own_task(new_poller, submit):
    jobs = {"a": await asyncio.to_thread(submit), "b": await asyncio.to_thread(submit)}
    poller = new_poller()
    heard: list[tuple[str, str, bool, list[str]]] = []

    async def wait_as(name: str) -> list[dict]:
        CALLER.set(name)
        me = asyncio.current_task()

        def on_poll(summary: dict) -> None:
            ids = list(summary["job_states"])
            heard.append((name, CALLER.get(), asyncio.current_task() is me, ids))

        return await poller.wait([jobs[name]], interval=0.1, on_poll=on_poll)

    done = await asyncio.gather(wait_as("a"), wait_as("b"))

    assert [list(summary["job_states"].values()) for summary in done] == [["FINISHED"]] * 2
    assert {name for name, *_ in heard} == {"a", "b"}
    for name, caller, own_task, ids in heard:
        assert (caller, own_task, ids) == (name, True, [jobs[name]])
    assert poller.waiting == 0


async def test_the_poller_refuses_an_untrusted_server_at_once(new_poller, tmp_path: Path):
    empty = tmp_path / "cas"
    empty.mkdir()
    poller = new_poller(Trust(ca_path=str(empty)))

    with pytest.raises(ServerCertificateError, match=f"CA directory {empty} \\(ca_path\\)"):
        await poller.wait(["some-job"], interval=0.1)

    assert poller.rounds == 1  # not asked again round after round
    await asyncio.sleep(0)
    assert not poller.connected


def test_the_client_refuses_an_untrusted_server_without_retrying(
    fts_emulator, fts_pki, tmp_path: Path, caplog
):
    empty = tmp_path / "cas"
    empty.mkdir()
    credentials = Credentials.from_proxy_file(fts_pki.voms_proxy_path)
    client = FTSClient(fts_emulator.url, credentials, trust=Trust(ca_path=str(empty)))

    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(ServerCertificateError) as raised,
    ):
        client.whoami()

    assert f"the CA directory {empty} (ca_path)" in str(raised.value)
    assert "Fix: set the connection extra ca_path" in str(raised.value)
    assert "retrying" not in caplog.text
    client.close()


async def test_a_server_error_ends_the_wait_as_the_client_would(new_poller, submit, fts_emulator):
    job_id = await asyncio.to_thread(submit)
    fts_emulator.faults.answer(500, '{"status": "500 Internal Server Error", "message": "bug"}')
    poller = new_poller()

    with pytest.raises(ServerError, match="bug"):
        await poller.wait([job_id], interval=0.1)

    assert fts_emulator.requests["GET /jobs/{id}"] == 1  # a 500 is not asked again
