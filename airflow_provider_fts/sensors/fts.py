"""FTSJobSensor: wait until FTS jobs end, and fail with the reasons when files did not move."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.protocol import check_id
from airflow_provider_fts.client.states import JobSummary, ProgressLog, Tally, all_terminal
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.links.fts import FTSJobLink
from airflow_provider_fts.tasks import DEFAULT_DEFERRABLE, FTSTask, check_asset_grain
from airflow_provider_fts.verdict import final_on_bad_input

if TYPE_CHECKING:
    from airflow.sdk import Context

#: What a template renders when its ``xcom_pull`` found nothing (a mistyped task id).
_EMPTY_RENDERINGS = frozenset({"", "none", "null", "[]"})


def job_id_list(value: Any) -> list[str]:
    """One id or several, also as the text a template renders a list to (``"['a', 'b']"``).

    ``None``, ``"None"`` and empty values are refused before any request: they are what
    ``{{ ti.xcom_pull(task_ids='...') }}`` renders when the task id is mistyped. Each id
    is then checked by the client's one id rule (:func:`~.protocol.check_id`).
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _EMPTY_RENDERINGS:
            value = None
        else:
            value = ast.literal_eval(text) if text.startswith("[") else [text]
    ids = [] if value is None or isinstance(value, str) else value
    if not isinstance(ids, Sequence) or not ids or any(_is_empty(i) for i in ids):
        raise FTSValidationError(
            "job_id",
            f"is {value!r}, not an FTS job id or a list of them.",
            "An xcom_pull renders None when nothing was pushed: check the task_ids it names "
            "(and key), and that the submitting task ran before this one.",
        )
    return [check_id(job_id) for job_id in ids]


def _is_empty(job_id: Any) -> bool:
    return job_id is None or str(job_id).strip().lower() in _EMPTY_RENDERINGS


class FTSJobSensor(FTSTask, BaseSensorOperator):
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
        deferrable: bool = DEFAULT_DEFERRABLE,
        cancel_on_kill: bool = True,
        asset_grain: str = "file",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.fts_conn_id = fts_conn_id
        self.allow_partial = allow_partial
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self.asset_grain = check_asset_grain(asset_grain)

    def poke(self, context: Context) -> PokeReturnValue:
        self._ti = context["ti"]
        summary = self.hook.get_summary(job_id_list(self.job_id), tally=self._tally)
        self._log_progress(summary)
        if not all_terminal(summary):
            return PokeReturnValue(is_done=False)
        self._publish(summary, context)
        return PokeReturnValue(is_done=True, xcom_value=summary)

    @cached_property
    def _log_progress(self) -> ProgressLog:
        return ProgressLog(self.log.info)  # kept across pokes of one process

    @cached_property
    def _tally(self) -> Tally:
        """What earlier pokes of this process learnt: ended jobs' files are read once."""
        return Tally(job_id_list(self.job_id))

    def _publish(self, summary: JobSummary, context: Context) -> JobSummary:
        return self._conclude(
            summary, context, can_resubmit=False, replica_jobs=job_id_list(self.job_id)
        )

    @final_on_bad_input
    def execute(self, context: Context) -> Any:
        ids = job_id_list(self.job_id)  # a bad id fails before any request
        self._push_job_url(context, ids)
        if not self.deferrable:
            return super().execute(context)
        if self.hook.jobs_ended(ids):  # a job already over needs no triggerer
            return self.poke(context).xcom_value
        self._defer_wait(ids, self.poke_interval, self.timeout)

    @final_on_bad_input
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict:
        summary = self._resumed(context, event, on_timeout=AirflowSensorTimeout)
        return self._publish(summary, context)

    def _waited_jobs(self) -> list[str]:
        return job_id_list(self.job_id)
