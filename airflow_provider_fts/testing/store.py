"""The emulator's job store: submit, read, list, cancel, modify and archive jobs.

It implements the *server's* rules (fts-rest-flask 3.13.4 as recorded against a real
server), not our client's: the same record shapes, the same messages and the same quirks
(207 only for error entries, 304 inside a 200, ``limit`` ignored on ``/files``...). The
HTTPS layer parses bodies and checks delegations, then calls :class:`JobStore`; new jobs
are built by :class:`~.builder.JobBuilder`.

Every public method of :class:`JobStore` takes ``lock``; the :class:`~.engine.Engine`
mutates the same records under the same lock.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

from airflow_provider_fts.client.states import FileState, JobState
from airflow_provider_fts.client.submission import BASE_ID
from airflow_provider_fts.testing.builder import (
    JobBuilder,
    refuse_token_tape_requests,
    storage_element,
)
from airflow_provider_fts.testing.identity import Identity
from airflow_provider_fts.testing.records import (
    ARCHIVE_DROPPED_JOB_KEYS,
    ARCHIVED_FILE_KEYS,
    CANCELED_BY_USER,
    FILE_ACTIVE_STATES,
    INTERNAL_ERROR,
    TERMINAL_STATE,
    HTTPError,
    StoredJob,
    iso,
)
from airflow_provider_fts.testing.token_table import TokenTable

__all__ = ["JobStore"]


class JobStore:
    """All jobs of the emulator, with the REST server's semantics for every operation.

    :param clock: epoch seconds now (tests pass a clock they move by hand).
    :param job_metadata_limit: the server's size limit of ``job_metadata`` (JSON characters).
    :param file_metadata_limit: the same for each file's ``metadata``.
    :param staging_metadata_limit: the same for ``staging_metadata``.
    :param archive_metadata_limit: the same for ``archive_metadata``.
    :param base_id: namespace of deterministic job ids (the server's, as the client's).
    :param tokens: the ``t_token`` table and its token checks (default: no OAuth2).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        job_metadata_limit: int = 2048,
        file_metadata_limit: int = 4096,
        staging_metadata_limit: int = 1024,
        archive_metadata_limit: int = 1024,
        base_id: str = BASE_ID,
        tokens: TokenTable | None = None,
    ) -> None:
        self.clock = clock
        self.tokens = tokens or TokenTable()
        self.lock = threading.RLock()
        self._limits = {
            "job": job_metadata_limit,
            "file": file_metadata_limit,
            "staging": staging_metadata_limit,
            "archive": archive_metadata_limit,
        }
        self.base_id = base_id
        self._jobs: dict[str, StoredJob] = {}
        self._archive: dict[str, dict[str, Any]] = {}
        self._next_file_id = 1
        self._random = random.Random()

    # -- submission ---------------------------------------------------------------------

    def submit(self, document: Any, identity: Identity, submit_host: str = "localhost") -> str:
        """Store a new job and return its id, or raise the server's :class:`HTTPError`."""
        if identity.transfer_level is None:
            raise HTTPError(403, "Not enough permissions")
        if not isinstance(document, dict):
            raise HTTPError(400, "Expecting a dictionary")
        if identity.method == "oauth2":
            refuse_token_tape_requests(document)
        with self.lock:
            now = self.clock()
            builder = JobBuilder(self, identity, submit_host, now)
            try:
                job = builder.build(dict(document))
            except ValueError as error:
                raise HTTPError(400, f"Invalid value within the request: {error}") from None
            except (TypeError, AttributeError) as error:
                # AttributeError: a non-object where the server calls ``.get``/``.strip``;
                # the real server answers 500 there, a 400 serves users better.
                raise HTTPError(400, f"Malformed request: {error}") from None
            except KeyError as error:
                raise HTTPError(400, f"Missing parameter: {error}") from None
            if job.job_id in self._jobs:
                raise HTTPError(409, "The sid provided by the user is duplicated")
            self._jobs[job.job_id] = job
            self.tokens.save(builder.token_rows)
            return job.job_id

    def allocate_file_id(self) -> int:
        file_id = self._next_file_id
        self._next_file_id += 1
        return file_id

    def hashed_id(self) -> int:
        return self._random.randint(0, 2**16 - 1)

    def metadata_limit(self, kind: str) -> int:
        return self._limits[kind]

    # -- reading ------------------------------------------------------------------------

    def get_jobs(
        self, job_ids: list[str], identity: Identity, file_fields: list[str] | None, multi: bool
    ) -> tuple[int, Any]:
        """``GET /jobs/<ids>``: one object, or a list (207 when an entry is an error)."""
        _require_user_for_job_routes(identity)
        with self.lock:
            entries: list[dict] = []
            errors = 0
            for job_id in filter(None, job_ids):
                try:
                    job = self._accessible(job_id, identity)
                except HTTPError as error:
                    entries.append(error.job_entry(job_id))
                    errors += 1
                    continue
                # Copies of the rows as they are now (the answer is encoded after the lock
                # is released); their values are scalars or metadata nothing changes later.
                entry = dict(job.record)
                if file_fields:
                    entry["files"] = [
                        {name: f[name] for name in file_fields if name in f} for f in job.files
                    ]
                entry["http_status"] = "200 Ok"
                entries.append(entry)
        if not multi:
            if not entries:
                raise HTTPError(404, "Not Found")
            entry = entries[0]
            return (int(entry["http_status"].split()[0]), entry)
        return (207 if errors else 200, entries)

    def get_job_field(self, job_id: str, field: str, identity: Identity) -> Any:
        _require_user_for_job_routes(identity)
        with self.lock:
            record = self._accessible(job_id, identity).record
            if field not in record:
                raise HTTPError(404, "No such field")
            return copy.deepcopy(record[field])

    def get_files(self, job_id: str, identity: Identity) -> list[dict]:
        _require_user_for_job_routes(identity)
        with self.lock:
            return copy.deepcopy(self._accessible(job_id, identity).files)

    def get_retries(self, job_id: str, file_id: str | int, identity: Identity) -> list[dict]:
        """Retry log of one file; each entry embeds the file's current row (case 094).

        An unknown file id gives ``[]``, not 404: the server's existence check is a no-op.
        """
        _require_user_for_job_routes(identity)
        with self.lock:
            job = self._accessible(job_id, identity)
            wanted = _as_file_id(file_id)
            rows = {f["file_id"]: f for f in job.files}
            if wanted not in rows:
                return []
            return [
                {**entry, "file": copy.deepcopy(rows[wanted])}
                for entry in job.retries.get(wanted, [])
            ]

    def get_dm(self, job_id: str, identity: Identity) -> list:
        """Data-management rows: always none, deletion jobs are refused at submission."""
        _require_user_for_job_routes(identity)
        with self.lock:
            self._accessible(job_id, identity)
            return []

    def list_jobs(self, query: Mapping[str, str], identity: Identity) -> list[dict]:
        """``GET /jobs`` with the exact filter semantics of a real FTS 3.13 server."""
        level = identity.transfer_level
        if level is None:
            raise HTTPError(403, "Not enough permissions")
        limit = _int_or_none(query.get("limit"))
        window = _time_window(query.get("time_window"))
        dlg_id = query.get("dlg_id")
        user_dn = query.get("user_dn")
        if dlg_id and dlg_id != identity.delegation_id:
            raise HTTPError(403, "The provided delegation id does not match your delegation id")
        if user_dn and user_dn != identity.user_dn:
            raise HTTPError(
                400, "The provided DN and delegation id do not correspond to the same user"
            )
        if limit is not None and not 0 <= limit <= 500:
            raise HTTPError(400, "The limit must be positive and less or equal than 500")
        vo_name = identity.vos[0] if level == "vo" else query.get("vo_name")
        states = query["state_in"].split(",") if query.get("state_in") else None
        with self.lock:
            now = self.clock()
            jobs = [
                job
                for job in self._jobs.values()
                if _finished_filter(job, states, limit, window, now)
                and _matches(job.record, "user_dn", user_dn)
                and _matches(job.record, "vo_name", vo_name)
                and _matches(job.record, "cred_id", dlg_id)
                and _matches(job.record, "source_se", query.get("source_se"))
                and _matches(job.record, "dest_se", query.get("dest_se"))
            ]
            if limit:
                jobs = sorted(jobs, key=lambda j: j.submitted_at, reverse=True)[:limit]
            fields = query.get("fields")
            if fields:
                return [_subset(job.record, fields.split(",")) for job in jobs]
            return [copy.deepcopy(job.record) for job in jobs]

    def list_files(self, query: Mapping[str, str], identity: Identity) -> list[dict]:
        """``GET /files``: unfinished rows, at most 1000; ``limit`` is ignored as upstream."""
        level = identity.transfer_level
        if level is None:
            raise HTTPError(403, "Not enough permissions")
        if "time_window" in query:
            # Upstream filters on a column that does not exist (case 158).
            raise HTTPError(500, INTERNAL_ERROR)
        vo_name = identity.vos[0] if level == "vo" else query.get("vo_name")
        states = set(query["state_in"].split(",")) if query.get("state_in") else None
        dest_surl = query.get("dest_surl")
        dest_se = storage_element(urlparse(dest_surl)) if dest_surl else query.get("dest_se")
        with self.lock:
            rows = [
                f
                for job in self._jobs.values()
                for f in job.files
                if f["finish_time"] is None
                and (states is None or f["file_state"] in states)
                and _matches(f, "vo_name", vo_name)
                and _matches(f, "source_se", query.get("source_se"))
                and _matches(f, "dest_se", dest_se)
                and _matches(f, "dest_surl", dest_surl)
            ]
            rows.sort(key=lambda f: f["file_id"])
            return copy.deepcopy(rows[:1000])

    # -- changing -----------------------------------------------------------------------

    def cancel(self, job_ids: list[str], identity: Identity, multi: bool) -> tuple[int, Any]:
        """``DELETE /jobs/<ids>``: cancel at once; terminal jobs come back as 304 entries."""
        _require_user_for_job_routes(identity)
        with self.lock:
            now = self.clock()
            unchanged, changed = self._split_changeable(job_ids, identity)
            for job in changed:
                self._cancel_job(job, now)
            return _multistatus(unchanged, changed, multi)

    def cancel_files(self, job_id: str, file_ids: list[str], identity: Identity) -> Any:
        """``DELETE /jobs/<id>/files/<fids>``: a state string per file (a list if several)."""
        _require_user_for_job_routes(identity)
        with self.lock:
            job = self._accessible(job_id, identity)
            job_type = job.record["job_type"]
            if job_type != "N":
                raise HTTPError(
                    400, f"Multihop or reuse jobs must be cancelled at once ({job_type})"
                )
            now = self.clock()
            rows = {str(f["file_id"]): f for f in job.files}
            answers = [_cancel_file(rows.get(fid.strip()), now) for fid in file_ids]
            if not any(f["file_state"] in FILE_ACTIVE_STATES for f in job.files):
                job.record["cancel_job"] = True
                job.finish(JobState.CANCELED, None, now)
            return answers if len(answers) > 1 else answers[0]

    def modify(
        self, job_ids: list[str], body: Any, identity: Identity, multi: bool
    ) -> tuple[int, Any]:
        """``POST /jobs/<ids>`` ``{"params": {"priority": N}}``: no clamping, 0 is a no-op."""
        _require_user_for_job_routes(identity)
        with self.lock:
            unchanged, changed = self._split_changeable(job_ids, identity)
            priority = _requested_priority(body)
            for job in changed:
                if priority:
                    job.record["priority"] = priority
                    for row in job.files:
                        row["priority"] = priority
            return _multistatus(unchanged, changed, multi, with_files=True)

    # -- archive ------------------------------------------------------------------------

    def purge_to_archive(self, job_id: str) -> None:
        """Move a job to the archive, as the DB cleaner does: ``/jobs/<id>`` becomes 404."""
        with self.lock:
            job = self._jobs.pop(job_id)
            archived = {k: v for k, v in job.record.items() if k not in ARCHIVE_DROPPED_JOB_KEYS}
            archived["files"] = [_archived_file(f) for f in job.files]
            self._archive[job_id] = copy.deepcopy(archived)

    def get_archived(self, job_id: str, identity: Identity, field: str | None = None) -> Any:
        with self.lock:
            archived = self._archive.get(job_id)
            if archived is None:
                raise HTTPError(404, f'No job with the id "{job_id}" has been found in the archive')
            if not identity.may_access(archived["user_dn"], archived["vo_name"]):
                raise HTTPError(403, f'Not enough permissions to check the job "{job_id}"')
            if field is None:
                return copy.deepcopy(archived)
            if field not in archived:
                raise HTTPError(404, "No such field")
            return copy.deepcopy(archived[field])

    # -- for the engine, tests and benchmarks -------------------------------------------

    def live_jobs(self) -> list[StoredJob]:
        """Non-terminal jobs in submission order. Call with ``lock`` held; rows are live."""
        return [job for job in self._jobs.values() if not job.is_terminal]

    def stored_jobs(self) -> list[StoredJob]:
        """Every job in ``/jobs``, live objects. Call with ``lock`` held."""
        return list(self._jobs.values())

    def job_count(self) -> int:
        with self.lock:
            return len(self._jobs)

    def jobs_snapshot(self) -> list[dict]:
        """Deep copies of every job record, each with its ``files``."""
        with self.lock:
            return [
                copy.deepcopy({**job.record, "files": job.files}) for job in self._jobs.values()
            ]

    # -- internals ----------------------------------------------------------------------

    def _accessible(self, job_id: str, identity: Identity) -> StoredJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise HTTPError(404, f'No job with the id "{job_id}" has been found')
        if not identity.may_access(job.record["user_dn"], job.record["vo_name"]):
            raise HTTPError(403, f'Not enough permissions to check the job "{job_id}"')
        return job

    def _split_changeable(
        self, job_ids: list[str], identity: Identity
    ) -> tuple[list[dict], list[StoredJob]]:
        """Entries that will not change (errors, terminal jobs), and the jobs that will."""
        unchanged: list[dict] = []
        changed: list[StoredJob] = []
        for job_id in filter(None, job_ids):
            try:
                job = self._accessible(job_id, identity)
            except HTTPError as error:
                unchanged.append(error.job_entry(job_id))
                continue
            if job.is_terminal:
                unchanged.append(
                    {
                        "http_status": "304 Not Modified",
                        "http_message": TERMINAL_STATE,
                        **copy.deepcopy(job.record),
                    }
                )
            else:
                changed.append(job)
        return unchanged, changed

    @staticmethod
    def _cancel_job(job: StoredJob, now: float) -> None:
        job.record["cancel_job"] = True
        job.finish(JobState.CANCELED, CANCELED_BY_USER, now)
        for row in job.files:
            if row["file_state"] in FILE_ACTIVE_STATES:
                row["file_state"] = FileState.CANCELED.value
                row["reason"] = CANCELED_BY_USER
                row["dest_surl_uuid"] = None
                # A running transfer keeps finish_time null: the daemon kills it and sets it.
                row["finish_time"] = None if row["pid"] is not None else iso(now)


# -- store helpers -----------------------------------------------------------------------


def _require_user_for_job_routes(identity: Identity) -> None:
    # Upstream's profiling decorator reads vos[0] first: anonymous callers crash (case 173).
    if not identity.vos:
        raise HTTPError(500, INTERNAL_ERROR)


def _subset(record: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    return {name: copy.deepcopy(record[name]) for name in fields if name in record}


def _matches(record: Mapping[str, Any], key: str, wanted: str | None) -> bool:
    return not wanted or record[key] == wanted


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _time_window(value: str | None) -> timedelta | None:
    try:
        parts = value.split(":")  # type: ignore[union-attr]
        return timedelta(hours=int(parts[0]), minutes=int(parts[1]) if len(parts) > 1 else 0)
    except (AttributeError, ValueError):
        return None


def _finished_filter(
    job: StoredJob,
    states: list[str] | None,
    limit: int | None,
    window: timedelta | None,
    now: float,
) -> bool:
    """Without ``state_in`` only unfinished jobs; ``limit`` or ``time_window`` lift that."""
    if states is None:
        return job.finished_at is None
    if job.record["job_state"] not in states:
        return False
    if limit is not None:
        return True
    if window is not None:
        return job.finished_at is not None and job.finished_at >= now - window.total_seconds()
    return job.finished_at is None


def _as_file_id(value: str | int) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _cancel_file(row: dict | None, now: float) -> str:
    if row is None:
        return "File does not belong to the job"
    if row["file_state"] not in FILE_ACTIVE_STATES:
        return row["file_state"]
    row.update(file_state=FileState.CANCELED.value, finish_time=iso(now), dest_surl_uuid=None)
    return FileState.CANCELED.value


def _requested_priority(body: Any) -> int | None:
    try:
        return int(body["params"]["priority"])
    except KeyError:
        return None
    except ValueError:
        raise HTTPError(400, "Invalid priority value") from None
    except TypeError:
        raise HTTPError(500, INTERNAL_ERROR) from None


def _multistatus(
    unchanged: list[dict], changed: list[StoredJob], multi: bool, with_files: bool = False
) -> tuple[int, Any]:
    """Cancel/modify answers: untouched entries first, then the changed jobs (case 124)."""
    entries = list(unchanged)
    for job in changed:
        entry = copy.deepcopy(job.record)
        if with_files:
            entry["files"] = copy.deepcopy(job.files)
        entry.update(http_status="200 Ok", http_message=None)
        entries.append(entry)
    if not multi:
        if not entries:
            raise HTTPError(404, "Not Found")
        entry = entries[0]
        status = int(entry["http_status"].split()[0])
        return (200 if status == 304 else status, entry)
    is_error = any("job_state" not in e and not e["http_status"].startswith("2") for e in entries)
    return (207 if is_error else 200, entries)


def _archived_file(row: dict[str, Any]) -> dict[str, Any]:
    archived = {key: row.get(key) for key in ARCHIVED_FILE_KEYS}
    archived["current_failures"] = 1 if row["recoverable"] else 0
    return archived
