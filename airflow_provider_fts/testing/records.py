"""The emulator's records and messages: job and file rows, the server's texts and errors.

The shapes are those a real fts-rest-flask 3.13.4 server serialises (29 job keys, 42 file
keys, the archive's reduced rows), in the same key order, and the messages are its exact
texts. :class:`HTTPError` is the one status error of the emulator: every refusal, whether
from the job store, the delegation store or the authentication middleware, is one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from airflow_provider_fts.client.states import FileState, JobState

__all__ = [
    "FILES_FAILED",
    "HTTPError",
    "StoredJob",
    "derive_job_state",
    "iso",
    "reason_phrase",
]

INTERNAL_ERROR = (
    "The server encountered an internal error and was unable to complete your request. "
    "Either the server is overloaded or there is an error in the application."
)
CANCELED_BY_USER = "Job canceled by the user"
FILES_FAILED = "One or more files failed. Please have a look at the details for more information"
INCONSISTENT = "Inconsistent internal state!"
TERMINAL_STATE = "The job is in a terminal state"

#: The job keys in the order the recorded server serialises them (case 023).
JOB_KEYS: tuple[str, ...] = (
    "verify_checksum", "submit_host", "internal_job_params", "user_dn", "dst_file_report",
    "job_metadata", "job_id", "cred_id", "overwrite_flag", "retry", "source_se", "vo_name",
    "job_finished", "retry_delay", "dest_se", "reason", "copy_pin_lifetime", "os_project_id",
    "source_spacetoken", "job_state", "submit_time", "bring_online", "job_type", "priority",
    "archive_timeout", "destination_spacetoken", "cancel_job", "max_time_in_queue", "target_qos",
)  # fmt: skip

#: The file keys in the order of case 024.
FILE_KEYS: tuple[str, ...] = (
    "file_index", "transfer_host", "finish_time", "throughput", "bringonline_token", "job_id",
    "source_surl", "start_time", "retry", "log_file", "dest_surl_uuid", "dest_surl",
    "archive_start_time", "user_filesize", "activity", "log_debug", "vo_name", "staging_host",
    "archive_finish_time", "file_metadata", "scitag", "recoverable", "source_se", "reason",
    "internal_file_params", "staging_metadata", "src_token_id", "dest_se", "filesize", "pid",
    "archive_metadata", "dst_token_id", "file_id", "priority", "checksum", "staging_start",
    "staging_finished", "file_state_initial", "hashed_id", "file_state", "tx_duration",
    "selection_strategy",
)  # fmt: skip

#: Archived jobs (``t_job_backup``) lack these job keys (case 152).
ARCHIVE_DROPPED_JOB_KEYS = frozenset({"retry_delay", "os_project_id"})

#: Archived file rows (``t_file_backup``) have only these keys (case 152).
ARCHIVED_FILE_KEYS: tuple[str, ...] = (
    "job_id", "reason", "internal_file_params", "staging_metadata", "source_se",
    "current_failures", "pid", "archive_metadata", "dest_se", "filesize", "tx_duration",
    "staging_start", "file_state", "checksum", "throughput", "staging_finished",
    "transfer_host", "finish_time", "retry", "selection_strategy", "file_id", "source_surl",
    "start_time", "user_filesize", "bringonline_token", "dest_surl", "archive_start_time",
    "file_metadata", "scitag", "file_index", "staging_host", "archive_finish_time",
)  # fmt: skip

JOB_ACTIVE_STATES = frozenset(s.value for s in JobState if not s.is_terminal)
FILE_ACTIVE_STATES = frozenset(
    {
        FileState.STAGING, FileState.STARTED, FileState.SUBMITTED, FileState.READY,
        FileState.ACTIVE, FileState.ARCHIVING, FileState.QOS_TRANSITION,
        FileState.QOS_REQUEST_SUBMITTED, FileState.FORCE_START, FileState.TOKEN_PREP,
    }
)  # fmt: skip


#: Reasons the server writes that Python's table lacks or words differently.
_REASONS = {207: "Multi-Status", 419: "Authentication Timeout"}


def reason_phrase(status: int) -> str:
    """The reason phrase the server sends with ``status`` (``404`` -> ``Not Found``)."""
    if status in _REASONS:
        return _REASONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class HTTPError(Exception):
    """A refusal with its HTTP status and the server's exact message.

    Application code renders it as ``{"status": "<code> <Reason>", "message": ...}``; a
    refusal raised by the authentication middleware becomes Werkzeug's HTML page instead
    (the layer decides the rendering, not the error).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def status_line(self) -> str:
        return f"{self.status} {reason_phrase(self.status)}"

    def body(self) -> dict:
        return {"status": self.status_line, "message": self.message}

    def job_entry(self, job_id: str) -> dict:
        """The per-job shape used by ``/jobs/<id>[,<id>]`` answers."""
        return {"job_id": job_id, "http_status": self.status_line, "http_message": self.message}


def derive_job_state(job_type: str, files: Iterable[Mapping[str, Any]]) -> tuple[str, str | None]:
    """The job state the daemon derives from its files, and the reason it sets.

    Follows the FTS daemon's ``MySqlAPI::updateJobTransferStatusInternal``: files are counted
    per ``file_index`` (replicas and hops share one logical file). The reason is ``None``
    when the daemon would not set one (non-terminal states, CANCELED keeps its own).
    """
    by_index: dict[int, list[str]] = {}
    for record in files:
        by_index.setdefault(record["file_index"], []).append(record["file_state"])
    finished = failed = canceled = 0
    for states in by_index.values():
        if FileState.FINISHED in states:
            finished += 1
        elif all(s == FileState.CANCELED for s in states):
            canceled += 1
        elif all(s in (FileState.FAILED, FileState.CANCELED) for s in states):
            failed += 1
    multihop = job_type == "H"
    if finished + failed + canceled == len(by_index) or (multihop and failed + canceled):
        if finished and failed:
            return (JobState.FAILED if multihop else JobState.FINISHEDDIRTY), FILES_FAILED
        if finished == len(by_index):
            return JobState.FINISHED, ""
        if failed:
            return JobState.FAILED, FILES_FAILED
        if canceled:
            return JobState.CANCELED, None
        return JobState.FAILED, INCONSISTENT
    return _running_state(s for states in by_index.values() for s in states), None


def _running_state(states: Iterable[str]) -> str:
    live = [s for s in states if s in FILE_ACTIVE_STATES]
    if any(s in (FileState.ACTIVE, FileState.READY) for s in live):
        return JobState.ACTIVE
    if any(s in (FileState.STAGING, FileState.STARTED) for s in live):
        return JobState.STAGING
    if live and all(s == FileState.ARCHIVING for s in live):
        return JobState.ARCHIVING
    return JobState.SUBMITTED


def iso(timestamp: float) -> str:
    """The server's timestamp format: naive UTC, no fractions."""
    return _iso_second(math.floor(timestamp))


@functools.lru_cache(maxsize=64)
def _iso_second(second: int) -> str:
    # One string per second, shared by every row stamped then (10^6 rows, a few seconds).
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class StoredJob:
    """One job row with its file rows, retry log and the bookkeeping the rows lack."""

    record: dict[str, Any]
    files: list[dict[str, Any]]
    sid: str | None
    submitted_at: float
    finished_at: float | None = None
    retries: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def job_id(self) -> str:
        return self.record["job_id"]

    @property
    def is_terminal(self) -> bool:
        return self.record["job_state"] not in JOB_ACTIVE_STATES

    def finish(self, state: str, reason: str | None, now: float) -> None:
        self.record["job_state"] = str(state)
        if reason is not None:
            self.record["reason"] = reason
        self.record["job_finished"] = iso(now)
        self.finished_at = now

    def refresh_state(self, now: float) -> None:
        """Apply :func:`derive_job_state` (the daemon does this after every file change)."""
        if self.is_terminal:
            return
        state, reason = derive_job_state(self.record["job_type"], self.files)
        if JobState(state).is_terminal:
            self.finish(state, reason, now)
        else:
            self.record["job_state"] = str(state)

    def record_retry(self, file: dict[str, Any], reason: str, now: float) -> None:
        """Log one failed attempt, as the daemon writes ``t_file_retry_errors``."""
        entries = self.retries.setdefault(file["file_id"], [])
        entries.append(
            {
                "file_id": file["file_id"],
                "attempt": len(entries) + 1,
                "reason": reason,
                "log_file": file["log_file"],
                "datetime": iso(now),
                "transfer_host": file["transfer_host"],
            }
        )
