"""The submit operator as the retry unit: Airflow's own retries resubmit what can succeed."""

from __future__ import annotations

from pathlib import Path

from .actions import Run, describe_jobs, jobs_of, wait_jobs


def test_recoverable_failure_is_resubmitted_by_airflow_retry(
    airflow_stack, emulator, storage: dict[str, Path], tmp_path: Path
):
    source_dir = storage["davs://site-a.example"] / "lc_retry"
    source_dir.mkdir(exist_ok=True)
    for name in ("f1", "f2", "f3"):
        (source_dir / name).write_bytes(name.encode() * 1000)
    flaky_site = tmp_path / "flaky"
    flaky_site.mkdir()
    run = Run.trigger(airflow_stack, "lc_retry")
    try:
        first = wait_jobs(
            emulator, run, "try 1's job to end", lambda jobs: jobs and jobs[0]["state"] in _ENDED
        )[0]
        # The outage is over: from now on the flaky site is a real directory that accepts files.
        emulator.engine.storage["davs://flaky.example"] = flaky_site
        ti = run.wait_ti_done("transfer", timeout=180)
    finally:
        emulator.engine.storage.pop("davs://flaky.example", None)

    jobs = jobs_of(emulator, run)
    assert first["state"] == "FINISHEDDIRTY", describe_jobs(jobs)
    assert [f["file_state"] for f in first["files"]] == ["FINISHED", "FINISHED", "FAILED"]
    assert ti["state"] == "success", (
        f"the task ended {ti['state']} at try {ti['try_number']} instead of retrying by itself; "
        f"jobs: {describe_jobs(jobs)}; log of try 1:\n{_tail(run.log('transfer', 1))}"
    )
    assert ti["try_number"] == 2
    assert len(jobs) == 2, describe_jobs(jobs)
    assert [f["dest_surl"] for f in jobs[1]["files"]] == [first["files"][2]["dest_surl"]]
    assert jobs[1]["state"] == "FINISHED"
    assert (flaky_site / "lc_retry" / "f3").read_bytes() == b"f3" * 1000
    assert run.wait_run({"success", "failed"}) == "success"


def test_non_recoverable_failure_fails_at_once_without_a_second_job(airflow_stack, emulator):
    run = Run.trigger(airflow_stack, "lc_fatal")

    ti = run.wait_ti_done("transfer", timeout=120)

    jobs = jobs_of(emulator, run)
    assert ti["state"] == "failed", run.describe()
    assert ti["try_number"] == 1, f"a hopeless failure was retried: {describe_jobs(jobs)}"
    assert len(jobs) == 1, describe_jobs(jobs)
    assert [f["file_state"] for f in jobs[0]["files"]] == ["FINISHED", "FAILED"]
    log = run.log("transfer", 1)
    # The log names the file and FTS's reason.
    assert "lc_fatal/missing" in log and "No such file or directory" in log, _tail(log)


def test_a_clear_after_a_final_failure_resends_what_failed_for_good(
    airflow_stack, emulator, storage: dict[str, Path], tmp_path: Path
):
    """The user fixes the site that refused a file (EACCES: no retry) and clears the task."""
    source_dir = storage["davs://site-a.example"] / "lc_fix"
    source_dir.mkdir(exist_ok=True)
    for name in ("f1", "f2"):
        (source_dir / name).write_bytes(name.encode() * 1000)
    fixed_site = tmp_path / "fixed"
    fixed_site.mkdir()
    run = Run.trigger(airflow_stack, "lc_fix")
    try:
        failed = run.wait_ti_done("transfer", timeout=150)
        assert (failed["state"], failed["try_number"]) == ("failed", 1), run.describe()
        # As a user sees it: the run failed too (a clear before the scheduler ends the run
        # is lost when it then marks the run failed).
        assert run.wait_run({"success", "failed"}) == "failed", run.describe()
        emulator.engine.storage["davs://flaky.example"] = fixed_site
        run.clear("transfer")
        run.wait_ti("transfer", {"queued", "running", "deferred", "success"}, try_number=2)
        ti = run.wait_ti_done("transfer", timeout=150)
    finally:
        emulator.engine.storage.pop("davs://flaky.example", None)

    jobs = jobs_of(emulator, run)
    assert len(jobs) == 2, describe_jobs(jobs)
    assert [f["file_state"] for f in jobs[0]["files"]] == ["FINISHED", "FAILED"]
    assert [f["dest_surl"] for f in jobs[1]["files"]] == [jobs[0]["files"][1]["dest_surl"]]
    assert (ti["state"], ti["try_number"]) == ("success", 2), (
        f"{describe_jobs(jobs)}; log of try 2:\n{_tail(run.log('transfer', 2))}"
    )
    assert (fixed_site / "lc_fix" / "f2").read_bytes() == b"f2" * 1000


def test_a_deferred_retry_fails_for_what_an_earlier_try_lost_for_good(airflow_stack, emulator):
    """Try 2 resends only the recoverable file and, resumed in a new process after its
    deferral, still fails for try 1's file that failed for good (carried in XCom)."""
    run = Run.trigger(airflow_stack, "lc_carry")

    ti = run.wait_ti_done("transfer", timeout=180)

    jobs = jobs_of(emulator, run)
    log = run.log("transfer", 2)
    assert (ti["state"], ti["try_number"]) == ("failed", 2), f"{describe_jobs(jobs)}\n{_tail(log)}"
    assert len(jobs) == 2, describe_jobs(jobs)
    assert [f["dest_surl"].rsplit("/", 1)[1] for f in jobs[1]["files"]] == [
        "once?time=10&transfer_errno=110&fail_jobs=1"
    ]
    assert jobs[1]["state"] == "FINISHED", describe_jobs(jobs)
    carried = run.xcom("transfer", "fts_earlier_failures")
    assert (carried["failed_count"], carried["recoverable_count"]) == (1, 0)
    summary = run.xcom("transfer", "fts_summary")
    assert summary["file_states"] == {"FAILED": 1, "FINISHED": 1}, summary
    assert [f["destination"].rsplit("/", 1)[1] for f in summary["failed_files"]] == [
        "fatal?time=10&transfer_errno=13"
    ]
    assert [f["job_id"] for f in summary["failed_files"]] == [jobs[0]["job_id"]]


_ENDED = {"FINISHED", "FINISHEDDIRTY", "FAILED", "CANCELED"}


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])
