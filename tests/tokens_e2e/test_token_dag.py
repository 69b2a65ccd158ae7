"""Token connections in real Airflow runs: the deferrable wait and whole example DAGs.

The secret-hygiene search is ``tests/reliability/test_secrets.py``'s, applied to an OIDC
connection: the client secret and every token fetched during the run (FTS and storage
tokens) must be absent from log records, the printed task log, task log files, XComs and
rendered template fields.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from airflow_provider_fts.client.oidc import token_source
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.triggers.fts import FTSJobTrigger
from tests.airflow_env import load_example_dag
from tests.reliability.test_secrets import places_of, prepare, secret_lines
from tests.tokens.conftest import ROBOT_SECRET, SHORT_TTL
from tests.tokens_e2e.conftest import slow_clock

WAIT = 1.5 * SHORT_TTL  # the transfer outlasts a token


def test_the_trigger_renews_a_token_that_expires_while_it_waits(oidc_connection, idp):
    oidc_connection(oidc_client_id="fts-robot-short")
    destination = f"mock://dst.example/trigger/long?time={WAIT}"
    job_id = FTSHook().submit_job(
        [{"sources": ["mock://src.example/trigger/long"], "destinations": [destination]}]
    )
    idp.reset_counts()
    trigger = FTSJobTrigger(job_ids=[job_id], poll_interval=1.0)

    async def wait() -> list:
        return [event.payload async for event in trigger.run()]

    started = time.monotonic()
    (event,) = asyncio.run(wait())
    waited = time.monotonic() - started

    assert event["status"] == "done", event["message"]
    assert event["summary"]["job_states"] == {job_id: "FINISHED"}
    assert waited > SHORT_TTL  # the first token expired during the wait ...
    # ... and was renewed in time (at half its lifetime), not once per poll.
    assert 2 <= idp.token_requests() <= waited / (SHORT_TTL / 2) + 1


def test_the_poller_renews_an_ignored_token_once_in_the_loop(oidc_connection, token_emulator, idp):
    oidc_connection(oidc_client_id="fts-robot-short")
    hook = FTSHook()
    token_source(hook.settings.credential.oidc, clock=slow_clock())  # the hook's source
    transfer = {"sources": ["mock://src.example/p/f"], "destinations": ["mock://dst.example/p/f"]}
    job_id = hook.submit_job([transfer])  # the token worked
    time.sleep(SHORT_TTL + 1)  # expired for FTS, not for the slow client clock
    token_emulator.reset_counts()
    idp.reset_counts()

    async def wait() -> dict:
        poller = await FTSHook().aget_poller()
        return await poller.wait([job_id], interval=30)  # a second round would time out

    summary = asyncio.run(asyncio.wait_for(wait(), timeout=20))

    assert summary["job_states"] == {job_id: "FINISHED"}
    assert idp.token_requests() == 1  # renewed once
    # ignored (500), then answered; then the ended job's files, once
    assert token_emulator.requests["GET /jobs/{id}"] == 3


@pytest.mark.parametrize("name", ["example_fts_replication", "example_fts_bulk_copy"])
def test_an_example_dag_with_a_token_connection_leaks_no_token(
    name,
    oidc_connection,
    fetched_secrets,
    airflow_db,
    fts_storage,
    tmp_path,
    monkeypatch,
    caplog,
    capfd,
):
    oidc_connection(oidc_storage_access=True)
    monkeypatch.setenv("FTS_EXAMPLE_POLL_SECONDS", "0.2")
    monkeypatch.setenv("FTS_EXAMPLE_RETRY_DELAY_SECONDS", "0")
    caplog.set_level(logging.DEBUG)
    run_conf = prepare(name, fts_storage, tmp_path)

    run = load_example_dag(name).test(run_conf=run_conf)

    assert run.state == "success" or name == "example_fts_bulk_copy"  # bulk copy has a bad file
    assert len(fetched_secrets) >= 3  # the FTS token and storage tokens were fetched
    secrets = secret_lines(ROBOT_SECRET, *fetched_secrets)
    haystacks = places_of(run, caplog, capfd)
    assert "::endgroup::" in haystacks["printed task log"] + haystacks["log records"]
    assert haystacks["XComs and rendered templates"]
    for where, text in haystacks.items():
        leaked = sorted(line[:12] for line in secrets if line in text)
        assert not leaked, f"a token or the client secret in {where}"
