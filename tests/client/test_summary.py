"""summarize_jobs: one outcome summary for live and archived job records."""

from __future__ import annotations

import json

from airflow_provider_fts.client.states import (
    all_terminal,
    progress_line,
    stored_url_key,
    summarize_jobs,
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
    assert progress_line(summary).startswith("FTS: 1/2 files done (10 bytes")
    assert all_terminal(summarize_jobs([{**job, "job_state": "FINISHED"}]))
