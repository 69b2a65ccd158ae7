"""The README's two tables, row by row: the operator as Airflow's retry unit, the sensor that
never retries, and what a user action does to the job. Against the emulator over TLS."""

from __future__ import annotations

import asyncio
import time

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred

from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.states import Failures, summarize_jobs, with_failures
from airflow_provider_fts.operators.fts import FTSSubmitOperator
from airflow_provider_fts.sensors.fts import FTSJobSensor
from airflow_provider_fts.triggers.fts import FTSJobTrigger
from airflow_provider_fts.verdict import FTSRecoverableFailure, check_outcome
from tests.tasks import TaskTry, only_event, wait_terminal

OK = ("mock://s.example/ok", "mock://d.example/{run}/ok")
RECOVERABLE = ("mock://s.example/r", "mock://d.example/{run}/r?transfer_errno=110")  # ETIMEDOUT
FATAL = ("mock://s.example/f", "mock://d.example/{run}/f?transfer_errno=13")  # EACCES
STAGED = ("mock://s.example/st?staging_time=120", "mock://d.example/{run}/st")
STAGING = {"bring_online": 600}


def pairs(run: str, *templates: tuple[str, str]) -> list[tuple[str, str]]:
    return [(source, destination.format(run=run)) for source, destination in templates]


def waiting(transfers, **kwargs) -> FTSSubmitOperator:
    return FTSSubmitOperator(
        task_id="submit",
        transfers=transfers,
        wait_for_completion=True,
        poll_interval=0.05,
        **kwargs,
    )


def run(operator, try_number: int, run_id: str, **ti) -> tuple[object, TaskTry]:
    task_try = TaskTry(try_number, run_id=run_id, task_id=operator.task_id, **ti)
    try:
        return operator.execute({"ti": task_try}), task_try
    except Exception as error:
        return error, task_try


def destinations(hook, job_id: str) -> list[str]:
    return sorted(f["dest_surl"] for f in hook.get_job_files(job_id))


# -- the retry unit: FTSSubmitOperator(wait_for_completion=True) ---------------------------


def test_all_finished_succeeds_and_publishes_the_summary(hook):
    result, ti = run(waiting(pairs("fin", OK)), 1, "fin")

    assert hook.get_job(result)["job_state"] == "FINISHED"
    assert ti.xcoms["fts_summary"]["file_states"] == {"FINISHED": 1}


def test_a_recoverable_failure_is_a_retryable_failure(hook):
    error, ti = run(waiting(pairs("rec", OK, RECOVERABLE)), 1, "rec")

    assert isinstance(error, FTSRecoverableFailure)
    assert isinstance(error, AirflowException) and not isinstance(error, AirflowFailException)
    assert [f["recoverable"] for f in ti.xcoms["fts_summary"]["failed_files"]] == [True]


def test_the_next_try_resubmits_only_the_recoverable_files_no_job_finished(hook, fts_emulator):
    operator = waiting(pairs("rec2", OK, RECOVERABLE, FATAL))
    run(operator, 1, "rec2")
    first = operator._job_ids[0]
    fts_emulator.reset_counts()

    error, ti = run(operator, 2, "rec2")

    (second,) = operator._job_ids
    assert second != first
    assert destinations(hook, second) == ["mock://d.example/rec2/r?transfer_errno=110"]
    assert fts_emulator.requests["POST /jobs"] == 1
    assert isinstance(error, FTSRecoverableFailure)  # still recoverable: Airflow retries again
    failed = {f["destination"]: f["job_id"] for f in ti.xcoms["fts_summary"]["failed_files"]}
    assert failed["mock://d.example/rec2/f?transfer_errno=13"] == first  # carried, not resent


def test_only_non_recoverable_failures_fail_without_retry_naming_each_file(hook):
    error, _ = run(waiting(pairs("fatal", OK, FATAL)), 1, "fatal")

    assert isinstance(error, AirflowFailException)
    assert "mock://d.example/fatal/f?transfer_errno=13" in str(error)
    assert "[13]" in str(error)  # the reason FTS gave


def test_non_recoverable_failures_are_never_resent(hook, fts_emulator):
    operator = waiting(pairs("never", OK, FATAL))
    run(operator, 1, "never")
    first = operator._job_ids[0]
    fts_emulator.reset_counts()

    error, _ = run(operator, 2, "never")  # a clear, or a retry the user forced

    assert operator._job_ids == [first]
    assert fts_emulator.requests["POST /jobs"] == 0
    assert isinstance(error, AirflowFailException)


def test_allow_partial_succeeds_on_finisheddirty_with_the_failures_in_the_summary(hook):
    result, ti = run(waiting(pairs("partial", OK, RECOVERABLE), allow_partial=True), 1, "partial")

    assert hook.get_job(result)["job_state"] == "FINISHEDDIRTY"
    assert len(ti.xcoms["fts_summary"]["failed_files"]) == 1


def test_a_job_canceled_outside_airflow_fails_without_retry(hook):
    operator = waiting(pairs("outside", STAGED), job_params=STAGING, deferrable=True)
    ti = TaskTry(1, run_id="outside")
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": ti})
    (job_id,) = operator._job_ids
    hook.cancel_job(job_id)  # fts-rest-transfer-cancel by someone else
    event = asyncio.run(only_event(deferred.value.trigger))

    with pytest.raises(AirflowFailException, match="canceled outside"):
        operator.execute_complete({"ti": ti}, event)


def test_deferring_sets_one_deadline_and_holds_an_early_event(hook):
    operator = waiting(pairs("defer", STAGED), job_params=STAGING, deferrable=True, wait_timeout=60)

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": TaskTry(1, run_id="defer")})

    trigger = deferred.value.trigger
    assert deferred.value.timeout is None  # the trigger's end_time is the only deadline
    assert trigger.end_time is not None and trigger.not_before is not None
    hook.cancel_jobs(operator._job_ids)


def test_a_wait_past_its_timeout_fails_with_the_triggers_message(hook):
    operator = waiting(pairs("slow", STAGED), job_params=STAGING, wait_timeout=0.1)

    error, _ = run(operator, 1, "slow")

    assert isinstance(error, AirflowFailException)
    assert "still running at the deadline; left running" in str(error)
    hook.cancel_jobs(operator._job_ids)


def test_a_staging_only_root_retry_restages_only_what_did_not_finish(hook, fts_emulator):
    """A server stores staging-only root:// URLs with ?activity=default appended."""
    done = "root://eos.example//tape/done"
    bad = "root://eos.example//tape/bad?staging_errno=110"
    operator = waiting([(done, done), (bad, bad)], job_params={"bring_online": 60})
    run(operator, 1, "tape")
    first = operator._job_ids[0]
    assert "activity=default" in hook.get_job_files(first)[0]["dest_surl"]

    run(operator, 2, "tape")

    (second,) = operator._job_ids
    assert [f["source_surl"] for f in hook.get_job_files(second)] == [f"{bad}&activity=default"]


def test_both_kinds_left_only_non_recoverable_fails_without_retry():
    """The verdict of a try whose resubmitted files all finished, while an earlier try's
    non-recoverable failure is carried (the operator adds it to the summary)."""
    carried = {
        "job_id": "j1",
        "source": "s/f",
        "destination": "d/f",
        "state": "FAILED",
        "reason": "EACCES",
        "recoverable": False,
    }
    resent = {"job_id": "j2", "job_state": "FINISHED", "files": [{"file_state": "FINISHED"}]}
    summary = with_failures(summarize_jobs([resent]), [carried])

    with pytest.raises(AirflowFailException, match="d/f: EACCES"):
        check_outcome(summary, allow_partial=False, can_resubmit=True)
    check_outcome(summary, allow_partial=True, can_resubmit=True)  # partial accepted


# -- operator-owned parameters and bad ids, refused before any request ----------------------


@pytest.mark.parametrize(
    ("job_params", "transfers", "field"),
    [
        ({"sid": "mine"}, [OK], "job_params.sid"),
        ({"id_generator": "standard"}, [OK], "job_params.id_generator"),
        (None, [OK, {"source": "mock://s/x", "destination": "mock://d/x",
                     "job_params": {"id_generator": "standard"}}],
         "transfers[1].job_params.id_generator"),
    ],
)  # fmt: skip
def test_operator_owned_job_params_are_refused_by_the_key_written(
    hook, fts_emulator, job_params, transfers, field
):
    operator = FTSSubmitOperator(task_id="submit", transfers=transfers, job_params=job_params)
    fts_emulator.reset_counts()

    with pytest.raises(FTSValidationError, match=field.replace("[", r"\[")) as error:
        run_raising(operator)

    assert "Remove" in str(error.value)
    assert fts_emulator.requests["POST /jobs"] == 0


def run_raising(operator) -> None:
    operator.execute({"ti": TaskTry(1, run_id="owned")})


@pytest.mark.parametrize("job_id", ["None", "", "  ", "[]", None, ["None"]])
def test_sensor_refuses_a_none_or_empty_job_id_with_the_likely_cause(hook, fts_emulator, job_id):
    fts_emulator.reset_counts()

    with pytest.raises(FTSValidationError, match="xcom_pull"):
        FTSJobSensor(task_id="wait", job_id=job_id).execute({"ti": TaskTry(task_id="wait")})

    assert sum(fts_emulator.requests.values()) == 0


def test_the_sensor_shows_the_fts_job_link(hook):
    job_id = hook.submit_job([pairs("link", OK)[0]])
    wait_terminal(hook, job_id)
    ti = TaskTry(task_id="wait")

    sensor = FTSJobSensor(task_id="wait", job_id=job_id, poke_interval=0.05)
    sensor.execute({"ti": ti})

    assert [link.name for link in sensor.operator_extra_links] == ["FTS job"]
    assert ti.xcoms["fts_job_url"].endswith(f"/fts3/ftsmon/#/job/{job_id}")


def test_sensor_failures_never_retry_even_when_recoverable(hook):
    job_id = hook.submit_job(pairs("srec", RECOVERABLE))
    wait_terminal(hook, job_id)

    with pytest.raises(AirflowFailException):
        FTSJobSensor(task_id="wait", job_id=job_id).poke({"ti": TaskTry(task_id="wait")})


# -- user actions: what on_kill does, decided from the task instance's state --------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("failed", "CANCELED"),  # marked failed
        ("success", "STAGING"),  # marked success
        ("restarting", "STAGING"),  # cleared while running
        (None, "STAGING"),  # cleared, next try not yet scheduled
        ("running", "STAGING"),  # cleared, and the next try already runs on the job
    ],
)
def test_worker_on_kill_cancels_only_a_task_marked_failed(hook, state, expected):
    operator = FTSSubmitOperator(
        task_id="submit", transfers=pairs(f"kill-{state}", STAGED), job_params=STAGING
    )
    _, ti = run(operator, 1, f"kill-{state}")
    ti.state = state

    operator.on_kill()

    assert hook.get_job(operator._job_ids[0])["job_state"] == expected
    hook.cancel_jobs(operator._job_ids)


@pytest.mark.parametrize(("state", "expected"), [("failed", "CANCELED"), ("success", "STAGING")])
def test_sensor_on_kill_cancels_only_a_task_marked_failed(hook, state, expected):
    job_id = hook.submit_job(pairs(f"skill-{state}", STAGED), **STAGING)
    sensor = FTSJobSensor(task_id="wait", job_id=job_id, poke_interval=0.05)
    ti = TaskTry(task_id="wait", run_id=f"skill-{state}")
    sensor.poke({"ti": ti})
    ti.state = state

    sensor.on_kill()

    assert hook.get_job(job_id)["job_state"] == expected
    hook.cancel_job(job_id)


def test_cleared_try_reconnects_and_the_old_triggers_late_on_kill_keeps_the_job(hook):
    """Clear: the new try reuses the job; the old trigger's on_kill, arriving after that,
    reads the task instance's state (the new try's, running) and does not cancel."""
    operator = FTSSubmitOperator(
        task_id="submit", transfers=pairs("clear", STAGED), job_params=STAGING
    )
    first, _ = run(operator, 1, "clear")
    second, new_try = run(operator, 2, "clear")
    old_trigger = FTSJobTrigger(job_ids=[first])
    old_trigger.task_instance = new_try  # same task instance: the API answers its state now

    asyncio.run(old_trigger.on_kill())

    assert second == first
    assert hook.get_job(first)["job_state"] == "STAGING"
    hook.cancel_job(first)


def test_a_job_our_earlier_try_canceled_is_resubmitted_not_failed(hook):
    operator = FTSSubmitOperator(
        task_id="submit", transfers=pairs("own", OK, STAGED), job_params=STAGING
    )
    first, ti = run(operator, 1, "own")
    ti.state = "failed"
    operator.on_kill()  # marked failed: our own cancel
    assert wait_terminal(hook, first) == "CANCELED"

    second, _ = run(operator, 2, "own")  # then the user clears the task

    assert second != first
    assert len(destinations(hook, second)) == 2  # nothing had finished: both resent
    hook.cancel_job(second)


# -- a recoverable flag the server left empty --------------------------------------------


def test_a_failure_of_unknown_recoverability_is_retried_by_the_operator_not_the_sensor():
    """``recoverable: None`` (older servers): the task's retries bound the cost of trying."""
    from airflow_provider_fts.client.states import summarize_jobs

    timed_out = {
        "file_state": "FAILED",
        "source_surl": "s/f",
        "dest_surl": "d/f",
        "reason": "TRANSFER [110] Connection timed out",
        "recoverable": None,
    }
    summary = summarize_jobs([{"job_id": "j1", "job_state": "FAILED", "files": [timed_out]}])

    assert summary["failed_files"][0]["recoverable"] is None
    with pytest.raises(FTSRecoverableFailure, match="1 recoverable"):
        check_outcome(summary, allow_partial=False, can_resubmit=True)
    with pytest.raises(AirflowFailException):
        check_outcome(summary, allow_partial=False, can_resubmit=False)


def test_a_failure_the_server_left_unknown_is_retried_not_final(hook):
    unknown = (
        "mock://s.example/u",
        "mock://d.example/{run}/u?transfer_errno=13&recoverable=unknown",
    )
    operator = waiting(pairs("unknown", unknown))

    error, ti = run(operator, 1, "unknown")

    assert ti.xcoms["fts_summary"]["failed_files"][0]["recoverable"] is None
    assert isinstance(error, FTSRecoverableFailure), error


# -- a user's clear after a final failure resends; an automatic retry never does ---------


@pytest.mark.parametrize(
    ("max_tries", "resent"),
    [(1, False), (2, True)],  # retries=1: an automatic retry; a clear (1 + retries)
    ids=["automatic-retry", "cleared"],
)
def test_a_clear_after_a_final_failure_resends_what_failed_for_good(
    hook, fts_emulator, max_tries, resent
):
    operator = waiting(pairs(f"fix-{max_tries}", OK, FATAL), retries=1)
    error, _ = run(operator, 1, f"fix-{max_tries}", max_tries=1)
    assert isinstance(error, AirflowFailException)
    first = operator._job_ids[0]
    fts_emulator.reset_counts()

    error, _ = run(operator, 2, f"fix-{max_tries}", max_tries=max_tries)

    assert fts_emulator.requests["POST /jobs"] == int(resent)
    if resent:
        (second,) = operator._job_ids
        assert destinations(hook, second) == [FATAL[1].format(run=f"fix-{max_tries}")]
        assert "not retried" in str(error)  # its new failure, not the earlier one twice
        assert str(error).count("transfer_errno=13") == 1
    else:
        assert operator._job_ids == [first]


# -- what the failure message says -----------------------------------------------------


def test_a_failure_of_an_earlier_tries_job_is_named_with_that_job():
    carried = {
        "job_id": "j1-earlier",
        "file_id": 1,
        "source": "s/f",
        "destination": "d/f",
        "state": "FAILED",
        "reason": "EACCES",
        "recoverable": False,
    }
    finished = {"file_state": "FINISHED", "source_surl": "s/g", "dest_surl": "d/g"}
    summary = with_failures(
        summarize_jobs([{"job_id": "j2", "job_state": "FINISHED", "files": [finished]}]),
        [carried],
    )

    with pytest.raises(AirflowFailException) as error:
        check_outcome(summary, allow_partial=False, can_resubmit=True)

    assert "1 of 2 files did not transfer" in str(error.value)
    assert "failures for good of earlier tries' jobs j1-earlier" in str(error.value)
    assert "d/f: EACCES (job j1-earlier)" in str(error.value)


def test_jobs_canceled_by_a_mark_failed_are_not_said_to_be_canceled_outside():
    canceled = {"file_state": "CANCELED", "source_surl": "s/f", "dest_surl": "d/f"}
    summary = summarize_jobs([{"job_id": "j1", "job_state": "CANCELED", "files": [canceled]}])

    with pytest.raises(AirflowFailException, match="canceled by this task: a user marked"):
        check_outcome(summary, allow_partial=False, can_resubmit=True, canceled_here=["j1"])
    with pytest.raises(AirflowFailException, match="canceled outside this task"):
        check_outcome(summary, allow_partial=False, can_resubmit=True)


def test_a_worker_mode_task_marked_failed_says_its_own_on_kill_canceled(hook):
    operator = waiting(pairs("own-cancel", STAGED), job_params=STAGING)
    ti = TaskTry(1, run_id="own-cancel", state="failed")
    operator._ti = ti
    operator._job_ids = [hook.submit_job(pairs("own-cancel", STAGED), **STAGING)]
    operator.on_kill()  # the SIGTERM handler, while the main thread waits
    wait_terminal(hook, operator._job_ids[0])

    summary = hook.get_summary(operator._job_ids)
    with pytest.raises(AirflowFailException, match="canceled by this task"):
        operator._publish(summary, Failures(), [], operator._job_ids, {"ti": ti})


def test_a_worker_mark_failed_against_a_slow_server_says_so_within_airflows_grace(
    hook, fts_emulator, capsys
):
    """The supervisor sends SIGKILL 5 s after the SIGTERM that runs on_kill."""
    operator = FTSSubmitOperator(
        task_id="submit", transfers=pairs("slow-kill", STAGED), job_params=STAGING
    )
    _, ti = run(operator, 1, "slow-kill")
    ti.state = "failed"
    fts_emulator.faults.slow(8, count=1)  # the cancel request

    started = time.monotonic()
    operator.on_kill()
    took = time.monotonic() - started

    assert took < 4.5, took
    assert "did not answer the cancel" in capsys.readouterr().out
    assert not operator._canceled_here
    assert wait_terminal(hook, operator._job_ids[0], timeout=15) == "CANCELED"  # answered late


def test_the_verdict_on_5000_jobs_names_the_canceled_one_and_who_canceled_it():
    from tests.client.test_summary import bulk_records

    summary = summarize_jobs(bulk_records(5000))
    canceled = "00000007-bulk-job"

    with pytest.raises(AirflowFailException, match=rf"\['{canceled}'\] were canceled outside"):
        check_outcome(summary, allow_partial=False, can_resubmit=True)
    with pytest.raises(AirflowFailException, match=rf"\['{canceled}'\] were canceled by this"):
        check_outcome(summary, allow_partial=False, can_resubmit=True, canceled_here=[canceled])
