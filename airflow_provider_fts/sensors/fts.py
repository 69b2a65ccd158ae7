"""FTSJobSensor: wait until FTS jobs end, and fail with the reasons when files did not move."""

from __future__ import annotations

import ast
import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_fts.assets import ReplicaLineage, add_replica_events, prepare_lineage
from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.states import all_terminal, progress_line
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.links.fts import JOB_URL_KEY, FTSJobLink
from airflow_provider_fts.triggers.fts import FTSJobTrigger, resume_not_before
from airflow_provider_fts.verdict import (
    cancel_if_marked_failed,
    final_on_bad_input,
    publish_outcome,
    summary_of_event,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: What a template renders when its ``xcom_pull`` found nothing (a mistyped task id).
_EMPTY_RENDERINGS = frozenset({"", "none", "null", "[]"})


def job_id_list(value: Any) -> list[str]:
    """One id or several, also as the text a template renders a list to (``"['a', 'b']"``).

    ``None``, ``"None"`` and empty values are refused before any request: they are what
    ``{{ ti.xcom_pull(task_ids='...') }}`` renders when the task id is mistyped.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _EMPTY_RENDERINGS:
            value = None
        else:
            value = ast.literal_eval(text) if text.startswith("[") else [text]
    ids = [] if value is None or isinstance(value, str) else value
    if not isinstance(ids, Sequence) or not ids or any(_is_empty_id(i) for i in ids):
        raise FTSValidationError(
            "job_id",
            f"is {value!r}, not an FTS job id or a list of them.",
            "An xcom_pull renders None when nothing was pushed: check the task_ids it names "
            "(and key), and that the submitting task ran before this one.",
        )
    return [str(job_id).strip() for job_id in ids]


def _is_empty_id(job_id: Any) -> bool:
    return job_id is None or str(job_id).strip().lower() in _EMPTY_RENDERINGS


class FTSJobSensor(ReplicaLineage, BaseSensorOperator):
    """Wait for one or more FTS jobs; succeed when they FINISHED.

    FAILED and CANCELED jobs fail the task without retry (the sensor cannot resubmit: use
    ``FTSSubmitOperator(wait_for_completion=True)`` for retry-managed moves) after logging
    the failed files and their reasons. Its XCom is the jobs' summary: states,
    counts per file state, failed files with reason and recoverable flag, bytes, mean
    throughput. The summary is also pushed as ``fts_summary`` before the verdict, so it
    survives a failed task for downstream ``all_done`` tasks. A job FTS already purged
    to its archive (404 on ``/jobs``) is read from ``/archive/<id>``.

    :param job_id: An FTS job id or a list of them (templated; an operator's XCom works).
    :param fts_conn_id: The Airflow connection to the FTS server.
    :param allow_partial: Succeed on FINISHEDDIRTY (some files failed) instead of failing.
    :param deferrable: Wait in the triggerer instead of a worker slot.
    :param cancel_on_kill: Cancel the jobs when a user marks the task failed (a clear or a
        mark-success never cancels).
    """

    template_fields: Sequence[str] = ("job_id", "fts_conn_id")
    operator_extra_links = (FTSJobLink(),)
    ui_color = "#c7e3f4"

    def __init__(
        self,
        *,
        job_id: str | list[str],
        fts_conn_id: str = FTSHook.default_conn_name,
        allow_partial: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.fts_conn_id = fts_conn_id
        self.allow_partial = allow_partial
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self._ti: Any = None
        self._canceled_here: list[str] = []  # jobs on_kill canceled: the task was marked failed

    @cached_property
    def hook(self) -> FTSHook:
        return FTSHook(self.fts_conn_id)

    def poke(self, context: Context) -> PokeReturnValue:
        self._ti = context["ti"]
        summary = self.hook.get_summary(job_id_list(self.job_id))
        self.log.info("%s", progress_line(summary))
        if not all_terminal(summary):
            return PokeReturnValue(is_done=False)
        self._publish(summary, context)
        return PokeReturnValue(is_done=True, xcom_value=summary)

    def _publish(self, summary: dict[str, Any], context: Context) -> dict[str, Any]:
        publish_outcome(
            summary,
            context,
            allow_partial=self.allow_partial,
            can_resubmit=False,
            log=self.log,
            canceled_here=self._canceled_here,
        )
        add_replica_events(self, context, summary["job_ids"])
        return summary

    @final_on_bad_input
    def execute(self, context: Context) -> Any:
        ids = job_id_list(self.job_id)  # a bad id fails before any request
        self._push_url(context, ids)
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)  # a job already over needs no triggerer
        if first.is_done:
            return first.xcom_value
        # The trigger's end_time is the one deadline: a defer() timeout would race it with
        # Airflow's less helpful message.
        self.defer(
            trigger=FTSJobTrigger(
                job_ids=ids,
                fts_conn_id=self.fts_conn_id,
                poll_interval=self.poke_interval,
                end_time=time.time() + self.timeout,
                cancel_on_kill=self.cancel_on_kill,
                not_before=resume_not_before(),
            ),
            method_name="execute_complete",
        )

    def _push_url(self, context: Context, ids: list[str]) -> None:
        """The first job's monitoring URL, for the "FTS job" link (no request is made)."""
        context["ti"].xcom_push(key=JOB_URL_KEY, value=self.hook.job_url(ids[0]))

    @final_on_bad_input
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict:
        summary = summary_of_event(event, self.log, on_timeout=AirflowSensorTimeout)
        prepare_lineage(self, job_id_list(self.job_id))
        return self._publish(summary, context)

    def on_kill(self) -> None:
        """The worker side of a user action: cancel only if the task is now ``failed``."""
        if self.cancel_on_kill:
            ids = job_id_list(self.job_id)
            if cancel_if_marked_failed(self._ti, ids, self.hook.cancel_jobs, self.log):
                self._canceled_here = ids
