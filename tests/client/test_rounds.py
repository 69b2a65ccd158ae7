"""Poll rounds ask for what can have changed: job records of the jobs still running, each
job's files once when it ends (only the fields its end needs), file states of running jobs
only as a progress sample. Against the emulator over real HTTPS, sync and async."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid

import pytest

from airflow_provider_fts.client.client import FTSClient
from airflow_provider_fts.client.credentials import Credentials, Trust
from airflow_provider_fts.client.file_report import write_files
from airflow_provider_fts.client.poller import JobPoller
from airflow_provider_fts.client.states import (
    ENDED_FILE_FIELDS,
    FAILED_FILE_STATES,
    FINISHED_FILE_FIELDS,
    JobState,
    Tally,
)
from tests.targets import job_reads, record_targets

FINISHED_FIELDS = ",".join(FINISHED_FILE_FIELDS)
ENDED_FIELDS = ",".join(ENDED_FILE_FIELDS)


@pytest.fixture
def client(fts_emulator, fts_pki):
    credentials = Credentials.from_proxy_file(fts_pki.voms_proxy_path)
    trust = Trust(ca_path=str(fts_pki.ca_dir))
    with FTSClient(fts_emulator.url, credentials, trust=trust) as client:
        yield client


def submit(client: FTSClient, *destinations: str) -> str:
    name = uuid.uuid4().hex
    return client.submit_job(
        [(f"mock://src.example/{name}/{n}?size=100", d) for n, d in enumerate(destinations)]
    )


def ended(client: FTSClient, job_id: str) -> None:
    while not JobState.parse(client.get_job(job_id)["job_state"]).is_terminal:
        pass


def test_a_round_asks_running_jobs_for_records_only_and_ended_jobs_for_files_once(
    client, fts_emulator
):
    running = submit(client, "mock://dst.example/slow?time=30")
    done = submit(client, "mock://dst.example/a", "mock://dst.example/b")
    failed = submit(client, "mock://dst.example/ok", "mock://dst.example/bad?transfer_errno=13")
    ended(client, done), ended(client, failed)
    tally = Tally([running, done, failed])
    seen = record_targets(fts_emulator)

    client.poll(tally)
    client.poll(tally)

    assert job_reads(seen) == [
        ({running, done, failed}, None),  # round 1: records, no files
        ({done}, FINISHED_FIELDS),  # each ended job once, the fields of its end
        ({failed}, ENDED_FIELDS),
        ({running}, None),  # round 2: only what can have changed
    ]
    summary = tally.summary()
    assert summary["file_states"] == {"FAILED": 1, "FINISHED": 3}
    assert (summary["bytes"], summary["failed_count"], summary["uncounted_jobs"]) == (300, 1, 1)
    (lost,) = summary["failed_files"]
    assert (lost["job_id"], lost["destination"]) == (
        failed,
        "mock://dst.example/bad?transfer_errno=13",
    )
    client.cancel_job(running)


def test_running_jobs_files_are_sampled_by_state_only_when_a_sample_is_due(client, fts_emulator):
    running = submit(client, "mock://dst.example/slow?time=30", "mock://dst.example/fast")
    tally = Tally([running], sample_every=0)
    seen = record_targets(fts_emulator)

    client.poll(tally)

    assert job_reads(seen) == [({running}, None), ({running}, "file_state")]
    assert tally.summary()["files"] == 2 and tally.summary()["uncounted_jobs"] == 0
    client.cancel_job(running)


async def test_the_poller_asks_the_same_way_and_ends_with_a_summary(client, fts_emulator, fts_pki):
    done = await asyncio.to_thread(submit, client, "mock://dst.example/c")
    later = await asyncio.to_thread(submit, client, "mock://dst.example/d?time=2")
    await asyncio.to_thread(ended, client, done)
    trust = Trust(ca_path=str(fts_pki.ca_dir))
    context = Credentials.from_proxy_file(fts_pki.voms_proxy_path).ssl_context(trust)
    poller = JobPoller(fts_emulator.url, ssl_context=context, trust=trust, timeout=10)
    seen = record_targets(fts_emulator)

    summary = await poller.wait([done, later], interval=0.1)

    reads = job_reads(seen)
    assert reads[:2] == [({done, later}, None), ({done}, FINISHED_FIELDS)]
    assert reads[-1] == ({later}, FINISHED_FIELDS)
    assert all(files is None for ids, files in reads[2:-1])
    assert [ids for ids, _ in reads[2:-1]] == [{later}] * (len(reads) - 3)
    assert summary["file_states"] == {"FINISHED": 2} and summary["bytes"] == 200


def test_the_files_of_jobs_stream_a_few_jobs_per_request_filtered_by_state(client, fts_emulator):
    jobs = [
        submit(client, f"mock://dst.example/{n}/ok", f"mock://dst.example/{n}/x?transfer_errno=13")
        for n in range(12)
    ]
    for job_id in jobs:
        ended(client, job_id)
    seen = record_targets(fts_emulator)

    files = client.iter_files(jobs, states=FAILED_FILE_STATES, jobs_per_request=5)
    first = next(files)

    assert len(job_reads(seen)) == 1  # one page read, not all of them
    rest = list(files)
    assert len(job_reads(seen)) == 3
    assert [f["job_id"] for f in [first, *rest]] == jobs
    assert {f["file_state"] for f in rest} == {"FAILED"}
    out = io.StringIO()
    assert write_files(client.iter_files(jobs[:2]), out, format="csv") == 4
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["job_id"] for r in rows] == [jobs[0]] * 2 + [jobs[1]] * 2
    lines = io.StringIO()
    write_files([first], lines)
    assert json.loads(lines.getvalue())["dest_surl"] == first["dest_surl"]
