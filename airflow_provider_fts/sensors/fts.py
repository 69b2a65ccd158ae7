"""FTSJobSensor: wait until FTS jobs end, and fail with the reasons when files did not move."""

from __future__ import annotations

import ast
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from airflow_provider_fts.assets import add_replica_events, prepare_lineage
from airflow_provider_fts.client.errors import error_from_job_entry, is_job_error_entry
from airflow_provider_fts.client.states import SUMMARY_FILE_FIELDS, summarize_jobs
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.triggers.fts import (
    FTSJobTrigger,
    all_terminal,
    outcome_of_event,
    progress_line,
    publish_outcome,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


def job_id_list(value: Any) -> list[str]:
    """One id or several, also as the text a template renders a list to (``"['a', 'b']"``)."""
    if isinstance(value, str):
        text = value.strip()
        value = ast.literal_eval(text) if text.startswith("[") else [text] * bool(text)
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise AirflowException(f"job_id must be an FTS job id or a list of them, not {value!r}")
    return [str(job_id) for job_id in value]


def fetch_summary(hook: FTSHook, job_ids: list[str]) -> dict[str, Any]:
    """The current summary of the jobs, in one request per 100 jobs.

    Jobs FTS already purged to its archive are read from there: a lost job is not a failure.
    """
    records = hook.get_jobs_or_archived(job_ids, files=SUMMARY_FILE_FIELDS)
    for record in records:
        if is_job_error_entry(record):
            raise error_from_job_entry(record)
    return summarize_jobs(records)


class FTSJobSensor(BaseSensorOperator):
    """Wait for one or more FTS jobs; succeed when they FINISHED.

    FAILED and CANCELED jobs fail the task (no retry: a terminal job cannot change) after
    logging the failed files and their reasons. Its XCom is the jobs' summary: states,
    counts per file state, failed files with reason and recoverable flag, bytes, mean
    throughput. The summary is also pushed as ``fts_summary`` before the verdict, so it
    survives a failed task for downstream ``all_done`` tasks. A job FTS already purged
    to its archive (404 on ``/jobs``) is read from ``/archive/<id>``.

    :param job_id: An FTS job id or a list of them (templated; an operator's XCom works).
    :param fts_conn_id: The Airflow connection to the FTS server.
    :param allow_partial: Succeed on FINISHEDDIRTY (some files failed) instead of failing.
    :param deferrable: Wait in the triggerer instead of a worker slot.
    :param cancel_on_kill: When deferred, cancel the jobs if a user kills the task.
    """

    template_fields: Sequence[str] = ("job_id", "fts_conn_id")
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

    @cached_property
    def hook(self) -> FTSHook:
        return FTSHook(self.fts_conn_id)

    def poke(self, context: Context) -> PokeReturnValue:
        summary = fetch_summary(self.hook, job_id_list(self.job_id))
        self.log.info("%s", progress_line(summary))
        if not all_terminal(summary):
            return PokeReturnValue(is_done=False)
        publish_outcome(summary, context, allow_partial=self.allow_partial, log=self.log)
        add_replica_events(self, context, summary["job_ids"])
        return PokeReturnValue(is_done=True, xcom_value=summary)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)  # a job already over needs no triggerer
        if first.is_done:
            return first.xcom_value
        self.defer(
            trigger=FTSJobTrigger(
                job_ids=job_id_list(self.job_id),
                fts_conn_id=self.fts_conn_id,
                poll_interval=self.poke_interval,
                end_time=time.time() + self.timeout,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict:
        if event and event.get("status") == "timeout":
            raise AirflowSensorTimeout(event["message"])
        prepare_lineage(self, job_id_list(self.job_id))
        summary = outcome_of_event(event, context, allow_partial=self.allow_partial, log=self.log)
        add_replica_events(self, context, summary["job_ids"])
        return summary

    # -- assets and lineage (rules in airflow_provider_fts.assets) -------------------------

    def get_openlineage_facets_on_start(self) -> Any:
        from airflow_provider_fts.openlineage import facets_on_start

        return facets_on_start(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_provider_fts.openlineage import facets_on_complete

        return facets_on_complete(self, task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        from airflow_provider_fts.openlineage import facets_on_failure

        return facets_on_failure(self, task_instance)
