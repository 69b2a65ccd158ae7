"""FTSClient against the emulator over real HTTPS with client certificates.

Each test that touches delegation state gets a user of its own (its own DN, so its own
delegation id), so tests cannot see each other's delegations.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_provider_fts.client.client import FTSClient, normalise_endpoint
from airflow_provider_fts.client.credentials import Credentials, Trust
from airflow_provider_fts.client.delegation_cache import DelegationCache
from airflow_provider_fts.client.errors import (
    AmbiguousSubmission,
    BadRequest,
    FTSValidationError,
    NotFound,
    TryAgain,
)
from airflow_provider_fts.client.states import JobState
from airflow_provider_fts.testing import pki
from airflow_provider_fts.testing.records import HTTPError

DTEAM = pki.Voms("dteam", ["/dteam/Role=NULL/Capability=NULL"])
MOCK = "mock://src.example.org/data/{name}?size=1024"
DEST = "mock://dst.example.org/data/{name}"

ClientFactory = Callable[..., FTSClient]


@pytest.fixture
def make_client(fts_emulator, fts_pki, tmp_path: Path) -> Iterator[ClientFactory]:
    """Clients of a fresh user of the test CA: ``make_client(proxy=..., **client_options)``."""
    clients: list[FTSClient] = []
    user = fts_pki.ca.issue_user_cert(f"/DC=org/DC=example/O=FTS Test/CN=Client {uuid.uuid4()}")
    default_proxy = user.make_proxy(voms=DTEAM)

    def make(proxy: pki.Credential | None = None, **options) -> FTSClient:
        path = (proxy or default_proxy).write_proxy(tmp_path / f"x509up_{len(clients)}")
        options.setdefault("backoff", 0.01)
        client = FTSClient(
            fts_emulator.url,
            Credentials.from_proxy_file(path),
            trust=Trust(ca_path=str(fts_pki.ca_dir)),
            **options,
        )
        clients.append(client)
        return client

    make.user = user
    yield make
    for client in clients:
        client.close()


def transfers(count: int = 1, destination_query: str = "") -> list[tuple[str, str]]:
    """``count`` mock transfers; the query scripts the copy (``time=30``, ``transfer_errno=5``)."""
    names = [f"f{i}-{uuid.uuid4().hex[:8]}" for i in range(count)]
    query = f"?{destination_query}" if destination_query else ""
    return [(MOCK.format(name=n), DEST.format(name=n) + query) for n in names]


def delegation_requests(emulator) -> int:
    return emulator.requests["PUT /delegation/{dlg_id}/credential"]


# -- identity ---------------------------------------------------------------------------


def test_endpoint_forms_normalise_to_https_host_and_port() -> None:
    assert normalise_endpoint("fts3.example.org") == "https://fts3.example.org:8446"
    assert normalise_endpoint("https://fts3.example.org:9000/") == "https://fts3.example.org:9000"
    with pytest.raises(FTSValidationError, match="endpoint"):
        normalise_endpoint("http://fts3.example.org:8446")


def test_whoami_is_asked_once_per_client(make_client, fts_emulator) -> None:
    client = make_client()

    first = client.whoami()
    second = client.whoami()

    assert first == second
    assert first["vos"] == ["dteam"]
    assert fts_emulator.requests["GET /whoami"] == 1


# -- delegation -------------------------------------------------------------------------


def test_first_submit_delegates_and_later_submits_reuse_it(make_client, fts_emulator) -> None:
    client = make_client()

    job_ids = [client.submit_job(transfers()) for _ in range(20)]

    assert len(set(job_ids)) == 20
    assert delegation_requests(fts_emulator) == 1
    assert fts_emulator.requests["POST /jobs"] == 20
    # one look before delegating and one after: no check per submit
    assert fts_emulator.requests["GET /delegation/{dlg_id}"] == 2


def test_a_new_client_reuses_a_fresh_delegation(make_client, fts_emulator) -> None:
    make_client().delegate()
    fts_emulator.reset_counts()

    make_client().submit_job(transfers())

    assert delegation_requests(fts_emulator) == 0


@pytest.mark.parametrize(("size", "server_checks"), [(2, 0), (1, 1)])
def test_the_delegation_cache_is_passed_in_and_keeps_the_most_recent(
    make_client, fts_emulator, size, server_checks
) -> None:
    # Given a cache of `size` entries, our fresh delegation, then another credential's
    cache = DelegationCache(size=size)
    make_client(delegation_cache=cache).delegate()
    make_client(proxy=make_client.user.make_proxy(voms=DTEAM), delegation_cache=cache)
    fts_emulator.reset_counts()

    # When a new client of our credential submits
    make_client(delegation_cache=cache).submit_job(transfers())

    # Then it trusts what the cache remembers, unless our entry had to make room
    assert len(cache) == size
    assert fts_emulator.requests["GET /delegation/{dlg_id}"] == server_checks
    assert delegation_requests(fts_emulator) == 0


def test_a_token_client_delegates_nothing(fts_emulator) -> None:
    client = FTSClient(fts_emulator.url, Credentials.from_token("t"), trust=Trust(verify=False))

    assert client.delegate() is None
    client.close()


def test_delegation_under_the_renewal_threshold_is_renewed(make_client, fts_emulator) -> None:
    client = make_client()
    client.delegate()
    fts_emulator.expire_delegation(client.delegation_id, remaining=timedelta(hours=2))

    client.delegate()

    assert delegation_requests(fts_emulator) == 2
    left = client.get_delegation()["termination_time"] - datetime.now(UTC)
    assert left > timedelta(hours=11)


def test_explicit_force_always_delegates(make_client, fts_emulator) -> None:
    client = make_client()
    client.delegate()

    client.delegate(force=True)

    assert delegation_requests(fts_emulator) == 2


def test_delegated_lifetime_is_capped_by_the_users_chain(make_client, fts_emulator) -> None:
    short_proxy = make_client.user.make_proxy(lifetime=timedelta(hours=3), voms=DTEAM)
    client = make_client(short_proxy)

    client.delegate()

    termination = client.get_delegation()["termination_time"]
    assert termination <= short_proxy.certificate.not_valid_after_utc
    assert termination > datetime.now(UTC) + timedelta(hours=2)


def test_short_proxy_is_not_redelegated_at_every_check(make_client, fts_emulator) -> None:
    # The server copy can never outlive the user's proxy: renewing would gain nothing.
    client = make_client(
        make_client.user.make_proxy(lifetime=timedelta(hours=3), voms=DTEAM),
        delegation_check_interval=0,
    )
    for _ in range(3):
        client.submit_job(transfers())

    assert delegation_requests(fts_emulator) == 1


def test_expired_delegation_is_recovered_by_one_redelegation(make_client, fts_emulator) -> None:
    client = make_client()
    client.submit_job(transfers())
    fts_emulator.expire_delegation(client.delegation_id)  # the client's memory says "fresh"

    job_id = client.submit_job(transfers())

    assert client.get_job(job_id)["job_state"] in {s.value for s in JobState}
    assert delegation_requests(fts_emulator) == 2
    assert fts_emulator.requests["POST /jobs"] == 3  # the 419, then the retry


def test_proxy_with_under_an_hour_left_is_refused_before_any_request(
    make_client, fts_emulator
) -> None:
    now = datetime.now(UTC)
    dying = make_client.user.make_proxy(
        not_before=now - timedelta(hours=11), not_after=now + timedelta(minutes=30), voms=DTEAM
    )
    client = make_client(dying)

    with pytest.raises(FTSValidationError, match="expires") as raised:
        client.submit_job(transfers())

    assert "voms-proxy-init" in str(raised.value) or "grid-proxy-init" in str(raised.value)
    assert sum(fts_emulator.requests.values()) == 0
    assert client.whoami()["vos"] == ["dteam"]  # status calls go on until it expires


# -- submission -------------------------------------------------------------------------


def test_submit_uses_the_locally_computed_deterministic_id(make_client) -> None:
    client = make_client()

    job_id = client.submit_job(transfers(), sid="run-42")

    assert job_id == client.expected_job_id("run-42")


def test_same_sid_twice_returns_the_existing_job(make_client, fts_emulator) -> None:
    client = make_client()
    batch = transfers()
    first = client.submit_job(batch, sid="same-sid")

    second = client.submit_job(batch, sid="same-sid")

    assert second == first
    destinations = {destination for _, destination in batch}
    held = [
        job["job_id"]
        for job in fts_emulator.store.jobs_snapshot()
        if any(f["dest_surl"] in destinations for f in job["files"])
    ]
    assert held == [first]
    assert fts_emulator.requests["POST /jobs"] == 2  # the 409 is the answer, not an error


def test_lost_submit_answer_is_resolved_without_a_duplicate(make_client, fts_emulator) -> None:
    client = make_client()
    client.delegate()
    before = fts_emulator.store.job_count()
    fts_emulator.faults.ambiguous_submit()

    job_id = client.submit_job(transfers())

    assert fts_emulator.store.job_count() == before + 1
    assert client.get_job(job_id)["job_id"] == job_id
    assert fts_emulator.requests["POST /jobs"] == 1  # looked up, not sent again


def test_submit_refused_before_the_server_stored_it_is_sent_once_more(
    make_client, fts_emulator
) -> None:
    client = make_client()
    client.delegate()
    before = fts_emulator.store.job_count()
    fts_emulator.faults.reset_connection(route="POST /jobs")

    job_id = client.submit_job(transfers())

    assert fts_emulator.store.job_count() == before + 1
    assert fts_emulator.requests["POST /jobs"] == 2
    assert client.get_job(job_id)["job_id"] == job_id


def test_lost_answer_with_standard_ids_is_reported_as_ambiguous(make_client, fts_emulator) -> None:
    client = make_client()
    client.delegate()
    before = fts_emulator.store.job_count()
    fts_emulator.faults.ambiguous_submit()

    with pytest.raises(AmbiguousSubmission, match="may or may not"):
        client.submit_job(transfers(), id_generator="standard")

    assert fts_emulator.store.job_count() == before + 1  # stored once, never sent again
    assert fts_emulator.requests["POST /jobs"] == 1


def test_submit_answered_503_is_looked_up_before_it_is_sent_again(
    make_client, fts_emulator
) -> None:
    client = make_client()
    client.delegate()
    before = fts_emulator.store.job_count()
    fts_emulator.faults.html_503(count=1, route="POST /jobs")

    job_id = client.submit_job(transfers())

    assert fts_emulator.store.job_count() == before + 1
    assert fts_emulator.requests["GET /jobs/{id}"] == 1  # the lookup came first
    assert fts_emulator.requests["POST /jobs"] == 2
    assert client.get_job(job_id)["job_id"] == job_id


def test_post_with_standard_ids_is_never_retried_on_503(make_client, fts_emulator) -> None:
    client = make_client()
    client.delegate()
    fts_emulator.faults.html_503(count=1, route="POST /jobs")

    with pytest.raises(TryAgain, match="503"):
        client.submit_job(transfers(), id_generator="standard")

    assert fts_emulator.requests["POST /jobs"] == 1


def test_invalid_submission_sends_no_request(make_client, fts_emulator) -> None:
    client = make_client()

    with pytest.raises(FTSValidationError, match=r"transfers\[0\]"):
        client.submit_job([("file:///etc/passwd", "davs://dst.example.org/x")])

    assert sum(fts_emulator.requests.values()) == 0


def test_server_rejection_maps_to_bad_request(make_client) -> None:
    client = make_client()
    client.delegate()

    with pytest.raises(BadRequest, match="Incompatible overwrite flags"):
        client.transport.request(
            "POST",
            "/jobs",
            json_body={
                "files": [
                    {"sources": ["mock://a.example/x"], "destinations": ["mock://b.example/x"]}
                ],
                "params": {"overwrite": True, "overwrite_on_retry": True},
            },
        )


# -- status -----------------------------------------------------------------------------


def test_get_jobs_handles_207_entry_by_entry(make_client, fts_emulator) -> None:
    client = make_client()
    known = client.submit_job(transfers())
    unknown = str(uuid.uuid4())

    entries = client.get_jobs([known, unknown])

    assert [e["job_id"] for e in entries] == [known, unknown]
    assert entries[0]["job_state"]
    assert entries[1]["http_status"].startswith("404")


def test_get_jobs_asks_for_100_ids_per_request(make_client, fts_emulator) -> None:
    client = make_client()
    ids = [str(uuid.uuid4()) for _ in range(250)]

    entries = client.get_jobs(ids)

    assert len(entries) == 250
    assert fts_emulator.requests["GET /jobs/{id}"] == 3


def test_unknown_job_raises_not_found(make_client) -> None:
    with pytest.raises(NotFound, match="No job with the id"):
        make_client().get_job(str(uuid.uuid4()))


def test_job_with_files_reaches_a_final_state_with_summary_fields(make_client) -> None:
    client = make_client()
    job_id = client.submit_job(transfers(3), verify_checksum="none")

    job = _wait(client, job_id)

    assert job["job_state"] == "FINISHED"
    assert {f["file_state"] for f in job["files"]} == {"FINISHED"}
    assert all("filesize" in f and "reason" in f for f in job["files"])
    assert len(client.get_job_files(job_id)) == 3


def test_failed_file_has_its_retries(make_client) -> None:
    client = make_client()
    job_id = client.submit_job(transfers(1, "transfer_errno=110"), retry=2, retry_delay=0)

    job = _wait(client, job_id)
    retries = client.get_file_retries(job_id, job["files"][0]["file_id"])

    assert job["job_state"] == "FAILED"
    assert len(retries) == 2


def test_purged_job_is_read_from_the_archive(make_client, fts_emulator) -> None:
    client = make_client()
    job_id = client.submit_job(transfers())
    _wait(client, job_id)
    fts_emulator.purge(job_id)

    with pytest.raises(NotFound):
        client.get_job(job_id)
    archived = client.get_job_or_archived(job_id)

    assert archived["job_id"] == job_id
    assert archived["files"]


def test_get_is_retried_after_a_connection_reset(make_client, fts_emulator) -> None:
    client = make_client()
    job_id = client.submit_job(transfers())
    fts_emulator.reset_counts()
    fts_emulator.faults.reset_connection(count=2, route="GET /jobs/{id}")

    assert client.get_job(job_id)["job_id"] == job_id
    assert fts_emulator.requests["GET /jobs/{id}"] >= 1


def test_get_gives_up_after_its_retries(make_client, fts_emulator) -> None:
    client = make_client(retries=2)
    fts_emulator.faults.html_503(count=None, route="GET /jobs/{id}")

    with pytest.raises(TryAgain):
        client.get_job(str(uuid.uuid4()))

    assert fts_emulator.faults.armed[0].hits == 3


def test_garbled_json_is_retried_for_a_get(make_client, fts_emulator) -> None:
    client = make_client()
    job_id = client.submit_job(transfers())
    fts_emulator.faults.malformed_json(count=1, route="GET /jobs/{id}")

    assert client.get_job(job_id)["job_id"] == job_id


# -- listing, cancel, priority ------------------------------------------------------------


def test_list_jobs_shows_unfinished_jobs_of_the_vo(make_client) -> None:
    client = make_client()
    job_id = client.submit_job(transfers(1, "time=30"))

    listed = client.list_jobs(fields=["job_id", "job_state"], limit=500)

    assert job_id in {job["job_id"] for job in listed}
    client.cancel_job(job_id)


def test_list_jobs_refuses_limit_zero_locally(make_client, fts_emulator) -> None:
    with pytest.raises(FTSValidationError, match="limit"):
        make_client().list_jobs(limit=0)
    assert sum(fts_emulator.requests.values()) == 0


def test_list_jobs_refuses_an_unknown_state(make_client) -> None:
    with pytest.raises(FTSValidationError, match="state_in"):
        make_client().list_jobs(state_in=["FINISHED", "DONE"])


def test_cancel_job_and_cancel_a_final_job_again(make_client) -> None:
    client = make_client()
    job_id = client.submit_job(transfers(1, "time=30"))

    canceled = client.cancel_job(job_id)
    again = client.cancel_job(job_id)

    assert canceled["job_state"] == "CANCELED"
    assert again["http_status"].startswith("304")


def test_cancel_jobs_reports_unknown_ids_per_entry(make_client) -> None:
    client = make_client()
    job_id = client.submit_job(transfers(1, "time=30"))
    unknown = str(uuid.uuid4())

    entries = {e["job_id"]: e for e in client.cancel_jobs([job_id, unknown])}

    assert entries[job_id]["job_state"] == "CANCELED"
    assert entries[unknown]["http_status"].startswith("404")


def test_cancel_some_files_of_a_job(make_client) -> None:
    client = make_client()
    job_id = client.submit_job(transfers(3, "time=30"))
    file_ids = [f["file_id"] for f in client.get_job_files(job_id)]

    states = client.cancel_files(job_id, file_ids[:2])

    assert states == ["CANCELED", "CANCELED"]
    client.cancel_job(job_id)


def test_set_priority_changes_job_and_validates_locally(make_client, fts_emulator) -> None:
    client = make_client()
    job_id = client.submit_job(transfers(1, "time=30"), priority=2)

    client.set_priority([job_id], 5)

    assert client.get_job_field(job_id, "priority") == 5
    with pytest.raises(FTSValidationError, match="priority"):
        client.set_priority([job_id], 42)
    client.cancel_job(job_id)


def _wait(client: FTSClient, job_id: str, seconds: float = 20.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = client.get_job(job_id, files=True)
        if JobState.parse(job["job_state"]).is_terminal:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end within {seconds}s")


def test_clients_starting_together_delegate_once(make_client, fts_emulator) -> None:
    clients = [make_client() for _ in range(10)]

    with ThreadPoolExecutor(max_workers=10) as pool:
        job_ids = list(pool.map(lambda c: c.submit_job(transfers()), clients))

    assert len(set(job_ids)) == 10
    assert delegation_requests(fts_emulator) == 1


def test_delegation_that_lost_a_race_uses_the_winners(
    make_client, fts_emulator, monkeypatch
) -> None:
    # Given another process whose delegation lands while ours is on its way
    client = make_client()
    store = fts_emulator.delegations
    real_put = store.put_credential

    def another_process_won(delegation_id: str, user_dn: str, body: bytes):
        monkeypatch.setattr(store, "put_credential", real_put)
        fts_emulator.delegate(delegation_id, user_dn, fqans=DTEAM.fqan_list())
        raise HTTPError(400, "No credential cache found")

    monkeypatch.setattr(store, "put_credential", another_process_won)

    # When we delegate, our refused PUT is not an error: the winner's delegation serves
    client.delegate()

    assert delegation_requests(fts_emulator) == 1
    assert fts_emulator.requests["GET /delegation/{dlg_id}/request"] == 1
    left = client.get_delegation()["termination_time"] - datetime.now(UTC)
    assert left > timedelta(hours=11)
