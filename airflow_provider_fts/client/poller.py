"""Wait for many FTS jobs at once from an event loop, with one poller per server and credential.

A triggerer runs hundreds of triggers on one event loop. If each polled its own job, a
thousand waiting jobs would cost a thousand requests per round. Instead every waiter
registers its job ids with the :class:`JobPoller` of its endpoint and credential, and the
poller asks for all of them in requests of up to 100 ids (FTS answers ``GET /jobs/a,b,c,``
with one list, and a 207 when some ids fail). What to ask and how to read the answers is
:mod:`.protocol`'s, and how to send them :mod:`.sending`'s, both shared with the sync client
(:class:`~.transport.AsyncTransport` sends them with httpx).

Only reads happen here: triggers may run twice or restart, so waiting must have no side
effect. No Airflow import: the poller is plain asyncio + httpx.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_fts.client import protocol
from airflow_provider_fts.client.states import SAMPLE_SECONDS, JobSummary, Tally
from airflow_provider_fts.client.transport import AsyncTransport

if TYPE_CHECKING:
    import ssl

    from airflow_provider_fts.client.bearer import Bearer
    from airflow_provider_fts.client.credentials import Trust
    from airflow_provider_fts.client.sending import RetryPolicy

__all__ = ["JobPoller", "shared_poller"]

log = logging.getLogger(__name__)

#: Before its first round a poller waits this long, so triggers started together share it.
GATHER_SECONDS = 0.2

ProgressCallback = Callable[[JobSummary], None]


@dataclass(eq=False)
class _Waiter:
    """One wait: the poller feeds ``tally`` (or sets ``error``) and sets ``updated``; the
    waiting coroutine itself reads them, so its callback runs in its own task. It holds
    per-job state only (:class:`~.states.Tally`), whatever the number of files."""

    tally: Tally
    interval: float
    error: BaseException | None = None
    heard: bool = False  # a record came since the last update
    updated: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def served(self) -> bool:
        return self.error is not None or self.tally.ended


class JobPoller:
    """Polls the jobs of every waiter together, a round at a time, until none is left.

    :param endpoint: ``https://host:port`` of the FTS REST server.
    :param ssl_context: TLS settings, with the client certificate for X.509 credentials.
    :param trust: The CAs ``ssl_context`` verifies the server with (named in errors).
    :param timeout: Seconds for one request: (connect, read), or one number for both.
    :param bearer: Where each request's bearer token comes from (static or OIDC-renewed).
    :param retry: How a request is sent again after a passing fault (as the sync client).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        trust: Trust | None = None,
        timeout: float | tuple[float, float] = 60.0,
        bearer: Bearer | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        timeouts = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self._transport = AsyncTransport(
            self.endpoint, ssl_context, trust=trust, bearer=bearer, timeout=timeouts, retry=retry
        )
        self._waiters: set[_Waiter] = set()
        self._task: asyncio.Task | None = None
        self.on_idle: Callable[[], None] | None = None
        self.rounds = 0  # completed poll rounds, for observability

    def __repr__(self) -> str:
        return f"JobPoller({self.endpoint!r}, waiting={self.waiting})"

    @property
    def waiting(self) -> int:
        """How many waits are in progress."""
        return len(self._waiters)

    @property
    def connected(self) -> bool:
        """Whether the poller holds an open HTTP client (it opens one for its next request)."""
        return self._transport.connected

    async def wait(
        self,
        job_ids: Sequence[str],
        *,
        interval: float = 30.0,
        on_poll: ProgressCallback | None = None,
        sample_every: float = SAMPLE_SECONDS,
    ) -> JobSummary:
        """The jobs' summary (:func:`~.states.summarize_jobs`) once every job has ended.

        ``on_poll`` receives the summary after each round that heard of these jobs, called
        from this coroutine (its task and context, so log lines land where the caller's
        go). Cancelling the caller only removes its waiter; other waiters keep being served.

        :param sample_every: Seconds between progress samples of running jobs' files.
        """
        ids = [protocol.check_id(job_id) for job_id in job_ids]
        waiter = _Waiter(Tally(ids, sample_every=sample_every), interval)
        self._waiters.add(waiter)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"fts-poller {self.endpoint}")
        try:
            return await _follow(waiter, on_poll)
        finally:
            self._waiters.discard(waiter)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _retire(self) -> None:
        """Leave the registry (a new credential is then picked up) and close the client."""
        if self.on_idle is not None:
            self.on_idle()
        await self.aclose()

    async def _run(self) -> None:
        try:
            await asyncio.sleep(GATHER_SECONDS)
            while self._unserved():
                await self._poll_round()
                self.rounds += 1
                if not self._unserved():
                    break
                await asyncio.sleep(min(w.interval for w in self._unserved()))
        except Exception as error:  # a bug here must not leave waiters hanging forever
            for waiter in self._unserved():
                waiter.error = error
                waiter.updated.set()
        finally:
            self._task = None
            if not self._unserved():
                await self._retire()

    def _unserved(self) -> list[_Waiter]:
        return [w for w in self._waiters if not w.served]

    async def _poll_round(self) -> None:
        """One round for every waiter: each job asked once, whoever waits for it."""
        waiters = self._unserved()
        by_job: dict[str, list[_Waiter]] = {}
        for waiter in waiters:
            for job_id in waiter.tally.pending():
                by_job.setdefault(job_id, []).append(waiter)
        sample = dict.fromkeys(job_id for w in waiters for job_id in w.tally.to_sample())

        def add(record: dict) -> None:
            for waiter in by_job.get(record["job_id"], ()):
                waiter.tally.add(record)
                waiter.heard = True

        errors = await self._exchange(protocol.job_round(list(by_job), list(sample), add))
        for waiter in waiters:
            waiter.error = next((errors[i] for i in waiter.tally.job_states if i in errors), None)
            if waiter.error is not None or waiter.heard:
                waiter.heard = False
                waiter.updated.set()

    async def _exchange(self, flow: protocol.Flow[Any]) -> Any:
        """Send a protocol flow's requests one by one, handing back answers and errors."""
        return await self._transport.run(flow)


async def _follow(waiter: _Waiter, on_poll: ProgressCallback | None) -> JobSummary:
    """Wait for the poller's updates of one waiter; runs in the waiting coroutine."""
    while True:
        await waiter.updated.wait()
        waiter.updated.clear()
        if waiter.error is not None:
            raise waiter.error
        summary = waiter.tally.summary()
        if on_poll is not None:
            try:
                on_poll(summary)
            except Exception:
                log.exception("FTS progress callback failed")
        if waiter.tally.ended:
            return summary


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
