"""The emulator's transfer engine: what the FTS daemon and ``fts_url_copy`` would do.

Each :meth:`Engine.step` is one scheduler pass over the :class:`~.store.JobStore`:

* queued jobs past ``max_time_in_queue`` are canceled;
* files waiting in ``TOKEN_PREP`` move to their own state ``token_prep_delay`` seconds after
  submission (the daemon's token exchange has then got a refresh token for them);
* due staging, transfers and archive polls complete (real byte copies for mapped storage,
  scripted outcomes for ``mock://``);
* STAGING files start staging, SUBMITTED files start transferring (highest job priority
  first, at most ``concurrency`` at a time).

Each attempt is :func:`~.copies.copy_once` (real bytes or a scripted ``mock://`` outcome).

Retries: ``retry`` > 0 allows that many, ``retry`` < 0 none, ``retry`` 0 the engine's
``default_retries`` (0 unless configured; the real default is a server setting);
``retry_delay`` is in seconds (0: retry at the next pass). Only recoverable failures
are retried (the heuristic of ``fts_url_copy``); multi-replica jobs move to the next
replica instead; multihop jobs fail at the first failed hop (later hops stay NOT_USED,
the daemon's default without ``CancelUnusedMultihopFiles``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from airflow_provider_fts.client.states import FileState, JobState
from airflow_provider_fts.testing.copies import (
    Failure,
    copy_once,
    int_param,
    seconds_param,
    url_params,
)
from airflow_provider_fts.testing.records import FILE_ACTIVE_STATES, StoredJob, iso
from airflow_provider_fts.testing.store import JobStore

__all__ = ["Engine"]

QUEUE_EXPIRED = "Job has been canceled because it stayed in the queue for too long"


@dataclass
class _Run:
    """One file the engine is working on: what phase, until when."""

    job: StoredJob
    file: dict
    phase: str  # "staging" | "transfer" | "archiving"
    started: float
    due: float


#: Row states that may still start (token exchange, staging, transfer).
_WAITING = frozenset({FileState.TOKEN_PREP, FileState.STAGING, FileState.SUBMITTED})

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
        token_prep_delay: float = 0.5,
    ) -> None:
        self.store = store
        self.storage = {prefix.rstrip("/"): Path(root) for prefix, root in (storage or {}).items()}
        self.tick = tick
        self.default_duration = default_duration
        self.clock = clock
        self.concurrency = concurrency
        self.default_retries = default_retries
        self.hostname = hostname
        self.token_prep_delay = token_prep_delay  # tests may change it on a running engine
        self._runs: dict[int, _Run] = {}
        self._not_before: dict[int, float] = {}
        # What may start, so that a pass costs what changes, not every stored file:
        # per job, its rows in TOKEN_PREP, STAGING and SUBMITTED (by file id).
        self._waiting: dict[str, dict[int, dict]] = {}
        self._token_prep: set[str] = set()  # jobs with rows in TOKEN_PREP
        self._staging: set[str] = set()  # jobs with rows in STAGING
        self._touched: set[str] = set()  # jobs whose rows changed in this pass
        self._jobs_by_destination: dict[str, list[str]] = {}
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
            live = {job.job_id: job for job in self.store.live_jobs()}
            for job_id in self._waiting.keys() - live.keys():
                del self._waiting[job_id]  # ended (canceled, expired) with rows unstarted
            self._token_prep &= live.keys()
            self._staging &= live.keys()
            self._touched = set()
            for job in live.values():
                if job.job_id not in self._waiting:
                    self._first_sight(job)
                self._expire_if_queued_too_long(job, now)
            for job_id in list(self._token_prep):
                self._release_token_prep(live[job_id], now)
            for file_id, run in sorted(self._runs.items(), key=lambda item: item[1].due):
                # A canceled transfer frees its slot at once, as the daemon kills it.
                if run.due <= now or run.file["file_state"] != _PHASE_STATE[run.phase]:
                    del self._runs[file_id]
                    self._touched.add(run.job.job_id)
                    self._complete(run, now)
            self._start_staging(live, now)
            self._start_transfers(live, now)
            for job_id in self._touched:
                if job_id in live:
                    live[job_id].refresh_state(now)

    def _first_sight(self, job: StoredJob) -> None:
        waiting = {row["file_id"]: row for row in job.files if row["file_state"] in _WAITING}
        self._waiting[job.job_id] = waiting
        states = {row["file_state"] for row in waiting.values()}
        if FileState.TOKEN_PREP in states:
            self._token_prep.add(job.job_id)
        if FileState.STAGING in states:
            self._staging.add(job.job_id)
        self._touched.add(job.job_id)

    def _wait(self, job: StoredJob, row: dict) -> None:
        """``row`` of ``job`` may start again (a retry, a next hop or replica, staged)."""
        self._waiting.setdefault(job.job_id, {})[row["file_id"]] = row
        self._touched.add(job.job_id)

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

    def _release_token_prep(self, job: StoredJob, now: float) -> None:
        if now < job.submitted_at + self.token_prep_delay:
            return
        for row in self._waiting[job.job_id].values():
            if row["file_state"] == FileState.TOKEN_PREP:
                row["file_state"] = row["file_state_initial"]
                if row["file_state"] == FileState.STAGING:
                    self._staging.add(job.job_id)
        self._token_prep.discard(job.job_id)
        self._touched.add(job.job_id)

    # -- starting -----------------------------------------------------------------------

    def _start_staging(self, live: dict[str, StoredJob], now: float) -> None:
        for job_id in self._staging:
            job, waiting = live[job_id], self._waiting[job_id]
            for row in list(waiting.values()):
                if row["file_state"] == FileState.STAGING:
                    params = url_params(row["source_surl"])
                    row.update(
                        file_state=FileState.STARTED.value,
                        staging_start=iso(now),
                        staging_host=self.hostname,
                        bringonline_token="mock-token",
                    )
                    due = now + seconds_param(params, "staging_time", self.default_duration)
                    self._runs[row["file_id"]] = _Run(job, row, "staging", now, due)
                    del waiting[row["file_id"]]
                    self._touched.add(job_id)
        self._staging.clear()

    def _start_transfers(self, live: dict[str, StoredJob], now: float) -> None:
        free = self.concurrency - sum(r.phase == "transfer" for r in self._runs.values())
        # Highest priority first, then the oldest job, then file order: stop when full.
        jobs = sorted(
            (live[job_id] for job_id, waiting in self._waiting.items() if waiting),
            key=lambda job: (-job.record["priority"], job.submitted_at),
        )
        for job in jobs:
            if free <= 0:
                return
            waiting = self._waiting[job.job_id]
            for file_id in sorted(waiting):
                row = waiting[file_id]
                if row["file_state"] not in _WAITING:
                    del waiting[file_id]  # canceled meanwhile
                    continue
                if row["file_state"] != FileState.SUBMITTED or (
                    self._not_before.get(file_id, now) > now
                ):
                    continue
                del waiting[file_id]
                self._start_transfer(job, row, now)
                free -= 1
                if free <= 0:
                    return

    def _start_transfer(self, job: StoredJob, row: dict, now: float) -> None:
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
        duration = seconds_param(url_params(row["dest_surl"]), "time", self.default_duration)
        self._runs[row["file_id"]] = _Run(job, row, "transfer", now, now + duration)
        self._touched.add(job.job_id)

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
        code = int_param(url_params(row["source_surl"]), "staging_errno")
        if code:
            self._fail(run, Failure.of("SOURCE", code), now)
        elif row["source_surl"] == row["dest_surl"]:  # staging only: nothing to copy
            row.update(reason="", recoverable=False)
            self._finish(run, now)
        else:
            row["file_state"] = FileState.SUBMITTED.value
            self._wait(run.job, row)

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
            due = now + seconds_param(
                url_params(row["dest_surl"]), "archiving_time", self.default_duration
            )
            self._runs[row["file_id"]] = _Run(job, row, "archiving", now, due)
            return
        self._finish(run, now)

    def _complete_archiving(self, run: _Run, now: float) -> None:
        row = run.file
        row["archive_finish_time"] = iso(now)
        code = int_param(url_params(row["dest_surl"]), "archiving_errno")
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
            self._wait(job, row)
            return
        if url_params(row["dest_surl"]).get("recoverable") == "unknown":
            recoverable = None  # as older servers and some failure paths leave it
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
                self._wait(job, row)
                return

    def _retries(self, job: StoredJob) -> int:
        retry = job.record["retry"]
        return retry if retry > 0 else self.default_retries if retry == 0 else 0

        # -- the copy itself ----------------------------------------------------------------

    def _copy(self, job: StoredJob, row: dict) -> int | Failure:
        """Bytes copied, or why the attempt failed."""
        source, destination = self._local(row["source_surl"]), self._local(row["dest_surl"])
        record = job.record
        jobs = self._jobs_by_destination.setdefault(row["dest_surl"], [])
        if record["job_id"] not in jobs:
            jobs.append(record["job_id"])
        return copy_once(
            source,
            destination,
            row,
            record["verify_checksum"],
            record["overwrite_flag"],
            job_number=jobs.index(record["job_id"]) + 1,
        )

    def _local(self, url: str) -> Path | None:
        parsed = urlparse(url)
        prefix = f"{parsed.scheme}://{parsed.netloc}"
        root = self.storage.get(prefix)
        if root is None:
            return None
        path = (root / parsed.path.lstrip("/")).resolve()
        return path if path.is_relative_to(root.resolve()) else None
