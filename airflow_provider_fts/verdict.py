"""The task verdict on FTS jobs: one place that turns a job summary into success or failure.

The operator (``wait_for_completion``), the sensor and both of their trigger callbacks
call :func:`publish_outcome`; what a user action does to a job is :func:`kill_cancels`.
The summary itself is :func:`~airflow_provider_fts.client.states.summarize_jobs`.

| Outcome | Operator (can resubmit) | Sensor |
|---|---|---|
| every file FINISHED | success | success |
| a job CANCELED | fail, no retry | fail, no retry |
| some files copied, ``allow_partial`` | success | success |
| a recoverable (or unknown) failure | :class:`FTSRecoverableFailure`, retried | fail, no retry |
| only non-recoverable failures | fail, no retry | fail, no retry |
| input that can never succeed (:func:`final_on_bad_input`) | fail, no retry | fail, no retry |
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.states import (
    FileState,
    JobState,
    JobSummary,
    ids_in_words,
    is_recoverable,
    jobs_in_words,
    progress_line,
)
from airflow_provider_fts.links.fts import SUMMARY_KEY

if TYPE_CHECKING:
    from airflow.sdk import Context

_FAILED_FILES_LOGGED = 50  # failed files listed in a task log (a summary lists up to 50)
#: on_kill runs in the worker's SIGTERM handler, and the supervisor sends SIGKILL 5 s later
#: (its ``escalation_delay``): the lookup and the cancel request share 4 s of them.
_WORKER_GRACE_SECONDS = 4.0
_STATE_LOOKUP_SECONDS = 2.0


class FTSRecoverableFailure(AirflowException):
    """Files failed that FTS deems recoverable: a normal failure, so Airflow retries the
    task, and the next try resubmits only the files no job finished."""


def final_on_bad_input(method: Callable) -> Callable:
    """Make input that can never succeed a final failure to Airflow: no retry is spent on it.

    An :class:`~airflow_provider_fts.client.errors.FTSValidationError` (a typo in a job
    parameter, a ``file://`` URL, a ``None`` job id, a proxy together with a token: every
    credential error is one too) is re-raised as the same error that is also an
    ``AirflowFailException``, with its message and traceback.
    """

    @functools.wraps(method)
    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except FTSValidationError as error:
            if isinstance(error, AirflowFailException):
                raise
            final = _final(type(error))(error.field, error.problem, error.fix)
            raise final.with_traceback(error.__traceback__) from None

    return checked


@functools.cache
def _final(cls: type[FTSValidationError]) -> type[FTSValidationError]:
    """``cls`` that is also an ``AirflowFailException``, under the same name."""
    return type(cls.__name__, (cls, AirflowFailException), {"__module__": cls.__module__})


def timeout_message(job_ids: list[str]) -> str:
    """What a wait that hit its deadline says: one short line whatever the number of jobs."""
    return f"FTS jobs {ids_in_words(job_ids)} still running at the deadline; left running."


def log_failures(summary: JobSummary, log: Any) -> None:
    """Each failed file with its reason and whether FTS deems it recoverable."""
    failed = summary["failed_files"]  # the first ones; failed_count counts them all
    for entry in failed[:_FAILED_FILES_LOGGED]:
        log.error(
            "%s -> %s: %s %s (%s)",
            entry["source"],
            entry["destination"],
            entry["state"],
            entry["reason"] or "no reason given",
            _recoverability(entry),
        )
    more = summary["failed_count"] - min(len(failed), _FAILED_FILES_LOGGED)
    if more > 0:
        log.error("... and %d more failed files", more)


def _recoverability(entry: Mapping[str, Any]) -> str:
    if entry["recoverable"] is None:
        return "recoverable unknown, counted as recoverable"
    return "recoverable" if entry["recoverable"] else "not recoverable"


def is_resendable(entry: Mapping[str, Any]) -> bool:
    """A failed file a new job may send again: FAILED and recoverable, or CANCELED."""
    return entry["state"] == FileState.CANCELED or is_recoverable(entry)


def resends_lost_files(ti: Any, retries: int) -> bool:
    """Whether this try sends again the files earlier tries' jobs failed for good.

    Only a user's clear does (the user fixed something); an automatic retry never does.
    Airflow tells which: a clear gives the task a fresh budget of ``retries`` (it sets
    ``max_tries`` to the cleared try plus ``retries``), so the first try of a budget is
    ``max_tries - retries + 1`` (the first try of a run is one too, with no earlier jobs).
    Without ``max_tries`` nothing is resent.
    """
    max_tries = getattr(ti, "max_tries", None)
    return isinstance(max_tries, int) and ti.try_number == max_tries - (retries or 0) + 1


def check_outcome(
    summary: JobSummary,
    *,
    allow_partial: bool,
    can_resubmit: bool,
    canceled_here: Collection[str] = (),
) -> None:
    """Raise unless the summary is a success (see the table in the module docstring).

    :param summary: A summary of ended jobs (failures of earlier tries included).
    :param allow_partial: Succeed when at least one file was copied.
    :param can_resubmit: The task resubmits on retry (the operator), so a recoverable
        failure is worth a retry; the sensor cannot resubmit.
    :param canceled_here: Jobs this task's ``on_kill`` canceled (the task was marked failed).
    """
    failed = summary["failed_files"]
    if not summary["failed_count"] and summary["jobs_per_state"].keys() <= {JobState.FINISHED}:
        return
    ended = jobs_in_words(summary)
    counts = f"{summary['failed_count']} of {summary['files']} files did not transfer"
    # The jobs not FINISHED are named first: if all are, a failure of an unnamed job is an
    # earlier try's (the operator adds those); if not, that cannot be told.
    not_finished = summary["jobs"] - summary["jobs_per_state"].get(JobState.FINISHED, 0)
    named_all = not_finished <= len(summary["job_states"])
    earlier = dict.fromkeys(
        str(f.get("job_id"))
        for f in failed
        if named_all and f.get("job_id") not in summary["job_states"]
    )
    if earlier:
        counts += f", with failures for good of earlier tries' jobs {', '.join(earlier)}"
    canceled_count = summary["jobs_per_state"].get(JobState.CANCELED, 0)
    canceled = [job for job, s in summary["job_states"].items() if s == JobState.CANCELED]
    named_canceled = str(canceled) + (
        f" and {canceled_count - len(canceled)} more" if canceled_count > len(canceled) else ""
    )
    if canceled_count and set(canceled) <= set(canceled_here):
        raise AirflowFailException(
            f"FTS jobs {named_canceled} were canceled by this task: a user marked it failed "
            f"({ended}): {counts}. Clear the task to resubmit the files that did not finish."
        )
    if canceled_count:
        raise AirflowFailException(
            f"FTS jobs {named_canceled} were canceled outside this task ({ended}): {counts}. "
            "Clear the task to resubmit the files that did not finish."
        )
    if allow_partial and summary["file_states"].get(FileState.FINISHED):
        return
    recoverable = summary["recoverable_count"]
    if can_resubmit and recoverable:
        raise FTSRecoverableFailure(
            f"FTS jobs ended {ended}: {counts}; {recoverable} recoverable, resubmitted "
            "by the next try."
        )
    named = "; ".join(
        f"{f['destination']}: {f['reason'] or f['state']} (job {f.get('job_id')})"
        for f in failed[:10]
    )
    raise AirflowFailException(f"FTS jobs ended {ended}: {counts} (not retried): {named}")


def publish_outcome(
    summary: JobSummary,
    context: Context,
    *,
    allow_partial: bool,
    can_resubmit: bool,
    log: Any,
    canceled_here: Collection[str] = (),
) -> JobSummary:
    """Push the summary (XCom ``fts_summary``), log the failures, then :func:`check_outcome`.

    Pushed first so that it outlives a failure: a downstream task with
    ``trigger_rule="all_done"`` can still read which files failed and why.

    :param summary: The jobs' summary.
    :param context: The task context (its ``ti`` pushes the XCom).
    :param allow_partial: Succeed when at least one file was copied.
    :param can_resubmit: Whether a recoverable failure is worth an Airflow retry.
    :param log: The task's logger.
    :param canceled_here: Jobs this task's ``on_kill`` canceled.
    """
    context["ti"].xcom_push(key=SUMMARY_KEY, value=summary)
    log_failures(summary, log)
    check_outcome(
        summary,
        allow_partial=allow_partial,
        can_resubmit=can_resubmit,
        canceled_here=canceled_here,
    )
    return summary


def summary_of_event(
    event: Mapping[str, Any] | None, log: Any, *, on_timeout: type[Exception] = AirflowFailException
) -> JobSummary:
    """The summary a trigger event carries; its timeout or error raised as an exception.

    :param event: The trigger's event payload.
    :param log: The task's logger (the final progress line goes there).
    :param on_timeout: The exception for a deadline (the sensor raises its own).
    """
    if not event or event.get("status") not in ("done", "timeout", "error"):
        raise AirflowException(f"FTSJobTrigger sent an unexpected event: {event!r}")
    if event["status"] == "timeout":
        raise on_timeout(event["message"])
    if event["status"] == "error":
        raise AirflowException(event["message"])
    log.info("%s", progress_line(event["summary"]))
    return event["summary"]


# -- what a user action does to the job -------------------------------------------------


def kill_cancels(state: str | None) -> bool:
    """Whether ``on_kill`` should cancel the jobs, from the task instance's state *now*.

    Airflow calls ``on_kill`` for mark-failed, mark-success and clear alike, and after a
    clear the old trigger's ``on_kill`` may arrive after the new try reused the job. Only a
    task marked failed is left ``failed`` (a clear leaves it ``None``, ``restarting`` or
    already the new try's state; mark success leaves ``success``), so only that cancels.
    An unknown state never cancels: a running transfer is the safer mistake.
    """
    return state == "failed"


def cancel_if_marked_failed(
    ti: Any, job_ids: list[str], cancel: Callable[[list[str]], Any], log: Any
) -> bool:
    """The worker side of a user action (``on_kill``): cancel the jobs only if the task
    instance is now ``failed``; returns whether it canceled.

    Runs in the SIGTERM handler, and Airflow's supervisor sends SIGKILL 5 s later: the
    lookup and the cancel together take at most :data:`_WORKER_GRACE_SECONDS`, and a
    cancel that got no answer by then is said in the task log.

    :param ti: The task instance of the running try (``None``: it never started).
    :param job_ids: The jobs this try waits for.
    :param cancel: Cancels jobs by id (the hook's ``cancel_jobs``).
    :param log: The task's logger.
    """
    deadline = time.monotonic() + _WORKER_GRACE_SECONDS
    state = task_state(ti, _STATE_LOOKUP_SECONDS) if ti is not None and job_ids else None
    if not kill_cancels(state):
        log.info("FTS jobs %s left running: the task is %s, not marked failed", job_ids, state)
        return False
    try:
        answered = _within(deadline - time.monotonic(), lambda: cancel(job_ids))
    except Exception:
        log.exception("Could not cancel FTS jobs %s", job_ids)
        return False
    if not answered:
        log.error(
            "FTS jobs %s: the server did not answer the cancel within %.0f s (Airflow kills "
            "the task 5 s after asking it to stop); they may keep running: cancel them in "
            "FTS monitoring",
            job_ids,
            _WORKER_GRACE_SECONDS,
        )
        return False
    log.info("Canceled FTS jobs %s: the task was marked failed", job_ids)
    return True


def task_state(ti: Any, limit: float) -> str | None:
    """The task instance's current state, read from the API server; ``None`` when unknown
    (also when no answer came within ``limit`` seconds).

    Runs in a thread with a bound: the worker calls ``on_kill`` from its SIGTERM handler,
    where the supervisor channel may be held by the interrupted main thread.
    """
    answer = _within(limit, lambda: _lookup(ti))
    return answer[0] if answer else None


def _within(seconds: float, call: Callable[[], Any]) -> list[Any]:
    """``[call()]``, run in a thread; ``[]`` if it did not return within ``seconds``."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except Exception as error:
            outcome.append((False, error))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(max(0.0, seconds))
    if not outcome:
        return []
    returned, value = outcome[0]
    if not returned:
        raise value
    return [value]


def _lookup(ti: Any) -> str | None:
    try:
        lookup = getattr(ti, "get_task_states", None)
        if lookup is None:  # the triggerer's TaskInstanceDTO: same call, through the SDK
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            lookup = RuntimeTaskInstance.get_task_states
        states = lookup(
            dag_id=ti.dag_id, map_index=ti.map_index, task_ids=[ti.task_id], run_ids=[ti.run_id]
        )
    except Exception:  # no supervisor (a bare test run) or the API server is unreachable
        return None
    key = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
    state = (states.get(ti.run_id) or {}).get(key)
    return None if state is None else str(getattr(state, "value", state))
