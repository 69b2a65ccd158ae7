"""What FTSSubmitOperator and FTSJobSensor share, once, so they cannot drift.

:class:`FTSTask` holds the hook, the deferral to the
:class:`~airflow_provider_fts.triggers.fts.FTSJobTrigger`, the final segment after it
(lineage state first, then the event's verdict), ``on_kill``, publishing (the verdict,
then the replicas' asset events), and the three methods OpenLineage's extractor calls.
The operator and the sensor mix it in and never import each other.

**Lineage state.** Before the verdict the task keeps its job ids (:attr:`fts_job_ids`),
the summary it concludes on (:attr:`fts_summary`) and its loaded connection. OpenLineage's
listener calls the facet methods on the task object that ran the final execution segment,
in a forked process by default, which must not ask the task supervisor for anything:
nothing is read from XCom, and FTS is asked for the files only through a connection
loaded already.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_fts.assets import add_replica_events
from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.states import JobSummary, ids_in_words
from airflow_provider_fts.client.submission import Transfer
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.lineage import ASSET_GRAINS
from airflow_provider_fts.links.fts import JOB_URL_KEY
from airflow_provider_fts.triggers.fts import FTSJobTrigger, resume_not_before
from airflow_provider_fts.verdict import (
    cancel_if_marked_failed,
    publish_outcome,
    summary_of_event,
)

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

#: The ``deferrable`` default of both tasks: ``[operators] default_deferrable``.
DEFAULT_DEFERRABLE = conf.getboolean("operators", "default_deferrable", fallback=False)


def check_asset_grain(value: Any) -> str:
    """The ``asset_grain`` argument, refused when DAG files are parsed if it is not one."""
    if value not in ASSET_GRAINS:
        raise FTSValidationError(
            "asset_grain",
            f"is {value!r}, not one of {', '.join(map(repr, ASSET_GRAINS))}.",
            "Use 'file' (one asset per replica) or 'directory' (one per destination directory).",
        )
    return value


class FTSTask:
    """The shared part of the operator and the sensor (both set ``fts_conn_id``,
    ``cancel_on_kill``, ``asset_grain`` and ``allow_partial``, and say which jobs they
    wait for in :meth:`_waited_jobs`)."""

    fts_conn_id: str
    cancel_on_kill: bool
    allow_partial: bool
    asset_grain: str
    _ti: Any = None
    #: Jobs ``on_kill`` canceled: the task was marked failed (the verdict says so).
    _canceled_here: Sequence[str] = ()
    #: The FTS jobs of this task's outcome, kept before the verdict (for lineage).
    fts_job_ids: list[str] | None = None
    #: The summary this task concluded on, kept before the verdict (for lineage).
    fts_summary: JobSummary | None = None

    @cached_property
    def hook(self) -> FTSHook:
        return FTSHook(self.fts_conn_id)

    def _waited_jobs(self) -> list[str]:
        raise NotImplementedError

    def _planned_transfers(self) -> Iterable[Transfer]:
        """The transfers the task will submit (the sensor submits none)."""
        return ()

    def _push_job_url(self, context: Context, job_ids: Sequence[str]) -> None:
        """The first job's monitoring URL, for the "FTS job" link (no request is made)."""
        url = self.hook.job_url(job_ids[0])
        context["ti"].xcom_push(key=JOB_URL_KEY, value=url)
        self.log.info("FTS jobs %s: %s", ids_in_words(job_ids), url)

    def _defer_wait(self, job_ids: list[str], poll_interval: float, timeout: float | None) -> None:
        """Wait in the triggerer; ``execute_complete`` resumes with its event.

        The trigger's ``end_time`` is the one deadline: a ``defer()`` timeout would race it
        with Airflow's less helpful message.
        """
        self.defer(
            trigger=FTSJobTrigger(
                job_ids=job_ids,
                fts_conn_id=self.fts_conn_id,
                poll_interval=poll_interval,
                end_time=time.time() + timeout if timeout else None,
                cancel_on_kill=self.cancel_on_kill,
                not_before=resume_not_before(),
            ),
            method_name="execute_complete",
        )

    def _resumed(
        self,
        context: Context,
        event: dict[str, Any] | None,
        on_timeout: type[Exception] = AirflowFailException,
    ) -> dict[str, Any]:
        """The summary of the trigger's event, in a final segment: what lineage needs is
        kept on the task first (:meth:`_keep_for_lineage`), so
        that a timeout or error event raised here leaves it too."""
        self._ti = context["ti"]
        self._keep_for_lineage((event or {}).get("job_ids") or [])
        return summary_of_event(event, self.log, on_timeout=on_timeout)

    def _keep_for_lineage(self, job_ids: Sequence[str]) -> None:
        """Keep the job ids and load the connection, for OpenLineage's forked listener."""
        self.fts_job_ids = list(job_ids)
        try:
            self.hook.settings  # noqa: B018 (loads and caches the connection)
        except Exception:  # a broken connection is not lineage's to report
            self.log.debug("FTS lineage: connection %s not loaded", self.fts_conn_id, exc_info=True)

    def _conclude(
        self,
        summary: JobSummary,
        context: Context,
        *,
        can_resubmit: bool,
        replica_jobs: Sequence[str],
    ) -> JobSummary:
        """The verdict (XCom ``fts_summary`` first), then on success the asset events of
        the FINISHED files of ``replica_jobs``."""
        self.fts_job_ids = list(replica_jobs)
        self.fts_summary = summary
        publish_outcome(
            summary,
            context,
            allow_partial=self.allow_partial,
            can_resubmit=can_resubmit,
            log=self.log,
            canceled_here=self._canceled_here,
        )
        add_replica_events(self.hook, self.outlets, context, replica_jobs, self.asset_grain)
        return summary

    def on_kill(self) -> None:
        """The worker side of a user action: cancel only if the task is now ``failed``."""
        if not self.cancel_on_kill:
            return
        job_ids = self._waited_jobs()
        if cancel_if_marked_failed(self._ti, job_ids, self.hook.cancel_jobs, self.log):
            self._canceled_here = job_ids

    # -- OpenLineage: called by its extractor only ----------------------------------------
    # The facets module is imported inside these methods: it imports the OpenLineage
    # provider, which DAG parsing must not load.

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        from airflow_provider_fts.openlineage import facets_on_start

        return facets_on_start(self._lineage_job_ids(), self._planned_transfers(), self._endpoint())

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        return self._facets_after(failed=False)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        return self._facets_after(failed=True)

    def _facets_after(self, *, failed: bool) -> OperatorLineage:
        from airflow_provider_fts.openlineage import LINEAGE_FILE_FIELDS, facets_after

        job_ids = self._lineage_job_ids()

        def files() -> Iterator[dict]:  # read (and failing) while the facets consume it
            if self.hook.loaded_settings is not None:
                yield from self.hook.iter_files(job_ids, fields=LINEAGE_FILE_FIELDS)

        return facets_after(job_ids, files(), self.fts_summary, self._endpoint(), failed=failed)

    def _lineage_job_ids(self) -> list[str]:
        """The jobs kept before the verdict, else those the task waits for (none if its
        ``job_id`` is no id)."""
        if self.fts_job_ids is not None:
            return self.fts_job_ids
        try:
            return self._waited_jobs()
        except FTSValidationError:
            return []

    def _endpoint(self) -> str | None:
        """The endpoint if the connection is loaded: the listener must not load it."""
        settings = self.hook.loaded_settings
        return settings.endpoint if settings is not None else None
