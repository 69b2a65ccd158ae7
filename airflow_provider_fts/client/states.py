"""One vocabulary for FTS job and file states, and the outcome summary of a job.

Job states and file states share most names; both are ``StrEnum`` so a value read from
JSON compares equal to its member (``JobState("FINISHED") == "FINISHED"``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = [
    "FileState",
    "JobState",
    "all_terminal",
    "progress_line",
    "stored_url_key",
    "summarize_jobs",
]


class JobState(StrEnum):
    """States of an FTS job, as the server's job model defines them."""

    STAGING = "STAGING"
    SUBMITTED = "SUBMITTED"
    READY = "READY"
    ACTIVE = "ACTIVE"
    DELETE = "DELETE"
    ARCHIVING = "ARCHIVING"
    QOS_TRANSITION = "QOS_TRANSITION"
    QOS_REQUEST_SUBMITTED = "QOS_REQUEST_SUBMITTED"
    FINISHED = "FINISHED"
    FINISHEDDIRTY = "FINISHEDDIRTY"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_JOB

    @property
    def is_success(self) -> bool:
        return self is JobState.FINISHED

    @classmethod
    def parse(cls, value: str) -> JobState:
        """The member for ``value``; a clear ``ValueError`` for an unknown state."""
        try:
            return cls(str(value).upper())
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown FTS job state {value!r}; known states: {known}") from None


class FileState(StrEnum):
    """States of one file (one source/destination pair) of an FTS job."""

    STAGING = "STAGING"
    STARTED = "STARTED"
    SUBMITTED = "SUBMITTED"
    READY = "READY"
    ACTIVE = "ACTIVE"
    ARCHIVING = "ARCHIVING"
    QOS_TRANSITION = "QOS_TRANSITION"
    QOS_REQUEST_SUBMITTED = "QOS_REQUEST_SUBMITTED"
    FORCE_START = "FORCE_START"
    TOKEN_PREP = "TOKEN_PREP"
    NOT_USED = "NOT_USED"
    ON_HOLD = "ON_HOLD"
    ON_HOLD_STAGING = "ON_HOLD_STAGING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_FILE

    @classmethod
    def parse(cls, value: str) -> FileState:
        try:
            return cls(str(value).upper())
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown FTS file state {value!r}; known states: {known}") from None


_TERMINAL_JOB = frozenset(
    {JobState.FINISHED, JobState.FINISHEDDIRTY, JobState.FAILED, JobState.CANCELED}
)
_TERMINAL_FILE = frozenset({FileState.FINISHED, FileState.FAILED, FileState.CANCELED})

#: The file fields a summary needs; pass them as ``?files=`` to keep answers small.
SUMMARY_FILE_FIELDS: tuple[str, ...] = (
    "file_id",
    "file_index",
    "file_state",
    "source_surl",
    "dest_surl",
    "reason",
    "recoverable",
    "filesize",
    "user_filesize",
    "tx_duration",
    "throughput",
    "checksum",
    "file_metadata",
)


def summarize_jobs(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A compact, JSON-ready outcome of jobs: what a DAG needs to act on them.

    ``records`` are job records with their ``files`` (``?files=`` with at least
    :data:`SUMMARY_FILE_FIELDS`, or ``/archive/<id>`` records, whose files say
    ``current_failures`` instead of ``recoverable``). Bytes count only FINISHED files; the
    mean throughput is bytes moved over the summed transfer time, in MiB/s.
    """
    records = list(records)
    counts: Counter[str] = Counter()
    failed: list[dict] = []
    bytes_moved = 0
    seconds = 0.0
    for job in records:
        for record in job.get("files") or []:
            state = str(record.get("file_state") or "")
            counts[state] += 1
            if state == FileState.FINISHED:
                bytes_moved += int(record.get("filesize") or record.get("user_filesize") or 0)
                seconds += float(record.get("tx_duration") or 0)
            elif state in (FileState.FAILED, FileState.CANCELED):
                failed.append(_failed_file(job, record, state))
    throughput = bytes_moved / seconds / 2**20 if seconds > 0 else None
    return {
        "job_ids": [job["job_id"] for job in records],
        "job_states": {job["job_id"]: job.get("job_state") for job in records},
        "files": sum(counts.values()),
        "file_states": dict(sorted(counts.items())),
        "failed_files": failed,
        "bytes": bytes_moved,
        "throughput_mib_s": round(throughput, 3) if throughput is not None else None,
    }


def _failed_file(job: Mapping[str, Any], record: Mapping[str, Any], state: str) -> dict:
    recoverable = record.get("recoverable", record.get("current_failures"))
    return {
        "job_id": job.get("job_id"),
        "file_id": record.get("file_id"),
        "source": record.get("source_surl"),
        "destination": record.get("dest_surl"),
        "state": state,
        "reason": record.get("reason") or "",
        "recoverable": None if recoverable is None else bool(recoverable),  # None: unknown
    }


def all_terminal(summary: Mapping[str, Any]) -> bool:
    """Whether every job of a :func:`summarize_jobs` summary has ended."""
    return all(JobState.parse(s).is_terminal for s in summary["job_states"].values())


def progress_line(summary: Mapping[str, Any]) -> str:
    """One log line per poll: files done of total, bytes, throughput."""
    states = summary["file_states"]
    done = sum(n for state, n in states.items() if FileState.parse(state).is_terminal)
    throughput = summary["throughput_mib_s"]
    rate = f", {throughput} MiB/s" if throughput is not None else ""
    jobs = ", ".join(f"{j[:8]} {s}" for j, s in summary["job_states"].items())
    return (
        f"FTS: {done}/{summary['files']} files done ({summary['bytes']} bytes{rate}); "
        f"{len(summary['failed_files'])} failed; jobs: {jobs}"
    )


def stored_url_key(url: str) -> str:
    """``url`` the way FTS stores it, to compare a submitted URL with a file record's.

    For a staging job the server appends ``activity=<name>`` to ``root://`` URLs (EOS-CTA
    wants it), so a stored ``root://`` URL never equals the one
    submitted. Both sides are compared without their ``activity`` parameters, with the
    query re-encoded the way the server does; other schemes are stored as submitted.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "root" or not parts.query:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "activity"]
    return parts._replace(query=urlencode(query)).geturl()
