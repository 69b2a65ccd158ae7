"""The emulator's transfer engine: what the FTS daemon and ``fts_url_copy`` would do.

Each :meth:`Engine.step` is one scheduler pass over the :class:`~.jobs.JobStore`:

* queued jobs past ``max_time_in_queue`` are canceled;
* due staging, transfers and archive polls complete (real byte copies for mapped storage,
  scripted outcomes for ``mock://``);
* STAGING files start staging, SUBMITTED files start transferring (highest job priority
  first, at most ``concurrency`` at a time).

``mock://`` URLs follow gfal2's mock plugin (``src/plugins/mock/README_PLUGIN_MOCK``),
all optional query parameters:

=================  ============  ====================================================
parameter          on            effect
=================  ============  ====================================================
``size``           source        bytes reported as ``filesize`` (else ``filesize``)
``errno``          source        the source stat fails with that errno (SOURCE)
``errno``          destination   the destination stat fails (DESTINATION); ENOENT just
                                 means "not there yet", as in the plugin's example
``size_pre``       destination   > 0: the destination exists before the copy
``time``           destination   transfer duration in seconds (float allowed)
``transfer_errno`` destination   the copy fails with that errno (TRANSFER)
``fail_attempts``  destination   emulator extension: ``transfer_errno`` applies only to
                                 the first N attempts (to script "retry, then success")
``checksum``       both          the checksum value the endpoint reports
``staging_time``   source        bring-online duration in seconds
``staging_errno``  source        bring-online fails with that errno
``archiving_time`` destination   archive-poll duration in seconds
``archiving_errno`` destination  archiving fails with that errno
=================  ============  ====================================================

URLs that are neither ``mock://`` nor mapped by ``storage`` behave like ``mock://``
without parameters: they succeed after ``default_duration``.

Retries: ``retry`` > 0 allows that many, ``retry`` < 0 none, ``retry`` 0 the engine's
``default_retries`` (0 unless configured; the real default is a server setting);
``retry_delay`` is in seconds (0: retry at the next pass). Only recoverable failures
are retried (the heuristic of ``fts_url_copy``); multi-replica jobs move to the next
replica instead; multihop jobs fail at the first failed hop (later hops stay NOT_USED,
the daemon's default without ``CancelUnusedMultihopFiles``).
"""

from __future__ import annotations

import errno as errno_codes
import hashlib
import os
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, urlparse

from airflow_provider_fts.client.states import FileState, JobState

from .jobs import FILE_ACTIVE_STATES, JobStore, StoredJob, iso

__all__ = ["Engine", "Failure", "is_recoverable"]

QUEUE_EXPIRED = "Job has been canceled because it stayed in the queue for too long"
DESTINATION_EXISTS = "Destination file exists and overwrite is not enabled"

_RETRY_IMPLIED = (
    "performance marker", "Name or service not known", "Connection timed out",
    "end-of-file was reached", "end of file occurred", "SRM_INTERNAL_ERROR",
    "was forcefully killed", "operation timeout",
)  # fmt: skip
_NO_RETRY_IMPLIED = (
    "proxy expired", "File exists and overwrite", "No such file or directory",
    "Permission denied", "File exists", "checksum do not match", "CHECKSUM MISMATCH",
    "Destination file exists",
)  # fmt: skip
_FATAL_BY_SCOPE = {
    "SOURCE": {"ENOENT", "EPERM", "EACCES", "EISDIR", "ENAMETOOLONG", "E2BIG", "ENOTDIR",
               "EPROTONOSUPPORT"},
    "DESTINATION": {"EPERM", "EACCES", "EISDIR", "ENAMETOOLONG", "E2BIG", "EPROTONOSUPPORT"},
    "TRANSFER": {"ENOSPC", "EPERM", "EACCES", "EEXIST", "EFBIG", "EROFS", "ENAMETOOLONG",
                 "EPROTONOSUPPORT"},
}  # fmt: skip


def is_recoverable(code: int, scope: str, message: str) -> bool:
    """Whether ``fts_url_copy`` would let the daemon retry this error (its heuristics)."""
    if any(text in message for text in _RETRY_IMPLIED) or code == errno_codes.ETIMEDOUT:
        return True
    if code == errno_codes.ECANCELED or any(text in message for text in _NO_RETRY_IMPLIED):
        return False
    name = errno_codes.errorcode.get(code, "")
    return name not in _FATAL_BY_SCOPE.get(scope, _FATAL_BY_SCOPE["TRANSFER"])


@dataclass(frozen=True)
class Failure:
    """Why one attempt failed; ``reason`` is the text FTS stores on the file."""

    scope: str  # SOURCE | DESTINATION | TRANSFER
    code: int
    message: str

    @classmethod
    def of(cls, scope: str, code: int, message: str | None = None) -> Failure:
        return cls(scope, code, message or os.strerror(code))

    @property
    def reason(self) -> str:
        return f"{self.scope} [{self.code}] {self.message}"

    @property
    def recoverable(self) -> bool:
        return is_recoverable(self.code, self.scope, self.message)


@dataclass
class _Run:
    """One file the engine is working on: what phase, until when."""

    job: StoredJob
    file: dict
    phase: str  # "staging" | "transfer" | "archiving"
    started: float
    due: float


_PHASE_STATE = {
    "staging": FileState.STARTED,
    "transfer": FileState.ACTIVE,
    "archiving": FileState.ARCHIVING,
}


class Engine:
    """Advances jobs in a background thread, like the FTS daemon (or step by step)."""

    def __init__(
        self,
        store: JobStore,
        *,
        storage: Mapping[str, str | Path] | None = None,
        tick: float = 0.05,
        default_duration: float = 0.2,
        clock: Callable[[], float] = time.time,
        concurrency: int = 8,
        default_retries: int = 0,
        hostname: str = "localhost",
    ) -> None:
        self.store = store
        self.storage = {prefix.rstrip("/"): Path(root) for prefix, root in (storage or {}).items()}
        self.tick = tick
        self.default_duration = default_duration
        self.clock = clock
        self.concurrency = concurrency
        self.default_retries = default_retries
        self.hostname = hostname
        self._runs: dict[int, _Run] = {}
        self._not_before: dict[int, float] = {}
        self._next_pid = 4242
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- running ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="fts-emulator-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            self.step()

    def step(self, now: float | None = None) -> None:
        """One scheduler pass; tests call it directly with their own clock value."""
        now = self.clock() if now is None else now
        with self.store.lock:
            for job in self.store.live_jobs():
                self._expire_if_queued_too_long(job, now)
            for file_id, run in sorted(self._runs.items(), key=lambda item: item[1].due):
                # A canceled transfer frees its slot at once, as the daemon kills it.
                if run.due <= now or run.file["file_state"] != _PHASE_STATE[run.phase]:
                    del self._runs[file_id]
                    self._complete(run, now)
            self._start_staging(now)
            self._start_transfers(now)
            for job in self.store.live_jobs():
                job.refresh_state(now)

    # -- queue expiry -------------------------------------------------------------------

    def _expire_if_queued_too_long(self, job: StoredJob, now: float) -> None:
        expiry = job.record["max_time_in_queue"]
        if expiry is None or now < expiry:
            return
        if any(f["file_id"] in self._runs for f in job.files):
            return
        for row in job.files:
            if row["file_state"] in FILE_ACTIVE_STATES or row["file_state"] == FileState.NOT_USED:
                row.update(file_state=FileState.CANCELED.value, reason=QUEUE_EXPIRED)
                row["finish_time"] = iso(now)
        job.finish(JobState.CANCELED, QUEUE_EXPIRED, now)

    # -- starting -----------------------------------------------------------------------

    def _start_staging(self, now: float) -> None:
        for job in self.store.live_jobs():
            for row in job.files:
                if row["file_state"] == FileState.STAGING:
                    params = _query(row["source_surl"])
                    row.update(
                        file_state=FileState.STARTED.value,
                        staging_start=iso(now),
                        staging_host=self.hostname,
                        bringonline_token="mock-token",
                    )
                    due = now + _seconds(params, "staging_time", self.default_duration)
                    self._runs[row["file_id"]] = _Run(job, row, "staging", now, due)

    def _start_transfers(self, now: float) -> None:
        free = self.concurrency - sum(r.phase == "transfer" for r in self._runs.values())
        if free <= 0:
            return
        queued = [
            (job, row)
            for job in self.store.live_jobs()
            for row in job.files
            if row["file_state"] == FileState.SUBMITTED
            and self._not_before.get(row["file_id"], now) <= now
        ]
        queued.sort(key=lambda pair: (-pair[0].record["priority"], pair[0].submitted_at))
        for job, row in queued[:free]:
            self._not_before.pop(row["file_id"], None)
            row.update(
                file_state=FileState.ACTIVE.value,
                start_time=iso(now),
                finish_time=None,
                transfer_host=self.hostname,
                pid=self._pid(),
                reason="",
                log_file=f"/var/log/fts3/transfers/{job.job_id}/{row['file_id']}.log",
            )
            duration = _seconds(_query(row["dest_surl"]), "time", self.default_duration)
            self._runs[row["file_id"]] = _Run(job, row, "transfer", now, now + duration)

    def _pid(self) -> int:
        self._next_pid += 1
        return self._next_pid

    # -- completing ---------------------------------------------------------------------

    def _complete(self, run: _Run, now: float) -> None:
        row = run.file
        if row["file_state"] != _PHASE_STATE[run.phase]:
            # Canceled meanwhile: the daemon kills the process and records when.
            row["finish_time"] = row["finish_time"] or iso(now)
            return
        if run.phase == "staging":
            self._complete_staging(run, now)
        elif run.phase == "transfer":
            self._complete_transfer(run, now)
        else:
            self._complete_archiving(run, now)

    def _complete_staging(self, run: _Run, now: float) -> None:
        row = run.file
        row["staging_finished"] = iso(now)
        code = _int(_query(row["source_surl"]), "staging_errno")
        if code:
            self._fail(run, Failure.of("SOURCE", code), now)
        elif row["source_surl"] == row["dest_surl"]:  # staging only: nothing to copy
            row.update(reason="", recoverable=False)
            self._finish(run, now)
        else:
            row["file_state"] = FileState.SUBMITTED.value

    def _complete_transfer(self, run: _Run, now: float) -> None:
        row, job = run.file, run.job
        outcome = self._copy(job, row)
        if isinstance(outcome, Failure):
            self._fail(run, outcome, now)
            return
        duration = max(now - run.started, 1e-6)
        row.update(
            filesize=outcome,
            tx_duration=round(duration, 3),
            throughput=round(outcome / duration / 2**20, 6),
            recoverable=False,
            reason="",
        )
        if job.record["archive_timeout"] > 0:
            row.update(file_state=FileState.ARCHIVING.value, archive_start_time=iso(now))
            due = now + _seconds(_query(row["dest_surl"]), "archiving_time", self.default_duration)
            self._runs[row["file_id"]] = _Run(job, row, "archiving", now, due)
            return
        self._finish(run, now)

    def _complete_archiving(self, run: _Run, now: float) -> None:
        row = run.file
        row["archive_finish_time"] = iso(now)
        code = _int(_query(row["dest_surl"]), "archiving_errno")
        if code:
            self._fail(run, Failure.of("DESTINATION", code), now)
        else:
            self._finish(run, now)

    def _finish(self, run: _Run, now: float) -> None:
        run.file.update(file_state=FileState.FINISHED.value, finish_time=iso(now))
        if run.job.record["job_type"] == "H":
            self._activate(run.job, run.file["file_index"] + 1)

    def _fail(self, run: _Run, failure: Failure, now: float) -> None:
        row, job = run.file, run.job
        recoverable = failure.recoverable
        if job.record["job_type"] != "R" and recoverable and row["retry"] < self._retries(job):
            job.record_retry(row, failure.reason, now)
            row.update(
                file_state=FileState.SUBMITTED.value,
                retry=row["retry"] + 1,
                reason=failure.reason,
                start_time=None,
                transfer_host=None,
                pid=None,
            )
            self._not_before[row["file_id"]] = now + max(job.record["retry_delay"], 0)
            return
        row.update(
            file_state=FileState.FAILED.value,
            finish_time=iso(now),
            reason=failure.reason,
            recoverable=recoverable,
        )
        if job.record["job_type"] == "R":
            self._activate(job, row["file_index"], after=row["file_id"])

    def _activate(self, job: StoredJob, file_index: int, after: int = -1) -> None:
        """Queue the next NOT_USED row of ``file_index`` (next hop or next replica)."""
        for row in job.files:
            if (
                row["file_index"] == file_index
                and row["file_id"] > after
                and row["file_state"] == FileState.NOT_USED
            ):
                row["file_state"] = FileState.SUBMITTED.value
                return

    def _retries(self, job: StoredJob) -> int:
        retry = job.record["retry"]
        return retry if retry > 0 else self.default_retries if retry == 0 else 0

    # -- the copy itself ----------------------------------------------------------------

    def _copy(self, job: StoredJob, row: dict) -> int | Failure:
        """Bytes copied, or why the attempt failed."""
        source, destination = self._local(row["source_surl"]), self._local(row["dest_surl"])
        overwrite = _may_overwrite(job.record["overwrite_flag"], row["retry"])
        verify = job.record["verify_checksum"]
        if source is not None and destination is not None:
            return _copy_files(source, destination, row["checksum"], verify, overwrite)
        return _mock_copy(row, verify, overwrite)

    def _local(self, url: str) -> Path | None:
        parsed = urlparse(url)
        prefix = f"{parsed.scheme}://{parsed.netloc}"
        root = self.storage.get(prefix)
        if root is None:
            return None
        path = (root / parsed.path.lstrip("/")).resolve()
        return path if path.is_relative_to(root.resolve()) else None


def _may_overwrite(flag: str | None, retry: int) -> bool:
    return flag == "Y" or (flag == "R" and retry > 0)


def _mock_copy(row: dict, verify: str, overwrite: bool) -> int | Failure:
    source, destination = _query(row["source_surl"]), _query(row["dest_surl"])
    if code := _int(source, "errno"):
        return Failure.of("SOURCE", code)
    code = _int(destination, "errno")
    if code and code != errno_codes.ENOENT:
        return Failure.of("DESTINATION", code)
    if _int(destination, "size_pre") > 0 and not overwrite:
        return Failure.of("DESTINATION", errno_codes.EEXIST, DESTINATION_EXISTS)
    user = _user_checksum(row["checksum"])
    mismatch = _checksum_mismatch(verify, user, _value(source, "checksum"), None)
    if mismatch:
        return mismatch
    code = _int(destination, "transfer_errno")
    attempts = _int(destination, "fail_attempts")
    if code and (not attempts or row["retry"] < attempts):
        return Failure.of("TRANSFER", code)
    source_value = _value(source, "checksum")
    mismatch = _checksum_mismatch(verify, user, source_value, _value(destination, "checksum"))
    if mismatch:
        return mismatch
    return _int(source, "size") or row["user_filesize"] or 0


def _copy_files(
    source: Path, destination: Path, checksum: str, verify: str, overwrite: bool
) -> int | Failure:
    if not source.is_file():
        return Failure.of("SOURCE", errno_codes.ENOENT)
    if destination.exists() and not overwrite:
        return Failure.of("DESTINATION", errno_codes.EEXIST, DESTINATION_EXISTS)
    algorithm = checksum.split(":", 1)[0].upper()
    user = _user_checksum(checksum)
    with source.open("rb") as stream:
        source_value = _digest(stream, algorithm)
    mismatch = _checksum_mismatch(verify, user, source_value, None)
    if mismatch:
        return mismatch
    destination.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with source.open("rb") as reader, destination.open("wb") as writer:
        while chunk := reader.read(1 << 20):
            writer.write(chunk)
            size += len(chunk)
    with destination.open("rb") as stream:
        destination_value = _digest(stream, algorithm)
    mismatch = _checksum_mismatch(verify, user, source_value, destination_value)
    if mismatch:
        destination.unlink()  # url-copy cleans up a bad copy
        return mismatch
    return size


def _digest(stream: BinaryIO, algorithm: str) -> str:
    if algorithm == "MD5":
        md5 = hashlib.md5(usedforsecurity=False)
        while chunk := stream.read(1 << 20):
            md5.update(chunk)
        return md5.hexdigest()
    adler = 1
    while chunk := stream.read(1 << 20):
        adler = zlib.adler32(chunk, adler)
    return f"{adler:08x}"


def _checksum_mismatch(
    verify: str, user: str | None, source: str | None, destination: str | None
) -> Failure | None:
    """Compare as ``fts_url_copy`` does for the job's mode letter; missing values pass.

    With ``destination`` None only the pre-copy check (user vs source) runs.
    """
    if destination is None:
        if verify in ("s", "b") and _differ(user, source):
            return _mismatch("SOURCE", "User defined checksum and source checksum", user, source)
        return None
    if verify == "b" and _differ(source, destination):
        return _mismatch("TRANSFER", "Source and destination checksums", source, destination)
    if verify in ("t", "b") and _differ(user, destination):
        return _mismatch(
            "DESTINATION", "User defined checksum and destination checksum", user, destination
        )
    return None


def _differ(first: str | None, second: str | None) -> bool:
    return bool(first and second) and _normal(first) != _normal(second)  # type: ignore[arg-type]


def _normal(value: str) -> str:
    return value.lower().lstrip("0") or "0"


def _mismatch(scope: str, what: str, first: str | None, second: str | None) -> Failure:
    return Failure(
        scope, errno_codes.EIO, f"CHECKSUM MISMATCH {what} do not match {first} != {second}"
    )


def _user_checksum(checksum: str | None) -> str | None:
    if not checksum or ":" not in checksum:
        return None
    return checksum.split(":", 1)[1] or None


def _query(url: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlparse(url).query).items()}


def _value(params: Mapping[str, str], name: str) -> str | None:
    return params.get(name) or None


def _int(params: Mapping[str, str], name: str) -> int:
    try:
        return int(params.get(name, 0))
    except ValueError:
        return 0


def _seconds(params: Mapping[str, str], name: str, default: float) -> float:
    try:
        return max(float(params[name]), 0.0)
    except (KeyError, ValueError):
        return default
