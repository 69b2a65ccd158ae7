"""1,000 jobs of 10 files, each waited for by its own deferred trigger, as a triggerer runs them.

The jobs have scripted outcomes (``mock://``): finished (half the files after a retry),
finished with recoverable failures, failed for good, and canceled while waited for. One
event loop runs a thousand FTSJobTrigger instances at once; they share one poller. Every
transfer must reach a final state and be reported once: no job lost, none duplicated, no
file missing. Transfers last a few seconds, so the triggers wait through several rounds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.testing.server import FTSEmulator
from airflow_provider_fts.triggers.fts import FTSJobTrigger
from tests.targets import job_reads, record_targets
from tests.tasks import trigger_events

JOBS = 1000
FILE_SIZE = 1024
FILES_PER_JOB = 10
POLL_SECONDS = 0.5
TIME_LIMIT = 60.0

# Per kind of job: how its files are scripted, its job parameters and the expected outcome.
KINDS = {
    "finished": {
        "destinations": ["time=3"] * 5 + ["time=1.5&transfer_errno=110&fail_attempts=1"] * 5,
        "params": {"retry": 1, "retry_delay": 0},
        "job_state": "FINISHED",
        "file_states": {"FINISHED": 10},
        "recoverable": 0,
    },
    "recoverable": {
        "destinations": ["time=4"] * 5 + ["time=4&transfer_errno=110"] * 5,
        "params": {"retry": -1},
        "job_state": "FINISHEDDIRTY",
        "file_states": {"FINISHED": 5, "FAILED": 5},
        "recoverable": 5,
    },
    "unrecoverable": {
        "destinations": ["time=3&transfer_errno=13"] * 10,
        "params": {"retry": 2},
        "job_state": "FAILED",
        "file_states": {"FAILED": 10},
        "recoverable": 0,
    },
    "canceled": {
        "destinations": ["time=120"] * 10,
        "params": {},
        "job_state": "CANCELED",
        "file_states": {"CANCELED": 10},
        "recoverable": 0,
    },
}


@pytest.fixture
def busy_emulator(fts_pki, monkeypatch):
    """An emulator of its own, whose engine runs every file at once (no queueing)."""
    emulator = FTSEmulator(ca=fts_pki.ca, host_credential=fts_pki.host, ca_dir=fts_pki.ca_dir)
    emulator.engine.concurrency = JOBS * FILES_PER_JOB
    with emulator:
        connection = emulator.connection_json(fts_pki.voms_proxy_path, ca_path=fts_pki.ca_dir)
        monkeypatch.setenv("AIRFLOW_CONN_FTS_DEFAULT", connection)
        yield emulator


def transfers(job: int, kind: str) -> list[tuple[str, str]]:
    return [
        (
            f"mock://src.example/load/{job}/{n}?size={FILE_SIZE}",
            f"mock://dst.example/load/{job}/{n}?{query}",
        )
        for n, query in enumerate(KINDS[kind]["destinations"])
    ]


def submit_all(hook: FTSHook) -> dict[str, str]:
    """job id -> kind, submitted one by one through one client."""
    client = hook.get_client()
    kinds = list(KINDS)
    submitted: dict[str, str] = {}
    for job in range(JOBS):
        kind = kinds[job % len(kinds)]
        submitted[client.submit_job(transfers(job, kind), **KINDS[kind]["params"])] = kind
    return submitted


async def wait_all(hook: FTSHook, submitted: dict[str, str]) -> tuple[list[dict], int]:
    """The events of one trigger per job, run concurrently; and the poll rounds it took.

    The "canceled" jobs are canceled once the triggers have polled them at least once.
    """

    triggers = [FTSJobTrigger(job_ids=[j], poll_interval=POLL_SECONDS) for j in submitted]
    tasks = [asyncio.create_task(trigger_events(t)) for t in triggers]
    poller = await hook.aget_poller()
    while poller.rounds < 1:
        await asyncio.sleep(0.05)
    to_cancel = [j for j, kind in submitted.items() if kind == "canceled"]
    await asyncio.to_thread(hook.cancel_jobs, to_cancel)
    results = await asyncio.gather(*tasks)
    return [event for events in results for event in events], poller.rounds


# Slow (tens of seconds): `make test` and CI run it; `pytest -m "not slow"` skips it locally.
@pytest.mark.slow
def test_a_thousand_jobs_each_end_once_with_every_file_reported(busy_emulator):
    hook = FTSHook()
    started = time.monotonic()
    submitted = submit_all(hook)
    submit_seconds = time.monotonic() - started
    busy_emulator.reset_counts()
    seen = record_targets(busy_emulator)

    events, rounds = asyncio.run(asyncio.wait_for(wait_all(hook, submitted), TIME_LIMIT))
    elapsed = time.monotonic() - started

    polls = busy_emulator.requests["GET /jobs/{id}"]
    print(
        f"\nload: {JOBS} jobs x {FILES_PER_JOB} files; submit {submit_seconds:.1f}s, "
        f"total {elapsed:.1f}s; {rounds} poll rounds, {polls} GET /jobs requests "
        f"({polls / rounds:.1f} per round)"
    )
    assert busy_emulator.store.job_count() == JOBS
    assert len(events) == JOBS
    reported = Counter(job_id for event in events for job_id in event["job_ids"])
    assert set(reported) == set(submitted)
    assert set(reported.values()) == {1}
    failed_file_ids = Counter()
    for event in events:
        (job_id,) = event["job_ids"]
        expected = KINDS[submitted[job_id]]
        summary = event["summary"]
        assert event["status"] == "done"
        assert summary["job_states"] == {job_id: expected["job_state"]}
        assert summary["files"] == FILES_PER_JOB
        assert summary["file_states"] == expected["file_states"]
        assert summary["bytes"] == expected["file_states"].get("FINISHED", 0) * FILE_SIZE
        recoverable = [f for f in summary["failed_files"] if f["recoverable"]]
        assert len(recoverable) == expected["recoverable"]
        failed_file_ids.update(f["file_id"] for f in summary["failed_files"])
    assert set(failed_file_ids.values()) == {1}
    reads = job_reads(seen)
    records = [ids for ids, files in reads if files is None]
    assert len(records) <= rounds * -(-JOBS // 100)  # never more than one request per 100 jobs
    with_files = Counter(i for ids, files in reads if files for i in ids)
    assert set(with_files) == set(submitted) and set(with_files.values()) == {1}  # once each
    assert elapsed < TIME_LIMIT
