"""FTSJobTrigger: wait in the triggerer until FTS jobs end, without holding a worker slot.

The trigger only reads: it may be restarted or run twice, so it never submits. All
triggers of one triggerer that watch jobs on the same endpoint with the same credential
share one :class:`~airflow_provider_fts.client.poller.JobPoller`, which asks for up to 100
jobs per request. The outcome rules (what counts as success, what the log says) live
here too, so the sensor, the operator and the trigger speak one vocabulary; the summary
itself is :func:`~airflow_provider_fts.client.states.summarize_jobs`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_fts.client.states import FileState, JobState, summarize_jobs
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.links.fts import SUMMARY_KEY

if TYPE_CHECKING:
    from airflow.sdk import Context

_FAILED_FILES_LOGGED = 50  # failed files listed in a task log; the XCom summary keeps all


def all_terminal(summary: Mapping[str, Any]) -> bool:
    return all(JobState.parse(s).is_terminal for s in summary["job_states"].values())


def progress_line(summary: Mapping[str, Any]) -> str:
    """One log line per poll: files done of total, bytes, throughput."""
    states = summary["file_states"]
    done = sum(n for state, n in states.items() if FileState.parse(state).is_terminal)
    throughput = summary["throughput_mib_s"]
    rate = f", {throughput} MiB/s" if throughput is not None else ""
    jobs = ", ".join(f"{j[:8]} {s}" for j, s in summary["job_states"].items())
    return (
        f"FTS: {done}/{summary['files']} files done ({summary['bytes']} bytes{rate}); "
        f"{len(summary['failed_files'])} failed; jobs: {jobs}"
    )


def check_outcome(summary: Mapping[str, Any], *, allow_partial: bool, log: Any) -> None:
    """Raise :class:`AirflowFailException` unless every job FINISHED (or was partial and
    ``allow_partial``); log each failed file with its reason first.

    Retrying the task cannot change a terminal job, hence a failure without retry.
    """
    states = set(summary["job_states"].values())
    bad = states & {JobState.FAILED, JobState.CANCELED}
    if not allow_partial:
        bad |= states & {JobState.FINISHEDDIRTY}
    if not bad:
        return
    failed = summary["failed_files"]
    for entry in failed[:_FAILED_FILES_LOGGED]:
        log.error(
            "%s -> %s: %s %s (%s)",
            entry["source"],
            entry["destination"],
            entry["state"],
            entry["reason"] or "no reason given",
            "recoverable" if entry["recoverable"] else "not recoverable",
        )
    if len(failed) > _FAILED_FILES_LOGGED:
        log.error("... and %d more failed files", len(failed) - _FAILED_FILES_LOGGED)
    ended = ", ".join(f"{job} {state}" for job, state in summary["job_states"].items())
    raise AirflowFailException(
        f"FTS jobs ended {ended}: {len(failed)} of {summary['files']} files did not transfer."
    )


def publish_outcome(
    summary: dict[str, Any], context: Context, *, allow_partial: bool, log: Any
) -> dict[str, Any]:
    """Push the summary (XCom ``fts_summary``), then :func:`check_outcome` it.

    Pushed first so that it outlives a failure: a downstream task with
    ``trigger_rule="all_done"`` can still read which files failed and why.
    """
    context["ti"].xcom_push(key=SUMMARY_KEY, value=summary)
    check_outcome(summary, allow_partial=allow_partial, log=log)
    return summary


def outcome_of_event(
    event: Mapping[str, Any] | None, context: Context, *, allow_partial: bool, log: Any
) -> dict:
    """The summary carried by a trigger event, after the same steps as a poke."""
    if not event or event.get("status") not in ("done", "timeout", "error"):
        raise AirflowException(f"FTSJobTrigger sent an unexpected event: {event!r}")
    if event["status"] == "timeout":
        raise AirflowFailException(event["message"])
    if event["status"] == "error":
        raise AirflowException(event["message"])
    summary = event["summary"]
    log.info("%s", progress_line(summary))
    return publish_outcome(summary, context, allow_partial=allow_partial, log=log)


class FTSJobTrigger(BaseTrigger):
    """Fire once when every job has ended, the deadline passed, or polling failed.

    The event is ``{"status": "done" | "timeout" | "error", "job_ids", "message"}`` plus
    the ``summary`` when done. A job FTS purged to its archive counts as done, with the
    archived record. ``cleanup`` has nothing to do: leaving the shared poller
    happens when ``run`` is cancelled. ``on_kill`` (Airflow >= 3.3, a user marked or
    cleared the deferred task) cancels the jobs.

    :param job_ids: The FTS job ids to wait for.
    :param fts_conn_id: The Airflow connection to the FTS server.
    :param poll_interval: Seconds between polls.
    :param end_time: Wall-clock deadline (epoch seconds); None waits without limit.
    :param cancel_on_kill: Cancel the jobs when a user kills the deferred task.
    """

    def __init__(
        self,
        job_ids: list[str],
        fts_conn_id: str = FTSHook.default_conn_name,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.job_ids = list(job_ids)
        self.fts_conn_id = fts_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = end_time
        self.cancel_on_kill = cancel_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_ids": self.job_ids,
                "fts_conn_id": self.fts_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event: dict[str, Any] = {"job_ids": self.job_ids}
        try:
            poller = await FTSHook(self.fts_conn_id).aget_poller()
            left = None if self.end_time is None else max(0.0, self.end_time - time.time())
            async with asyncio.timeout(left):
                records = await poller.wait(
                    self.job_ids, interval=self.poll_interval, on_poll=self._log_progress
                )
        except TimeoutError:
            event |= {
                "status": "timeout",
                "message": f"FTS jobs {self.job_ids} still running "
                "at the deadline; they were left running.",
            }
        except Exception as error:
            event |= {"status": "error", "message": f"{type(error).__name__}: {error}"}
        else:
            summary = summarize_jobs(records)
            event |= {"status": "done", "summary": summary, "message": progress_line(summary)}
        yield TriggerEvent(event)

    def _log_progress(self, records: list[dict]) -> None:
        self.log.info("%s", progress_line(summarize_jobs(records)))

    async def on_kill(self) -> None:
        if not self.cancel_on_kill:
            return
        poller = await FTSHook(self.fts_conn_id).aget_poller()
        answers = await poller.cancel(self.job_ids)
        self.log.info(
            "Canceled FTS jobs: %s", {a.get("job_id"): a.get("job_state") for a in answers}
        )
