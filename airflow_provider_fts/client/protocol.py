"""The FTS REST protocol for jobs by id, written once for every HTTP library.

Nothing here sends anything. Requests are plain :class:`Request` descriptions (ids checked,
chunked by :data:`MAX_IDS_PER_REQUEST`, query parameters built); answers are read by the
functions below (multi-id lists and 207 entries, error entries to exceptions). Operations
that need several requests, and a decision between them (the archive fallback), are
generators that yield a request and receive its decoded body, or its error thrown in,
driven by an :class:`Exchange`. The sync client and the triggers' poller both run them with
:mod:`.sending`'s one policy (``transport.run(flow)``), over ``requests`` or ``httpx``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from airflow_provider_fts.client.errors import (
    FTSError,
    FTSValidationError,
    NotFound,
    error_from_job_entry,
    is_job_error_entry,
    is_transient,
)
from airflow_provider_fts.client.states import (
    SAMPLE_FILE_FIELDS,
    SUMMARY_FILE_FIELDS,
    JobState,
    ended_file_fields,
    has_ended,
)
from airflow_provider_fts.client.urls import netloc
from airflow_provider_fts.client.version import __version__

__all__ = [
    "DEFAULT_PORT",
    "MAX_IDS_PER_REQUEST",
    "Exchange",
    "Request",
    "check_id",
    "entries",
    "files_params",
    "is_transient",
    "job_round",
    "job_states",
    "jobs_or_archived",
    "normalise_endpoint",
    "request_headers",
]

log = logging.getLogger(__name__)

#: Ids per request: FTS sets no limit, but URLs must stay well under 8 KiB.
MAX_IDS_PER_REQUEST = 100
#: Jobs per request that reads their files: one answer is what a round holds in memory.
JOBS_PER_FILES_REQUEST = 20
MAX_LIST_LIMIT = 500
DEFAULT_PORT = 8446

_IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE"})

T = TypeVar("T")
#: Yields requests, receives each one's decoded body (or its error), returns ``T``.
Flow = Generator["Request", Any, T]


@dataclass(frozen=True)
class Request:
    """One HTTP request to FTS, before any library sends it.

    :param method: HTTP method.
    :param path: Path below the endpoint, ids already checked.
    :param params: Query parameters (sent with commas and colons literal).
    :param json_body: Body to send as JSON.
    :param job_ids: The job ids the request is about (a failed batch fails these).
    :param data: Body to send as is (a PEM chain), when there is no ``json_body``.
    """

    method: str
    path: str
    params: dict[str, str] | None = None
    json_body: Any = None
    job_ids: tuple[str, ...] = ()
    data: str | bytes | None = None

    @property
    def idempotent(self) -> bool:
        """Whether sending it twice is harmless, so it may be sent again after a fault.

        Reads, and cancels (a job or file already canceled is answered unchanged). POST
        and PUT never: a second submission or delegation is not the same as one.
        """
        return self.method in _IDEMPOTENT

    @property
    def target(self) -> str:
        """The path with its query string."""
        return with_query(self.path, self.params)


def with_query(path: str, params: dict[str, Any] | None) -> str:
    """``path?query``; commas and colons stay literal, as FTS's own clients send them."""
    return f"{path}?{urlencode(params, quote_via=quote, safe=',:')}" if params else path


class Exchange(Generic[T]):
    """Drives a :data:`Flow`: ``request`` is what to send next until ``done``."""

    def __init__(self, flow: Flow[T]) -> None:
        self._flow = flow
        self.request: Request | None = None
        self.result: T | None = None
        self.done = False
        self._step(flow.send, None)

    def answer(self, body: Any) -> None:
        """Hand the decoded body of ``request`` to the flow."""
        self._step(self._flow.send, body)

    def fail(self, error: FTSError) -> None:
        """Hand the error of ``request`` to the flow; re-raised unless the flow handles it."""
        self._step(self._flow.throw, error)

    def _step(self, step: Any, value: Any) -> None:
        try:
            self.request = step(value)
        except StopIteration as stop:
            self.request, self.result, self.done = None, stop.value, True


# -- headers --------------------------------------------------------------------


def default_user_agent(http_library: str) -> str:
    # Deliberately not "fts-<x>/<n.m>": the server changes some answers for its own clients.
    return f"airflow-provider-fts/{__version__} {http_library}"


def request_headers(http_library: str, *, user_agent: str | None = None) -> dict[str, str]:
    """The headers of every request: JSON answers, and our agent (the bearer token is
    each request's own, :func:`.sending.outgoing`)."""
    return {
        "Accept": "application/json",
        "User-Agent": user_agent or default_user_agent(http_library),
    }


# -- requests ---------------------------------------------------------------------------


def normalise_endpoint(endpoint: str, *, port: int | None = None, field: str = "endpoint") -> str:
    """``host``, ``host:port`` or ``https://host[:port]`` -> ``https://host:port``.

    ``port`` applies when the endpoint names none; ``field`` is the name errors give
    the endpoint (a connection calls it ``host``).
    """
    text = (endpoint or "").strip().rstrip("/")
    if not text:
        raise FTSValidationError(
            field, "is empty.", "Give the FTS REST endpoint, e.g. https://fts3.example.org:8446."
        )
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise FTSValidationError(
            field,
            f"{endpoint!r} is not an https URL of an FTS REST server.",
            "Use https://<host>:8446 (FTS REST speaks HTTPS only).",
        )
    if parts.path not in ("", "/"):
        raise FTSValidationError(
            field,
            f"{endpoint!r} has a path ({parts.path}).",
            "Give only the scheme, host and port, e.g. https://fts3.example.org:8446.",
        )
    return f"https://{netloc(parts.hostname, parts.port or port or DEFAULT_PORT)}"


def check_id(value: Any, field: str = "job_id") -> str:
    """A job or file id safe to put in a path (FTS ids never contain these characters)."""
    text = str(value).strip()
    if not text or text == "None" or any(c in text for c in ",/?#% "):
        raise FTSValidationError(
            field, f"{value!r} is not an FTS id.", "Pass the id FTS returned, e.g. a UUID."
        )
    return text


def files_params(files: bool = False, file_fields: Sequence[str] | None = None) -> dict | None:
    """``?files=``: the summary's file fields for ``files=True``, or the ``file_fields`` named."""
    if not isinstance(files, bool):
        raise FTSValidationError(
            "files",
            f"{files!r} is not True or False.",
            "Pass files=True for the summary's file fields, or file_fields=[...] to name them.",
        )
    if file_fields is not None:
        if isinstance(file_fields, str) or not file_fields:
            raise FTSValidationError(
                "file_fields",
                f"{file_fields!r} is not a non-empty list of field names.",
                "Pass e.g. file_fields=['file_state', 'dest_surl'].",
            )
        return {"files": ",".join(file_fields)}
    return {"files": ",".join(SUMMARY_FILE_FIELDS)} if files else None


def by_ids(
    method: str,
    job_ids: Iterable[str],
    *,
    params: dict | None = None,
    json_body: Any = None,
    per_request: int = MAX_IDS_PER_REQUEST,
) -> list[Request]:
    """One request per ``per_request`` checked ids, in the order given."""
    ids = [check_id(job_id) for job_id in job_ids]
    requests = []
    for start in range(0, len(ids), per_request):
        chunk = tuple(ids[start : start + per_request])
        requests.append(
            Request(
                method,
                # The trailing comma makes even one id answer with a list.
                f"/jobs/{','.join(chunk)},",
                params=params,
                json_body=json_body,
                job_ids=chunk,
            )
        )
    return requests


def priority_body(priority: Any) -> dict:
    """The body that sets a job's priority (1 lowest .. 5 highest), checked."""
    if not is_int_in(priority, 1, 5):
        raise FTSValidationError(
            "priority", f"{priority!r} is not an integer from 1 to 5.", "Use 1 (low) to 5 (high)."
        )
    return {"params": {"priority": priority}}


def archive_request(job_id: str) -> Request:
    return Request("GET", f"/archive/{check_id(job_id)}")


# -- answers ----------------------------------------------------------------------------


def entries(body: Any) -> list[dict]:
    """The entries of a multi-id answer (a lone object counts as one)."""
    if isinstance(body, dict):
        return [body]
    return [entry for entry in body or [] if isinstance(entry, dict)]


def is_not_found_entry(entry: dict) -> bool:
    return is_job_error_entry(entry) and str(entry.get("http_status", "")).startswith("404")


# -- flows ------------------------------------------------------------------------------


def send_all(requests: Iterable[Request]) -> Flow[list[dict]]:
    """Every request in turn; their entries, concatenated."""
    found: list[dict] = []
    for request in requests:
        found.extend(entries((yield request)))
    return found


def jobs_or_archived(
    job_ids: Iterable[str], *, files: bool = False, file_fields: Sequence[str] | None = None
) -> Flow[list[dict]]:
    """The jobs in the order asked; a job FTS purged from ``/jobs`` (a 404 entry there) comes
    from ``/archive/<id>`` with all its files. A job in neither stays its 404 entry (the
    caller says what a missing job means); any other error entry raises its error."""
    params = files_params(files, file_fields)
    found = yield from send_all(by_ids("GET", job_ids, params=params))
    for index, entry in enumerate(found):
        found[index] = yield from _or_archived(entry)
    return found


def job_states(job_ids: Iterable[str]) -> Flow[tuple[dict[str, dict], dict[str, FTSError]]]:
    """Each job's record (no files; an archived job with all its files), or its error.

    A batch lost to a transient fault is left out (asked again next round); a batch refused
    outright (401, a bad certificate) gives its error to every id in it.
    """
    records: dict[str, dict] = {}
    errors: dict[str, FTSError] = {}
    for request in by_ids("GET", job_ids):
        body = yield from _unless_transient(request, errors)
        for entry in entries(body):
            entry = yield from _or_archived(entry)
            if is_job_error_entry(entry):
                errors[entry["job_id"]] = error_from_job_entry(
                    entry, method="GET", path=request.path
                )
            else:
                records[entry["job_id"]] = entry
    return records, errors


def job_round(
    pending: Iterable[str], sample: Iterable[str], add: Callable[[dict], Any]
) -> Flow[dict[str, FTSError]]:
    """One poll round: what can have changed, and each job's files once.

    Asks for the records of the ``pending`` jobs without files. A job that ended gets its
    files in a second request, once, with only the fields its end needs
    (:func:`~.states.ended_file_fields`); a job of ``sample`` still running gets its file
    states (a progress sample). Each record is handed to ``add`` as it comes (so no round
    holds more than one answer's files); an ended job whose files were lost to a passing
    fault is not handed over at all, and is asked for again next round. Returns the jobs'
    errors (404, 403; a refused batch).
    """
    records, errors = yield from job_states(pending)
    ended: dict[tuple[str, ...], list[str]] = {}
    for job_id, record in records.items():
        # An archived record holds all its files already.
        if not has_ended(record.get("job_state")) or "files" in record:
            add(record)
        else:
            ended.setdefault(ended_file_fields(record["job_state"]), []).append(job_id)
    for fields, ids in ended.items():
        yield from _with_files(ids, fields, errors, add, ended=True)
    running = [
        i for i in dict.fromkeys(sample) if i in records and not has_ended(records[i]["job_state"])
    ]
    yield from _with_files(running, SAMPLE_FILE_FIELDS, errors, add, ended=False)
    return errors


def _with_files(
    job_ids: list[str],
    fields: Sequence[str],
    errors: dict[str, FTSError],
    add: Callable[[dict], Any],
    *,
    ended: bool,
) -> Flow[None]:
    """The jobs again with ``fields`` of their files, each handed to ``add`` if it is (still)
    ``ended`` or running, as asked: a job that ended since is read with its own fields."""
    params = files_params(file_fields=fields)
    for request in by_ids("GET", job_ids, params=params, per_request=JOBS_PER_FILES_REQUEST):
        body = yield from _unless_transient(request, errors)
        for entry in entries(body):
            entry = yield from _or_archived(entry)  # purged since: all its files
            if is_job_error_entry(entry):
                errors[entry["job_id"]] = error_from_job_entry(
                    entry, method="GET", path=request.path
                )
            elif has_ended(entry.get("job_state")) == ended:
                add(entry)


def _unless_transient(request: Request, errors: dict[str, FTSError]) -> Flow[Any]:
    """The answer to ``request``; None when it failed (a refusal is every id's error)."""
    try:
        return (yield request)
    except FTSError as error:
        if not is_transient(error):
            errors.update(dict.fromkeys(request.job_ids, error))
        log.warning("FTS poll of %d jobs failed: %s", len(request.job_ids), error)
        return None


def _or_archived(entry: dict) -> Flow[dict]:
    """A 404 entry's job from the archive, if the archive holds it (else the 404 entry); a
    record as is; any other error entry raised (the one policy for error entries)."""
    if is_job_error_entry(entry) and not is_not_found_entry(entry):
        raise error_from_job_entry(entry)
    if not is_not_found_entry(entry):
        return entry
    try:
        return (yield archive_request(entry["job_id"]))
    except NotFound:
        return entry


# -- listing ----------------------------------------------------------------------------


def list_params(**filters: Any) -> dict[str, str]:
    """The query of ``GET /jobs``; each filter checked, None left out."""
    params: dict[str, str] = {}
    for key, value in filters.items():
        if value is None:
            continue
        if key == "state_in":
            params[key] = _states(value)
        elif key == "limit":
            if not is_int_in(value, 1, MAX_LIST_LIMIT):
                raise FTSValidationError(
                    "list_jobs.limit",
                    f"{value!r} is not from 1 to {MAX_LIST_LIMIT} (FTS reads 0 as no limit).",
                    "Use a limit from 1 to 500, or leave it out.",
                )
            params[key] = str(value)
        elif key == "time_window":
            params[key] = _time_window(value)
        elif key == "fields":
            params[key] = value if isinstance(value, str) else ",".join(value)
        else:
            params[key] = str(value)
    return params


def _states(value: str | Iterable[str]) -> str:
    states = value.split(",") if isinstance(value, str) else list(value)
    try:
        return ",".join(JobState.parse(s).value for s in states)
    except ValueError as exc:
        raise FTSValidationError(
            "list_jobs.state_in", f"{exc}.", "Use FTS job state names."
        ) from None


def _time_window(value: Any) -> str:
    """FTS wants ``H`` or ``H:M``; accept hours or a timedelta."""
    if isinstance(value, timedelta):
        minutes = int(value.total_seconds() // 60)
        if minutes > 0:
            return f"{minutes // 60}:{minutes % 60}"
    elif isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return _time_window(timedelta(hours=value))
    elif isinstance(value, str) and value.replace(":", "", 1).isdigit():
        return value
    raise FTSValidationError(
        "list_jobs.time_window",
        f"{value!r} is not a positive number of hours, a timedelta or 'H:M'.",
        "Use e.g. time_window=24 or timedelta(hours=6).",
    )


def is_int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
