"""Several FTS endpoints of one connection: which server to use, where each job is, and a
submission that never doubles a job.

Every server gets its own :class:`~.client.FTSClient`: its own delegation (the delegation
cache is keyed by endpoint), its own token audience. A deterministic job id is the same on
every server (``uuid5(uuid5(BASE_ID, vo), sid)``), but nothing stops two servers from each
accepting the same ``sid``: only the client can prevent a second copy. The rule
(:meth:`Endpoints.submit`):

* a server is left for the next one only when it surely does not hold the job: nothing
  was submitted to it (a step before the submission failed, or the submission never
  reached it: ``maybe_sent=False``), or it answered that the expected id does not exist;
* after an ambiguous failure (a timeout or a reset after sending, a 502/503/504) the same
  server is asked for the expected id until it answers, for at most ``wait`` seconds, and
  no other server is tried meanwhile. A server that answers "no such job" gets the
  submission again (a late first copy answers 409 there); when the wait ends, the
  submission fails with :class:`~.errors.AmbiguousSubmission` naming the job it may have.

Health (:class:`EndpointHealth`): a server that just failed is tried after the others for
``cool_down`` seconds by every connection of the process. Locations
(:class:`JobLocations`): where this process submitted or found each job, so that reads,
cancels and priorities go to the server that holds it; a job it does not know is looked
for on the servers in order.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_fts.client.errors import (
    AmbiguousSubmission,
    FTSConnectionError,
    FTSError,
    FTSValidationError,
    TryAgain,
    error_from_job_entry,
    is_job_error_entry,
)
from airflow_provider_fts.client.states import JobSummary, merge_summaries

if TYPE_CHECKING:
    from airflow_provider_fts.client.client import FTSClient
    from airflow_provider_fts.client.poller import JobPoller

__all__ = [
    "COOL_DOWN",
    "DEFAULT_FAILOVER_WAIT",
    "POLICIES",
    "EndpointHealth",
    "Endpoints",
    "JobLocations",
    "wait_by_endpoint",
]

log = logging.getLogger(__name__)

#: ``failover`` tries the endpoints in the connection's order; ``random`` spreads
#: submissions over the healthy ones.
POLICIES = ("failover", "random")
#: Seconds a submission keeps asking a server that may hold its job (``failover_wait_seconds``).
DEFAULT_FAILOVER_WAIT = 600.0
#: Seconds a server that failed is tried after the others.
COOL_DOWN = 60.0
#: Seconds between two questions to a server that may hold a job.
PROBE_INTERVAL = 5.0


class EndpointHealth:
    """When each server last failed, and why: one per process, shared by every connection.

    :param cool_down: Seconds a failed server is tried after the others.
    """

    def __init__(self, cool_down: float = COOL_DOWN) -> None:
        self.cool_down = cool_down
        self._failed: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def failed(self, endpoint: str, reason: str) -> None:
        with self._lock:
            self._failed[endpoint] = (time.monotonic(), reason)

    def succeeded(self, endpoint: str) -> None:
        with self._lock:
            self._failed.pop(endpoint, None)

    def clear(self) -> None:
        with self._lock:
            self._failed.clear()

    def cooling(self, endpoint: str) -> str | None:
        """Why the server is cooling down (None: it is healthy)."""
        with self._lock:
            at, reason = self._failed.get(endpoint, (None, ""))
        if at is None or time.monotonic() - at >= self.cool_down:
            return None
        return f"it failed {time.monotonic() - at:.0f} s ago ({reason})"


class JobLocations:
    """Which server holds each job, as far as this process knows; the most recent ``size``.

    :param size: How many jobs to remember.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._where: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, job_id: str, endpoint: str) -> None:
        with self._lock:
            self._where.pop(job_id, None)
            self._where[job_id] = endpoint
            while len(self._where) > self.size:
                self._where.popitem(last=False)

    def get(self, job_id: str) -> str | None:
        with self._lock:
            return self._where.get(job_id)

    def clear(self) -> None:
        with self._lock:
            self._where.clear()


#: What the process knows, shared by every connection unless one is given its own.
SHARED_HEALTH = EndpointHealth()
SHARED_LOCATIONS = JobLocations()


class _NotHeld(Exception):
    """The server surely does not hold the job: the next one may be asked."""


class Endpoints:
    """The servers of one connection, each with its client made on first use.

    :param endpoints: ``https://host:port`` of each server, in order of preference.
    :param connect: Makes the client of one endpoint.
    :param policy: One of :data:`POLICIES`.
    :param wait: Longest time (seconds) a submission asks a server that may hold its job.
    :param probe_interval: Seconds between those questions (default 5, or a tenth of the
        wait when that is shorter).
    :param health: Which servers failed lately (the process's by default).
    :param locations: Where each job is (the process's by default).
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        connect: Callable[[str], FTSClient],
        *,
        policy: str = POLICIES[0],
        wait: float = DEFAULT_FAILOVER_WAIT,
        probe_interval: float | None = None,
        health: EndpointHealth | None = None,
        locations: JobLocations | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise FTSValidationError("policy", f"{policy!r} is not a policy.", f"Use {POLICIES}.")
        self.endpoints = tuple(endpoints)
        self.policy = policy
        self.wait = wait
        self.probe_interval = probe_interval or min(PROBE_INTERVAL, wait / 10)
        self.health = SHARED_HEALTH if health is None else health
        self.locations = SHARED_LOCATIONS if locations is None else locations
        self._connect = connect
        self._clients: dict[str, FTSClient] = {}
        self._lock = threading.Lock()

    def client(self, endpoint: str) -> FTSClient:
        with self._lock:
            if endpoint not in self._clients:
                self._clients[endpoint] = self._connect(endpoint)
            return self._clients[endpoint]

    @property
    def primary(self) -> FTSClient:
        """The client of the first endpoint (the connection's host)."""
        return self.client(self.endpoints[0])

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # -- submission -------------------------------------------------------------------

    def submission_order(self) -> list[str]:
        """The servers to try: the healthy ones (shuffled under ``random``), then those
        cooling down after a failure, in the connection's order."""
        healthy = [e for e in self.endpoints if self.health.cooling(e) is None]
        if self.policy == "random":
            random.shuffle(healthy)
        cooling = [e for e in self.endpoints if e not in healthy]
        for endpoint in cooling:
            log.info("FTS endpoint %s tried last: %s", endpoint, self.health.cooling(endpoint))
        return healthy + cooling

    def submit(self, transfers: Iterable[Any], *, sid: str | None = None, **job_params: Any) -> str:
        """Submit one job to one server, never to two; return its id (see the module)."""
        if len(self.endpoints) == 1:
            return self.primary.submit_job(transfers, sid=sid, **job_params)
        job_params.setdefault("id_generator", "deterministic")
        if job_params["id_generator"] == "deterministic":
            sid = sid or uuid.uuid4().hex
        transfers = list(transfers)  # read once per server tried
        left: list[str] = []
        for endpoint in self.submission_order():
            try:
                job_id = self._submit_to(self.client(endpoint), transfers, sid, job_params)
            except _NotHeld as why:
                self.health.failed(endpoint, str(why))
                left.append(f"{endpoint}: {why}")
                log.warning("FTS endpoint %s not used (%s); trying the next one", endpoint, why)
                continue
            self.health.succeeded(endpoint)
            self.locations.remember(job_id, endpoint)
            log.info("Submitted FTS job %s to %s", job_id, endpoint)
            return job_id
        raise FTSConnectionError(
            "No FTS endpoint took the submission (none holds it): " + "; ".join(left),
            maybe_sent=False,
        )

    def _submit_to(
        self, client: FTSClient, transfers: list[Any], sid: str | None, job_params: dict
    ) -> str:
        try:
            client.whoami()
            client.ensure_delegation()
        except FTSValidationError:
            raise  # the same everywhere: the user's to fix
        except FTSError as error:
            raise _NotHeld(f"{type(error).__name__}: {error}") from error  # nothing sent yet
        deadline = time.monotonic() + self.wait
        while True:
            try:
                return client.submit_job(transfers, sid=sid, **job_params)
            except FTSConnectionError as error:
                if not error.maybe_sent and not isinstance(error, AmbiguousSubmission):
                    raise _NotHeld(f"{type(error).__name__}: {error}") from error
                unsure: FTSError = error
            except TryAgain as error:
                unsure = error
            expected = getattr(unsure, "expected_job_id", None)  # only AmbiguousSubmission
            if expected is None and job_params["id_generator"] == "deterministic" and sid:
                expected = client.expected_job_id(sid)
            if expected is None:
                raise unsure
            if self._holds(client, expected, deadline, unsure):
                return expected
            if time.monotonic() >= deadline:
                raise _waited_too_long(client, expected, self.wait, unsure)
            log.warning("%s lacks job %s: submitting it there again", client.endpoint, expected)

    def _holds(self, client: FTSClient, expected: str, deadline: float, cause: FTSError) -> bool:
        """Whether the server holds the job, asked until it answers or the deadline passes."""
        log.warning(
            "No answer from %s to a submission (%s); asking it for job %s, for up to %.0f s, "
            "before any other server is tried",
            client.endpoint,
            cause,
            expected,
            max(0.0, deadline - time.monotonic()),
        )
        while True:
            try:
                entry = client.get_jobs([expected])[0]
            except (FTSConnectionError, TryAgain) as error:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _waited_too_long(client, expected, self.wait, error) from error
                time.sleep(min(self.probe_interval, left))
                continue
            if not is_job_error_entry(entry):
                log.info("%s holds job %s: the lost answer was a yes", client.endpoint, expected)
                return True
            if str(entry.get("http_status", "")).startswith("404"):
                return False
            raise error_from_job_entry(entry)

    # -- where jobs are -----------------------------------------------------------------

    def read(
        self,
        job_ids: Sequence[str],
        *,
        archived: bool = True,
        files: bool = False,
        file_fields: Sequence[str] | None = None,
    ) -> list[dict]:
        """The jobs' records in the order asked, each from the server that holds it; a job
        no server holds is the error entry of the first one.

        A job this process does not know is looked for on the servers in order. When one
        cannot answer and a job is on no other, its failure is raised: no server may be
        taken for one without the job while it is silent.

        :param job_ids: The jobs' ids.
        :param archived: Read jobs FTS purged from its archive.
        :param files: Add their file records with the fields a summary needs.
        :param file_fields: Add their file records with these fields instead.
        """
        ids = list(job_ids)
        if len(self.endpoints) == 1:
            return self._read_on(self.primary, ids, archived, files, file_fields)
        remembered = {job_id: self.locations.get(job_id) for job_id in ids}
        found: dict[str, dict] = {}
        absent: dict[str, dict] = {}
        silent: list[FTSError] = []
        for endpoint in self.endpoints:
            wanted = [i for i in dict.fromkeys(ids) if remembered[i] in (endpoint, None)]
            wanted = [i for i in wanted if i not in found]
            if not wanted:
                continue
            try:
                entries = self._read_on(self.client(endpoint), wanted, archived, files, file_fields)
            except (FTSConnectionError, TryAgain) as error:
                log.warning("FTS endpoint %s did not answer a job lookup: %s", endpoint, error)
                silent.append(error)
                continue
            for entry in entries:
                if is_job_error_entry(entry):
                    absent.setdefault(entry["job_id"], entry)
                else:
                    found[entry["job_id"]] = entry
                    self.locations.remember(entry["job_id"], endpoint)
        if silent and any(i not in found for i in ids):
            raise silent[0]
        return [found.get(i) or absent[i] for i in ids]

    @staticmethod
    def _read_on(
        client: FTSClient,
        ids: list[str],
        archived: bool,
        files: bool,
        file_fields: Sequence[str] | None,
    ) -> list[dict]:
        read = client.get_jobs_or_archived if archived else client.get_jobs
        return read(ids, files=files, file_fields=file_fields)

    def by_endpoint(self, job_ids: Sequence[str]) -> dict[str, list[str]]:
        """The jobs grouped by the server that holds them (a job no server holds: the first)."""
        ids = list(job_ids)
        if len(self.endpoints) > 1 and any(self.locations.get(i) is None for i in ids):
            self.read([i for i in ids if self.locations.get(i) is None], archived=True)
        groups: dict[str, list[str]] = {}
        for job_id in ids:
            groups.setdefault(self.endpoint_known(job_id), []).append(job_id)
        return groups

    def endpoint_of(self, job_id: str) -> str:
        """The server that holds the job (looked for when unknown; none: the first)."""
        return next(iter(self.by_endpoint([job_id])))

    def endpoint_known(self, job_id: str) -> str:
        """Where the job is as far as this process knows, without asking (else the first)."""
        if len(self.endpoints) == 1:
            return self.endpoints[0]
        return self.locations.get(job_id) or self.endpoints[0]

    def expected_job_id(self, sid: str) -> str:
        """The id of the job submitted with ``sid``: the same on every server; asked of the
        first that answers ``/whoami``."""
        error: FTSError | None = None
        for endpoint in self.submission_order():
            try:
                return self.client(endpoint).expected_job_id(sid)
            except (FTSConnectionError, TryAgain) as failure:
                error = failure
        assert error is not None
        raise error


async def wait_by_endpoint(
    groups: Mapping[str, Sequence[str]],
    pollers: Mapping[str, JobPoller],
    *,
    interval: float,
    on_poll: Callable[[JobSummary], None] | None = None,
) -> JobSummary:
    """Wait for jobs on several servers at once, each group through its server's poller;
    the summary of them all (:func:`~.states.merge_summaries`).

    :param groups: The job ids by endpoint.
    :param pollers: The poller of each endpoint.
    :param interval: Seconds between polls.
    :param on_poll: Called with the summary of every group's latest round, after each
        round of any group.
    """
    latest: dict[str, JobSummary] = {}

    async def one(endpoint: str, ids: Sequence[str]) -> JobSummary:
        def seen(summary: JobSummary) -> None:
            latest[endpoint] = summary
            if on_poll is not None:
                on_poll(merge_summaries(latest.values()))

        return await pollers[endpoint].wait(ids, interval=interval, on_poll=seen)

    return merge_summaries(await asyncio.gather(*(one(e, ids) for e, ids in groups.items())))


def _waited_too_long(
    client: FTSClient, expected: str, wait: float, cause: Exception
) -> AmbiguousSubmission:
    return AmbiguousSubmission(
        f"{client.endpoint} may hold job {expected} but did not answer for {wait:.0f} s "
        f"({cause}). No other server was tried, so the job is not doubled; once the server "
        f"answers, a lookup of {expected} tells whether it exists.",
        expected,
    )
