"""The emulator's transfer engine, driven step by step with an injected clock."""

from __future__ import annotations

import errno
import hashlib
import os
import time
import zlib
from pathlib import Path

import pytest

from airflow_provider_fts.testing.copies import is_recoverable
from airflow_provider_fts.testing.engine import Engine
from airflow_provider_fts.testing.identity import Identity
from airflow_provider_fts.testing.records import FILES_FAILED
from airflow_provider_fts.testing.store import JobStore
from tests.emulator.conftest import Clock, submit


@pytest.fixture
def engine(store: JobStore, clock: Clock) -> Engine:
    return Engine(store, clock=clock, default_duration=1.0)


def mock(host: str, name: str, **query: object) -> str:
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    return f"mock://{host}.example.org/data/{name}" + (f"?{suffix}" if suffix else "")


def pair(name: str, source: dict | None = None, dest: dict | None = None) -> dict:
    return {"sources": [mock("src", name, **(source or {}))],
            "destinations": [mock("dst", name, **(dest or {}))]}  # fmt: skip


def run(engine: Engine, clock: Clock, seconds: float, step: float = 0.5) -> None:
    """Advance the clock, one engine pass per ``step`` seconds."""
    end = clock.now + seconds
    while clock.now < end:
        engine.step()
        clock.now += step
    engine.step()


def states(store: JobStore, user: Identity, job_id: str) -> tuple[str, list[str]]:
    files = store.get_files(job_id, user)
    return store.get_job_field(job_id, "job_state", user), [f["file_state"] for f in files]


# -- ordinary outcomes --------------------------------------------------------------------


def test_transfer_goes_active_then_finishes_with_statistics(store, engine, clock, user):
    job_id = submit(store, user, pair("f", {"size": 2 * 2**20}, {"time": 2}))

    engine.step()
    active = store.get_files(job_id, user)[0]
    clock.now += 2
    engine.step()

    [done] = store.get_files(job_id, user)
    assert (active["file_state"], active["transfer_host"], active["reason"]) == (
        "ACTIVE",
        "localhost",
        "",
    )
    assert active["pid"] is not None and active["start_time"] is not None
    assert (done["file_state"], done["filesize"], done["tx_duration"]) == ("FINISHED", 2 * 2**20, 2)
    assert done["throughput"] == 1.0
    assert done["recoverable"] is False
    job = store.get_jobs([job_id], user, None, multi=False)[1]
    assert (job["job_state"], job["reason"]) == ("FINISHED", "")
    assert job["job_finished"] is not None


def test_missing_source_fails_without_retry(store, engine, clock, user):
    job_id = submit(store, user, pair("f", {"errno": errno.ENOENT}), retry=3)

    run(engine, clock, 2)

    [row] = store.get_files(job_id, user)
    assert (row["file_state"], row["retry"], row["recoverable"]) == ("FAILED", 0, False)
    assert row["reason"] == "SOURCE [2] No such file or directory"
    assert store.get_job_field(job_id, "reason", user) == FILES_FAILED


def test_recoverable_failure_is_retried_then_succeeds(store, engine, clock, user):
    destination = {"transfer_errno": errno.ETIMEDOUT, "fail_attempts": 1}
    job_id = submit(store, user, pair("f", dest=destination), retry=2, retry_delay=5)

    run(engine, clock, 1)
    between = states(store, user, job_id)
    run(engine, clock, 8)

    [row] = store.get_files(job_id, user)
    assert between == ("SUBMITTED", ["SUBMITTED"])
    assert (row["file_state"], row["retry"]) == ("FINISHED", 1)
    [entry] = store.get_retries(job_id, row["file_id"], user)
    assert entry["attempt"] == 1
    assert entry["reason"] == "TRANSFER [110] Connection timed out"
    assert entry["file"]["file_state"] == "FINISHED"


def test_fail_jobs_fails_the_first_job_and_lets_a_resubmission_succeed(store, engine, clock, user):
    destination = {"transfer_errno": errno.ETIMEDOUT, "fail_jobs": 1}
    first = submit(store, user, pair("f", dest=destination), retry=-1)
    run(engine, clock, 3)
    second = submit(store, user, pair("f", dest=destination), retry=-1)
    run(engine, clock, 3)

    [failed] = store.get_files(first, user)
    [finished] = store.get_files(second, user)
    assert (failed["file_state"], failed["recoverable"]) == ("FAILED", True)
    assert finished["file_state"] == "FINISHED"


def test_retries_run_out(store, engine, clock, user):
    job_id = submit(store, user, pair("f", dest={"transfer_errno": errno.ETIMEDOUT}), retry=2)

    run(engine, clock, 10)

    [row] = store.get_files(job_id, user)
    assert (row["file_state"], row["retry"], row["recoverable"]) == ("FAILED", 2, True)
    assert len(store.get_retries(job_id, row["file_id"], user)) == 2


def test_negative_retry_means_no_retry(store, engine, clock, user):
    job_id = submit(store, user, pair("f", dest={"transfer_errno": errno.ETIMEDOUT}), retry=-1)

    run(engine, clock, 5)

    assert store.get_files(job_id, user)[0]["retry"] == 0


def test_some_files_failing_makes_the_job_finisheddirty(store, engine, clock, user):
    job_id = submit(store, user, pair("ok"), pair("bad", {"errno": errno.EACCES}))

    run(engine, clock, 2)

    assert states(store, user, job_id) == ("FINISHEDDIRTY", ["FINISHED", "FAILED"])


def test_existing_destination_without_overwrite_fails(store, engine, clock, user):
    job_id = submit(store, user, pair("f", dest={"size_pre": 10}))

    run(engine, clock, 2)

    [row] = store.get_files(job_id, user)
    assert row["reason"] == "DESTINATION [17] Destination file exists and overwrite is not enabled"
    assert row["recoverable"] is False


def test_existing_destination_with_overwrite_is_replaced(store, engine, clock, user):
    job_id = submit(store, user, pair("f", dest={"size_pre": 10}), overwrite=True)

    run(engine, clock, 2)

    assert states(store, user, job_id) == ("FINISHED", ["FINISHED"])


@pytest.mark.parametrize(
    ("verify", "source", "dest", "outcome"),
    [("t", "1", "0a1b2c3d", "FINISHED"), ("t", "1", "ffffffff", "FAILED"),
     ("s", "ffffffff", "1", "FAILED"), ("b", "0a1b2c3d", "ffffffff", "FAILED"),
     ("n", "1", "2", "FINISHED")],
)  # fmt: skip
def test_mock_checksums_are_verified_per_mode(
    store, engine, clock, user, verify, source, dest, outcome
):
    files = pair("f", {"checksum": source}, {"checksum": dest})
    files["checksum"] = "ADLER32:0a1b2c3d"
    job_id = submit(
        store,
        user,
        files,
        verify_checksum={"t": "target", "s": "source", "b": "both", "n": "none"}[verify],
    )

    run(engine, clock, 2)

    [row] = store.get_files(job_id, user)
    assert row["file_state"] == outcome
    if outcome == "FAILED":
        assert "CHECKSUM MISMATCH" in row["reason"] and row["recoverable"] is False


# -- replicas, hops, staging, archiving ---------------------------------------------------


def test_replica_job_falls_back_to_the_next_source_without_retry(store, engine, clock, user):
    sources = [mock("se1", "f", errno=errno.ETIMEDOUT), mock("se2", "f")]
    job_id = submit(store, user, {"sources": sources, "destinations": [mock("dst", "f")]}, retry=3)

    run(engine, clock, 4)

    assert states(store, user, job_id) == ("FINISHED", ["FAILED", "FINISHED"])
    assert store.get_files(job_id, user)[0]["retry"] == 0


def test_multihop_runs_hops_in_order(store, engine, clock, user):
    hops = [{"sources": [mock("a", "f")], "destinations": [mock("b", "f")]},
            {"sources": [mock("b", "f")], "destinations": [mock("c", "f")]}]  # fmt: skip
    job_id = submit(store, user, *hops, multihop=True)

    engine.step()
    first = states(store, user, job_id)
    run(engine, clock, 3)

    assert first == ("ACTIVE", ["ACTIVE", "NOT_USED"])
    assert states(store, user, job_id) == ("FINISHED", ["FINISHED", "FINISHED"])


def test_multihop_fails_at_the_first_failed_hop(store, engine, clock, user):
    hops = [{"sources": [mock("a", "f", errno=2)], "destinations": [mock("b", "f")]},
            {"sources": [mock("b", "f")], "destinations": [mock("c", "f")]}]  # fmt: skip
    job_id = submit(store, user, *hops, multihop=True)

    run(engine, clock, 3)

    assert states(store, user, job_id) == ("FAILED", ["FAILED", "NOT_USED"])


def test_staging_precedes_the_copy(store, engine, clock, user):
    job_id = submit(store, user, pair("f", {"staging_time": 2}), bring_online=60)

    engine.step()
    staging = states(store, user, job_id)
    run(engine, clock, 4)

    [row] = store.get_files(job_id, user)
    assert staging == ("STAGING", ["STARTED"])
    assert row["file_state"] == "FINISHED"
    assert row["staging_start"] < row["staging_finished"] <= row["start_time"]


def test_staging_only_job_finishes_after_staging(store, engine, clock, user):
    url = "root://eoscta.example.org//eos/tape/f"
    job_id = submit(store, user, {"sources": [url], "destinations": [url]}, bring_online=60)

    run(engine, clock, 2)

    [row] = store.get_files(job_id, user)
    assert (row["file_state"], row["start_time"]) == ("FINISHED", None)


def test_archive_jobs_wait_in_archiving(store, engine, clock, user):
    job_id = submit(
        store, user, pair("f", dest={"time": 1, "archiving_time": 3}), archive_timeout=60
    )

    run(engine, clock, 1.5)
    archiving = states(store, user, job_id)
    run(engine, clock, 4)

    assert archiving == ("ARCHIVING", ["ARCHIVING"])
    assert states(store, user, job_id) == ("FINISHED", ["FINISHED"])
    assert store.get_files(job_id, user)[0]["archive_finish_time"] is not None


# -- cancel, expiry, priority -------------------------------------------------------------


def test_cancel_while_active_is_not_overwritten_by_the_transfer(store, engine, clock, user):
    job_id = submit(store, user, pair("f", dest={"time": 2}))
    engine.step()

    store.cancel([job_id], user, multi=False)
    unset = store.get_files(job_id, user)[0]["finish_time"]
    run(engine, clock, 3)

    [row] = store.get_files(job_id, user)
    assert unset is None
    assert (row["file_state"], row["reason"]) == ("CANCELED", "Job canceled by the user")
    assert row["finish_time"] is not None
    assert store.get_job_field(job_id, "job_state", user) == "CANCELED"


def test_job_queued_past_max_time_in_queue_is_canceled(store, engine, clock, user):
    job_id = submit(store, user, pair("f"), max_time_in_queue="10s")
    clock.now += 11

    engine.step()

    assert states(store, user, job_id) == ("CANCELED", ["CANCELED"])
    reason = "Job has been canceled because it stayed in the queue for too long"
    assert store.get_job_field(job_id, "reason", user) == reason


def test_higher_priority_jobs_start_first(store, clock, user):
    engine = Engine(store, clock=clock, concurrency=1)
    low = submit(store, user, pair("low"), priority=1)
    high = submit(store, user, pair("high"), priority=5)

    engine.step()

    assert states(store, user, high)[0] == "ACTIVE"
    assert states(store, user, low)[0] == "SUBMITTED"


# -- real bytes between mapped directories ------------------------------------------------


@pytest.fixture
def sites(tmp_path: Path, store: JobStore, clock: Clock) -> tuple[Engine, Path, Path]:
    site_a, site_b = tmp_path / "a", tmp_path / "b"
    site_a.mkdir()
    site_b.mkdir()
    storage = {"davs://site-a.example": site_a, "davs://site-b.example:8443": site_b}
    return Engine(store, clock=clock, storage=storage, default_duration=1.0), site_a, site_b


def davs(site: str, path: str) -> str:
    host = "site-a.example" if site == "a" else "site-b.example:8443"
    return f"davs://{host}/{path}"


def copy_job(store, user, checksum: str | None = None, **params: object) -> str:
    entry = {"sources": [davs("a", "in/data.bin")], "destinations": [davs("b", "out/data.bin")]}
    if checksum:
        entry["checksum"] = checksum
    return submit(store, user, entry, **params)


PAYLOAD = bytes(range(256)) * 4096


def test_mapped_storage_copies_bytes_and_verifies_adler32(sites, store, clock, user):
    engine, site_a, site_b = sites
    (site_a / "in").mkdir()
    (site_a / "in" / "data.bin").write_bytes(PAYLOAD)
    adler = f"{zlib.adler32(PAYLOAD):08x}"
    job_id = copy_job(store, user, f"adler32:{adler}", verify_checksum="both")

    run(engine, clock, 2)

    [row] = store.get_files(job_id, user)
    assert row["file_state"] == "FINISHED"
    assert row["filesize"] == len(PAYLOAD)
    assert (site_b / "out" / "data.bin").read_bytes() == PAYLOAD


def test_mapped_storage_checksum_mismatch_fails_and_removes_the_copy(sites, store, clock, user):
    engine, site_a, site_b = sites
    (site_a / "in").mkdir()
    (site_a / "in" / "data.bin").write_bytes(PAYLOAD)
    wrong_md5 = hashlib.md5(b"something else", usedforsecurity=False).hexdigest()
    job_id = copy_job(store, user, f"MD5:{wrong_md5}", verify_checksum="target")

    run(engine, clock, 2)

    [row] = store.get_files(job_id, user)
    assert row["file_state"] == "FAILED"
    assert "CHECKSUM MISMATCH" in row["reason"] and wrong_md5 in row["reason"]
    assert not (site_b / "out" / "data.bin").exists()


def test_mapped_storage_missing_source_fails_with_enoent(sites, store, clock, user):
    engine, _, _ = sites
    job_id = copy_job(store, user)

    run(engine, clock, 2)

    assert store.get_files(job_id, user)[0]["reason"] == "SOURCE [2] No such file or directory"


def test_mapped_storage_keeps_an_existing_destination_without_overwrite(sites, store, clock, user):
    engine, site_a, site_b = sites
    (site_a / "in").mkdir()
    (site_a / "in" / "data.bin").write_bytes(PAYLOAD)
    (site_b / "out").mkdir()
    (site_b / "out" / "data.bin").write_bytes(b"old")
    job_id = copy_job(store, user)

    run(engine, clock, 2)

    assert store.get_files(job_id, user)[0]["file_state"] == "FAILED"
    assert (site_b / "out" / "data.bin").read_bytes() == b"old"


# -- recoverability and the background thread ---------------------------------------------


@pytest.mark.parametrize(
    ("code", "scope", "expected"),
    [(errno.ENOENT, "SOURCE", False), (errno.EPERM, "DESTINATION", False),
     (errno.EEXIST, "TRANSFER", False), (errno.ETIMEDOUT, "SOURCE", True),
     (errno.ECONNRESET, "TRANSFER", True), (errno.EIO, "TRANSFER", True)],
)  # fmt: skip
def test_recoverable_errors_follow_url_copy(code, scope, expected):
    assert is_recoverable(code, scope, os.strerror(code)) is expected


def test_background_thread_finishes_jobs_in_real_time(user):
    store = JobStore()
    engine = Engine(store, tick=0.01, default_duration=0.05)
    job_id = submit(store, user, pair("f"))

    engine.start()
    try:
        deadline = time.monotonic() + 5
        while store.get_job_field(job_id, "job_state", user) != "FINISHED":
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        engine.stop()
