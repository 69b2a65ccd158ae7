"""FTSJobTrigger: wait in the triggerer until FTS jobs end, without holding a worker slot.

The trigger only reads: it may be restarted or run twice, so it never submits. All
triggers of one triggerer that watch jobs on the same endpoint with the same credential
share one :class:`~airflow_provider_fts.client.poller.JobPoller`, which asks for up to 100
jobs per request. The event carries the jobs' summary (bounded, see
:func:`~airflow_provider_fts.client.states.summarize_jobs`);
the verdict on it is :mod:`airflow_provider_fts.verdict`, shared with the worker's wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_fts.client.states import ProgressLog, progress_line
from airflow_provider_fts.config import resume_guard_seconds
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.verdict import kill_cancels, task_state, timeout_message


def resume_not_before() -> float:
    """The ``not_before`` a task deferring now gives its trigger: ``[fts]
    resume_guard_seconds`` (:mod:`airflow_provider_fts.config`) from now, because Airflow
    3.3 may fail or retry a task whose trigger fires within seconds of the deferral
    (apache/airflow#72716); 0 turns the guard off."""
    return time.time() + resume_guard_seconds()


def state_lookup_seconds() -> float:
    """How long a trigger's ``on_kill`` waits for the task instance's state: Airflow gives
    it ``[triggerer] on_kill_timeout`` (30 s by default), of which 10 s are kept for the
    cancel; at least 3 s. Under load (several user actions at once) the answer takes many
    seconds, and a lookup given up is a mark-failed that leaves its jobs running."""
    from airflow.providers.common.compat.sdk import conf

    return max(3.0, conf.getfloat("triggerer", "on_kill_timeout", fallback=30.0) - 10.0)


class FTSJobTrigger(BaseTrigger):
    """Fire once when every job has ended, the deadline passed, or polling failed.

    The event is ``{"status": "done" | "timeout" | "error", "job_ids", "message"}`` plus
    the ``summary`` when done. A job FTS purged to its archive counts as done, with the
    archived record. ``cleanup`` has nothing to do: leaving the shared poller
    happens when ``run`` is cancelled. ``on_kill`` (Airflow >= 3.3 calls it when a user
    marks or clears the deferred task) cancels the jobs only if the task instance is now
    ``failed`` (:func:`~airflow_provider_fts.verdict.kill_cancels`).

    :param job_ids: The FTS job ids to wait for.
    :param fts_conn_id: The Airflow connection to the FTS server.
    :param poll_interval: Seconds between polls.
    :param end_time: Wall-clock deadline (epoch seconds); None waits without limit. The
        task passes no ``timeout`` to ``defer()``, so this deadline's message is the one
        a user sees.
    :param cancel_on_kill: Cancel the jobs when a user marks the deferred task failed.
    :param not_before: Epoch seconds before which no event fires (jobs that end sooner are
        held back, see :func:`resume_not_before`); None fires at once.
    """

    def __init__(
        self,
        job_ids: list[str],
        fts_conn_id: str = FTSHook.default_conn_name,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        cancel_on_kill: bool = True,
        not_before: float | None = None,
    ) -> None:
        super().__init__()
        self.job_ids = list(job_ids)
        self.fts_conn_id = fts_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = end_time
        self.cancel_on_kill = cancel_on_kill
        self.not_before = not_before

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_ids": self.job_ids,
                "fts_conn_id": self.fts_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
                "not_before": self.not_before,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event: dict[str, Any] = {"job_ids": self.job_ids}
        try:
            poller = await FTSHook(self.fts_conn_id).aget_poller()
            left = None if self.end_time is None else max(0.0, self.end_time - time.time())
            async with asyncio.timeout(left):
                summary = await poller.wait(
                    self.job_ids,
                    interval=self.poll_interval,
                    on_poll=ProgressLog(self.log.info),
                )
        except TimeoutError:
            event |= {"status": "timeout", "message": timeout_message(self.job_ids)}
        except Exception as error:
            event |= {"status": "error", "message": f"{type(error).__name__}: {error}"}
        else:
            event |= {"status": "done", "summary": summary, "message": progress_line(summary)}
            await self._hold_until_not_before()
        yield TriggerEvent(event)

    async def _hold_until_not_before(self) -> None:
        """Fire no sooner than ``not_before``: a trigger that fires within seconds of the
        deferral lets Airflow 3.3 take the worker's stale "deferred" exit for the resumed
        try's end and fail it (apache/airflow#72716)."""
        wait = 0.0 if self.not_before is None else self.not_before - time.time()
        if wait > 0:
            await asyncio.sleep(wait)

    async def on_kill(self) -> None:
        """Cancel the jobs if the task was marked failed; a clear or a mark-success keeps them.

        Decided from the task instance's state when ``on_kill`` runs, not from the order of
        events: after a clear, this may run after the new try has already reused the job.
        """
        if not self.cancel_on_kill:
            return
        ti = self.task_instance
        limit = state_lookup_seconds()
        state = await asyncio.to_thread(task_state, ti, limit) if ti is not None else None
        if not kill_cancels(state):
            self.log.info(
                "FTS jobs %s left running: the task is %s, not marked failed", self.job_ids, state
            )
            return
        # A sync hook in a thread: a poller made only to cancel would never run nor close.
        hook = FTSHook(self.fts_conn_id)
        answers = await asyncio.to_thread(hook.cancel_jobs, self.job_ids)
        self.log.info(
            "Canceled FTS jobs: %s", {a.get("job_id"): a.get("job_state") for a in answers}
        )
