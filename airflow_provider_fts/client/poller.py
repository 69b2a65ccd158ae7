"""Wait for many FTS jobs at once from an event loop, with one poller per server and credential.

A triggerer runs hundreds of triggers on one event loop. If each polled its own job, a
thousand waiting jobs would cost a thousand requests per round. Instead every waiter
registers its job ids with the :class:`JobPoller` of its endpoint and credential, and the
poller asks for all of them in requests of up to :data:`BATCH_SIZE` ids (FTS answers
``GET /jobs/a,b,c`` with one list, and a 207 when some ids fail).

Only reads happen here (and ``cancel`` when asked): triggers may run twice or restart, so
waiting must have no side effect. No Airflow import: the poller is plain asyncio + httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_fts.client.errors import (
    FTSConnectionError,
    FTSError,
    NotFound,
    ServerError,
    error_from_job_entry,
    error_from_response,
    is_job_error_entry,
)
from airflow_provider_fts.client.states import SUMMARY_FILE_FIELDS, JobState
from airflow_provider_fts.client.transport import default_user_agent

if TYPE_CHECKING:
    import ssl

__all__ = ["BATCH_SIZE", "JobPoller", "shared_poller"]

log = logging.getLogger(__name__)

#: Ids per ``GET /jobs/<ids>``: FTS has no limit, but URLs must stay well under 8 KiB.
BATCH_SIZE = 100
#: Before its first round a poller waits this long, so triggers started together share it.
GATHER_SECONDS = 0.2

ProgressCallback = Callable[[list[dict]], None]


@dataclass(eq=False)
class _Waiter:
    job_ids: tuple[str, ...]
    interval: float
    on_poll: ProgressCallback | None
    done: asyncio.Future[list[dict]]
    records: dict[str, dict] = field(default_factory=dict)

    def pending(self) -> set[str]:
        return {i for i in self.job_ids if not _is_terminal(self.records.get(i))}


class JobPoller:
    """Polls the jobs of every waiter together, a round at a time, until none is left.

    :param endpoint: ``https://host:port`` of the FTS REST server.
    :param ssl_context: TLS settings, with the client certificate for X.509 credentials.
    :param token: Bearer token, for token credentials.
    :param timeout: Seconds for one request.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        token: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._ssl_context = ssl_context
        self._token = token
        self._timeout = timeout
        self._waiters: set[_Waiter] = set()
        self._task: asyncio.Task | None = None
        self._http: httpx.AsyncClient | None = None
        self.on_idle: Callable[[], None] | None = None
        self.rounds = 0  # completed poll rounds, for observability

    def __repr__(self) -> str:
        return f"JobPoller({self.endpoint!r}, waiters={len(self._waiters)})"

    async def wait(
        self,
        job_ids: Sequence[str],
        *,
        interval: float = 30.0,
        on_poll: ProgressCallback | None = None,
    ) -> list[dict]:
        """The job records (each with its ``files``) once every job is in a terminal state.

        ``on_poll`` receives the latest records after each round that saw them. Cancelling
        the caller only removes its waiter; other waiters keep being served.
        """
        waiter = _Waiter(
            tuple(dict.fromkeys(job_ids)),
            interval,
            on_poll,
            asyncio.get_running_loop().create_future(),
        )
        self._waiters.add(waiter)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"fts-poller {self.endpoint}")
        try:
            return await waiter.done
        finally:
            self._waiters.discard(waiter)

    async def cancel(self, job_ids: Sequence[str]) -> list[dict]:
        """Cancel jobs; the per-job answers (already terminal jobs come back unchanged)."""
        response = await self._request("DELETE", f"/jobs/{','.join(job_ids)}")
        return _entries(response)

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def _run(self) -> None:
        try:
            await asyncio.sleep(GATHER_SECONDS)
            while self._waiters:
                await self._poll_round()
                self.rounds += 1
                if not self._waiters:
                    break
                await asyncio.sleep(min(w.interval for w in self._waiters))
        except Exception as error:  # a bug here must not leave waiters hanging forever
            for waiter in self._waiters:
                if not waiter.done.done():
                    waiter.done.set_exception(error)
        finally:
            self._task = None
            if self.on_idle is not None and not self._waiters:
                self.on_idle()
            await self.aclose()

    async def _poll_round(self) -> None:
        waiters = [w for w in self._waiters if not w.done.done()]
        wanted = sorted({job_id for w in waiters for job_id in w.pending()})
        records: dict[str, dict] = {}
        errors: dict[str, FTSError] = {}
        for batch in _batches(wanted, BATCH_SIZE):
            try:
                found, failed = await self._get_jobs(batch)
            except (FTSConnectionError, ServerError) as error:
                log.warning(
                    "FTS poll of %d jobs failed, retrying next round: %s", len(batch), error
                )
                continue
            except FTSError as error:
                failed = dict.fromkeys(batch, error)
                found = {}
            records.update(found)
            errors.update(failed)
        for waiter in waiters:
            self._deliver(waiter, records, errors)

    def _deliver(self, waiter: _Waiter, records: dict[str, dict], errors: dict[str, FTSError]):
        waiter.records.update({i: records[i] for i in waiter.job_ids if i in records})
        error = next((errors[i] for i in waiter.job_ids if i in errors), None)
        if error is not None:
            waiter.done.set_exception(error)
            return
        if waiter.on_poll is not None and waiter.records:
            try:
                waiter.on_poll([waiter.records[i] for i in waiter.job_ids if i in waiter.records])
            except Exception:
                log.exception("FTS progress callback failed")
        if not waiter.pending():
            waiter.done.set_result([waiter.records[i] for i in waiter.job_ids])

    async def _get_jobs(self, job_ids: list[str]) -> tuple[dict[str, dict], dict[str, FTSError]]:
        path = f"/jobs/{','.join(job_ids)}"
        response = await self._request(
            "GET", path, params={"files": ",".join(SUMMARY_FILE_FIELDS)}, per_job_errors=True
        )
        found: dict[str, dict] = {}
        failed: dict[str, FTSError] = {}
        for entry in _entries(response):
            if is_job_error_entry(entry):
                failed[entry["job_id"]] = error_from_job_entry(entry, method="GET", path=path)
            else:
                found[entry["job_id"]] = entry
        for job_id, error in list(failed.items()):
            if isinstance(error, NotFound):
                with contextlib.suppress(NotFound):
                    found[job_id] = await self.get_archived_job(job_id)
                    del failed[job_id]
        return found, failed

    async def get_archived_job(self, job_id: str) -> dict:
        """A job FTS purged from ``/jobs`` to its archive (files included); ``NotFound`` if
        it is not there either. Archived jobs are terminal, so this is asked once per job."""
        return await self._request("GET", f"/archive/{job_id}")

    async def _request(
        self, method: str, path: str, *, params: dict | None = None, per_job_errors: bool = False
    ) -> Any:
        try:
            response = await self._client().request(method, path, params=params)
        except httpx.HTTPError as error:
            raise FTSConnectionError(f"{method} {self.endpoint}{path}: {error}") from None
        body = _json(response)
        # A lone id that fails comes back as its error entry with that status.
        if response.status_code < 300 or (per_job_errors and is_job_error_entry(body)):
            return body
        raise error_from_response(
            response.status_code,
            response.content,
            response.headers.get("content-type", ""),
            method=method,
            path=path,
        )

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            agent = default_user_agent(f"httpx/{httpx.__version__}")
            headers = {"Accept": "application/json", "User-Agent": agent}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            self._http = httpx.AsyncClient(
                base_url=self.endpoint,
                verify=self._ssl_context if self._ssl_context is not None else True,
                headers=headers,
                timeout=self._timeout,
            )
        return self._http


_REGISTRY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task]] = (
    weakref.WeakKeyDictionary()
)


async def shared_poller(key: str, create: Callable[[], Awaitable[JobPoller]]) -> JobPoller:
    """The poller of this event loop for ``key``, made with ``create`` if there is none.

    ``key`` must differ whenever the endpoint, trust or credential differ. A poller leaves
    the registry when its last waiter is served, so a renewed credential is picked up.
    """
    loop = asyncio.get_running_loop()
    pollers = _REGISTRY.setdefault(loop, {})
    task = pollers.get(key)
    if task is None:
        task = pollers[key] = loop.create_task(_create(create, pollers, key))
    try:
        return await asyncio.shield(task)
    except Exception:
        if pollers.get(key) is task:
            del pollers[key]
        raise


async def _create(
    create: Callable[[], Awaitable[JobPoller]], pollers: dict[str, asyncio.Task], key: str
) -> JobPoller:
    poller = await create()
    this = asyncio.current_task()

    def forget() -> None:
        if pollers.get(key) is this:
            del pollers[key]

    poller.on_idle = forget
    return poller


def _is_terminal(record: dict | None) -> bool:
    if record is None:
        return False
    with contextlib.suppress(ValueError):
        return JobState.parse(record.get("job_state", "")).is_terminal
    return False


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _entries(body: Any) -> list[dict]:
    if isinstance(body, dict):
        return [body]
    return [entry for entry in body or [] if isinstance(entry, dict)]


def _batches(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
