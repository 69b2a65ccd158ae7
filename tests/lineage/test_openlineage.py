"""OpenLineage events of FTS tasks, written by the real OpenLineage provider to a file.

One DAG (``tests/lineage/ol_run.py``) runs under ``dag.test()`` in a fresh process with the
file transport and the default forked emission: a partial transfer (COMPLETE), a failing
one (FAIL) and a submit + deferrable sensor pair.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("airflow.providers.openlineage")

REPO = Path(__file__).resolve().parents[2]
DEFERRED = re.compile(r"Pausing task as DEFERRED\..*?task_id=(\w+)")


@pytest.fixture(scope="module")
def lineage(airflow_db, fts_emulator_session, fts_pki, tmp_path_factory):
    """Run the DAG; the events by (task, type), the job id per task, and the whole text."""
    prefix = f"ol{uuid.uuid4().hex[:8]}"
    path = tmp_path_factory.mktemp("openlineage") / "events.jsonl"
    connection = fts_emulator_session.connection_json(
        fts_pki.voms_proxy_path, ca_path=fts_pki.ca_dir
    )
    env = {**os.environ, "AIRFLOW_CONN_FTS_DEFAULT": connection, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.lineage.ol_run", prefix, str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    deferred = {m for m in DEFERRED.findall(result.stdout + result.stderr)}
    assert deferred == {"deferred", "wait"}  # the waits resumed on fresh task instances
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("STATES ")]
    states = json.loads(line.removeprefix("STATES "))
    assert states == {
        "partial": "success",
        "failing": "failed",
        "deferred": "failed",
        "submit": "success",
        "wait": "success",
    }
    text = path.read_text()
    events = {}
    for line in text.splitlines():
        event = json.loads(line)
        task = event["job"]["name"].rpartition(".")[2]
        events[(task, event["eventType"])] = event
    job_ids = {}
    for job in fts_emulator_session.store.stored_jobs():
        url = job.files[0]["dest_surl"]
        if prefix in url:
            job_ids[url.split(f"{prefix}/")[1].split("/")[0]] = job.record["job_id"]
    return {
        "prefix": prefix,
        "events": events,
        "job_ids": job_ids,
        "text": text,
        "endpoint": fts_emulator_session.url,
    }


def datasets(event: dict, side: str) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in event[side]}


def expected(prefix: str, name: str) -> tuple[set, set]:
    """Sources read, destinations FINISHED (c failed): normalised, query stripped."""
    base = f"/{prefix}/{name}"
    inputs = {
        ("davs://site-a.example", f"{base}/a"),  # default port 443 dropped
        ("mock://src.example", f"{base}/b"),
        ("mock://src.example", f"{base}/c"),
    }
    outputs = {("mock://dst.example", f"{base}/a"), ("root://eos.example", f"{base}/b")}
    return inputs, outputs


def facet(event: dict) -> dict:
    return {k: v for k, v in event["run"]["facets"]["fts"].items() if not k.startswith("_")}


def test_complete_event_carries_sources_destinations_and_the_fts_run(lineage):
    event = lineage["events"][("partial", "COMPLETE")]
    job_id = lineage["job_ids"]["partial"]

    inputs, outputs = expected(lineage["prefix"], "partial")
    assert datasets(event, "inputs") == inputs
    assert datasets(event, "outputs") == outputs
    assert facet(event) == {
        "jobIds": [job_id],
        "endpoint": lineage["endpoint"],
        "jobsPerState": {"FINISHEDDIRTY": 1},
        "files": 3,
        "fileStates": {"FAILED": 1, "FINISHED": 2},
        "bytes": 1000,
        "failedFiles": [],
        "failedFilesTotal": 1,
    }


def test_fail_event_carries_the_failed_files_and_reasons(lineage):
    event = lineage["events"][("failing", "FAIL")]
    job_id = lineage["job_ids"]["failing"]
    prefix = lineage["prefix"]

    inputs, outputs = expected(prefix, "failing")
    assert datasets(event, "inputs") == inputs
    assert datasets(event, "outputs") == outputs
    assert facet(event)["failedFiles"] == [
        {
            "jobId": job_id,
            "source": f"mock://src.example/{prefix}/failing/c",
            "destination": f"mock://dst.example/{prefix}/failing/c",
            "state": "FAILED",
            "reason": "TRANSFER [13] Permission denied",
            "recoverable": False,
        }
    ]


def test_fail_event_after_a_deferral_comes_from_a_fresh_task_instance(lineage):
    event = lineage["events"][("deferred", "FAIL")]
    job_id = lineage["job_ids"]["deferred"]

    inputs, outputs = expected(lineage["prefix"], "deferred")
    assert datasets(event, "inputs") == inputs
    assert datasets(event, "outputs") == outputs
    assert facet(event)["jobIds"] == [job_id]
    assert facet(event)["jobsPerState"] == {"FINISHEDDIRTY": 1}
    assert [f["reason"] for f in facet(event)["failedFiles"]] == ["TRANSFER [13] Permission denied"]


def test_start_event_of_the_operator_lists_what_it_plans_to_move(lineage):
    event = lineage["events"][("partial", "START")]

    inputs, _ = expected(lineage["prefix"], "partial")
    assert datasets(event, "inputs") == inputs
    assert ("mock://dst.example", f"/{lineage['prefix']}/partial/c") in datasets(event, "outputs")


def test_deferred_sensor_completes_with_what_its_jobs_moved(lineage):
    event = lineage["events"][("wait", "COMPLETE")]
    job_id = lineage["job_ids"]["sensed"]

    inputs, outputs = expected(lineage["prefix"], "sensed")
    assert datasets(event, "inputs") == inputs
    assert datasets(event, "outputs") == outputs
    assert facet(event)["jobIds"] == [job_id]
    assert facet(event)["jobsPerState"] == {"FINISHEDDIRTY": 1}


def test_no_token_reaches_a_lineage_event(lineage):
    assert "authz" not in lineage["text"]
    assert "TOKEN" not in lineage["text"]
