"""FTSSubmitOperator: submit transfers to FTS exactly once per task try, whatever happens.

Each job gets a deterministic id (FTS ``sid``) derived from the DAG, task, run, map index,
try number and chunk. A retry computes the ids of the earlier tries locally and looks
up their records (100 per request, no files): an active job is reconnected to, a FINISHED
one is the answer, and only a FAILED, FINISHEDDIRTY or CANCELED one leads to a new job,
for the files that no job finished and that are worth sending again (a failure FTS deems
not recoverable is never resent). Only the files of jobs that did not end FINISHED are
read, a few jobs at a time, and what the task keeps of them is per chunk, not per file.
So neither an Airflow retry nor a crash between the submit and the XCom push creates a
duplicate job. A job FTS already purged to its archive (a task cleared days later) is
found there, so a FINISHED job is reused even then.

Why not ``ResumableJobMixin``: it keeps one id in ``task_state_store`` and resubmits
everything after a failure; deterministic ids need no store, close the mixin's window
between submit and persist, and allow resubmitting only the files that failed.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_fts.client.errors import FTSValidationError, is_job_error_entry
from airflow_provider_fts.client.states import (
    OUTCOME_FILE_FIELDS,
    Failures,
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
#: Earlier tries' jobs whose files a retry reads in one request (one answer in memory).
EARLIER_JOBS_PER_READ = 20
#: Chunks a retry's log names one by one; the rest are counted in one line.
CHUNKS_LOGGED = 10
#: XCom of the files earlier tries failed for good (counted and listed as in a summary):
#: a deferred try carries them from its start to its end instead of reading them twice.
EARLIER_FAILURES_KEY = "fts_earlier_failures"


#: Transfers the "Rendered Template" page shows of a larger ``transfers``.
RENDERED_PREVIEW = 20


class RenderedTransfers(Sequence):
    """A rendered ``transfers`` list, as it is, that Airflow's rendered-fields record
    shows as its first :data:`RENDERED_PREVIEW` items and a count (``serialize``).

    Airflow rebuilds a rendered field item by item before it cuts it to 4,096 characters:
    for 10^6 transfers 270 MiB more at the task's peak, and 6 s, at each start and resume.
    """

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __getitem__(self, index: Any) -> Any:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def serialize(self) -> list[Any]:
        more = len(self.items) - RENDERED_PREVIEW
        return [*self.items[:RENDERED_PREVIEW], f"... and {more:,} more transfers"]


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
        return self.read()

    def read(self, only: Sequence[int] | None = None) -> list[Transfer]:
        """The transfers as objects: all, or those at ``only`` (positions in this chunk)."""
        picked = range(len(self.items)) if only is None else only
        return [Transfer.coerce(self.items[i], self.positions[i]) for i in picked]

    def check(self) -> None:
        """Refuse the job as FTS would, before anything is sent (one read of each transfer)."""
        try:
            build_submission(self.items, **self.params)
        except FTSValidationError:
            # A transfer's problem is found again, named by its position in ``transfers``.
            _ = self.transfers
            raise

    def to_send(self, done: set[str]) -> array:
        """Positions in this chunk of the transfers with a destination not in ``done``
        (compared as FTS stores URLs)."""
        return array(
            "i",
            (
                i
                for i, t in enumerate(self.transfers)
                if not {stored_url_key(d) for d in t.destinations} <= done
            ),
        )


class EarlierTries:
    """What the jobs of a task's earlier tries left, kept per chunk, never per file.

    Fed one chunk at a time (:meth:`add`): each chunk's latest job, which of its transfers
    to send again, and the files the earlier jobs failed for good that no job finished
    (counted and listed as a summary does; never resent, unless ``forgive``).

    :param forgive: Send again what failed for good: a user cleared the task after fixing
        something (:func:`~airflow_provider_fts.verdict.resends_lost_files`).
    """

    def __init__(self, forgive: bool = False) -> None:
        self.forgive = forgive
        self.job_ids: list[str] = []  # every earlier job, for the replicas' asset events
        self.latest: dict[int, dict[str, Any]] = {}
        self.resend: dict[int, array] = {}  # chunk -> positions in it to send again
        self.lost = Failures()

    def add(self, chunk: Chunk, records: list[dict]) -> None:
        """The earlier jobs of ``chunk``, oldest first, with the files
        (:data:`~airflow_provider_fts.client.states.OUTCOME_FILE_FIELDS`) of those that
        ended other than FINISHED (a FINISHED job is its chunk's latest and is reused)."""
        latest = records[-1]
        self.job_ids += [r["job_id"] for r in records]
        self.latest[chunk.index] = {"job_id": latest["job_id"], "job_state": latest["job_state"]}
        finished = {
            stored_url_key(f["dest_surl"])
            for r in records
            for f in r.get("files") or ()
            if is_finished_replica(f)
        }
        lost: dict[str, dict] = {}
        if not self.forgive:
            for entry in (f for r in records for f in failed_files(r)):
                if not is_resendable(entry):
                    lost.setdefault(stored_url_key(entry["destination"]), entry)
        for key in finished & lost.keys():  # another job copied it after all
            del lost[key]
        state = JobState.parse(latest["job_state"])
        if state.is_terminal and state is not JobState.FINISHED:
            resend = chunk.to_send(finished | lost.keys())
            if resend:
                self.resend[chunk.index] = resend
        for entry in lost.values():
            # A reused job's failures are in this try's summary already.
            if entry["job_id"] != latest["job_id"] or chunk.index in self.resend:
                self.lost.add(entry)

    def lost_as_json(self) -> dict[str, Any]:
        """:attr:`lost` as XCom carries it (:meth:`Failures.of` reads it back)."""
        return {**self.lost.to_json(), "file_states": dict(self.lost.states)}


def _needs_files(record: dict) -> bool:
    """Whether a retry reads an earlier job's files: it ended other than FINISHED (an
    archived record has them all already)."""
    state = record["job_state"]
    return "files" not in record and has_ended(state) and state != JobState.FINISHED


def _reads(found: dict[int, list[dict]], jobs_per_read: int) -> Iterator[list[int]]:
    """The chunks of ``found`` in groups whose jobs to read make about one request."""
    group: list[int] = []
    jobs = 0
    for index, records in list(found.items()):  # the caller pops what it took in
        group.append(index)
        jobs += sum(map(_needs_files, records))
        if jobs >= jobs_per_read:
            yield group
            group, jobs = [], 0
    if group:
        yield group


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
        earlier = self._earlier_tries(chunks, context)
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
        # The facts execute had: the earlier jobs (records only; one chunk per job id), and
        # what they lost for good, carried in XCom rather than read from their files again.
        found = self._earlier_records(len(ids), context)
        ti = context["ti"]
        carried = ti.xcom_pull(
            task_ids=ti.task_id, key=EARLIER_FAILURES_KEY, map_indexes=ti.map_index
        )
        lost = Failures.of(carried) if carried else Failures()
        earlier_ids = [r["job_id"] for records in found.values() for r in records]
        self._publish(summary, lost, earlier_ids, ids, context)
        return ids[0] if len(ids) == 1 else ids

    def _waited_jobs(self) -> list[str]:
        return list(self._job_ids)

    def _planned_transfers(self) -> Iterator[Transfer]:
        # Read one at a time: lineage folds them into at most 100 datasets per side.
        return (Transfer.coerce(item, index) for index, item in enumerate(self.transfers))

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Airflow's rendering, then a large ``transfers`` list kept as
        :class:`RenderedTransfers`: Airflow's rendered-fields record gets a preview."""
        super().render_template_fields(context, jinja_env)
        if isinstance(self.transfers, list) and len(self.transfers) > RENDERED_PREVIEW:
            self.transfers = RenderedTransfers(self.transfers)

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
        self, chunks: list[Chunk], earlier: EarlierTries, context: Context
    ) -> list[str]:
        """One job id per chunk: an earlier try's job where it stands, else a new one.

        New jobs are sent ``submit_concurrency`` at a time. Each keeps its deterministic
        sid, so a lost answer or a killed worker leaves nothing a retry would send twice.
        """
        job_ids: list[str | None] = []
        to_submit: list[tuple[int, Chunk, array | None]] = []  # None: every transfer
        for chunk in chunks:
            latest = earlier.latest.get(chunk.index)
            resend = earlier.resend.get(chunk.index)
            if latest is not None and resend is None:  # running, FINISHED, or nothing to send
                job_ids.append(latest["job_id"])
            else:
                to_submit.append((len(job_ids), chunk, resend))
                job_ids.append(None)
        self._log_earlier(chunks, earlier, [job_id for job_id in job_ids if job_id])
        try_number = context["ti"].try_number

        def submit(planned: tuple[int, Chunk, array | None]) -> None:
            position, chunk, resend = planned
            sid = self._sid(context, try_number, chunk.index)
            job_ids[position] = self.hook.submit_job(chunk.read(resend), sid=sid, **chunk.params)

        # One client made before the threads share it: one whoami, one delegation check
        # (behind its locks) and one connection pool for every chunk.
        self.hook.get_conn()
        with ThreadPoolExecutor(min(self.submit_concurrency, len(to_submit) or 1)) as pool:
            for _ in pool.map(submit, to_submit):  # the first failure, once the rest are sent
                pass
        return job_ids

    def _log_earlier(self, chunks: list[Chunk], earlier: EarlierTries, reused: list[str]) -> None:
        """What the earlier tries' jobs lead to: a line per chunk for the first few, then
        one line of counts, whatever the number of chunks."""
        if not earlier.latest:
            return
        for chunk in chunks[:CHUNKS_LOGGED]:
            latest = earlier.latest.get(chunk.index)
            resend = earlier.resend.get(chunk.index)
            if latest is None:
                continue
            if resend is None:
                self.log.info(
                    "Chunk %d: reusing job %s (%s)",
                    chunk.index,
                    latest["job_id"],
                    latest["job_state"],
                )
            else:
                self.log.info(
                    "Chunk %d: job %s ended %s; resubmitting %d of %d files",
                    chunk.index,
                    latest["job_id"],
                    latest["job_state"],
                    len(resend),
                    len(chunk.items),
                )
        self.log.info(
            "Earlier tries: %d jobs; reusing %d; resubmitting %d files in %d jobs; "
            "%d files failed for good, never resent",
            len(earlier.job_ids),
            len(reused),
            sum(len(r) for r in earlier.resend.values()),
            len(earlier.resend),
            earlier.lost.count,
        )

    def _earlier_records(self, chunks: int, context: Context) -> dict[int, list[dict]]:
        """The records (no files) of the jobs earlier tries left, per chunk, oldest first."""
        try_number = context["ti"].try_number
        expected = {
            self.hook.expected_job_id(self._sid(context, t, c)): c
            for t in range(1, try_number)
            for c in range(chunks)
        }
        found: dict[int, list[dict]] = {}
        if not expected:
            return found
        for record in self.hook.get_jobs_or_archived(list(expected)):
            if not is_job_error_entry(record):  # a 404: that chunk was not submitted then
                kept = {k: record[k] for k in ("job_id", "job_state", "files") if k in record}
                found.setdefault(expected[record["job_id"]], []).append(kept)
        return found

    def _earlier_tries(self, chunks: list[Chunk], context: Context) -> EarlierTries:
        """What earlier tries left (:class:`EarlierTries`): their job records, then the
        files of those that did not end FINISHED, about ``EARLIER_JOBS_PER_READ`` jobs per
        request, each group of chunks taken in before the next is read."""
        earlier = EarlierTries(forgive=resends_lost_files(context["ti"], self.retries))
        found = self._earlier_records(len(chunks), context)
        for group in _reads(found, EARLIER_JOBS_PER_READ):
            wanted = [r["job_id"] for index in group for r in found[index] if _needs_files(r)]
            read = (
                self.hook.get_jobs_or_archived(wanted, file_fields=OUTCOME_FILE_FIELDS)
                if wanted
                else []
            )
            with_files = {r["job_id"]: r for r in read if not is_job_error_entry(r)}
            for index in group:
                records = found.pop(index)
                earlier.add(chunks[index], [with_files.get(r["job_id"], r) for r in records])
        return earlier

    # -- waiting and the verdict -----------------------------------------------------------

    def _wait(self, job_ids: list[str], earlier: EarlierTries, context: Context) -> None:
        if self.deferrable:
            if not self.hook.jobs_ended(job_ids):  # a job already over needs no triggerer
                if earlier.lost.count:
                    context["ti"].xcom_push(key=EARLIER_FAILURES_KEY, value=earlier.lost_as_json())
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
        self._publish(summary, earlier.lost, earlier.job_ids, job_ids, context)

    def _publish(
        self,
        summary: JobSummary,
        lost: Failures,
        earlier_ids: list[str],
        job_ids: list[str],
        context: Context,
    ) -> None:
        """The verdict on this try's jobs and on the files earlier tries lost for good
        (``lost``: of jobs this try does not reuse, never resent)."""
        if lost.count:
            summary = with_failures(summary, lost)
        # Files an earlier try's job finished are replicas too: announce them with this try's.
        replica_jobs = list(dict.fromkeys(earlier_ids + job_ids))
        self._conclude(summary, context, can_resubmit=True, replica_jobs=replica_jobs)
