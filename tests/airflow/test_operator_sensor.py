"""FTSSubmitOperator (exactly-once submission across tries) and FTSJobSensor (outcomes)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_fts.client.errors import FTSValidationError, NotFound
from airflow_provider_fts.operators.fts import FTSSubmitOperator
from airflow_provider_fts.sensors.fts import FTSJobSensor
from tests.tasks import TaskTry, wait_terminal

SLOW = "mock://dst.example/op-{n}"
STAGED = "mock://s.example/f?staging_time=120"  # unfinished, yet holds no slot
STAGING = {"bring_online": 600}


def run_try(operator: FTSSubmitOperator, try_number: int, run_id: str) -> tuple:
    ti = TaskTry(try_number, run_id=run_id, task_id=operator.task_id)
    return operator.execute({"ti": ti}), ti


def sensor_context() -> dict:
    return {"ti": TaskTry(1, task_id="wait")}


def test_submit_pushes_job_id_and_monitoring_url(hook):
    operator = FTSSubmitOperator(
        task_id="submit", transfers=[(STAGED, SLOW.format(n=1))], job_params=STAGING
    )

    job_id, ti = run_try(operator, 1, "push")

    assert ti.xcoms["fts_job_id"] == job_id
    assert ti.xcoms["fts_job_url"].endswith(f"/fts3/ftsmon/#/job/{job_id}")
    hook.cancel_job(job_id)


def test_more_transfers_than_the_limit_become_several_jobs(hook):
    transfers = [(STAGED, SLOW.format(n=f"c{i}")) for i in range(5)]
    operator = FTSSubmitOperator(
        task_id="submit", transfers=transfers, job_params=STAGING, max_files_per_job=2
    )

    job_ids, _ = run_try(operator, 1, "chunks")

    assert [len(hook.get_job_files(j)) for j in job_ids] == [2, 2, 1]
    hook.cancel_jobs(job_ids)


def test_transfers_with_different_job_params_never_share_a_job(hook):
    transfers = [
        (STAGED, SLOW.format(n="p1")),
        {
            "source": STAGED,
            "destination": SLOW.format(n="p2"),
            "job_params": {"priority": 5},
        },
    ]
    operator = FTSSubmitOperator(
        task_id="submit", transfers=transfers, job_params={"priority": 2, **STAGING}
    )

    job_ids, _ = run_try(operator, 1, "params")

    assert sorted(hook.get_job(j)["priority"] for j in job_ids) == [2, 5]
    hook.cancel_jobs(job_ids)


def test_invalid_transfers_fail_before_any_request(hook, fts_emulator):
    operator = FTSSubmitOperator(task_id="submit", transfers=[{"source": "mock://s.example/f"}])

    with pytest.raises(FTSValidationError):
        run_try(operator, 1, "invalid")

    assert fts_emulator.requests["POST /jobs"] == 0


def test_a_large_transfers_list_is_kept_as_a_preview_in_the_rendered_fields(hook):
    """Airflow records each rendered field for its "Rendered Template" page, rebuilding
    it item by item (270 MiB for 10^6 transfers): of 50 transfers, the first 20 and a count."""
    from airflow.sdk.execution_time.task_runner import _serialize_rendered_fields

    transfers = [(STAGED, SLOW.format(n=f"r{n}")) for n in range(50)]
    operator = FTSSubmitOperator(
        task_id="submit", transfers=transfers, job_params=STAGING, max_files_per_job=25
    )

    operator.render_template_fields({"ti": TaskTry(1, run_id="preview", task_id="submit")})

    assert _serialize_rendered_fields(operator)["transfers"] == [
        *([STAGED, SLOW.format(n=f"r{n}")] for n in range(20)),
        "... and 30 more transfers",
    ]
    job_ids, _ = run_try(operator, 1, "preview")
    assert [len(hook.get_job_files(j)) for j in job_ids] == [25, 25]
    hook.cancel_jobs(job_ids)


def test_retry_reconnects_to_the_active_job_of_the_earlier_try(hook, fts_emulator):
    operator = FTSSubmitOperator(
        task_id="submit", transfers=[(STAGED, SLOW.format(n=2))], job_params=STAGING
    )
    first, _ = run_try(operator, 1, "reconnect")
    fts_emulator.reset_counts()

    second, _ = run_try(operator, 2, "reconnect")

    assert second == first
    assert fts_emulator.requests["POST /jobs"] == 0
    assert fts_emulator.requests["GET /jobs/{id}"] == 1
    hook.cancel_job(first)


def test_retry_after_a_finished_job_returns_it_without_submitting(hook, fts_emulator):
    operator = FTSSubmitOperator(
        task_id="submit", transfers=[("mock://s.example/f", "mock://d.example/done")]
    )
    first, _ = run_try(operator, 1, "finished")
    wait_terminal(hook, first)
    fts_emulator.reset_counts()

    second, _ = run_try(operator, 2, "finished")

    assert second == first
    assert fts_emulator.requests["POST /jobs"] == 0


def test_retry_after_a_partial_failure_resubmits_only_the_failed_file(hook):
    transfers = [
        ("mock://s.example/ok", "mock://d.example/ok"),
        ("mock://s.example/bad", "mock://d.example/bad?transfer_errno=5"),
    ]
    operator = FTSSubmitOperator(task_id="submit", transfers=transfers)
    first, _ = run_try(operator, 1, "partial")
    assert wait_terminal(hook, first) == "FINISHEDDIRTY"

    second, _ = run_try(operator, 2, "partial")

    assert second != first
    assert [f["dest_surl"] for f in hook.get_job_files(second)] == [
        "mock://d.example/bad?transfer_errno=5"
    ]


def test_retry_after_the_finished_job_was_purged_reuses_it_from_the_archive(hook, fts_emulator):
    operator = FTSSubmitOperator(
        task_id="submit", transfers=[("mock://s.example/f", "mock://d.example/purged-op")]
    )
    first, _ = run_try(operator, 1, "purged")
    wait_terminal(hook, first)
    fts_emulator.purge(first)
    fts_emulator.reset_counts()

    second, _ = run_try(operator, 2, "purged")

    assert second == first
    assert fts_emulator.requests["GET /archive/{id}"] == 1
    assert fts_emulator.requests["POST /jobs"] == 0


def test_wait_for_completion_by_polling_returns_after_the_job_finished(hook):
    operator = FTSSubmitOperator(
        task_id="submit",
        transfers=[("mock://s.example/f", "mock://d.example/w")],
        wait_for_completion=True,
        poll_interval=0.1,
    )

    job_id, _ = run_try(operator, 1, "wait")

    assert hook.get_job(job_id)["job_state"] == "FINISHED"


def test_on_kill_cancels_the_submitted_job(hook):
    operator = FTSSubmitOperator(
        task_id="submit", transfers=[(STAGED, SLOW.format(n=3))], job_params=STAGING
    )
    job_id, ti = run_try(operator, 1, "kill")
    ti.state = "failed"  # a user marked the running task failed

    operator.on_kill()

    assert hook.get_job(job_id)["job_state"] == "CANCELED"


def test_sensor_returns_the_summary_of_a_finished_job(hook):
    job_id = hook.submit_job([("mock://s.example/f?size=4096", "mock://d.example/s1")])
    wait_terminal(hook, job_id)

    result = FTSJobSensor(task_id="wait", job_id=job_id).poke(sensor_context())

    assert result.is_done
    assert result.xcom_value["file_states"] == {"FINISHED": 1}
    assert result.xcom_value["bytes"] == 4096


def test_sensor_accepts_a_rendered_list_of_ids(hook):
    ids = [hook.submit_job([("mock://s.example/f", f"mock://d.example/l{n}")]) for n in range(2)]
    for job_id in ids:
        wait_terminal(hook, job_id)

    result = FTSJobSensor(task_id="wait", job_id=str(ids)).poke(sensor_context())

    assert list(result.xcom_value["job_states"]) == ids


def test_sensor_is_not_done_while_the_job_runs(hook):
    job_id = hook.submit_job([(STAGED, SLOW.format(n=4))], **STAGING)

    assert not FTSJobSensor(task_id="wait", job_id=job_id).poke(sensor_context()).is_done
    hook.cancel_job(job_id)


def test_sensor_fails_a_failed_job_without_retry(hook):
    job_id = hook.submit_job([("mock://s.example/f", "mock://d.example/f?transfer_errno=13")])
    wait_terminal(hook, job_id)

    with pytest.raises(AirflowFailException, match="1 of 1 files"):
        FTSJobSensor(task_id="wait", job_id=job_id).poke(sensor_context())


def test_a_failing_sensor_still_publishes_the_summary_for_downstream_tasks(hook):
    job_id = hook.submit_job([("mock://s.example/f", "mock://d.example/f?transfer_errno=110")])
    wait_terminal(hook, job_id)
    context = sensor_context()

    with pytest.raises(AirflowFailException):
        FTSJobSensor(task_id="wait", job_id=job_id).poke(context)

    (failed,) = context["ti"].xcoms["fts_summary"]["failed_files"]
    assert failed["recoverable"] is True


def test_sensor_accepts_a_partial_job_only_when_allowed(hook):
    job_id = hook.submit_job(
        [
            ("mock://s.example/a", "mock://d.example/pa"),
            ("mock://s.example/b", "mock://d.example/pb?transfer_errno=13"),
        ]
    )
    assert wait_terminal(hook, job_id) == "FINISHEDDIRTY"

    with pytest.raises(AirflowFailException):
        FTSJobSensor(task_id="strict", job_id=job_id).poke(sensor_context())
    assert (
        FTSJobSensor(task_id="lenient", job_id=job_id, allow_partial=True)
        .poke(sensor_context())
        .is_done
    )


def test_sensor_reads_a_job_purged_to_the_archive(hook, fts_emulator):
    job_id = hook.submit_job([("mock://s.example/f?size=1024", "mock://d.example/purged")])
    wait_terminal(hook, job_id)
    fts_emulator.purge(job_id)

    result = FTSJobSensor(task_id="wait", job_id=job_id).poke(sensor_context())

    assert result.xcom_value["job_states"] == {job_id: "FINISHED"}
    assert result.xcom_value["bytes"] == 1024


def test_sensor_fails_for_a_job_neither_live_nor_archived(hook):
    unknown = "00000000-0000-0000-0000-000000000000"

    with pytest.raises(NotFound, match=unknown):
        FTSJobSensor(task_id="wait", job_id=unknown).poke(sensor_context())


def test_each_job_carries_the_task_try_in_its_stored_metadata(hook):
    operator = FTSSubmitOperator(
        task_id="submit",
        transfers=[(STAGED, SLOW.format(n="meta"))],
        job_params={**STAGING, "job_metadata": {"campaign": "2026-run-3"}},
    )
    ti = TaskTry(2, run_id="meta", task_id="submit", map_index=4)

    job_id = operator.execute({"ti": ti})

    stored = hook.get_job(job_id)["job_metadata"]
    assert stored["campaign"] == "2026-run-3"  # the user's keys kept
    assert stored["airflow"] == {
        "dag_id": "dag", "run_id": "meta", "task_id": "submit", "map_index": 4, "try_number": 2
    }  # fmt: skip
    hook.cancel_job(job_id)


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"airflow": "mine"}, "job_params.job_metadata.airflow"),
        ({"notes": "x" * 1000}, "job_params.job_metadata"),  # fits alone, not with the ids
    ],
    ids=["clash", "over-the-limit"],
)
def test_job_metadata_clashing_or_too_big_with_the_ids_is_refused_before_any_request(
    hook, fts_emulator, metadata, field
):
    operator = FTSSubmitOperator(
        task_id="submit",
        transfers=[(STAGED, SLOW.format(n="m"))],
        job_params={"job_metadata": metadata},
    )
    fts_emulator.reset_counts()

    with pytest.raises(FTSValidationError) as error:
        run_try(operator, 1, "meta-bad")

    assert error.value.field == field
    assert fts_emulator.requests["POST /jobs"] == 0
