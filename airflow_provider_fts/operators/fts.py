"""FTSSubmitOperator: submit transfers to FTS exactly once per task try, whatever happens.

Each job gets a deterministic id (FTS ``sid``) derived from the DAG, task, run, map index,
try number and chunk. A retry computes the ids of the earlier tries locally and looks
them all up in one request: an active job is reconnected to, a FINISHED one is the
answer, and only a FAILED, FINISHEDDIRTY or CANCELED one leads to a new job, for the files
that no job finished and that are worth sending again (a failure FTS deems not recoverable
is never resent). So neither an Airflow retry nor a crash between the submit and the XCom
push creates a duplicate job. A job FTS already purged to its archive (a task cleared days
later) is found there, so a FINISHED job is reused even then.

Why not ``ResumableJobMixin``: it keeps one id in ``task_state_store`` and resubmits
everything after a failure; deterministic ids need no store, close the mixin's window
between submit and persist, and allow resubmitting only the files that failed.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_fts.client.errors import FTSValidationError, is_job_error_entry
from airflow_provider_fts.client.states import (
    ENDED_FILE_FIELDS,
    JobState,
    JobSummary,
    ProgressLog,
    failed_files,
    has_ended,
    is_finished_replica,
    stored_url_key,
    with_failures,
)
from airflow_provider_fts.client.submission import Transfer, build_submission
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.links.fts import JOB_ENDPOINT_KEY, JOB_ID_KEY, FTSJobLink
from airflow_provider_fts.sids import task_sid
from airflow_provider_fts.tasks import DEFAULT_DEFERRABLE, FTSTask, check_asset_grain
from airflow_provider_fts.verdict import (
    final_on_bad_input,
    is_resendable,
    resends_lost_files,
    timeout_message,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Per-transfer override of the operator's ``job_params``, e.g. ``{"job_params": {"priority": 5}}``.
TRANSFER_JOB_PARAMS = "job_params"
#: Job parameters the operator sets itself, and why a user's value would break it.
OWNED_JOB_PARAMS = {
    "sid": "the operator derives each job's sid from the task instance, so that every try "
    "finds the jobs of the earlier ones",
    "id_generator": "the operator needs deterministic job ids to submit exactly once",
}
#: Most chunks submitted at once by one task, whatever it asks: no task floods an FTS server.
MAX_SUBMIT_CONCURRENCY = 16


class Chunk:
    """The transfers of one job, with the job parameters they share.

    It keeps the transfers as the user wrote them, with their positions in ``transfers``,
    and reads them into :class:`Transfer` objects when asked: a task of a million
    transfers holds the objects of the chunks being sent, not a million of them.
    """

    def __init__(
        self, index: int, items: list[Any], positions: Sequence[int], params: dict[str, Any]
    ) -> None:
        self.index = index
        self.items = items
        self.positions = positions
        self.params = params

    @property
    def transfers(self) -> list[Transfer]:
        return [
            Transfer.coerce(item, position)
            for position, item in zip(self.positions, self.items, strict=True)
        ]

    def check(self) -> None:
        """Refuse the job as FTS would, before anything is sent (one read of each transfer)."""
        try:
            build_submission(self.items, **self.params)
        except FTSValidationError:
            # A transfer's problem is found again, named by its position in ``transfers``.
            _ = self.transfers
            raise

    def to_send(self, done: set[str]) -> list[Transfer]:
        """The transfers with a destination not in ``done`` (compared as FTS stores URLs)."""
        return [
            t for t in self.transfers if not {stored_url_key(d) for d in t.destinations} <= done
        ]


class EarlierJobs:
    """What the jobs of earlier tries of one chunk say, oldest first.

    :param records: The job records; the files (:data:`ENDED_FILE_FIELDS`) only of jobs
        that ended other than FINISHED (a FINISHED job is always its chunk's latest, and
        reused, so its files never matter here).
    """

    def __init__(self, records: list[dict]) -> None:
        self.records = records
        self.latest = records[-1] if records else None
        failed = [f for r in records for f in failed_files(r)]
        self.finished = {
            stored_url_key(f["dest_surl"])
            for r in records
            for f in r.get("files") or []
            if is_finished_replica(f)
        }
        lost = [f for f in failed if not is_resendable(f)]
        self.not_resendable = {stored_url_key(f["destination"]) for f in lost} - self.finished
        self.lost = _unique(
            f for f in lost if stored_url_key(f["destination"]) in self.not_resendable
        )

    def forgive(self) -> None:
        """Resend what failed for good: a user cleared the task after fixing something."""
        self.not_resendable = set()
        self.lost = []


def _unique(entries: Any) -> list[dict]:
    seen: dict[str, dict] = {}
    for entry in entries:
        seen.setdefault(stored_url_key(entry["destination"]), entry)
    return list(seen.values())


def refuse_owned_params(params: dict[str, Any], where: str) -> None:
    """Refuse a job parameter the operator sets itself, naming the key the user wrote."""
    for key, why in OWNED_JOB_PARAMS.items():
        if key in params:
            raise FTSValidationError(
                f"{where}.{key}",
                f"is set by FTSSubmitOperator: {why}.",
                f"Remove {key!r} from {where}; use FTSHook.submit_job to choose it yourself.",
            )


#: The job metadata key under which each job carries the task try that submitted it.
AIRFLOW_METADATA_KEY = "airflow"


def with_airflow_ids(params: dict[str, Any], ti: Any) -> dict[str, Any]:
    """``params`` whose ``job_metadata`` also names the DAG, run, task, map index and try,
    so a job in FTS monitoring leads back to its task: merged into the user's dict (a
    user's string is kept under ``"metadata"``); the user's own ``"airflow"`` key is
    refused. The size limit (1,024 bytes by default) is checked on the merged metadata."""
    if ti is None:
        return params
    user = params.get("job_metadata")
    if isinstance(user, dict) and AIRFLOW_METADATA_KEY in user:
        raise FTSValidationError(
            f"job_params.job_metadata.{AIRFLOW_METADATA_KEY}",
            "is set by FTSSubmitOperator: the DAG, run, task, map index and try of the job.",
            f"Rename your key {AIRFLOW_METADATA_KEY!r}.",
        )
    ids = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
    }
    own = user if isinstance(user, dict) else {} if user is None else {"metadata": user}
    return {**params, "job_metadata": {**own, AIRFLOW_METADATA_KEY: ids}}


class FTSSubmitOperator(FTSTask, BaseOperator):
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
    :param allow_partial: When waiting, succeed when some files were copied (FINISHEDDIRTY).
    :param deferrable: Wait in the triggerer instead of a worker slot.
    :param cancel_on_kill: Cancel the jobs when a user marks the task failed (a clear or a
        mark-success never cancels; the next try reconnects to the jobs).
    :param submit_concurrency: Jobs submitted at once when the transfers make several (at
        most ``MAX_SUBMIT_CONCURRENCY``, 16).

    With ``wait_for_completion=True`` this is the task Airflow retries: a recoverable
    failure raises :class:`~airflow_provider_fts.verdict.FTSRecoverableFailure` and the
    next try resubmits only what did not finish (see :mod:`airflow_provider_fts.verdict`).
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
        deferrable: bool = DEFAULT_DEFERRABLE,
        cancel_on_kill: bool = True,
        asset_grain: str = "file",
        submit_concurrency: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(submit_concurrency, int) or not 1 <= submit_concurrency <= (
            MAX_SUBMIT_CONCURRENCY
        ):
            raise FTSValidationError(
                "submit_concurrency",
                f"{submit_concurrency!r} is not a whole number from 1 to "
                f"{MAX_SUBMIT_CONCURRENCY}: more submissions at once would flood the FTS server.",
                "Use e.g. 4 (the default).",
            )
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
        self.asset_grain = check_asset_grain(asset_grain)
        self.submit_concurrency = submit_concurrency
        self._job_ids: list[str] = []

    @final_on_bad_input
    def execute(self, context: Context) -> str | list[str]:
        self._ti = context["ti"]
        chunks = self._chunks()
        earlier = self._after_a_clear(self._earlier_jobs(chunks, context), context)
        job_ids = self._submit_or_resume(chunks, earlier, context)
        self._job_ids = job_ids
        result = job_ids[0] if len(job_ids) == 1 else job_ids
        context["ti"].xcom_push(key=JOB_ID_KEY, value=result)
        self._push_job_url(context, job_ids)
        context["ti"].xcom_push(key=JOB_ENDPOINT_KEY, value=self.hook.job_endpoints(job_ids))
        if self.wait_for_completion:
            self._wait(job_ids, earlier, context)
        return result

    @final_on_bad_input
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        summary = self._resumed(context, event)
        ids = event["job_ids"]
        # the same facts as execute
        earlier = self._after_a_clear(self._earlier_jobs(self._chunks(), context), context)
        self._publish(summary, earlier, ids, context)
        return ids[0] if len(ids) == 1 else ids

    def _waited_jobs(self) -> list[str]:
        return list(self._job_ids)

    def _planned_transfers(self) -> list[Transfer]:
        return [Transfer.coerce(item, index) for index, item in enumerate(self.transfers)]

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
        refuse_owned_params(base, "job_params")
        transfers = self.transfers
        if isinstance(transfers, (dict, str)) or not isinstance(transfers, Sequence):
            raise FTSValidationError(
                "transfers",
                f"is a {type(transfers).__name__}, not a list of transfers.",
                "Pass a list of (source, destination) pairs or dicts, even for one transfer.",
            )
        groups: dict[str, tuple[dict, list[Any], array]] = {}
        base_key = json.dumps(base, sort_keys=True, default=str)
        for index, item in enumerate(transfers):
            params, key = base, base_key
            if isinstance(item, dict) and TRANSFER_JOB_PARAMS in item:
                item = dict(item)
                own = item.pop(TRANSFER_JOB_PARAMS)
                if isinstance(own, dict):
                    refuse_owned_params(own, f"transfers[{index}].{TRANSFER_JOB_PARAMS}")
                params = {**base, **own}
                key = json.dumps(params, sort_keys=True, default=str)
            group = groups.setdefault(key, (params, [], array("q")))
            group[1].append(item)
            group[2].append(index)
        if not groups:
            raise FTSValidationError("transfers", "is empty.", "Give at least one transfer.")
        chunks: list[Chunk] = []
        size = self.max_files_per_job
        for params, items, positions in groups.values():
            params = with_airflow_ids(params, self._ti)
            for start in range(0, len(items), size):
                end = start + size
                chunk = Chunk(len(chunks), items[start:end], positions[start:end], params)
                chunk.check()  # every job valid before any is sent
                chunks.append(chunk)
        return chunks

    @staticmethod
    def _sid(context: Context, try_number: int, chunk: int) -> str:
        ti = context["ti"]
        return task_sid(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, try_number, chunk)

    def _submit_or_resume(
        self, chunks: list[Chunk], earlier: dict[int, EarlierJobs], context: Context
    ) -> list[str]:
        """One job id per chunk: an earlier try's job where it stands, else a new one.

        New jobs are sent ``submit_concurrency`` at a time. Each keeps its deterministic
        sid, so a lost answer or a killed worker leaves nothing a retry would send twice.
        """
        job_ids: list[str | None] = []
        to_submit: list[tuple[int, Chunk, list[Transfer] | None]] = []  # None: every transfer
        for chunk in chunks:
            jobs = earlier.get(chunk.index) or EarlierJobs([])
            latest = jobs.latest
            state = latest and JobState.parse(latest["job_state"])
            if latest and (not state.is_terminal or state is JobState.FINISHED):
                self.log.info("Chunk %d: reusing job %s (%s)", chunk.index, latest["job_id"], state)
                job_ids.append(latest["job_id"])
                continue
            remaining = None
            if latest:
                remaining = chunk.to_send(jobs.finished | jobs.not_resendable)
                self.log.info(
                    "Chunk %d: job %s ended %s; resubmitting %d of %d files "
                    "(%d failed for good, never resent)",
                    chunk.index,
                    latest["job_id"],
                    state,
                    len(remaining),
                    len(chunk.items),
                    len(jobs.lost),
                )
                if not remaining:  # nothing worth resending: its verdict stands
                    job_ids.append(latest["job_id"])
                    continue
            to_submit.append((len(job_ids), chunk, remaining))
            job_ids.append(None)
        try_number = context["ti"].try_number

        def submit(planned: tuple[int, Chunk, list[Transfer] | None]) -> None:
            position, chunk, remaining = planned
            transfers = chunk.transfers if remaining is None else remaining
            sid = self._sid(context, try_number, chunk.index)
            job_ids[position] = self.hook.submit_job(transfers, sid=sid, **chunk.params)

        # One client made before the threads share it: one whoami, one delegation check
        # (behind its locks) and one connection pool for every chunk.
        self.hook.get_conn()
        with ThreadPoolExecutor(min(self.submit_concurrency, len(to_submit) or 1)) as pool:
            for _ in pool.map(submit, to_submit):  # the first failure, once the rest are sent
                pass
        return job_ids

    def _earlier_jobs(self, chunks: list[Chunk], context: Context) -> dict[int, EarlierJobs]:
        """The jobs earlier tries left, per chunk, oldest first: one lookup for all of them."""
        try_number = context["ti"].try_number
        expected = {
            self.hook.expected_job_id(self._sid(context, t, c.index)): c.index
            for t in range(1, try_number)
            for c in chunks
        }
        if not expected:
            return {}
        found: dict[int, list[dict]] = {}
        lookup = self.hook.get_jobs_or_archived(list(expected))
        unfinished = [
            r["job_id"]
            for r in lookup
            if not is_job_error_entry(r)  # a 404: that chunk was not submitted then
            and "files" not in r  # an archived record has them all
            and has_ended(r["job_state"])
            and r["job_state"] != JobState.FINISHED
        ]
        if unfinished:
            with_files = self.hook.get_jobs_or_archived(unfinished, file_fields=ENDED_FILE_FIELDS)
            by_id = {r["job_id"]: r for r in with_files}
            lookup = [by_id.get(r["job_id"], r) for r in lookup]
        for record in lookup:
            if not is_job_error_entry(record):
                found.setdefault(expected[record["job_id"]], []).append(record)
        return {index: EarlierJobs(records) for index, records in found.items()}

    def _after_a_clear(
        self, earlier: dict[int, EarlierJobs], context: Context
    ) -> dict[int, EarlierJobs]:
        """``earlier``, with what failed for good resendable if a user cleared the task."""
        if resends_lost_files(context["ti"], self.retries):
            for jobs in earlier.values():
                jobs.forgive()
        return earlier

    # -- waiting and the verdict -----------------------------------------------------------

    def _wait(self, job_ids: list[str], earlier: dict[int, EarlierJobs], context: Context) -> None:
        if self.deferrable:
            if not self.hook.jobs_ended(job_ids):  # a job already over needs no triggerer
                self._defer_wait(job_ids, self.poll_interval, self.wait_timeout)
            summary = self.hook.get_summary(job_ids)
        else:
            try:
                summary = self.hook.wait_for_jobs(
                    job_ids,
                    self.poll_interval,
                    self.wait_timeout,
                    on_poll=ProgressLog(self.log.info),
                )
            except TimeoutError:
                raise AirflowFailException(timeout_message(job_ids)) from None
        self._publish(summary, earlier, job_ids, context)

    def _publish(
        self,
        summary: JobSummary,
        earlier: dict[int, EarlierJobs],
        job_ids: list[str],
        context: Context,
    ) -> None:
        """The verdict on this try's jobs and on the files earlier tries lost for good."""
        lost = [
            f
            for jobs in earlier.values()
            for f in jobs.lost
            if f["job_id"] not in job_ids  # a reused job's failures are in the summary
        ]
        if lost:
            summary = with_earlier_failures(summary, lost)
        # Files an earlier try's job finished are replicas too: announce them with this try's.
        earlier_ids = [r["job_id"] for jobs in earlier.values() for r in jobs.records]
        replica_jobs = list(dict.fromkeys(earlier_ids + job_ids))
        self._conclude(summary, context, can_resubmit=True, replica_jobs=replica_jobs)


def with_earlier_failures(summary: JobSummary, lost: list[dict]) -> JobSummary:
    """The summary, plus files earlier tries' jobs failed for good (they are not resent)."""
    return with_failures(summary, lost)
