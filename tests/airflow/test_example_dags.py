"""Each example DAG parses with no network and runs end to end with ``dag.test()``.

``dag.test()`` runs deferred tasks inline: the trigger is rebuilt from its serialized
kwargs and run in-process, so the deferrable path is exercised for real.
"""

from __future__ import annotations

import re
import shutil
import uuid

import pytest

from tests.airflow_env import EXAMPLE_DAGS, load_example_dag

POLLER_AGENT = re.compile(r"airflow-provider-fts/\S+ httpx/")


@pytest.fixture
def emulator_connection(fts_connection, monkeypatch):
    monkeypatch.setenv("FTS_EXAMPLE_POLL_SECONDS", "0.2")
    monkeypatch.setenv("FTS_EXAMPLE_RETRY_DELAY_SECONDS", "0")


@pytest.fixture
def trigger_polls(fts_emulator):
    """Counts the ``GET /jobs/...`` requests of the triggers' shared poller (its User-Agent):
    proof that the waiting happened in a trigger, not in the task."""

    def from_poller(request) -> bool:
        agents = [v for k, v in request.headers.items() if k.lower() == "user-agent"]
        return len(agents) == 1 and POLLER_AGENT.match(agents[0]) is not None

    return fts_emulator.faults.slow(0, count=None, route="GET /jobs/{id}", when=from_poller)


def task_states(run) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLE_DAGS.glob("example_*.py")))
def test_example_dag_parses_without_network(name, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_FTS_DEFAULT", "fts://unreachable.invalid")

    dag = load_example_dag(name)

    assert dag.task_ids


@pytest.mark.parametrize(
    "run_kwargs", [{}, {"logical_date": None}], ids=["scheduled", "no-logical-date"]
)
def test_replication_copies_the_files_with_checksums(
    airflow_db,
    emulator_connection,
    fts_storage,
    fts_emulator,
    trigger_polls,
    monkeypatch,
    run_kwargs,
):
    """Also as the REST API triggers it by default: ``logical_date: null``."""
    monkeypatch.setattr(fts_emulator.engine, "default_duration", 1.0)  # still running at 1st poke
    site_a, site_b = fts_storage["davs://site-a.example"], fts_storage["davs://site-b.example"]
    shutil.rmtree(site_b / "replica", ignore_errors=True)  # other tests replicate there too
    (site_a / "data").mkdir(exist_ok=True)
    for name in ("run-001.root", "run-002.root", "run-003.root"):
        (site_a / "data" / name).write_bytes(name.encode() * 100)
    dag = load_example_dag("example_fts_replication")

    run = dag.test(**run_kwargs)

    assert run.state == "success"
    copied = sorted(p.name for p in site_b.glob("replica/*/*.root"))
    assert copied == ["run-001.root", "run-002.root", "run-003.root"]
    assert trigger_polls.hits >= 1


def test_tape_staging_stages_then_copies_waiting_in_the_trigger(
    airflow_db, emulator_connection, fts_storage, fts_emulator, trigger_polls
):
    site_a, site_b = fts_storage["davs://site-a.example"], fts_storage["davs://site-b.example"]
    dataset = f"run-{uuid.uuid4().hex[:8]}"
    (site_a / "tape" / dataset).mkdir(parents=True)
    for name in ("raw-001.dat", "raw-002.dat"):
        (site_a / "tape" / dataset / name).write_bytes(name.encode() * 50)
    dag = load_example_dag("example_fts_tape_staging")

    run = dag.test(run_conf={"dataset": dataset})

    assert run.state == "success"
    assert sorted(p.name for p in (site_b / "recalled" / dataset).iterdir()) == [
        "raw-001.dat",
        "raw-002.dat",
    ]
    (job,) = [j for j in fts_emulator.store.stored_jobs() if dataset in j.files[0]["source_surl"]]
    assert job.record["bring_online"] == 8 * 3600
    assert all(f["staging_finished"] for f in job.files)
    assert [f["staging_metadata"] for f in job.files] == [{"dataset": dataset}] * 2
    assert trigger_polls.hits >= 1


def test_bulk_copy_retries_resubmit_only_the_recoverable_failures(
    airflow_db, emulator_connection, fts_emulator, tmp_path, monkeypatch
):
    monkeypatch.setattr(fts_emulator.engine, "concurrency", 500)  # one big link, fast test
    prefix = f"bulk-{uuid.uuid4().hex[:8]}"
    manifest = tmp_path / "manifest.txt"
    manifest.write_text(
        "".join(f"mock://src.example/{prefix}/f{n} {destination(prefix, n)}\n" for n in range(1005))
    )
    dag = load_example_dag("example_fts_bulk_copy")

    run = dag.test(run_conf={"manifest": str(manifest)})

    jobs = [j for j in fts_emulator.store.stored_jobs() if prefix in j.files[0]["dest_surl"]]
    sent = [f["dest_surl"] for j in jobs for f in j.files]
    assert len(jobs) == 6 + 2 * 3  # the two batches with stubborn timeouts: 3 retries each
    assert sum(not _only_stubborn(j) for j in jobs) == 5  # first tries of batches 0-4
    assert sent.count(destination(prefix, 999)) == 4  # try 1's job, then 3 resubmissions
    assert [sent.count(destination(prefix, n)) for n in sorted(PERMANENT)] == [1, 1]
    assert len(sent) == 1005 + 3 * len(STUBBORN)  # nothing but the stubborn ones resent
    states = task_states(run)
    assert [states[("copy", i)] for i in range(6)] == ["failed", "success", "success"] + [
        "failed"
    ] * 3
    tries = {ti.map_index: ti.try_number for ti in run.get_task_instances() if ti.task_id == "copy"}
    assert tries == {0: 1, 1: 1, 2: 1, 3: 1, 4: 4, 5: 4}  # permanent failures: no retry
    assert states[("report", -1)] == "failed"
    assert run.state == "failed"


def _only_stubborn(job) -> bool:
    return all("fail_attempts=99" in f["dest_surl"] for f in job.files)


FIXED_BY_FTS = {7, 480}  # one timeout, then FTS's own retry inside the job copies it
STUBBORN = {999, *range(1000, 1005)}  # timeouts on every attempt: Airflow resubmits them
PERMANENT = {13, 650}  # permission denied: never resent, the task fails without retry


def destination(prefix: str, n: int) -> str:
    url = f"mock://dst.example/{prefix}/f{n}"
    if n in FIXED_BY_FTS:
        return f"{url}?transfer_errno=110&fail_attempts=1"
    if n in STUBBORN:
        return f"{url}?transfer_errno=110&fail_attempts=99"
    if n in PERMANENT:
        return f"{url}?transfer_errno=13"
    return url
