"""What FTSSubmitOperator and FTSJobSensor share, once, so they cannot drift.

:class:`FTSTask` holds the hook, the deferral to the
:class:`~airflow_provider_fts.triggers.fts.FTSJobTrigger`, the final segment after it
(lineage state first, then the event's verdict), ``on_kill``, and publishing (the verdict,
then the replicas' asset events). The operator and the sensor mix it in and never import
each other.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_fts.assets import (
    ASSET_GRAINS,
    ReplicaLineage,
    add_replica_events,
    prepare_lineage,
)
from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.states import ids_in_words
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.links.fts import JOB_URL_KEY
from airflow_provider_fts.triggers.fts import FTSJobTrigger, resume_not_before
from airflow_provider_fts.verdict import (
    cancel_if_marked_failed,
    publish_outcome,
    summary_of_event,
)

if TYPE_CHECKING:
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


class FTSTask(ReplicaLineage):
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

    @cached_property
    def hook(self) -> FTSHook:
        return FTSHook(self.fts_conn_id)

    def _waited_jobs(self) -> list[str]:
        raise NotImplementedError

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
        kept on the task first (:func:`~airflow_provider_fts.assets.prepare_lineage`), so
        that a timeout or error event raised here leaves it too."""
        self._ti = context["ti"]
        prepare_lineage(self, (event or {}).get("job_ids") or [])
        return summary_of_event(event, self.log, on_timeout=on_timeout)

    def _conclude(
        self,
        summary: dict[str, Any],
        context: Context,
        *,
        can_resubmit: bool,
        replica_jobs: Sequence[str],
    ) -> dict[str, Any]:
        """The verdict (XCom ``fts_summary`` first), then on success the asset events of
        the FINISHED files of ``replica_jobs``."""
        publish_outcome(
            summary,
            context,
            allow_partial=self.allow_partial,
            can_resubmit=can_resubmit,
            log=self.log,
            canceled_here=self._canceled_here,
        )
        add_replica_events(self, context, replica_jobs)
        return summary

    def on_kill(self) -> None:
        """The worker side of a user action: cancel only if the task is now ``failed``."""
        if not self.cancel_on_kill:
            return
        job_ids = self._waited_jobs()
        if cancel_if_marked_failed(self._ti, job_ids, self.hook.cancel_jobs, self.log):
            self._canceled_here = job_ids
