"""FTSClient: one method per FTS operation, over one pooled HTTPS session.

Where it is better than the official ``fts3`` client: it keeps one TLS connection,
asks ``/whoami`` once, checks the delegation once every few minutes instead of before
every submit, submits with deterministic ids so a lost answer never duplicates a job,
and reads multi-job answers (207) entry by entry.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from airflow_provider_fts.client import protocol
from airflow_provider_fts.client.bearer import token_ignored_error
from airflow_provider_fts.client.credentials import Credentials, Trust
from airflow_provider_fts.client.delegation import (
    DEFAULT_DELEGATION_LIFETIME,
    DEFAULT_RENEW_BELOW,
    DelegationPolicy,
    parse_termination_time,
    sign_proxy_request,
)
from airflow_provider_fts.client.delegation_cache import SHARED_DELEGATIONS, DelegationCache
from airflow_provider_fts.client.errors import (
    AmbiguousSubmission,
    BadRequest,
    Conflict,
    FTSConnectionError,
    FTSValidationError,
    NeedsDelegation,
    NotFound,
    TryAgain,
    error_from_job_entry,
    is_job_error_entry,
)
from airflow_provider_fts.client.protocol import (
    DEFAULT_PORT,
    check_id,
    files_params,
    normalise_endpoint,
)
from airflow_provider_fts.client.sending import RetryPolicy
from airflow_provider_fts.client.states import SUMMARY_FILE_FIELDS, FileState
from airflow_provider_fts.client.submission import (
    BASE_ID,
    JobParams,
    Transfer,
    build_submission,
    expected_job_id,
)
from airflow_provider_fts.client.transport import Transport

if TYPE_CHECKING:
    from airflow_provider_fts.client.states import Tally
    from airflow_provider_fts.client.storage_tokens import StorageTokenMinter

__all__ = ["DEFAULT_PORT", "FTSClient", "normalise_endpoint"]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: What FTS answers a delegation that lost a race with another one for the same id.
_DELEGATION_RACE = ("does not match the stored", "No credential cache found")


class FTSClient:
    """A client for one FTS3 REST endpoint with one credential.

    Thread-safe for the calls a worker makes; create one per endpoint and credential and
    reuse it (it pools connections and remembers the identity and delegation state).

    :param endpoint: The FTS REST endpoint (``host``, ``host:port`` or ``https://host:port``).
    :param credentials: Proxy, certificate or token (default: from the environment).
    :param trust: The CAs that verify the server (default: from the environment).
    :param timeout: Connect and read timeouts in seconds.
    :param retries: Retries of idempotent requests after a passing fault.
    :param backoff: First retry delay in seconds (doubled each time, with jitter).
    :param delegation_lifetime: Lifetime of a proxy delegated to FTS.
    :param renew_below: Delegate again when the server's proxy has less than this left.
    :param delegation_check_interval: Seconds between checks of the server's delegation.
    :param user_agent: The User-Agent header (ours by default).
    :param delegation_cache: What clients know of delegations (a shared one by default).
    :param storage_tokens: Mints per-file storage tokens for transfers without their own.
    """

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials | None = None,
        *,
        trust: Trust | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        retries: int = 3,
        backoff: float = 0.5,
        delegation_lifetime: timedelta = DEFAULT_DELEGATION_LIFETIME,
        renew_below: timedelta = DEFAULT_RENEW_BELOW,
        delegation_check_interval: float = 300.0,
        user_agent: str | None = None,
        delegation_cache: DelegationCache | None = None,
        storage_tokens: StorageTokenMinter | None = None,
    ) -> None:
        self.endpoint = normalise_endpoint(endpoint)
        self.credentials = (
            credentials if credentials is not None else Credentials.from_environment()
        )
        self.trust = trust if trust is not None else Trust.from_environment()
        self.policy = DelegationPolicy(delegation_lifetime, renew_below)
        self.delegation_check_interval = delegation_check_interval
        self.transport = Transport(
            self.endpoint,
            self.credentials.ssl_context(self.trust),
            trust=self.trust,
            bearer=self.credentials.bearer,
            timeout=timeout,
            retry=RetryPolicy(retries=retries, backoff=backoff),
            user_agent=user_agent,
        )
        self.storage_tokens = storage_tokens
        self._lock = threading.RLock()
        self._whoami: dict | None = None
        cache = SHARED_DELEGATIONS if delegation_cache is None else delegation_cache
        self._delegation = cache.memo(self.endpoint, self.credentials)

    def __enter__(self) -> FTSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FTSClient({self.endpoint!r}, credentials={self.credentials!r})"

    def close(self) -> None:
        self.transport.close()

    # -- identity and delegation ------------------------------------------------------

    def server_info(self) -> dict:
        """``GET /``: API, schema and delegation protocol versions."""
        return self._get("/")

    def whoami(self, refresh: bool = False) -> dict:
        """``GET /whoami``: who the server thinks we are (asked once per client)."""
        with self._lock:
            if self._whoami is None or refresh:
                self.credentials.check_usable("status")
                identity = self._get("/whoami")
                if self.uses_token and identity.get("method") == "unauthenticated":
                    raise token_ignored_error(self.credentials.field)
                self._whoami = identity
            return self._whoami

    @property
    def uses_token(self) -> bool:
        return self.credentials.kind == "token"

    @property
    def delegation_id(self) -> str:
        delegation_id = self.whoami().get("delegation_id")
        if not delegation_id:
            raise FTSValidationError(
                "credentials",
                "FTS did not assign a delegation id: it did not recognise a certificate.",
                "Connect with an X.509 proxy or certificate to delegate.",
            )
        return delegation_id

    def get_delegation(self) -> dict | None:
        """The server's delegation for us: ``termination_time`` (aware UTC) and ``voms_attrs``.

        None when there is none (the server says ``null``, ``[]`` or ``{}``).
        """
        if self.uses_token:
            return None
        body = self._get(f"/delegation/{self.delegation_id}")
        termination = parse_termination_time(body)
        if termination is None:
            return None
        return {"termination_time": termination, "voms_attrs": body.get("voms_attrs", [])}

    def delegate(self, lifetime: timedelta | None = None, force: bool = False) -> str | None:
        """Make sure FTS holds a proxy of ours; return the delegation id (None for a token,
        which is never delegated).

        Always asks the server. Delegates when there is no delegation, when it has less
        than ``renew_below`` left (and a new one would last longer), or when ``force``.
        """
        if self.uses_token:
            return None
        self.credentials.check_usable("submit")
        with self._delegation.lock:
            current = self.get_delegation()
            expires = current["termination_time"] if current else None
            if force or self._worth_renewing(expires):
                expires = self._put_proxy(lifetime or self.policy.lifetime)
            self._delegation.remember(expires)
            return self.delegation_id

    def ensure_delegation(self) -> None:
        """Delegate if needed, asking the server at most once per check interval."""
        if self.uses_token:
            return
        # Clients of one process with the same credential share what they know, so
        # concurrent first submits cost one delegation, not one each.
        with self._delegation.lock:
            memo = self._delegation
            if memo.checked_within(self.delegation_check_interval) and not self._worth_renewing(
                memo.expires
            ):
                return
            self.delegate()

    def _worth_renewing(self, expires: datetime | None) -> bool:
        return self.policy.needs_renewal(expires, credential_not_after=self.credentials.not_after)

    def _put_proxy(self, lifetime: timedelta) -> datetime:
        path = f"/delegation/{self.delegation_id}"
        for attempt in range(2):
            csr = self.transport.request("GET", f"{path}/request")
            chain = sign_proxy_request(csr, self.credentials, lifetime)
            try:
                self.transport.request("PUT", f"{path}/credential", data=chain)
                break
            except BadRequest as exc:
                # Another process delegated at the same moment and the server replaced or
                # dropped the key of our request: its delegation may serve us as well.
                if attempt or not any(text in exc.message for text in _DELEGATION_RACE):
                    raise
                current = self.get_delegation()
                if current and not self._worth_renewing(current["termination_time"]):
                    return current["termination_time"]
        log.info("Delegated a proxy to %s (id %s)", self.endpoint, self.delegation_id)
        delegation = self.get_delegation()
        if delegation is None:
            raise NeedsDelegation(
                419, "FTS did not keep the delegated proxy", method="PUT", path=path
            )
        return delegation["termination_time"]

    # -- submission ---------------------------------------------------------------------

    def expected_job_id(self, sid: str) -> str:
        """The id FTS gives a deterministic job with this ``sid``, computed locally."""
        who = self.whoami()
        vos = who.get("vos") or []
        if not vos:
            raise FTSValidationError(
                "credentials",
                "FTS reports no VO for this identity, so deterministic job ids cannot be computed.",
                "Use a certificate, proxy or token FTS maps to a VO.",
            )
        return expected_job_id(vos[0], sid, who.get("base_id") or BASE_ID)

    def submit_job(
        self, transfers: Iterable[Any], *, sid: str | None = None, **job_params: Any
    ) -> str:
        """Validate, then submit a job exactly once; return its id.

        Jobs get deterministic ids (``sid`` defaults to a fresh random one), so an answer
        lost on the way back, or a 502/503/504, is resolved by looking the job up and
        sending it again only when FTS does not hold it: never by a blind resubmit.
        A ``sid`` FTS already holds returns that job's id (409 is not a failure). A 419
        leads to one delegation check (and renewal) and one retry. With storage tokens,
        transfers without their own tokens get them, one token request per directory,
        endpoint and operation.
        """
        job_params.setdefault("id_generator", "deterministic")
        deterministic = job_params["id_generator"] == "deterministic"
        if deterministic:
            job_params["sid"] = sid = sid or uuid.uuid4().hex
        elif sid is not None:
            job_params["sid"] = sid
        if self.storage_tokens is None:
            document = build_submission(transfers, **job_params)
        else:
            transfers = [Transfer.coerce(transfer, i) for i, transfer in enumerate(transfers)]
            JobParams.from_mapping(job_params)  # bad input fails before any token request
        self.credentials.check_usable("submit")
        expected = self.expected_job_id(sid) if deterministic else None
        if self.storage_tokens is not None:
            # After whoami: a wrong client secret fails on the FTS token, named, first.
            document = build_submission(self.storage_tokens.with_tokens(transfers), **job_params)
        self.ensure_delegation()
        try:
            return self._post_job(document, expected)
        except NeedsDelegation:
            # Ask the server (not our memory): another thread may have renewed it already.
            log.warning("FTS asked for a new delegation (419); delegating and submitting again")
            self.delegate()
            return self._post_job(document, expected)

    def _post_job(self, document: dict, expected: str | None) -> str:
        try:
            answer = self.transport.request("POST", "/jobs", json_body=document)
        except Conflict:
            if expected is None:
                raise
            log.info("FTS already holds job %s for this sid; using it", expected)
            return expected
        except (FTSConnectionError, TryAgain) as exc:
            if isinstance(exc, FTSConnectionError) and not exc.maybe_sent:
                raise  # it never reached FTS; the transport already sent it again
            if isinstance(exc, TryAgain) and expected is None:
                raise
            if expected is None:
                raise AmbiguousSubmission(
                    f"{exc} FTS may or may not have stored the job; with standard ids it cannot "
                    "be looked up. Submit with a sid (the default) to make this recoverable."
                ) from None
            return self._resolve_lost_answer(document, expected, exc)
        job_id = answer["job_id"]
        if expected and job_id != expected:
            log.warning("FTS gave job id %s where %s was expected", job_id, expected)
        return job_id

    def _resolve_lost_answer(self, document: dict, expected: str, cause: Exception) -> str:
        """The submit's answer was lost or was a 502/503/504 (a proxy in front of FTS may
        have passed the request on): find out whether FTS stored the job."""
        log.warning("No usable answer to the submission (%s); looking up job %s", cause, expected)
        try:
            entry = self.get_jobs([expected])[0]
        except (FTSConnectionError, TryAgain) as exc:
            raise AmbiguousSubmission(
                f"{cause} FTS may hold job {expected}; looking it up failed too: {exc}", expected
            ) from exc
        if "job_state" in entry:
            return expected
        return self._post_again(document, expected)

    def _post_again(self, document: dict, expected: str | None) -> str:
        """Send a submission FTS surely does not hold; a late first copy answers 409."""
        try:
            return self.transport.request("POST", "/jobs", json_body=document)["job_id"]
        except Conflict:
            if expected is None:
                raise
            return expected

    # -- jobs -----------------------------------------------------------------------------

    def get_job(
        self, job_id: str, *, files: bool = False, file_fields: Sequence[str] | None = None
    ) -> dict:
        """One job.

        :param job_id: The job's id.
        :param files: Add its file records with the fields a summary needs.
        :param file_fields: Add its file records with these fields instead.
        """
        return self._get(f"/jobs/{check_id(job_id)}", files_params(files, file_fields))

    def get_jobs(
        self,
        job_ids: Iterable[str],
        *,
        files: bool = False,
        file_fields: Sequence[str] | None = None,
    ) -> list[dict]:
        """Many jobs, up to 100 per request, in the order asked.

        A job FTS does not know comes back as its error entry
        (``{"job_id", "http_status": "404 Not Found", "http_message"}``), not as an exception.

        :param job_ids: The jobs' ids.
        :param files: Add their file records with the fields a summary needs.
        :param file_fields: Add their file records with these fields instead.
        """
        params = files_params(files, file_fields)
        self.credentials.check_usable("status")
        return self._run(protocol.send_all(protocol.by_ids("GET", job_ids, params=params)))

    def get_jobs_or_archived(
        self,
        job_ids: Iterable[str],
        *,
        files: bool = False,
        file_fields: Sequence[str] | None = None,
    ) -> list[dict]:
        """Like :meth:`get_jobs`, but a job FTS purged from ``/jobs`` (404 there, days after it
        ended) comes from ``/archive/<id>`` with all its files; a job in neither place stays
        its 404 error entry; any other error entry raises its error.

        :param job_ids: The jobs' ids.
        :param files: Add their file records with the fields a summary needs.
        :param file_fields: Add their file records with these fields instead.
        """
        flow = protocol.jobs_or_archived(job_ids, files=files, file_fields=file_fields)
        self.credentials.check_usable("status")
        return self._run(flow)

    def poll(self, tally: Tally) -> None:
        """One poll round for ``tally`` (:func:`~.protocol.job_round`): the records of its
        jobs not ended, each ended job's files once, a progress sample when one is due.

        :param tally: The jobs' outcome so far, updated in place.
        :raises FTSError: A job's error (unknown to FTS, forbidden), the first one.
        """
        self.poll_jobs(tally.pending(), tally.to_sample(), tally.add)

    def poll_jobs(
        self, job_ids: Sequence[str], sample: Sequence[str], add: Callable[[dict], None]
    ) -> None:
        """One poll round for some jobs of a wait (those this server holds): their records,
        the files of those that ended, ``sample`` jobs' file states; ``add`` takes each.

        :raises FTSError: A job's error (unknown to FTS, forbidden), the first one.
        """
        self.credentials.check_usable("status")
        errors = self._run(protocol.job_round(job_ids, sample, add))
        if errors:
            raise next(iter(errors.values()))

    def iter_files(
        self,
        job_ids: Iterable[str],
        *,
        states: Iterable[str] | None = None,
        fields: Sequence[str] = SUMMARY_FILE_FIELDS,
        jobs_per_request: int = 10,
    ) -> Iterator[dict]:
        """The file records of jobs, each with its ``job_id``, read a few jobs at a time:
        a caller that streams them (to a file, a page) never holds more than one answer.

        The one reader of jobs' files by filter: page through a task's files by passing
        the job ids of a page. A purged job is read from the archive (all its fields); a
        job in neither place raises its error.

        :param job_ids: The jobs, in the order their files come.
        :param states: Only files in these states (e.g. ``FAILED_FILE_STATES``); None: all.
        :param fields: The file fields to read (``file_state`` is added for ``states``).
        :param jobs_per_request: Jobs per request (their files are one answer in memory).
        """
        wanted = None if states is None else {FileState.parse(s).value for s in states}
        if wanted is not None and "file_state" not in fields:
            fields = (*fields, "file_state")
        ids = [check_id(job_id) for job_id in job_ids]
        self.credentials.check_usable("status")
        for start in range(0, len(ids), jobs_per_request):
            flow = protocol.jobs_or_archived(
                ids[start : start + jobs_per_request], file_fields=fields
            )
            for record in self._run(flow):
                if is_job_error_entry(record):
                    raise error_from_job_entry(record)
                for file in record.get("files") or []:
                    if wanted is None or file.get("file_state") in wanted:
                        yield {**file, "job_id": record["job_id"]}

    def get_job_files(self, job_id: str) -> list[dict]:
        return self._get(f"/jobs/{check_id(job_id)}/files")

    def get_file_retries(self, job_id: str, file_id: int | str) -> list[dict]:
        return self._get(f"/jobs/{check_id(job_id)}/files/{check_id(file_id, 'file_id')}/retries")

    def get_job_field(self, job_id: str, field: str) -> Any:
        return self._get(f"/jobs/{check_id(job_id)}/{quote(field, safe='')}")

    def get_archived_job(self, job_id: str) -> dict:
        """A job FTS moved to its archive (``/archive/<id>``, files included)."""
        request = protocol.archive_request(job_id)
        self.credentials.check_usable("status")
        return self.transport.send(request)

    def get_job_or_archived(
        self, job_id: str, *, files: bool = False, file_fields: Sequence[str] | None = None
    ) -> dict:
        """The job, or its archived copy once FTS purged it from the live tables."""
        try:
            return self.get_job(job_id, files=files, file_fields=file_fields)
        except NotFound:
            return self.get_archived_job(job_id)

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
        """``GET /jobs``. Without ``state_in`` + ``time_window``/``limit`` FTS lists only
        unfinished jobs.

        :param state_in: Job states to list (names, or one comma-separated string).
        :param time_window: Jobs of the last hours (a number, a timedelta or ``'H:M'``).
        :param limit: At most this many jobs, 1..500 (FTS reads 0 as every job ever).
        :param vo_name: Jobs of this VO.
        :param user_dn: Jobs of this user DN.
        :param dlg_id: Jobs of this delegation id.
        :param source_se: Jobs reading from this storage (``scheme://host``).
        :param dest_se: Jobs writing to this storage (``scheme://host``).
        :param fields: Only these job fields in each entry.
        """
        params = protocol.list_params(
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
        return self._get("/jobs", params)

    def cancel_job(self, job_id: str) -> dict:
        """Cancel one job; a job already final comes back unchanged (``304`` inside)."""
        return self.transport.request("DELETE", f"/jobs/{check_id(job_id)}")

    def cancel_jobs(self, job_ids: Iterable[str]) -> list[dict]:
        """Cancel many jobs, up to 100 per request; one answer entry per job."""
        return self._run(protocol.send_all(protocol.by_ids("DELETE", job_ids)))

    def cancel_files(self, job_id: str, file_ids: Iterable[int | str]) -> list[str]:
        """Cancel some files of a job; one resulting state (or refusal text) per file."""
        ids = ",".join(check_id(file_id, "file_id") for file_id in file_ids)
        if not ids:
            raise FTSValidationError("file_ids", "is empty.", "Give at least one file id.")
        answer = self.transport.request("DELETE", f"/jobs/{check_id(job_id)}/files/{ids}")
        return answer if isinstance(answer, list) else [answer]

    def set_priority(self, job_ids: Sequence[str], priority: int) -> list[dict]:
        """Change the priority of queued jobs and their files; one answer entry per job.

        :param job_ids: The jobs' ids (a list, even for one job).
        :param priority: 1 (lowest) .. 5 (highest).
        """
        body = protocol.priority_body(priority)
        if isinstance(job_ids, str):
            raise FTSValidationError(
                "job_ids", f"{job_ids!r} is one string, not a list of ids.", "Pass [job_id]."
            )
        return self._run(protocol.send_all(protocol.by_ids("POST", job_ids, json_body=body)))

    # -- helpers ----------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        self.credentials.check_usable("status")
        return self.transport.request("GET", path, params=params)

    def _run(self, flow: protocol.Flow[T]) -> T:
        """Send a protocol flow's requests one by one, handing back answers and errors."""
        return self.transport.run(flow)
