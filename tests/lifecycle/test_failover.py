"""Airflow's clears and retries across a failover: a connection with two FTS servers, the
first down when the task starts. Every try finds the jobs of the earlier ones on whichever
server holds them; each chunk of each try is one job, on one server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_fts.testing.server import FTSEmulator

from .actions import Run, describe_jobs, jobs_of

ENDED = {"FINISHED", "FINISHEDDIRTY", "FAILED", "CANCELED"}


@pytest.fixture(scope="module")
def servers(fts_pki, fts_storage) -> Iterator[tuple[FTSEmulator, FTSEmulator]]:
    """Two FTS servers of their own (the suite's emulator stays up for the other scenarios)."""

    def server() -> FTSEmulator:
        return FTSEmulator(
            ca=fts_pki.ca, host_credential=fts_pki.host, ca_dir=fts_pki.ca_dir, storage=fts_storage
        )

    with server() as first, server() as second:
        yield first, second


@pytest.fixture(scope="module")
def failover_connection(airflow_stack, servers, fts_pki) -> str:
    """``fts_failover``: the first server as host, the second as failover, made as a user
    makes it (REST API)."""
    first, second = servers
    extra = {
        "x509up_file": str(fts_pki.voms_proxy_path),
        "ca_path": str(fts_pki.ca_dir),
        "failover_endpoints": [second.url],
    }
    airflow_stack.call(
        "POST",
        "/api/v2/connections",
        expect=(201,),
        json={
            "connection_id": "fts_failover",
            "conn_type": "fts",
            "host": first.host,
            "port": first.port,
            "extra": json.dumps(extra),
        },
    )
    airflow_stack.wait_dags({"lc_failover"})
    return "fts_failover"


def test_clear_and_retry_after_a_failover_find_the_job_on_the_second_server(
    airflow_stack, failover_connection, servers, storage: dict[str, Path], tmp_path: Path
):
    first, second = servers
    source_dir = storage["davs://site-a.example"] / "lc_failover"
    source_dir.mkdir(exist_ok=True)
    (source_dir / "f2").write_bytes(b"f2" * 1000)
    flaky_site = tmp_path / "flaky"
    flaky_site.mkdir()

    first.go_down()
    try:
        run = Run.trigger(airflow_stack, "lc_failover")
        run.wait_deferred("transfer")
    finally:
        first.come_back()
    [job] = jobs_of(second, run)
    assert jobs_of(first, run) == []

    # The user clears the deferred task: try 2 reconnects to the job on the second server.
    run.clear("transfer")
    first.engine.storage["davs://flaky.example"] = flaky_site  # repaired for later tries
    ti = run.wait_ti_done("transfer", timeout=240)

    on_first, on_second = jobs_of(first, run), jobs_of(second, run)
    everything = describe_jobs(on_second) + " | " + describe_jobs(on_first)
    assert [j["job_id"] for j in on_second] == [job["job_id"]], everything
    assert on_second[0]["state"] == "FINISHEDDIRTY", everything
    # Try 2 ended FINISHEDDIRTY; Airflow's retry (try 3) resent only the failed file, once.
    assert len(on_first) == 1, everything
    assert [f["dest_surl"] for f in on_first[0]["files"]] == [on_second[0]["files"][1]["dest_surl"]]
    assert on_first[0]["sid"].endswith(":3:0"), everything
    assert (ti["state"], ti["try_number"]) == ("success", 3), run.describe()
    assert (flaky_site / "lc_failover" / "f2").read_bytes() == b"f2" * 1000
    assert run.xcom("transfer", "fts_job_endpoints") == {on_first[0]["job_id"]: first.url}
