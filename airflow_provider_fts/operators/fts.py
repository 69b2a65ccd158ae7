"""FTSSubmitOperator: submit transfers to FTS exactly once per task try, whatever happens.

Each job gets a deterministic id (FTS ``sid``) derived from the DAG, task, run, map index,
try number and chunk. A retry computes the ids of the earlier tries locally and looks
them all up in one request: an active job is reconnected to, a FINISHED one is the
answer, and only a FAILED or CANCELED one leads to a new job, for the files that did not
finish. So neither an Airflow retry nor a crash between the submit and the XCom push
creates a duplicate job. A job FTS already purged to its archive (a task cleared days
later) is found there, so a FINISHED job is reused even then.

Why not ``ResumableJobMixin``: it keeps one id in ``task_state_store`` and resubmits
everything after a failure; deterministic ids need no store, close the mixin's window
between submit and persist, and allow resubmitting only the files that failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_fts.assets import add_replica_events, prepare_lineage
from airflow_provider_fts.client.errors import FTSValidationError, is_job_error_entry
from airflow_provider_fts.client.states import JobState
from airflow_provider_fts.client.submission import Transfer, build_submission
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.links.fts import JOB_ID_KEY, JOB_URL_KEY, FTSJobLink
from airflow_provider_fts.sensors.fts import fetch_summary
from airflow_provider_fts.triggers.fts import (
    FTSJobTrigger,
    all_terminal,
    outcome_of_event,
    progress_line,
    publish_outcome,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Per-transfer override of the operator's ``job_params``, e.g. ``{"job_params": {"priority": 5}}``.
TRANSFER_JOB_PARAMS = "job_params"


class Chunk:
    """The transfers of one job, with the job parameters they share."""

    def __init__(self, index: int, transfers: list[Transfer], params: dict[str, Any]) -> None:
        self.index = index
        self.transfers = transfers
        self.params = params

    def unfinished(self, finished_destinations: set[str]) -> list[Transfer]:
        return [t for t in self.transfers if not set(t.destinations) <= finished_destinations]


class FTSSubmitOperator(BaseOperator):
    """Submit file transfers to FTS; return the job id (a list when split into several jobs).

    The job id and its monitoring URL are pushed (XCom ``fts_job_id``, ``fts_job_url``)
    before any waiting. More transfers than ``max_files_per_job``, or transfers with
    different job parameters, become several jobs.

    :param transfers: Transfers (templated): dicts (``source``/``destination`` or
        ``sources``/``destinations`` plus file fields, and optionally ``job_params``),
        ``(source, destination)`` pairs, or an upstream task's XCom.
    :param job_params: Job parameters for every job (templated), e.g.
        ``{"verify_checksum": "both", "overwrite": True, "retry": 3}``.
    :param fts_conn_id: The Airflow connection to the FTS server.
    :param max_files_per_job: Most transfers in one FTS job.
    :param wait_for_completion: Wait until the jobs end (default: return at once and let
        an ``FTSJobSensor`` wait).
    :param poll_interval: Seconds between polls while waiting.
    :param wait_timeout: Longest wait in seconds (None: no limit); the jobs keep running.
    :param allow_partial: When waiting, succeed on FINISHEDDIRTY.
    :param deferrable: Wait in the triggerer instead of a worker slot.
    :param cancel_on_kill: Cancel the jobs when the task is killed.
    """

    template_fields: Sequence[str] = ("transfers", "job_params", "fts_conn_id")
    template_fields_renderers = {"transfers": "json", "job_params": "json"}
    operator_extra_links = (FTSJobLink(),)
    ui_color = "#9fd3f0"

    def __init__(
        self,
        *,
        transfers: Any,
        job_params: dict[str, Any] | None = None,
        fts_conn_id: str = FTSHook.default_conn_name,
        max_files_per_job: int = 200,
        wait_for_completion: bool = False,
        poll_interval: float = 30.0,
        wait_timeout: float | None = None,
        allow_partial: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.transfers = transfers
        self.job_params = job_params
        self.fts_conn_id = fts_conn_id
        self.max_files_per_job = max_files_per_job
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.allow_partial = allow_partial
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self._job_ids: list[str] = []

    @cached_property
    def hook(self) -> FTSHook:
        return FTSHook(self.fts_conn_id)

    def execute(self, context: Context) -> str | list[str]:
        chunks = self._chunks()
        job_ids = self._submit_or_resume(chunks, context)
        self._job_ids = job_ids
        result = job_ids[0] if len(job_ids) == 1 else job_ids
        url = self.hook.job_url(job_ids[0])
        context["ti"].xcom_push(key=JOB_ID_KEY, value=result)
        context["ti"].xcom_push(key=JOB_URL_KEY, value=url)
        self.log.info("FTS jobs %s: %s", ", ".join(job_ids), url)
        if self.wait_for_completion:
            self._wait(job_ids, context)
        return result

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        prepare_lineage(self, (event or {}).get("job_ids") or [])
        outcome_of_event(event, context, allow_partial=self.allow_partial, log=self.log)
        ids = event["job_ids"]
        add_replica_events(self, context, ids)
        return ids[0] if len(ids) == 1 else ids

    def on_kill(self) -> None:
        if self.cancel_on_kill and self._job_ids:
            try:
                answers = self.hook.cancel_jobs(self._job_ids)
                self.log.info("Canceled FTS jobs %s", [a.get("job_id") for a in answers])
            except Exception:
                self.log.exception("Could not cancel FTS jobs %s", self._job_ids)

    # -- planning --------------------------------------------------------------------

    def _chunks(self) -> list[Chunk]:
        """Validate the rendered input; group by job parameters, then split by size."""
        if not isinstance(self.max_files_per_job, int) or self.max_files_per_job < 1:
            raise FTSValidationError(
                "max_files_per_job",
                f"{self.max_files_per_job!r} is not a positive integer.",
                "Use e.g. 200 (the default).",
            )
        if not isinstance(self.job_params or {}, dict):
            raise FTSValidationError(
                "job_params",
                f"is a {type(self.job_params).__name__}, not a dict of FTS job parameters.",
                'Pass e.g. {"verify_checksum": "both", "retry": 3}.',
            )
        base = dict(self.job_params or {})
        transfers = self.transfers
        if isinstance(transfers, (dict, str)) or not isinstance(transfers, Sequence):
            raise FTSValidationError(
                "transfers",
                f"is a {type(transfers).__name__}, not a list of transfers.",
                "Pass a list of (source, destination) pairs or dicts, even for one transfer.",
            )
        groups: dict[str, tuple[dict, list[Transfer]]] = {}
        for index, item in enumerate(transfers):
            params = base
            if isinstance(item, dict) and TRANSFER_JOB_PARAMS in item:
                item = dict(item)
                params = {**base, **item.pop(TRANSFER_JOB_PARAMS)}
            key = json.dumps(params, sort_keys=True, default=str)
            groups.setdefault(key, (params, []))[1].append(Transfer.coerce(item, index))
        if not groups:
            raise FTSValidationError("transfers", "is empty.", "Give at least one transfer.")
        chunks: list[Chunk] = []
        size = self.max_files_per_job
        for params, members in groups.values():
            for start in range(0, len(members), size):
                chunk = Chunk(len(chunks), members[start : start + size], params)
                build_submission(chunk.transfers, **chunk.params)  # every job valid before any
                chunks.append(chunk)
        return chunks

    @staticmethod
    def _sid(context: Context, try_number: int, chunk: int) -> str:
        ti = context["ti"]
        return f"airflow:{ti.dag_id}:{ti.task_id}:{ti.run_id}:{ti.map_index}:{try_number}:{chunk}"

    def _submit_or_resume(self, chunks: list[Chunk], context: Context) -> list[str]:
        try_number = context["ti"].try_number
        earlier = self._earlier_jobs(chunks, context, try_number)
        job_ids = []
        for chunk in chunks:
            jobs = earlier.get(chunk.index, [])
            latest = jobs[-1] if jobs else None
            state = latest and JobState.parse(latest["job_state"])
            if latest and (not state.is_terminal or state is JobState.FINISHED):
                self.log.info("Chunk %d: reusing job %s (%s)", chunk.index, latest["job_id"], state)
                job_ids.append(latest["job_id"])
                continue
            finished = {
                f["dest_surl"]
                for job in jobs
                for f in job.get("files") or []
                if f.get("file_state") == "FINISHED"
            }
            remaining = chunk.unfinished(finished)
            if jobs:
                self.log.info(
                    "Chunk %d: job %s ended %s; resubmitting %d of %d files",
                    chunk.index,
                    latest["job_id"],
                    state,
                    len(remaining),
                    len(chunk.transfers),
                )
            sid = self._sid(context, try_number, chunk.index)
            job_ids.append(self.hook.submit_job(remaining, sid=sid, **chunk.params))
        return job_ids

    def _earlier_jobs(
        self, chunks: list[Chunk], context: Context, try_number: int
    ) -> dict[int, list[dict]]:
        """The jobs earlier tries left, per chunk, oldest first: one lookup for all of them."""
        expected = {
            self.hook.expected_job_id(self._sid(context, t, c.index)): c.index
            for t in range(1, try_number)
            for c in chunks
        }
        if not expected:
            return {}
        found: dict[int, list[dict]] = {}
        lookup = self.hook.get_jobs_or_archived(list(expected), files=["file_state", "dest_surl"])
        for record in lookup:
            if not is_job_error_entry(record):
                found.setdefault(expected[record["job_id"]], []).append(record)
        return found

    # -- waiting -------------------------------------------------------------------------

    def _wait(self, job_ids: list[str], context: Context) -> None:
        if self.deferrable:
            summary = fetch_summary(self.hook, job_ids)
            if not all_terminal(summary):
                self.defer(
                    trigger=FTSJobTrigger(
                        job_ids=job_ids,
                        fts_conn_id=self.fts_conn_id,
                        poll_interval=self.poll_interval,
                        end_time=time.time() + self.wait_timeout if self.wait_timeout else None,
                        cancel_on_kill=self.cancel_on_kill,
                    ),
                    method_name="execute_complete",
                    timeout=timedelta(seconds=self.wait_timeout) if self.wait_timeout else None,
                )
        else:
            summary = self._poll(job_ids)
        publish_outcome(summary, context, allow_partial=self.allow_partial, log=self.log)
        add_replica_events(self, context, job_ids)

    def _poll(self, job_ids: list[str]) -> dict:
        deadline = time.monotonic() + self.wait_timeout if self.wait_timeout else None
        while True:
            summary = fetch_summary(self.hook, job_ids)
            self.log.info("%s", progress_line(summary))
            if all_terminal(summary):
                return summary
            if deadline is not None and time.monotonic() >= deadline:
                raise AirflowFailException(f"FTS jobs {job_ids} still running after the wait.")
            time.sleep(self.poll_interval)

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
