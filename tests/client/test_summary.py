"""summarize_jobs: one outcome summary for live and archived job records."""

from __future__ import annotations

import json

from airflow_provider_fts.client.states import (
    MAX_LISTED_JOBS,
    ProgressLog,
    all_terminal,
    merge_summaries,
    progress_line,
    stored_url_key,
    summarize_jobs,
    with_failures,
)
from tests.recorded import RECORDED

ARCHIVED = RECORDED / "152-archive-get.json"


def file_record(state: str, **fields) -> dict:
    return {"file_state": state, "source_surl": "mock://s/f", "dest_surl": "mock://d/f", **fields}


def test_counts_bytes_and_throughput_only_of_finished_files():
    job = {
        "job_id": "j1",
        "job_state": "FINISHEDDIRTY",
        "files": [
            file_record("FINISHED", filesize=2**20, tx_duration=0.5),
            file_record("FINISHED", filesize=2**20, tx_duration=1.5),
            file_record("FAILED", filesize=999, tx_duration=9, reason="TRANSFER [5] EIO"),
        ],
    }

    summary = summarize_jobs([job])

    assert summary["file_states"] == {"FAILED": 1, "FINISHED": 2}
    assert summary["bytes"] == 2 * 2**20
    assert summary["throughput_mib_s"] == 1.0


def test_failed_files_of_several_jobs_name_their_job_and_recoverability():
    jobs = [
        {"job_id": "a", "job_state": "FAILED", "files": [file_record("FAILED", recoverable=True)]},
        {"job_id": "b", "job_state": "CANCELED", "files": [file_record("CANCELED")]},
        {"job_id": "c", "job_state": "FAILED", "files": [file_record("FAILED", recoverable=None)]},
        {"job_id": "d", "job_state": "FAILED", "files": [file_record("FAILED", recoverable=0)]},
    ]

    failed = summarize_jobs(jobs)["failed_files"]

    assert [(f["job_id"], f["state"], f["recoverable"]) for f in failed] == [
        ("a", "FAILED", True),
        ("b", "CANCELED", None),  # the server said nothing: unknown, not "no"
        ("c", "FAILED", None),
        ("d", "FAILED", False),
    ]


def test_an_archived_record_from_a_real_server_summarizes_like_a_live_one():
    record = json.loads(ARCHIVED.read_text())["response"]["body"]

    summary = summarize_jobs([record])

    assert summary["job_states"] == {record["job_id"]: "FINISHED"}
    assert summary["file_states"] == {"FINISHED": 1}
    assert summary["bytes"] == record["files"][0]["filesize"]


def test_archived_files_tell_recoverability_by_current_failures():
    job = {"job_id": "old", "job_state": "FAILED", "files": [file_record("FAILED")]}
    job["files"][0]["current_failures"] = 1

    (failed,) = summarize_jobs([job])["failed_files"]

    assert failed["recoverable"] is True


def test_a_staging_root_url_matches_its_stored_form_with_the_activity_appended():
    submitted = "root://eos.example//tape/f?svcClass=t1"

    stored = f"{submitted}&activity=default"

    assert stored_url_key(stored) == stored_url_key(submitted)
    assert stored_url_key("root://eos.example//tape/g?activity=default") == (
        "root://eos.example//tape/g"
    )


def test_other_schemes_compare_as_submitted():
    url = "davs://site.example/f?activity=default"

    assert stored_url_key(url) == url


def test_progress_line_and_all_terminal_read_a_summary():
    job = {
        "job_id": "abcdef0123",
        "job_state": "ACTIVE",
        "files": [file_record("FINISHED", filesize=10, tx_duration=1), file_record("ACTIVE")],
    }

    summary = summarize_jobs([job])

    assert not all_terminal(summary)
    # a running job's files are a progress sample: states counted, bytes once it ended
    assert (
        progress_line(summary) == "FTS: 1 jobs (1 ACTIVE); 1 of 2 files finished, 0 failed; 0 bytes"
    )
    assert all_terminal(summarize_jobs([{**job, "job_state": "FINISHED"}]))


def test_failed_files_are_not_counted_as_done():
    job = {"job_id": "j", "job_state": "FAILED", "files": [file_record("FAILED")] * 3}

    line = progress_line(summarize_jobs([job]))

    assert "0 of 3 files finished, 3 failed" in line


def test_a_progress_line_counts_jobs_per_state_whatever_their_number():
    jobs = [{"job_id": f"job-{n:05}", "job_state": "ACTIVE"} for n in range(5000)]
    jobs += [{"job_id": f"done-{n:05}", "job_state": "FINISHED", "files": []} for n in range(5)]

    line = progress_line(summarize_jobs(jobs))

    assert line.startswith("FTS: 5005 jobs (5000 ACTIVE, 5 FINISHED); 0 of 0 files finished")
    assert "(5000 running jobs not counted yet)" in line
    assert len(line) < 200


def test_a_progress_log_says_a_line_only_when_it_changed_or_as_a_heartbeat():
    lines: list[str] = []
    log = ProgressLog(lines.append, heartbeat=3600)
    running = summarize_jobs([{"job_id": "j", "job_state": "ACTIVE"}])
    done = summarize_jobs([{"job_id": "j", "job_state": "FINISHED", "files": []}])

    for summary in (running, running, running, done, done):
        log(summary)
    ProgressLog(lines.append, heartbeat=0)(running)

    assert lines == [progress_line(running), progress_line(done), progress_line(running)]


def test_a_summary_of_ten_thousand_files_with_9950_failures_stays_small():
    reasons = [f"TRANSFER [{n}] error number {n}" for n in range(30)]
    jobs = [
        {
            "job_id": f"{n:08}-0000-0000-0000-000000000000",
            "job_state": "FINISHEDDIRTY" if n == 0 else "FAILED",
            "files": [
                file_record(
                    "FINISHED" if n == 0 and i < 50 else "FAILED",
                    file_id=n * 200 + i,
                    source_surl=f"davs://source.example.org:443/data/run/{n}/file-{i}.root",
                    dest_surl=f"davs://destination.example.org:443/data/run/{n}/file-{i}.root",
                    reason=reasons[i % 30] + " x" * 400,
                    recoverable=i % 2,
                    filesize=100,
                    tx_duration=1,
                )
                for i in range(200)
            ],
        }
        for n in range(50)
    ]

    summary = summarize_jobs(jobs)

    assert len(json.dumps(summary)) < 64 * 1024
    assert summary["files"] == 10_000
    assert summary["file_states"] == {"FAILED": 9950, "FINISHED": 50}
    assert (summary["failed_count"], summary["recoverable_count"]) == (9950, 4975)
    assert (summary["bytes"], summary["throughput_mib_s"]) == (5000, round(5000 / 50 / 2**20, 3))
    assert len(summary["failed_files"]) <= 50
    groups = summary["failure_reasons"]
    assert len(groups) == 21 and groups[-1]["reason"] == "(other reasons)"
    assert sum(g["files"] for g in groups) == 9950
    assert sum(g["recoverable"] for g in groups) == 4975
    assert len(progress_line(summary)) < 200


def test_more_failures_join_a_summary_under_the_same_caps():
    job = {
        "job_id": "j",
        "job_state": "FAILED",
        "files": [file_record("FAILED", reason="A", recoverable=False)],
    }
    lost = [
        {
            "job_id": "old",
            "file_id": n,
            "source": "s",
            "destination": f"d{n}",
            "state": "FAILED",
            "reason": "B",
            "recoverable": False,
        }
        for n in range(100)
    ]

    summary = with_failures(summarize_jobs([job]), lost)

    assert (summary["files"], summary["failed_count"], summary["recoverable_count"]) == (
        101,
        101,
        0,
    )
    assert summary["file_states"] == {"FAILED": 101}
    assert len(summary["failed_files"]) == 50
    assert summary["failure_reasons"] == [
        {"reason": "B", "files": 100, "recoverable": 0},
        {"reason": "A", "files": 1, "recoverable": 0},
    ]


def bulk_records(jobs: int, files_per_job: int = 200) -> list[dict]:
    """Ended job records of a 10^6-file move: every tenth job FINISHEDDIRTY with one
    failed file, one job CANCELED, the others FINISHED."""
    records = []
    for n in range(jobs):
        state = "CANCELED" if n == 7 else "FINISHEDDIRTY" if n % 10 == 3 else "FINISHED"
        files = [file_record("FINISHED", filesize=2**20, tx_duration=1)] * (files_per_job - 1)
        last = "FINISHED" if state == "FINISHED" else "CANCELED" if n == 7 else "FAILED"
        files.append(file_record(last, reason=f"TRANSFER [5] job {n} EIO", recoverable=False))
        records.append({"job_id": f"{n:08d}-bulk-job", "job_state": state, "files": files})
    return records


def test_a_summary_of_5000_jobs_stays_under_64_kib_with_exact_counts():
    summary = summarize_jobs(bulk_records(5000))

    assert len(json.dumps(summary)) < 64 * 1024
    assert summary["jobs"] == 5000
    assert summary["jobs_per_state"] == {"CANCELED": 1, "FINISHED": 4499, "FINISHEDDIRTY": 500}
    assert summary["files"] == 5000 * 200
    assert summary["failed_count"] == 501
    assert len(summary["job_states"]) + summary["jobs_not_listed"] == 5000


def test_a_summary_names_the_jobs_not_finished_first_up_to_the_cap():
    few = summarize_jobs(bulk_records(50))
    many = summarize_jobs(bulk_records(5000))

    assert (
        list(few["job_states"].values())[:6]
        == ["FINISHEDDIRTY", "CANCELED"] + ["FINISHEDDIRTY"] * 4
    )
    assert few["jobs_not_listed"] == 0 and len(few["job_states"]) == 50
    assert len(many["job_states"]) == MAX_LISTED_JOBS
    assert "FINISHED" not in many["job_states"].values()
    assert many["job_states"]["00000007-bulk-job"] == "CANCELED"
    assert many["jobs_not_listed"] == 5000 - MAX_LISTED_JOBS


def test_summaries_of_two_servers_merge_into_the_summary_of_all_their_jobs():
    def job(job_id: str, state: str, failed: int, finished: int) -> dict:
        files = [
            file_record("FAILED", reason=f"R{n % 3}", recoverable=n % 2 == 0) for n in range(failed)
        ] + [file_record("FINISHED", filesize=2**20, tx_duration=0.25) for _ in range(finished)]
        return {"job_id": job_id, "job_state": state, "files": files}

    first = [job("a", "FINISHEDDIRTY", 3, 4), job("b", "FINISHED", 0, 2)]
    second = [job("c", "FAILED", 5, 0), job("d", "FINISHEDDIRTY", 1, 6)]

    merged = merge_summaries([summarize_jobs(first), summarize_jobs(second)])

    assert merged == summarize_jobs(first + second)
