"""What the "FTS transfers" view shows of a DAG run: its FTS jobs, all tries, and their files.

The jobs are found as the operator finds them on a retry: each try's job of each chunk
has a deterministic id computed from the task instance, the try and the chunk
(:func:`airflow_provider_fts.sids.task_sid`), so the ids of every try are computed here and looked
up in one request per 100. The records are read through :class:`FTSHook` with the
task's connection and kept in a small bounded cache: an ended run for minutes, an
active one for seconds, so ten people looking at a run cost FTS one read.

Nothing here keeps a secret: file URLs lose their query (it may hold a signature) and
their user part before they are stored.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

from airflow_provider_fts.client.errors import (
    FTSConnectionError,
    FTSCredentialError,
    FTSError,
    FTSHTTPError,
    NotAuthorised,
    is_job_error_entry,
)
from airflow_provider_fts.client.states import FileState, JobState
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.sids import task_sid

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The file fields the view reads (``?files=``): no checksum, metadata or token id.
FILE_FIELDS = (
    "file_id",
    "file_state",
    "source_surl",
    "dest_surl",
    "filesize",
    "start_time",
    "finish_time",
    "reason",
    "recoverable",
)
#: Chunks probed per page when a task has not pushed its job ids (a try still submitting).
PROBE_CHUNKS = 10


class TaskTry(NamedTuple):
    """Which task instance, try and chunk submitted a job."""

    task_id: str
    map_index: int
    try_number: int
    chunk: int


class FileRow(NamedTuple):
    """One file of a job, as the table, the chart and the downloads use it."""

    job_id: str
    file_id: int
    state: str
    source: str
    destination: str
    size: int
    start: float | None
    finish: float | None
    reason: str
    recoverable: bool


@dataclass
class Job:
    """One FTS job of the run, with what its files say."""

    job_id: str
    made_by: TaskTry
    state: str
    submitted: float | None
    ended: float | None
    source_se: str
    dest_se: str
    url: str
    file_states: Counter[str] = field(default_factory=Counter)
    files: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    first_start: float | None = None
    last_finish: float | None = None

    @property
    def active(self) -> bool:
        return not JobState.parse(self.state).is_terminal

    @property
    def throughput(self) -> float | None:
        """Bytes finished per second between its first start and last finish."""
        return _rate(self.bytes_done, self.first_start, self.last_finish)

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "task_id": self.made_by.task_id,
            "map_index": self.made_by.map_index,
            "try_number": self.made_by.try_number,
            "chunk": self.made_by.chunk,
            "state": self.state,
            "submit_time": iso(self.submitted),
            "end_time": iso(self.ended),
            "source_se": self.source_se,
            "dest_se": self.dest_se,
            "monitoring_url": self.url,
            "files": self.files,
            "file_states": dict(sorted(self.file_states.items())),
            "bytes": self.bytes_total,
            "bytes_done": self.bytes_done,
            "throughput_bytes_s": self.throughput,
        }


@dataclass
class Report:
    """The run's jobs (oldest try first) and all their files."""

    jobs: list[Job]
    files: list[FileRow]
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def active(self) -> bool:
        return any(job.active for job in self.jobs)

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()``, once per report: a cached report answers each view from memory."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def only(self, task_id: str | None, map_index: int | None) -> Report:
        """The jobs (and files) of one task instance; all when ``task_id`` is None."""
        if task_id is None:
            return self
        return self.memo(("only", task_id, map_index), lambda: self._only(task_id, map_index))

    def _only(self, task_id: str, map_index: int | None) -> Report:
        jobs = [
            j
            for j in self.jobs
            if j.made_by.task_id == task_id and map_index in (None, j.made_by.map_index)
        ]
        ids = {j.job_id for j in jobs}
        return Report(jobs, [f for f in self.files if f.job_id in ids])


# -- finding the jobs ------------------------------------------------------------------


@dataclass(frozen=True)
class FTSTask:
    """A task instance that submits FTS jobs: where its tries' jobs must be."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    conn_id: str
    pushed: tuple[str, ...]  # the job ids its latest try pushed (one per chunk)

    def sid(self, try_number: int, chunk: int) -> str:
        """The sid the operator gave this chunk of that try (the one formula)."""
        return task_sid(self.dag_id, self.task_id, self.run_id, self.map_index, try_number, chunk)


def job_candidates(
    task: FTSTask, expected_id: Callable[[str], str], chunks: Iterable[int]
) -> dict[str, TaskTry]:
    """The id each try of ``task`` would have given each chunk's job."""
    return {
        expected_id(task.sid(t, c)): TaskTry(task.task_id, task.map_index, t, c)
        for t in range(1, max(task.try_number, 1) + 1)
        for c in chunks
    }


def read_jobs_with_files(
    hook: FTSHook, job_ids: Sequence[str], pushed: Collection[str] = ()
) -> list[dict]:
    """The records of the jobs FTS knows among ``job_ids``, each with its files.

    The one place the view reads files (the fields of :data:`FILE_FIELDS`). Most ids asked
    for are tries or chunks that never submitted: a missing one costs nothing more. Only
    when a ``pushed`` id (a job that surely existed) is missing, FTS purged the run's jobs,
    and the missing ones are looked for in its archive.
    """
    records = hook.get_jobs(list(job_ids), file_fields=FILE_FIELDS)
    missing = [r["job_id"] for r in records if is_job_error_entry(r)]
    if not set(missing) & set(pushed):
        return [r for r in records if not is_job_error_entry(r)]
    archived = hook.get_jobs_or_archived(missing, file_fields=FILE_FIELDS)
    return [r for r in records + archived if not is_job_error_entry(r)]


def find_jobs(hook: FTSHook, tasks: Sequence[FTSTask]) -> list[tuple[TaskTry, dict]]:
    """Every job of every try of ``tasks`` (one connection) that FTS knows, with its files.

    One lookup for all of them (a request per 100 ids). A task that pushed its ids has that
    many chunks; one that has not (its try is still submitting) is probed a page of chunks
    at a time, for as long as the last chunk of a page exists.
    """
    found: list[tuple[TaskTry, dict]] = []
    pending = {
        task: range(len(task.pushed) or PROBE_CHUNKS)
        for task in tasks
        if task.pushed or task.try_number  # a task that never ran submitted nothing
    }
    while pending:
        made_by: dict[str, TaskTry] = {}
        for task, chunks in pending.items():
            made_by.update(job_candidates(task, hook.expected_job_id, chunks))
            for chunk, job_id in enumerate(task.pushed):  # a reused job keeps its own try
                made_by.setdefault(job_id, TaskTry(task.task_id, task.map_index, 0, chunk))
        pushed = [job_id for task in pending for job_id in task.pushed]
        records = read_jobs_with_files(hook, list(made_by), pushed)
        found += [(made_by[r["job_id"]], r) for r in records]
        seen = {(m.task_id, m.map_index, m.chunk) for m in (made_by[r["job_id"]] for r in records)}
        pending = {
            task: range(chunks.stop, chunks.stop + PROBE_CHUNKS)
            for task, chunks in pending.items()
            if not task.pushed and (task.task_id, task.map_index, chunks.stop - 1) in seen
        }
    return found


def build_report(hook_for: Callable[[str], FTSHook], tasks: Sequence[FTSTask]) -> Report:
    """Read every job of ``tasks`` from FTS and turn them into a :class:`Report`."""
    jobs: list[Job] = []
    files: list[FileRow] = []
    by_connection: dict[str, list[FTSTask]] = {}
    for task in tasks:
        by_connection.setdefault(task.conn_id, []).append(task)
    with _collector_paused():  # 10^5 records: the cyclic GC would otherwise cost half
        for conn_id, group in by_connection.items():
            _read_jobs(hook_for, conn_id, group, jobs, files)
    order = {j.job_id: (j.made_by, j.submitted or 0) for j in jobs}
    jobs.sort(key=lambda j: order[j.job_id])
    files.sort(key=lambda f: (order[f.job_id], f.file_id))
    return Report(jobs, files)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile: the records made hold no cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_jobs(
    hook_for: Callable[[str], FTSHook],
    conn_id: str,
    tasks: list[FTSTask],
    jobs: list[Job],
    files: list[FileRow],
) -> None:
    """Add the jobs (and files) of every try of ``tasks`` to ``jobs`` and ``files``."""
    try:
        hook = hook_for(conn_id)
        found = [(m, r, hook.job_url(r["job_id"])) for m, r in find_jobs(hook, tasks)]
    except Exception as error:
        log.warning("FTS transfers view: reading FTS through %s failed: %s", conn_id, error)
        raise unavailable(error, conn_id) from None
    for made_by, record, url in found:
        job = _job(record, made_by, url)
        rows = _file_rows(job.job_id, record.get("files") or [])
        _count(job, rows)
        jobs.append(job)
        files += rows


def _job(record: dict, made_by: TaskTry, url: str) -> Job:
    return Job(
        job_id=record["job_id"],
        made_by=made_by,
        state=str(record.get("job_state") or "?"),
        submitted=_seconds(record.get("submit_time")),
        ended=_seconds(record.get("job_finished")),
        source_se=str(record.get("source_se") or ""),
        dest_se=str(record.get("dest_se") or ""),
        url=url,
    )


def _file_rows(job_id: str, records: list[dict]) -> list[FileRow]:
    """The job's files as rows; run once per file of a 10^6-file run, so kept lean."""
    seconds: dict[object, float | None] = {}  # FTS times have whole seconds: few distinct

    def at(value: object) -> float | None:
        if value not in seconds:
            seconds[value] = _seconds(value)
        return seconds[value]

    return [
        FileRow(
            job_id,
            int(r.get("file_id") or 0),
            str(r.get("file_state") or "?"),
            public_url(r.get("source_surl")),
            public_url(r.get("dest_surl")),
            int(r.get("filesize") or 0),
            at(r.get("start_time")),
            at(r.get("finish_time")),
            str(r.get("reason") or ""),
            bool(r.get("recoverable", r.get("current_failures"))),
        )
        for r in records
    ]


def _count(job: Job, rows: list[FileRow]) -> None:
    job.files = len(rows)
    job.file_states = Counter(r.state for r in rows)
    job.bytes_total = sum(r.size for r in rows)
    done = [r for r in rows if r.state == FileState.FINISHED]
    job.bytes_done = sum(r.size for r in done)
    starts = [r.start for r in done if r.start is not None]
    finishes = [r.finish for r in done if r.finish is not None]
    job.first_start = min(starts, default=None)
    job.last_finish = max(finishes, default=None)


def public_url(url: object) -> str:
    """A file URL without what may be secret: its query (signatures) and user part."""
    base, has_query, _ = str(url or "").partition("?")
    if "@" in base:
        scheme, has_authority, rest = base.partition("://")
        authority, slash, path = rest.partition("/")
        if has_authority and "@" in authority:
            base = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    return base + "?…" if has_query else base


# -- what the page shows ---------------------------------------------------------------


class Filters(NamedTuple):
    """The table's filters; an empty string matches everything."""

    state: str = ""
    reason: str = ""
    job: str = ""

    def match(self, files: Iterable[FileRow]) -> Iterator[FileRow]:
        for row in files:
            if self.state and row.state != self.state:
                continue
            if self.reason and row.reason != self.reason:
                continue
            if self.job and row.job_id != self.job:
                continue
            yield row


class FailureGroup(NamedTuple):
    reason: str
    recoverable: bool
    files: int


def failure_groups(files: Iterable[FileRow]) -> list[FailureGroup]:
    """Failed and canceled files by reason and recoverability, the largest group first."""
    counts = Counter(
        (f.reason or f.state, f.recoverable)
        for f in files
        if f.state in (FileState.FAILED, FileState.CANCELED)
    )
    return [FailureGroup(r, rec, n) for (r, rec), n in counts.most_common()]


def progress(files: Iterable[FileRow], points: int = 120) -> list[tuple[float, int, int]]:
    """``(time, files done, bytes done)`` after each finished file, at most ``points`` of them."""
    done = sorted((f.finish, f.size) for f in files if f.state == FileState.FINISHED and f.finish)
    series: list[tuple[float, int, int]] = []
    total = 0
    step = max(1, len(done) // points)
    for index, (finish, size) in enumerate(done, 1):
        total += size
        if index % step == 0 or index == len(done):
            series.append((finish, index, total))
    return series


def throughput(files: Iterable[FileRow]) -> float | None:
    """Bytes finished per second over the run's transfer window."""
    done = [f for f in files if f.state == FileState.FINISHED]
    starts = [f.start for f in done if f.start is not None]
    finishes = [f.finish for f in done if f.finish is not None]
    return _rate(sum(f.size for f in done), min(starts, default=None), max(finishes, default=None))


# -- when FTS cannot be read -----------------------------------------------------------


class Unavailable(Exception):
    """FTS could not be read: what happened and what to do, fit for the page."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


def unavailable(error: Exception, conn_id: str) -> Unavailable:
    """The page's message for ``error``; our errors carry no secret, others are named only."""
    where = f"the Airflow connection {conn_id!r}"
    if isinstance(error, (FTSCredentialError, OSError)):
        return Unavailable(
            f"The API server cannot use the FTS credential of {where}: {error}",
            "Mount the proxy (or certificate and key) at the same path on the API server as "
            "on the workers, readable by the user the API server runs as, and keep it renewed.",
        )
    if isinstance(error, NotAuthorised):
        return Unavailable(
            f"FTS refused the credential of {where}: {error}",
            "Renew the proxy or token the connection points to.",
        )
    if isinstance(error, FTSConnectionError):
        return Unavailable(
            f"The API server cannot reach FTS through {where}: {error}",
            "The API server (not only the workers) must reach the FTS REST port and trust "
            "its certificate; check the firewall, the host and the CA path.",
        )
    if isinstance(error, (FTSHTTPError, FTSError)):
        return Unavailable(f"FTS answered with an error for {where}: {error}", "Try again later.")
    if type(error).__name__ == "AirflowNotFoundException":
        return Unavailable(
            f"The Airflow connection {conn_id!r} is not defined where the API server can read it.",
            "Define it in the metadata database or a secrets backend the API server uses.",
        )
    return Unavailable(
        f"Reading FTS through {where} failed ({type(error).__name__}).",
        "See the API server's log for the details.",
    )


# -- the cache -------------------------------------------------------------------------


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: Report | Unavailable | None = None
    until: float = 0.0
    size: int = 0


class ReportCache:
    """Reports by key, bounded by their total files; one read per key at a time.

    :param max_files: most files kept in all cached reports together.
    :param max_entries: most reports (and failures) kept.
    :param ended_ttl: seconds a report of ended jobs is kept.
    :param active_ttl: seconds a report with active jobs (or a failure) is kept.
    """

    def __init__(
        self,
        max_files: int = 500_000,
        max_entries: int = 256,
        ended_ttl: float = 600.0,
        active_ttl: float = 10.0,
    ) -> None:
        self.max_files = max_files
        self.max_entries = max_entries
        self.ended_ttl = ended_ttl
        self.active_ttl = active_ttl
        self._entries: OrderedDict[Any, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, build: Callable[[], Report]) -> Report:
        """The cached report, or ``build()``'s; raises the cached :class:`Unavailable`."""
        with self._lock:
            entry = self._entries.setdefault(key, _Entry())
            self._entries.move_to_end(key)
        with entry.lock:  # viewers of the same run wait for one read
            if entry.value is None or time.monotonic() >= entry.until:
                self._fill(entry, build)
        with self._lock:
            self._evict()
        if isinstance(entry.value, Unavailable):
            raise entry.value
        assert entry.value is not None
        return entry.value

    def _fill(self, entry: _Entry, build: Callable[[], Report]) -> None:
        try:
            entry.value = build()
        except Unavailable as error:
            entry.value = error
        active = not isinstance(entry.value, Report) or entry.value.active
        entry.until = time.monotonic() + (self.active_ttl if active else self.ended_ttl)
        entry.size = len(entry.value.files) if isinstance(entry.value, Report) else 0

    def _evict(self) -> None:
        total = sum(e.size for e in self._entries.values())
        while len(self._entries) > 1 and (
            total > self.max_files or len(self._entries) > self.max_entries
        ):
            _, oldest = self._entries.popitem(last=False)
            total -= oldest.size


# -- small helpers ---------------------------------------------------------------------


def _seconds(value: object) -> float | None:
    """FTS's naive-UTC ISO time as epoch seconds."""
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rate(size: int, start: float | None, end: float | None) -> float | None:
    if not size or start is None or end is None:
        return None
    return size / max(end - start, 1.0)  # FTS times have whole seconds
