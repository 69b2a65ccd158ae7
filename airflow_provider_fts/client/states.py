"""One vocabulary for FTS job and file states, and the outcome summary of a job.

Job states and file states share most names; both are ``StrEnum`` so a value read from
JSON compares equal to its member (``JobState("FINISHED") == "FINISHED"``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any, Self, TypedDict
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = [
    "FileState",
    "JobState",
    "JobSummary",
    "ProgressLog",
    "Tally",
    "all_terminal",
    "failed_files",
    "progress_line",
    "stored_url_key",
    "summarize_jobs",
    "with_failures",
]


class _State(StrEnum):
    """A state read from FTS (a job's or a file's)."""

    @classmethod
    def parse(cls, value: str) -> Self:
        """The member for ``value`` in any case; a clear ``ValueError`` for an unknown state."""
        try:
            return cls(str(value).upper())
        except ValueError:
            noun = cls.__name__.removesuffix("State").lower()
            known = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown FTS {noun} state {value!r}; known states: {known}") from None


class JobState(_State):
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


class FileState(_State):
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


#: Failed files a summary lists at most, and at most this many bytes of them as JSON:
#: counts stay exact, the complete list is ``FTSClient.iter_files``'s.
MAX_FAILED_FILES = 50
FAILED_FILES_BYTES = 32 * 1024
#: Distinct failure reasons a summary counts at most; the rest count under ``OTHER_REASONS``.
MAX_REASONS = 20
OTHER_REASONS = "(other reasons)"
#: A reason is cut to this many characters in a summary.
REASON_CHARS = 300
#: File states that count as failed: the files a new job may have to send again.
FAILED_FILE_STATES = frozenset({FileState.FAILED, FileState.CANCELED})

#: The file fields read once of a job that ended FINISHED: counts, bytes, throughput.
FINISHED_FILE_FIELDS: tuple[str, ...] = ("file_state", "filesize", "tx_duration")
#: The file fields :func:`failed_files` and :func:`is_finished_replica` read: what a retry
#: needs of an earlier try's job that did not end FINISHED.
OUTCOME_FILE_FIELDS: tuple[str, ...] = (
    "file_id",
    "file_state",
    "source_surl",
    "dest_surl",
    "reason",
    "recoverable",
)
#: The file fields read once of a job that ended otherwise: the failures too.
ENDED_FILE_FIELDS: tuple[str, ...] = (*OUTCOME_FILE_FIELDS, "filesize", "tx_duration")
#: The file fields of a progress sample of a job still running.
SAMPLE_FILE_FIELDS: tuple[str, ...] = ("file_state",)
#: Seconds between progress samples of the running jobs' files (the first one after this).
SAMPLE_SECONDS = 300.0


def ended_file_fields(job_state: str) -> tuple[str, ...]:
    """The file fields worth reading of a job that ended in ``job_state``."""
    return FINISHED_FILE_FIELDS if job_state == JobState.FINISHED else ENDED_FILE_FIELDS


def file_bytes(file: Mapping[str, Any]) -> int:
    """A file's size: what FTS measured (``filesize``), else what the submission said
    (``user_filesize``), else 0."""
    return int(file.get("filesize") or file.get("user_filesize") or 0)


def is_finished_replica(file: Mapping[str, Any]) -> bool:
    """Whether a file record ended FINISHED at a known destination: a replica exists."""
    return file.get("file_state") == FileState.FINISHED and bool(file.get("dest_surl"))


def has_ended(job_state: Any) -> bool:
    """Whether a job state is terminal; an unknown or missing state is not."""
    try:
        return JobState.parse(job_state).is_terminal
    except ValueError:
        return False


def failed_files(record: Mapping[str, Any]) -> Iterator[dict]:
    """Every failed (FAILED or CANCELED) file of a job record with files, as a summary
    lists it: ``job_id, file_id, source, destination, state, reason, recoverable``."""
    for file in record.get("files") or []:
        state = str(file.get("file_state") or "")
        if state in FAILED_FILE_STATES:
            recoverable = file.get("recoverable", file.get("current_failures"))
            yield {
                "job_id": record.get("job_id"),
                "file_id": file.get("file_id"),
                "source": file.get("source_surl"),
                "destination": file.get("dest_surl"),
                "state": state,
                "reason": file.get("reason") or "",
                "recoverable": None if recoverable is None else bool(recoverable),  # unknown
            }


def is_recoverable(entry: Mapping[str, Any]) -> bool:
    """Whether a failed file is worth trying again: FTS said recoverable, or said nothing.

    ``recoverable`` is ``None`` when the server left it empty (older servers, some failure
    paths, e.g. ``TRANSFER [110] Connection timed out``). Unknown counts as recoverable:
    the task's ``retries`` bound what trying again costs, while a permanent verdict on a
    passing fault would fail a transfer that the next try can make.
    """
    return entry["recoverable"] is None or bool(entry["recoverable"])


def ids_in_words(job_ids: Sequence[str], named: int = 5) -> str:
    """Job ids for a log line, short whatever their number: each up to ``named`` ids,
    else the first ones and how many more (``a, b, c, d, e and 4995 more``)."""
    shown = ", ".join(job_ids[:named])
    return shown if len(job_ids) <= named else f"{shown} and {len(job_ids) - named} more"


def jobs_in_words(summary: JobSummary, named: int = 5) -> str:
    """The jobs and their states, short whatever their number: each job up to ``named``
    jobs (``a1b2c3d4 FINISHED``), else counts per state (``3 FAILED, 4997 FINISHED``)."""
    if summary["jobs"] <= named:
        return ", ".join(f"{job} {state}" for job, state in summary["job_states"].items())
    return f"{summary['jobs']} jobs: {_per_state(summary)}"


def _per_state(summary: JobSummary) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(summary["jobs_per_state"].items()))


class Failures:
    """Failed files, counted exactly and listed up to the caps, grouped by reason."""

    def __init__(self) -> None:
        self.count = 0
        self.recoverable = 0
        self.states: Counter[str] = Counter()  # the failed files per state
        self.listed: list[dict] = []
        self.reasons: dict[str, dict[str, int]] = {}
        self._listed_bytes = 0

    @classmethod
    def of(cls, summary: Mapping[str, Any]) -> Failures:
        """The failures a summary holds (or :meth:`to_json` with ``file_states``), to add more."""
        failures = cls()
        failures.count = summary["failed_count"]
        failures.states = Counter(
            {s: n for s, n in summary["file_states"].items() if s in FAILED_FILE_STATES}
        )
        failures.recoverable = summary["recoverable_count"]
        failures.listed = list(summary["failed_files"])
        failures._listed_bytes = sum(len(json.dumps(e)) for e in failures.listed)
        failures.reasons = {r["reason"]: dict(r) for r in summary["failure_reasons"]}
        return failures

    def add(self, entry: Mapping[str, Any]) -> None:
        """One failed file (an entry of :func:`failed_files`)."""
        recoverable = int(entry["state"] == FileState.FAILED and is_recoverable(entry))
        self.count += 1
        self.recoverable += recoverable
        self.states[entry["state"]] += 1
        self._group((entry["reason"] or entry["state"])[:REASON_CHARS], 1, recoverable)
        self._list({**entry, "reason": entry["reason"][:REASON_CHARS]})

    def merge(self, other: Failures) -> None:
        """Another set of failures (of other jobs) joined to these, under the same caps."""
        self.count += other.count
        self.recoverable += other.recoverable
        self.states.update(other.states)
        for group in other.reasons.values():
            self._group(group["reason"], group["files"], group["recoverable"])
        for listed in other.listed:
            if not self._list(listed):
                break

    def _group(self, reason: str, files: int, recoverable: int) -> None:
        """Count files under their reason; past :data:`MAX_REASONS`, under the others."""
        if reason not in self.reasons and len(self.reasons) >= MAX_REASONS:
            reason = OTHER_REASONS
        group = self.reasons.setdefault(reason, {"reason": reason, "files": 0, "recoverable": 0})
        group["files"] += files
        group["recoverable"] += recoverable

    def _list(self, listed: dict) -> bool:
        """List a failed file while the caps allow; whether it was listed."""
        size = len(json.dumps(listed))
        if len(self.listed) >= MAX_FAILED_FILES or self._listed_bytes + size > FAILED_FILES_BYTES:
            return False
        self.listed.append(listed)
        self._listed_bytes += size
        return True

    def to_json(self) -> dict[str, Any]:
        # Most files first, the other reasons last.
        reasons = sorted(
            self.reasons.values(), key=lambda r: (r["reason"] == OTHER_REASONS, -r["files"])
        )
        return {
            "failed_count": self.count,
            "recoverable_count": self.recoverable,
            "failed_files": self.listed,
            "failure_reasons": [dict(r) for r in reasons],
        }


#: Jobs a summary names with their state at most, the jobs not FINISHED first; the counts
#: per state stay exact, the complete list is the task's (XCom ``fts_job_id``).
MAX_LISTED_JOBS = 200
#: The state counted for a job whose record was not read yet.
NOT_READ = "UNKNOWN"


class JobSummary(TypedDict):
    """The outcome of a task's jobs, bounded whatever their number (under 64 KiB as JSON).

    The hook, the verdict, the trigger's event, the XCom ``fts_summary`` and the
    OpenLineage facet all carry this one shape (:func:`summarize_jobs`, :meth:`Tally.summary`).
    """

    #: How many jobs.
    jobs: int
    #: Jobs per job state, exact (:data:`NOT_READ` for a job not read yet).
    jobs_per_state: dict[str, int]
    #: Jobs named with their state (None: not read yet): the jobs not FINISHED first, up
    #: to :data:`MAX_LISTED_JOBS`.
    job_states: dict[str, str | None]
    #: Jobs left out of ``job_states``.
    jobs_not_listed: int
    #: Files counted (ended jobs' files, and the last progress sample of running jobs').
    files: int
    #: Files per file state.
    file_states: dict[str, int]
    #: Running jobs whose files were not sampled yet.
    uncounted_jobs: int
    #: Failed (FAILED or CANCELED) files, exact; of them, recoverable FAILED ones.
    failed_count: int
    recoverable_count: int
    #: The first failed files (:func:`failed_files` entries), capped.
    failed_files: list[dict]
    #: Failed files per reason: ``{"reason", "files", "recoverable"}``, capped.
    failure_reasons: list[dict]
    #: Bytes of the FINISHED files of ended jobs, and their mean throughput in MiB/s.
    bytes: int
    throughput_mib_s: float | None


class Tally:
    """The outcome of jobs while they run, kept per job (never per file).

    Feed it job records (:meth:`add`): a record without files tells the job's state; the
    files of an ended job are counted once, for good (fields :func:`ended_file_fields`);
    the files of a running job are a progress sample (file states only), replaced by
    the next one. Bytes and throughput count ended jobs.

    :param job_ids: The jobs, in the order a summary lists them.
    :param sample_every: Seconds between progress samples (:meth:`to_sample`).
    """

    def __init__(self, job_ids: Iterable[str] = (), *, sample_every: float = SAMPLE_SECONDS):
        self.job_states: dict[str, str | None] = dict.fromkeys(job_ids)
        self.sample_every = sample_every
        self._sampled_at = time.monotonic()
        self._ended: set[str] = set()
        self._samples: dict[str, Counter[str]] = {}
        self._counts: Counter[str] = Counter()
        self._bytes = 0
        self._seconds = 0.0
        self._failures = Failures()

    def add(self, record: Mapping[str, Any]) -> None:
        """One job record, with or without its files."""
        job_id = record["job_id"]
        if job_id in self._ended:
            return
        state = record.get("job_state")
        self.job_states[job_id] = state
        files = record.get("files")
        if files is None:
            return
        if not has_ended(state):
            self._samples[job_id] = Counter(str(f.get("file_state") or "") for f in files)
            return
        self._ended.add(job_id)
        self._samples.pop(job_id, None)
        for file in files:
            state = str(file.get("file_state") or "")
            self._counts[state] += 1
            if state == FileState.FINISHED:
                self._bytes += file_bytes(file)
                self._seconds += float(file.get("tx_duration") or 0)
        for entry in failed_files(record):
            self._failures.add(entry)

    def pending(self) -> list[str]:
        """The jobs whose files are not counted for good yet."""
        return [job_id for job_id in self.job_states if job_id not in self._ended]

    @property
    def ended(self) -> bool:
        return not self.pending()

    def to_sample(self, now: float | None = None) -> list[str]:
        """The running jobs whose file states are due for a progress sample (every
        ``sample_every`` seconds; none before the first interval passed)."""
        now = time.monotonic() if now is None else now
        if now - self._sampled_at < self.sample_every:
            return []
        self._sampled_at = now
        return self.pending()

    def summary(self) -> JobSummary:
        """The JSON-ready summary (see :func:`summarize_jobs`)."""
        counts = Counter(self._counts)
        for sample in self._samples.values():
            counts.update(sample)
        counted = self._ended | self._samples.keys()
        throughput = self._bytes / self._seconds / 2**20 if self._seconds > 0 else None
        per_state = Counter(str(state or NOT_READ) for state in self.job_states.values())
        # Stable: the jobs not FINISHED first, each group in the jobs' order.
        ordered = sorted(self.job_states.items(), key=lambda item: item[1] == JobState.FINISHED)
        return {
            "jobs": len(self.job_states),
            "jobs_per_state": dict(sorted(per_state.items())),
            "job_states": dict(ordered[:MAX_LISTED_JOBS]),
            "jobs_not_listed": max(0, len(ordered) - MAX_LISTED_JOBS),
            "files": sum(counts.values()),
            "file_states": dict(sorted(counts.items())),
            "uncounted_jobs": len(self.job_states.keys() - counted),
            **self._failures.to_json(),
            "bytes": self._bytes,
            "throughput_mib_s": round(throughput, 3) if throughput is not None else None,
        }


def summarize_jobs(records: Iterable[Mapping[str, Any]]) -> JobSummary:
    """A compact, JSON-ready outcome of jobs: what a DAG needs to act on them.

    ``records`` are job records, with their ``files`` once ended (``?files=`` with at
    least :func:`ended_file_fields`, or ``/archive/<id>`` records, whose files say
    ``current_failures`` instead of ``recoverable``). Bytes count only FINISHED files; the
    mean throughput is bytes moved over the summed transfer time, in MiB/s. Its size does
    grow with files, nor with jobs: jobs are counted per state exactly (``jobs_per_state``)
    and named up to :data:`MAX_LISTED_JOBS` (``job_states``, the jobs not FINISHED first);
    failed files are counted exactly (``failed_count``, of them ``recoverable_count``),
    grouped by reason (``failure_reasons``, at most :data:`MAX_REASONS`) and listed up to
    :data:`MAX_FAILED_FILES` (``failed_files``). ``uncounted_jobs`` are running jobs whose
    files were not sampled yet. See :class:`JobSummary`.
    """
    tally = Tally()
    for record in records:
        tally.add(record)
    return tally.summary()


def merge_summaries(parts: Iterable[JobSummary]) -> JobSummary:
    """One summary of the jobs of several summaries (e.g. one per FTS server), exact in
    its counts and under the same caps; the throughput is the bytes over the summed time."""
    jobs = files = uncounted = 0
    per_state: Counter[str] = Counter()
    listed: dict[str, str | None] = {}
    file_states: Counter[str] = Counter()
    failures = Failures()
    moved = seconds = 0.0
    for part in parts:
        jobs += part["jobs"]
        per_state.update(part["jobs_per_state"])
        listed.update(part["job_states"])
        files += part["files"]
        uncounted += part["uncounted_jobs"]
        file_states.update(part["file_states"])
        failures.merge(Failures.of(part))
        moved += part["bytes"]
        if part["throughput_mib_s"]:
            seconds += part["bytes"] / part["throughput_mib_s"] / 2**20
    ordered = sorted(listed.items(), key=lambda item: item[1] == JobState.FINISHED)
    throughput = moved / seconds / 2**20 if seconds > 0 else None
    return {
        "jobs": jobs,
        "jobs_per_state": dict(sorted(per_state.items())),
        "job_states": dict(ordered[:MAX_LISTED_JOBS]),
        "jobs_not_listed": jobs - min(len(ordered), MAX_LISTED_JOBS),
        "files": files,
        "file_states": dict(sorted(file_states.items())),
        "uncounted_jobs": uncounted,
        **failures.to_json(),
        "bytes": int(moved),
        "throughput_mib_s": round(throughput, 3) if throughput is not None else None,
    }


def with_failures(summary: JobSummary, more: Failures | Iterable[Mapping[str, Any]]) -> JobSummary:
    """The summary plus more failed files (entries of :func:`failed_files`, or counted
    already in a :class:`Failures`), under the caps."""
    if not isinstance(more, Failures):
        entries, more = more, Failures()
        for entry in entries:
            more.add(entry)
    failures = Failures.of(summary)
    failures.merge(more)
    states = Counter(summary["file_states"]) + more.states
    return {
        **summary,
        "files": summary["files"] + more.count,
        "file_states": dict(sorted(states.items())),
        **failures.to_json(),
    }


def all_terminal(summary: JobSummary) -> bool:
    """Whether every job of a :func:`summarize_jobs` summary has ended."""
    return all(has_ended(state) for state in summary["jobs_per_state"])


def progress_line(summary: JobSummary) -> str:
    """One short line, whatever the number of jobs: jobs per state, files finished of
    those counted, failed files, bytes and throughput."""
    states = summary["file_states"]
    finished = states.get(FileState.FINISHED, 0)
    failed = sum(states.get(s, 0) for s in FAILED_FILE_STATES)
    uncounted = summary.get("uncounted_jobs") or 0
    not_counted = f" ({uncounted} running jobs not counted yet)" if uncounted else ""
    throughput = summary["throughput_mib_s"]
    rate = f", {throughput} MiB/s" if throughput is not None else ""
    return (
        f"FTS: {summary['jobs']} jobs ({_per_state(summary)}); "
        f"{finished} of {summary['files']} files finished, {failed} failed{not_counted}; "
        f"{summary['bytes']} bytes{rate}"
    )


class ProgressLog:
    """Says a progress line when it changed since the last one, or after ``heartbeat``
    seconds without a change, so a long wait logs neither every poll nor nothing.

    :param say: Logs one line, e.g. a logger's ``info``.
    :param heartbeat: Seconds after which an unchanged line is said again.
    """

    def __init__(self, say: Callable[[str], Any], heartbeat: float = 300.0) -> None:
        self.say = say
        self.heartbeat = heartbeat
        self._last: tuple[str, float] | None = None

    def __call__(self, summary: JobSummary) -> None:
        line, now = progress_line(summary), time.monotonic()
        if self._last is None or self._last[0] != line or now - self._last[1] >= self.heartbeat:
            self.say(line)
            self._last = (line, now)


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
