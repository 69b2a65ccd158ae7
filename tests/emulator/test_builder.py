"""The emulator's job builder: what a submission stores, or why it is refused, as recorded."""

from __future__ import annotations

import uuid

import pytest

from airflow_provider_fts.client.submission import BASE_ID
from airflow_provider_fts.testing.identity import Identity
from airflow_provider_fts.testing.records import HTTPError
from airflow_provider_fts.testing.store import JobStore
from tests.emulator.conftest import job, recorded, submit, transfer


def shape(value: object) -> object:
    """Key sets and JSON types, nulls compatible with anything, ints with floats."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def assert_same_shape(ours: dict, theirs: dict) -> None:
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        if value is not None and ours[key] is not None:
            assert shape(ours[key]) == shape(value) or isinstance(value, dict), key


# -- submission: rejections, with the recorded server's messages -------------------------

REJECTED = ["036", "047", "048", "049", "050", "051", "053", "054", "058", "059", "064",
            "071", "072", "073", "074", "075"]  # fmt: skip


@pytest.mark.parametrize("case", REJECTED)
def test_rejected_submission_gets_the_recorded_status_and_message(store, user, case):
    exchange = recorded(case)

    with pytest.raises(HTTPError) as raised:
        store.submit(exchange["request"]["body"], user)

    assert raised.value.status == exchange["response"]["status"]
    assert raised.value.body() == exchange["response"]["body"]
    assert store.job_count() == 0


@pytest.mark.parametrize("case", ["021", "022", "052", "055", "056", "057", "062"])
def test_submission_the_server_accepts_is_accepted(store, user, case):
    job_id = store.submit(recorded(case)["request"]["body"], user)

    assert uuid.UUID(job_id).version == 1


def test_anonymous_submission_is_forbidden(store, anonymous):
    with pytest.raises(HTTPError) as raised:
        store.submit({"files": [transfer()]}, anonymous)

    assert (raised.value.status, raised.value.message) == (403, "Not enough permissions")


def test_overwrite_flags_cannot_be_combined(store, user):
    with pytest.raises(HTTPError, match="Incompatible overwrite flags"):
        submit(store, user, overwrite=True, overwrite_on_retry=True)


def test_token_users_cannot_request_tape_staging(store):
    token_user = Identity("sub", ["sub"], [], ["dteam"], "t0k", "oauth2")

    with pytest.raises(HTTPError, match="token authentication are not supported"):
        submit(store, token_user, bring_online=60)


# -- submission: what gets stored ---------------------------------------------------------


def test_stored_job_and_files_have_the_recorded_shape_and_values(store, user):
    job_id = store.submit(recorded("022")["request"]["body"], user)

    stored = job(store, user, job_id)
    files = store.get_files(job_id, user)

    expected_job = recorded("023")["response"]["body"]
    assert_same_shape(stored, expected_job)
    volatile = {"job_id", "submit_time"}
    assert {k: v for k, v in stored.items() if k not in volatile} == {
        k: v for k, v in expected_job.items() if k not in volatile
    }
    expected_files = recorded("024")["response"]["body"]
    for ours, theirs in zip(files, expected_files, strict=True):
        assert_same_shape(ours, theirs)
        volatile = {"job_id", "file_id", "hashed_id"}
        assert {k: v for k, v in ours.items() if k not in volatile} == {
            k: v for k, v in theirs.items() if k not in volatile
        }


def test_verify_checksum_is_stored_as_the_recorded_letter(store, user):
    submissions = [recorded(f"0{n}")["request"]["body"] for n in range(25, 33)]
    job_ids = [store.submit(body, user) for body in submissions]

    status, jobs = store.get_jobs(job_ids, user, None, multi=True)

    expected = recorded("033")["response"]["body"]
    assert status == 200
    assert [j["verify_checksum"] for j in jobs] == [j["verify_checksum"] for j in expected]


def test_multiple_sources_make_a_replica_job_with_one_queued_row(store, user):
    job_id = store.submit(recorded("034")["request"]["body"], user)

    fields = ["file_state", "source_surl", "file_index", "selection_strategy"]
    stored = job(store, user, job_id, fields)

    expected = recorded("035")["response"]["body"]
    assert (stored["job_type"], stored["source_se"]) == ("R", None)
    assert stored["files"] == [{k: f[k] for k in fields} for f in expected["files"]]


def test_multihop_queues_the_first_hop_only(store, user):
    job_id = store.submit(recorded("037")["request"]["body"], user)

    stored = job(store, user, job_id, ["file_index", "file_state"])

    expected = recorded("038")["response"]["body"]
    assert [stored[k] for k in ("job_type", "source_se", "dest_se")] == [
        expected[k] for k in ("job_type", "source_se", "dest_se")
    ]
    assert stored["files"] == [
        {"file_index": f["file_index"], "file_state": f["file_state"]} for f in expected["files"]
    ]


def test_staging_job_starts_staging_with_the_activity_in_root_urls(store, user):
    job_id = store.submit(recorded("039")["request"]["body"], user)

    fields = ["file_state", "source_surl", "dest_surl", "activity"]
    stored = job(store, user, job_id, fields)

    expected = recorded("044")["response"]["body"]
    assert stored["job_state"] == expected["job_state"] == "STAGING"
    assert stored["files"] == expected["files"]


def test_deterministic_id_matches_the_server_and_a_second_use_conflicts(store, user):
    body = recorded("045")["request"]["body"]

    job_id = store.submit(body, user)
    with pytest.raises(HTTPError) as raised:
        store.submit(recorded("046")["request"]["body"], user)

    assert job_id == recorded("045")["response"]["body"]["job_id"]
    assert raised.value.body() == recorded("046")["response"]["body"]


def test_deterministic_id_follows_the_configured_base_id(clock, user):
    other_base = "11111111-2222-3333-4444-555555555555"
    store = JobStore(clock=clock, base_id=other_base)

    job_id = submit(store, user, id_generator="deterministic", sid="s1")

    vo_id = uuid.uuid5(uuid.UUID(other_base), "dteam")
    assert job_id == str(uuid.uuid5(vo_id, "s1")) != BASE_ID


@pytest.mark.parametrize(("value", "seconds"), [(2, 7200), ("30m", 1800), ("45s", 45), (0, None)])
def test_max_time_in_queue_becomes_an_absolute_expiry(store, user, clock, value, seconds):
    job_id = submit(store, user, max_time_in_queue=value)

    expiry = store.get_job_field(job_id, "max_time_in_queue", user)

    assert expiry == (None if seconds is None else int(clock.now) + seconds)


def test_priority_is_clamped_on_submission(store, user):
    job_id = store.submit(recorded("060")["request"]["body"], user)

    assert store.get_job_field(job_id, "priority", user) == recorded("061")["response"]["body"]


def test_internal_job_params_collects_protocol_options(store, user):
    job_id = submit(store, user, nostreams=2, timeout=60, strict_copy=True, ipv6=True)

    assert (
        store.get_job_field(job_id, "internal_job_params", user)
        == "nostreams:2,timeout:60,strict,ipv6"
    )
