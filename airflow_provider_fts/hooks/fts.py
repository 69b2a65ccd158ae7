"""FTSHook: an Airflow connection of type ``fts`` turned into an FTS client.

The connection holds the REST endpoint (host and port; ``failover_endpoints`` name others),
the credential (a proxy file, a certificate and key, pasted PEMs, or a bearer token) and
how to trust the server. With several endpoints the hook hides them: a submission goes to
one server exactly once (:mod:`airflow_provider_fts.client.endpoints`), and every job
method goes to the server that holds the job; job ids stay plain FTS ids. The
hook reads the connection and hands its fields to :mod:`airflow_provider_fts.client.connection`,
which checks every one before any request; secrets go through Airflow's secret masker
before anything can log them.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.log import amask_secret, mask_secret

from airflow_provider_fts.client.client import FTSClient
from airflow_provider_fts.client.connection import FTSConnectionSettings
from airflow_provider_fts.client.credentials import format_duration
from airflow_provider_fts.client.endpoints import Endpoints, wait_by_endpoint
from airflow_provider_fts.client.errors import FTSError, is_transient
from airflow_provider_fts.client.oidc import on_new_secret
from airflow_provider_fts.client.poller import JobPoller, shared_poller
from airflow_provider_fts.client.states import Tally, has_ended, ids_in_words
from airflow_provider_fts.client.storage_tokens import StorageTokenMinter
from airflow_provider_fts.client.submission import Transfer
from airflow_provider_fts.lineage import asset_uri

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from airflow_provider_fts.client.credentials import Credentials
    from airflow_provider_fts.client.states import JobSummary


class FTSHook(BaseHook):
    """Talk to one FTS3 server through an Airflow connection of type ``fts``.

    :param fts_conn_id: The Airflow connection to use (type ``fts``).
    """

    conn_name_attr = "fts_conn_id"
    default_conn_name = "fts_default"
    conn_type = "fts"
    hook_name = "CERN FTS3"

    def __init__(self, fts_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fts_conn_id = fts_conn_id

    @cached_property
    def settings(self) -> FTSConnectionSettings:
        """The validated connection (no request is made)."""
        conn = self.get_connection(self.fts_conn_id)
        settings = _checked(conn, conn.extra_dejson)
        for secret in settings.credential.inline_secrets:
            mask_secret(secret)
        return settings

    @property
    def loaded_settings(self) -> FTSConnectionSettings | None:
        """The connection if :attr:`settings` loaded it already, else None (loads nothing)."""
        return self.__dict__.get("settings")

    async def asettings(self) -> FTSConnectionSettings:
        """The validated connection, resolved without blocking the event loop."""
        # Imported here: only the triggerer needs it, not DAG parsing.
        from airflow.providers.common.compat.connection import (
            get_async_connection,
            get_async_extra_dejson,
        )

        conn = await get_async_connection(self.fts_conn_id, hook=self)
        settings = _checked(conn, await get_async_extra_dejson(conn))
        for secret in settings.credential.inline_secrets:
            await amask_secret(secret)
        return settings

    def get_conn(self) -> FTSClient:
        """The client of the first endpoint (one per hook; it caches identity and delegation)."""
        return self._client

    get_client = get_conn  # the hook's earlier name for get_conn, kept for its callers

    @cached_property
    def _client(self) -> FTSClient:
        return self.endpoints.primary

    @cached_property
    def endpoints(self) -> Endpoints:
        """The connection's servers, their clients, and where each job is."""
        settings = self.settings
        return Endpoints(
            settings.endpoints,
            self._connect,
            policy=settings.endpoint_policy,
            wait=settings.failover_wait,
        )

    def _connect(self, endpoint: str) -> FTSClient:
        settings = self.settings.for_endpoint(endpoint)
        credentials, file_keys = _credentials(settings)
        for key in file_keys:
            mask_secret(key)
        return FTSClient(
            settings.endpoint,
            credentials,
            trust=settings.trust(),
            delegation_lifetime=settings.delegation.lifetime,
            renew_below=settings.delegation.renew_below,
            timeout=settings.client_timeout,
            storage_tokens=_storage_token_minter(settings),
        )

    async def aget_poller(self) -> JobPoller | _PollersByEndpoint:
        """The poller this process shares among triggers of the same endpoint and credential
        (several endpoints: the same ``wait``, each server's jobs through its own poller).

        Nothing here blocks the event loop: the connection comes from the async helpers,
        and reading credential files (maybe decrypting a key) runs in a thread.
        """
        settings = await self.asettings()
        if settings.failover_endpoints:
            return _PollersByEndpoint(self, settings)
        key = await asyncio.to_thread(settings.poller_key)
        return await shared_poller(key, lambda: self._new_poller(settings))

    @staticmethod
    async def _new_poller(settings: FTSConnectionSettings) -> JobPoller:
        credentials, file_keys = await asyncio.to_thread(_credentials, settings)
        for key in file_keys:
            await amask_secret(key)
        context = await asyncio.to_thread(credentials.ssl_context, settings.trust())
        return JobPoller(
            settings.endpoint,
            ssl_context=context,
            trust=settings.trust(),
            bearer=credentials.bearer,
            timeout=settings.client_timeout,
        )

    def job_url(self, job_id: str) -> str:
        """The job's page in the web monitoring of the server that holds it.

        No request with one endpoint, nor for a job the hook submitted or already found;
        otherwise the servers are asked (none answering: the first server's page).
        """
        try:
            endpoint = self.endpoints.endpoint_of(job_id)
        except FTSError:
            endpoint = self.endpoints.endpoint_known(job_id)
        return self.settings.for_endpoint(endpoint).job_url(job_id)

    def endpoint_of(self, job_id: str) -> str:
        """``https://host:port`` of the server that holds the job (asked when unknown)."""
        return self.endpoints.endpoint_of(job_id)

    def job_endpoints(self, job_ids: Sequence[str]) -> dict[str, str]:
        """``{job_id: https://host:port}`` as far as the hook knows without asking (the
        server it submitted each job to or found it on)."""
        return {job_id: self.endpoints.endpoint_known(job_id) for job_id in job_ids}

    def _client_of(self, job_id: str) -> FTSClient:
        return self.endpoints.client(self.endpoints.endpoint_of(job_id))

    def whoami(self) -> dict:
        return self.get_conn().whoami()

    def get_delegation(self) -> dict | None:
        return self.get_conn().get_delegation()

    def delegate(self, lifetime: timedelta | None = None, force: bool = False) -> str | None:
        """Delegate a proxy to FTS if needed; the delegation id (None for a token)."""
        return self.get_conn().delegate(lifetime=lifetime, force=force)

    def submit_job(self, transfers: Iterable[Any], **job_params: Any) -> str:
        """Submit one job; with ``sid=`` the id is deterministic and a resubmission is harmless.

        Sources and destinations are reported to Airflow's hook-level lineage (read by
        OpenLineage when it is installed; a no-op otherwise).
        """
        planned = [Transfer.coerce(transfer, index) for index, transfer in enumerate(transfers)]
        job_id = self.endpoints.submit(planned, **job_params)
        self._report_lineage(planned)
        return job_id

    def _report_lineage(self, transfers: Sequence[Transfer]) -> None:
        """Airflow's hook-level lineage of a submission: sources in, destinations out.

        Read by OpenLineage when the task's own facets have no datasets; a no-op otherwise.
        """
        # Imported here: only a submission needs it, not DAG parsing.
        from airflow.sdk.lineage import MAX_COLLECTED_ASSETS, get_hook_lineage_collector

        collector = get_hook_lineage_collector()
        for transfer in transfers[:MAX_COLLECTED_ASSETS]:  # the collector keeps no more
            for source in transfer.sources:
                collector.add_input_asset(context=self, uri=asset_uri(source))
            for destination in transfer.destinations:
                collector.add_output_asset(context=self, uri=asset_uri(destination))

    def expected_job_id(self, sid: str) -> str:
        """The id of the job submitted with ``sid``, computed without asking FTS."""
        return self.endpoints.expected_job_id(sid)

    def get_job(
        self, job_id: str, *, files: bool = False, file_fields: Sequence[str] | None = None
    ) -> dict:
        """One job; ``files=True`` adds the summary's file fields, ``file_fields`` others."""
        return self._client_of(job_id).get_job(job_id, files=files, file_fields=file_fields)

    def get_jobs(
        self,
        job_ids: Sequence[str],
        *,
        files: bool = False,
        file_fields: Sequence[str] | None = None,
    ) -> list[dict]:
        """Many jobs in requests of up to 100 ids; a missing job is an error entry, not a raise."""
        return self.endpoints.read(job_ids, archived=False, files=files, file_fields=file_fields)

    def get_jobs_or_archived(
        self,
        job_ids: Sequence[str],
        *,
        files: bool = False,
        file_fields: Sequence[str] | None = None,
    ) -> list[dict]:
        """Like :meth:`get_jobs`, with jobs FTS purged read from its archive."""
        return self.endpoints.read(job_ids, archived=True, files=files, file_fields=file_fields)

    def get_job_files(self, job_id: str) -> list[dict]:
        return self._client_of(job_id).get_job_files(job_id)

    def get_file_retries(self, job_id: str, file_id: int) -> list[dict]:
        return self._client_of(job_id).get_file_retries(job_id, file_id)

    def get_archived_job(self, job_id: str) -> dict:
        return self._client_of(job_id).get_archived_job(job_id)

    def list_jobs(
        self,
        *,
        state_in: str | Iterable[str] | None = None,
        time_window: float | timedelta | str | None = None,
        limit: int | None = None,
        vo_name: str | None = None,
        user_dn: str | None = None,
        dlg_id: str | None = None,
        source_se: str | None = None,
        dest_se: str | None = None,
        fields: str | Sequence[str] | None = None,
    ) -> list[dict]:
        """``GET /jobs`` with the filters of :meth:`FTSClient.list_jobs`."""
        return self.get_conn().list_jobs(
            state_in=state_in,
            time_window=time_window,
            limit=limit,
            vo_name=vo_name,
            user_dn=user_dn,
            dlg_id=dlg_id,
            source_se=source_se,
            dest_se=dest_se,
            fields=fields,
        )

    def cancel_job(self, job_id: str) -> dict:
        return self._client_of(job_id).cancel_job(job_id)

    def cancel_jobs(self, job_ids: Sequence[str]) -> list[dict]:
        answers = [
            answer
            for endpoint, ids in self.endpoints.by_endpoint(job_ids).items()
            for answer in self.endpoints.client(endpoint).cancel_jobs(ids)
        ]
        return _in_order(answers, job_ids)

    def cancel_files(self, job_id: str, file_ids: Sequence[int]) -> list[str]:
        return self._client_of(job_id).cancel_files(job_id, file_ids)

    def set_priority(self, job_ids: Sequence[str], priority: int) -> list[dict]:
        """Change the priority (1 low .. 5 high) of queued jobs; one answer entry per job."""
        if isinstance(job_ids, str):
            return self.get_conn().set_priority(job_ids, priority)  # refused there, by name
        answers = [
            answer
            for endpoint, ids in self.endpoints.by_endpoint(job_ids).items()
            for answer in self.endpoints.client(endpoint).set_priority(ids, priority)
        ]
        return _in_order(answers, job_ids)

    def test_connection(self) -> tuple[bool, str]:
        """Whether this connection can submit, and if not why and what to do; never raises.

        True needs a credential that FTS would accept for a submission (loaded, not
        expired, at least an hour left) and an answer from the server about who we are.
        With several endpoints each is reported, and one that answers is enough.
        """
        try:
            endpoints = self.settings.endpoints
        except Exception as error:  # the contract: report, never raise
            return False, f"{type(error).__name__}: {error}"
        reports = [self._test_endpoint(endpoint) for endpoint in endpoints]
        if len(reports) == 1:
            return reports[0]
        lines = [f"{e}: {text}" for e, (_, text) in zip(endpoints, reports, strict=True)]
        return any(ok for ok, _ in reports), " | ".join(lines)

    def _test_endpoint(self, endpoint: str) -> tuple[bool, str]:
        try:
            client = self.endpoints.client(endpoint)
            client.credentials.check_usable("submit")  # raises with the reason and the fix
            identity = client.whoami()
            if client.uses_token:
                state = (
                    f"{_validity(client.credentials)}; token authentication, no delegation needed"
                )
            else:
                state = f"{_validity(client.credentials)}; {_delegation_state(client)}"
            user = identity.get("user_dn", "?")
            where = f"{endpoint} as {user} ({_vo_names(identity)})"
            return True, f"Connected to {where}; {state}."
        except Exception as error:  # the contract: report, never raise
            return False, f"{type(error).__name__}: {error}"

    # -- job status: the one path the operator, the sensor and the trigger's callers share --
    # (kept apart from the client-delegating methods above; the trigger reads the same
    # records through the shared async poller and summarizes them the same way)

    def jobs_ended(self, job_ids: Sequence[str]) -> bool:
        """Whether every job has ended, from their records alone (no files are read): what
        a task asks before it defers, so the files of ended jobs are read once, by whoever
        waits for them."""
        records = self.get_jobs_or_archived(job_ids)
        return all("job_state" in r and has_ended(r["job_state"]) for r in records)

    def get_summary(self, job_ids: Sequence[str], *, tally: Tally | None = None) -> JobSummary:
        """The jobs' summary now, from one poll round: their records (one request per 100
        jobs), and the files of the jobs that ended, with the fields their end needs.

        Jobs FTS already purged to its archive are read from there: a lost job is not a
        failure. A job in neither place raises its error (``NotFound``).

        :param job_ids: The FTS job ids.
        :param tally: What earlier rounds of this wait learnt (pass the same one to every
            call): then only the jobs not ended are asked for, and each ended job's files
            are read once; running jobs' file states are sampled every few minutes.
        """
        tally = Tally(job_ids) if tally is None else tally
        pending, due = tally.pending(), set(tally.to_sample())
        for endpoint, ids in self.endpoints.by_endpoint(pending).items():
            sample = [job_id for job_id in ids if job_id in due]
            self.endpoints.client(endpoint).poll_jobs(ids, sample, tally.add)
        return tally.summary()

    def wait_for_jobs(
        self,
        job_ids: Sequence[str],
        poll_interval: float = 30.0,
        timeout: float | None = None,
        on_poll: Callable[[JobSummary], None] | None = None,
    ) -> JobSummary:
        """Poll until every job has ended; return the final summary (blocking).

        Each round asks only for the jobs not ended yet, without files; a job's files are
        read once, when it ends; running jobs' file states every few minutes, for progress
        (see :class:`~airflow_provider_fts.client.states.Tally`).

        :param job_ids: The FTS job ids.
        :param poll_interval: Seconds between polls.
        :param timeout: Longest wait in seconds (None: no limit); then ``TimeoutError``,
            and the jobs keep running.
        :param on_poll: Called with each summary (e.g. to log a progress line).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        tally = Tally(job_ids)
        while True:
            try:
                summary = self.get_summary(job_ids, tally=tally)
            except FTSError as error:
                # As in the triggerer's poller: a round lost to a passing fault (a server
                # down for a while) is asked again next round; the jobs run on meanwhile.
                if not is_transient(error):
                    raise
                self.log.warning("FTS did not answer a poll (%s); asking again", error)
            else:
                if on_poll is not None:
                    on_poll(summary)
                if tally.ended:
                    return summary
            if deadline is not None and time.monotonic() >= deadline:
                running = ids_in_words(tally.pending())
                raise TimeoutError(f"FTS jobs {running} still running after {timeout} s")
            time.sleep(poll_interval)

    def iter_files(
        self,
        job_ids: Sequence[str],
        *,
        states: Iterable[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> Iterator[dict]:
        """The file records of a task's jobs (e.g. the ids in its ``fts_job_id`` XCom),
        streamed a few jobs per request, each with its ``job_id``; a million files never
        sit in memory at once. ``states=FAILED_FILE_STATES`` lists the failed ones; write
        them out with :func:`~airflow_provider_fts.client.file_report.write_files`.

        :param job_ids: The FTS job ids.
        :param states: Only files in these states; None: every file.
        :param fields: The file fields (default: the summary's).
        """
        extra = {} if fields is None else {"fields": fields}
        for endpoint, ids in self.endpoints.by_endpoint(job_ids).items():
            yield from self.endpoints.client(endpoint).iter_files(ids, states=states, **extra)


class _PollersByEndpoint:
    """The poller of a connection with several endpoints: the jobs grouped by the server
    that holds them, each group waited for through that server's shared poller.

    :param hook: The hook (it finds where each job is).
    :param settings: The connection.
    """

    def __init__(self, hook: FTSHook, settings: FTSConnectionSettings) -> None:
        self._hook = hook
        self._settings = settings

    async def wait(
        self,
        job_ids: Sequence[str],
        *,
        interval: float = 30.0,
        on_poll: Callable[[JobSummary], None] | None = None,
    ) -> JobSummary:
        groups = await asyncio.to_thread(self._hook.endpoints.by_endpoint, job_ids)
        pollers = {}
        for endpoint in groups:
            settings = self._settings.for_endpoint(endpoint)
            key = await asyncio.to_thread(settings.poller_key)
            pollers[endpoint] = await shared_poller(key, lambda s=settings: FTSHook._new_poller(s))
        return await wait_by_endpoint(groups, pollers, interval=interval, on_poll=on_poll)


def _in_order(answers: list[dict], job_ids: Sequence[str]) -> list[dict]:
    """Per-job answers of several servers in the order the jobs were asked."""
    order = {job_id: index for index, job_id in enumerate(job_ids)}
    return sorted(answers, key=lambda answer: order.get(answer.get("job_id"), len(order)))


def _checked(conn: Any, extra: Mapping[str, Any]) -> FTSConnectionSettings:
    """The connection's fields, each checked (no I/O): what the sync and async paths read.

    :param conn: the Airflow connection (host, port, password).
    :param extra: its extras, decoded.
    """
    return FTSConnectionSettings.from_connection(conn.host, conn.port, conn.password, extra)


def _credentials(settings: FTSConnectionSettings) -> tuple[Credentials, list[str]]:
    """The credential loaded (blocking: file reads, key decryption) and the key texts read,
    for the caller to mask; every token fetched later is masked before it is used (in the
    triggerer ``mask_secret`` only adds the mask locally, so a loop's task may call it).

    :param settings: the connection.
    """
    on_new_secret(mask_secret)
    return settings.credential.load()


def _storage_token_minter(settings: FTSConnectionSettings) -> StorageTokenMinter | None:
    """The minter of per-file storage tokens, when the connection asks for them.

    :param settings: the connection (its OIDC client and ``storage_tokens``).
    """
    oidc = settings.credential.oidc
    if not settings.credential.storage_tokens or oidc is None:
        return None
    return StorageTokenMinter(oidc)


def _vo_names(identity: Mapping[str, Any]) -> str:
    """The VOs of a whoami answer; FTS names a proxy without VOMS by its delegation id."""
    vos = [vo for vo in identity.get("vos") or [] if vo != identity.get("delegation_id")]
    return ", ".join(vos) or "no VO"


def _validity(credentials: Credentials) -> str:
    left = credentials.time_left()
    if left is None:
        return f"{credentials.kind} of unknown lifetime"
    bearer = credentials.bearer
    renewed = " (renewed before it expires)" if bearer is not None and bearer.renewable else ""
    return f"{credentials.kind} valid for {format_duration(left)}{renewed}"


def _delegation_state(client: FTSClient) -> str:
    current = client.get_delegation()
    if not current:
        return "no delegation yet (made at the first submission)"
    return f"delegation valid until {current['termination_time']:%Y-%m-%d %H:%M} UTC"
