"""FTSSubmitOperator sends its chunks a few at a time, each exactly once, holding little."""

from __future__ import annotations

import gc
import itertools
import threading
import time
import tracemalloc

import pytest

from airflow_provider_fts.client.delegation_cache import SHARED_DELEGATIONS
from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.operators.fts import MAX_SUBMIT_CONCURRENCY, FTSSubmitOperator
from tests.tasks import TaskTry

STAGED = "mock://s.example/f?staging_time=120"  # unfinished, yet holds no slot
STAGING = {"bring_online": 600}
POST_DELAY = 0.2


def chunked_operator(name: str, chunks: int, **options) -> FTSSubmitOperator:
    transfers = [(STAGED, f"mock://dst.example/{name}-{n}") for n in range(chunks)]
    return FTSSubmitOperator(
        task_id=name, transfers=transfers, job_params=STAGING, max_files_per_job=1, **options
    )


def jobs_of_task(emulator, task_id: str) -> list[str]:
    """The sids of the jobs this test's task submitted."""
    with emulator.store.lock:
        sids = [job.sid or "" for job in emulator.store.stored_jobs()]
    return sorted(sid for sid in sids if sid.startswith(f"airflow:dag:{task_id}:"))


@pytest.fixture
def arrivals(fts_emulator) -> list[float]:
    """When each POST reached the emulator; every POST then costs ``POST_DELAY`` seconds."""
    seen: list[float] = []
    lock = threading.Lock()

    def record(request) -> bool:
        if request.method == "POST":
            with lock:
                seen.append(time.monotonic())
        return request.method == "POST"

    fts_emulator.faults.slow(POST_DELAY, count=None, when=record)
    SHARED_DELEGATIONS.clear()  # a fresh worker process: it knows no delegation yet
    return seen


def test_chunks_are_sent_at_once_each_exactly_once(hook, fts_emulator, arrivals):
    operator = chunked_operator("concurrent", 8, submit_concurrency=4)

    job_ids = operator.execute({"ti": TaskTry(1, task_id="concurrent")})

    assert len(set(job_ids)) == 8
    assert len(jobs_of_task(fts_emulator, "concurrent")) == 8
    assert fts_emulator.requests["POST /jobs"] == 8
    assert fts_emulator.requests["GET /whoami"] == 1
    assert fts_emulator.requests["GET /delegation/{dlg_id}"] <= 2  # a check, + 1 after a PUT
    # One after another, each POST would arrive after the previous one's answer.
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert min(gaps) < POST_DELAY, f"the POSTs never overlapped: {gaps}"
    hook.cancel_jobs(job_ids)


def test_one_delegation_check_for_all_chunks(hook, fts_emulator, arrivals):
    hook.delegate()  # the server holds a fresh proxy; this process forgets it
    SHARED_DELEGATIONS.clear()
    fts_emulator.reset_counts()
    operator = chunked_operator("one-check", 6, submit_concurrency=6)

    job_ids = operator.execute({"ti": TaskTry(1, task_id="one-check")})

    assert fts_emulator.requests["GET /delegation/{dlg_id}"] == 1
    assert fts_emulator.requests["GET /whoami"] == 1
    assert fts_emulator.requests["POST /jobs"] == 6
    hook.cancel_jobs(job_ids)


def test_lost_answers_while_sending_at_once_leave_one_job_per_chunk(hook, fts_emulator):
    fault = fts_emulator.faults.ambiguous_submit(count=3)
    operator = chunked_operator("lost", 8, submit_concurrency=4)

    job_ids = operator.execute({"ti": TaskTry(1, task_id="lost")})

    assert fault.hits == 3
    assert len(set(job_ids)) == 8
    assert len(jobs_of_task(fts_emulator, "lost")) == 8
    assert fts_emulator.requests["POST /jobs"] == 8  # each lost answer found by its id
    hook.cancel_jobs(job_ids)


@pytest.mark.parametrize("value", [0, MAX_SUBMIT_CONCURRENCY + 1, 2.5, "4"])
def test_submit_concurrency_outside_the_bounds_is_refused(value):
    with pytest.raises(FTSValidationError, match="submit_concurrency"):
        chunked_operator("refused", 2, submit_concurrency=value)


def test_a_bad_transfer_in_a_later_chunk_is_named_by_its_place_in_transfers(fts_emulator):
    transfers = [(STAGED, f"mock://dst.example/named-{n}") for n in range(5)]
    transfers[3] = (STAGED, "dst.example/no-scheme")
    operator = FTSSubmitOperator(task_id="named", transfers=transfers, max_files_per_job=2)

    with pytest.raises(FTSValidationError) as refused:
        operator.execute({"ti": TaskTry(1, task_id="named")})

    assert refused.value.field == "transfers[3].destinations[0]"
    assert fts_emulator.requests["POST /jobs"] == 0


def test_planning_keeps_the_transfers_as_written_not_a_copy_of_each():
    transfers = [(STAGED, f"mock://dst.example/plan-{n}") for n in range(20_000)]
    operator = FTSSubmitOperator(task_id="plan", transfers=transfers)
    gc.collect()
    tracemalloc.start()

    chunks = operator._chunks()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    assert sum(len(chunk.items) for chunk in chunks) == 20_000
    assert held / 20_000 < 64, f"{held / 20_000:.0f} bytes held per transfer"
