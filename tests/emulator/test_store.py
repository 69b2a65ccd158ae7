"""The emulator's job store against the recorded answers of a real FTS REST server."""

from __future__ import annotations

import pytest

from airflow_provider_fts.testing.identity import Identity
from airflow_provider_fts.testing.records import FILES_FAILED, HTTPError, derive_job_state, iso
from tests.emulator.conftest import DN, job, recorded, submit, transfer

# -- reading ------------------------------------------------------------------------------


def test_multi_id_get_with_an_unknown_id_is_207_with_a_per_job_error(store, user):
    job_id = submit(store, user)
    unknown = "00000000-0000-0000-0000-000000000000"

    status, entries = store.get_jobs([job_id, unknown], user, None, multi=True)

    assert status == 207
    assert entries[0]["http_status"] == "200 Ok"
    assert entries[1] == recorded("088")["response"]["body"][1]


def test_single_unknown_id_is_a_404_entry(store, user):
    unknown = "00000000-0000-0000-0000-000000000000"

    assert store.get_jobs([unknown], user, None, multi=False) == (
        404,
        recorded("089")["response"]["body"],
    )


def test_single_id_with_a_trailing_comma_is_a_one_element_list(store, user):
    job_id = submit(store, user)

    status, entries = store.get_jobs([job_id, ""], user, None, multi=True)

    assert status == 200
    assert [e["job_id"] for e in entries] == [job_id]


def test_other_vo_jobs_are_forbidden_per_entry(store, user, stranger):
    job_id = submit(store, user)

    status, entry = store.get_jobs([job_id], stranger, None, multi=False)

    assert status == 403
    assert entry["http_message"] == f'Not enough permissions to check the job "{job_id}"'


def test_root_reaches_jobs_of_every_vo(store, user):
    job_id = submit(store, user)
    host_dn = "/DC=org/DC=example/CN=localhost"
    root = Identity(host_dn, [host_dn], [], ["5a2b0c1d9e8f7a6b"], "5a2b0c1d9e8f7a6b",
                    "certificate", is_root=True)  # fmt: skip
    plain = Identity(host_dn, [host_dn], [], ["5a2b0c1d9e8f7a6b"], "5a2b0c1d9e8f7a6b",
                     "certificate")  # fmt: skip

    assert job(store, root, job_id)["job_id"] == job_id
    assert store.get_jobs([job_id], plain, None, multi=False)[0] == 403


def test_own_dn_jobs_of_another_vo_are_visible(store, user):
    job_id = submit(store, user)
    same_dn_no_voms = Identity(
        DN, [DN], [], ["099499e65703c243"], "099499e65703c243", "certificate"
    )

    status, _ = store.get_jobs([job_id], same_dn_no_voms, None, multi=False)

    assert status == 200


def test_unknown_field_is_404(store, user):
    job_id = submit(store, user)

    with pytest.raises(HTTPError) as raised:
        store.get_job_field(job_id, "no_such_field", user)

    assert raised.value.body() == recorded("098")["response"]["body"]


def test_retries_of_an_unknown_file_are_empty(store, user):
    job_id = submit(store, user)

    assert store.get_retries(job_id, 999999999, user) == []


def test_anonymous_job_lookup_is_a_server_error_as_upstream(store, user, anonymous):
    job_id = submit(store, user)

    with pytest.raises(HTTPError) as raised:
        store.get_jobs([job_id], anonymous, None, multi=False)

    assert raised.value.status == 500


# -- listing ------------------------------------------------------------------------------


@pytest.fixture
def history(store, user, clock) -> dict[str, str]:
    """A finished job (2 h ago), a failed one (10 min ago) and two queued ones."""
    ids = {}
    for name in ("finished", "failed", "queued", "newest"):
        ids[name] = submit(store, user, transfer(name))
        clock.now += 1
    ended = {ids["finished"]: ("FINISHED", "", 7200), ids["failed"]: ("FAILED", FILES_FAILED, 600)}
    with store.lock:
        for stored in store.stored_jobs():
            if stored.job_id in ended:
                state, reason, age = ended[stored.job_id]
                stored.files[0].update(file_state=state, finish_time=iso(clock.now - age))
                stored.finish(state, reason, clock.now - age)
    return ids


def listed(store, user, **query: str) -> list[str]:
    return [j["job_id"] for j in store.list_jobs(query, user)]


def test_listing_shows_only_unfinished_jobs(store, user, history):
    assert listed(store, user) == [history["queued"], history["newest"]]


def test_state_filter_alone_keeps_the_unfinished_restriction(store, user, history):
    assert listed(store, user, state_in="FINISHED,FAILED") == []


def test_time_window_with_state_filter_shows_recently_finished_jobs(store, user, history):
    assert listed(store, user, state_in="FINISHED,FAILED", time_window="1") == [history["failed"]]
    assert listed(store, user, state_in="FINISHED,FAILED", time_window="3:0") == [
        history["finished"],
        history["failed"],
    ]


def test_limit_with_state_filter_lifts_the_finished_restriction(store, user, history):
    assert listed(store, user, state_in="FINISHED,FAILED", limit="1") == [history["failed"]]


def test_limit_alone_gives_the_newest_unfinished_first(store, user, history):
    assert listed(store, user, limit="5") == [history["newest"], history["queued"]]


def test_fields_restrict_the_keys(store, user, history):
    entries = store.list_jobs({"fields": "job_id,job_state", "limit": "1"}, user)

    assert entries == [{"job_id": history["newest"], "job_state": "SUBMITTED"}]


def test_listing_is_forced_to_the_callers_vo(store, user, stranger, history):
    submit(store, stranger)

    assert listed(store, user, vo_name="atlas") == [history["queued"], history["newest"]]


def test_token_users_list_every_vo(store, user, stranger, history):
    theirs = submit(store, stranger)
    token_user = Identity("sub", ["sub"], [], ["dteam"], "t0k", "oauth2")

    assert theirs in listed(store, token_user)


@pytest.mark.parametrize(
    ("query", "case"),
    [({"dlg_id": "0123456789abcdef"}, "108"), ({"user_dn": "/CN=Someone Else"}, "110"),
     ({"limit": "1000"}, "111")],
)  # fmt: skip
def test_listing_rejections_match_the_server(store, user, query, case):
    with pytest.raises(HTTPError) as raised:
        store.list_jobs(query, user)

    expected = recorded(case)["response"]
    assert (raised.value.status, raised.value.body()) == (expected["status"], expected["body"])


def test_anonymous_listing_is_forbidden(store, anonymous):
    with pytest.raises(HTTPError) as raised:
        store.list_jobs({}, anonymous)

    assert raised.value.status == 403


def test_file_listing_ignores_limit_and_breaks_on_time_window(store, user, history):
    rows = store.list_files({"limit": "1"}, user)

    assert [r["job_id"] for r in rows] == [history["queued"], history["newest"]]
    with pytest.raises(HTTPError) as raised:
        store.list_files({"state_in": "FINISHED", "time_window": "1"}, user)
    assert raised.value.body() == recorded("158")["response"]["body"]


# -- cancel and modify --------------------------------------------------------------------


def test_cancel_of_a_queued_job_cancels_it_and_its_files_at_once(store, user, clock):
    job_id = submit(store, user)

    status, entry = store.cancel([job_id], user, multi=False)

    assert status == 200
    assert (entry["job_state"], entry["reason"], entry["cancel_job"]) == (
        "CANCELED",
        "Job canceled by the user",
        True,
    )
    assert (entry["http_status"], entry["http_message"]) == ("200 Ok", None)
    [row] = store.get_files(job_id, user)
    assert (row["file_state"], row["reason"]) == ("CANCELED", "Job canceled by the user")
    assert row["finish_time"] is not None


def test_cancel_of_a_running_transfer_leaves_finish_time_to_the_daemon(store, user):
    job_id = submit(store, user)
    with store.lock:
        [stored] = store.stored_jobs()
        stored.files[0].update(file_state="ACTIVE", pid=4242)

    store.cancel([job_id], user, multi=False)

    [row] = store.get_files(job_id, user)
    assert (row["file_state"], row["finish_time"], row["pid"]) == ("CANCELED", None, 4242)


def test_cancel_of_a_terminal_job_is_a_304_entry_in_a_200(store, user):
    job_id = submit(store, user)
    store.cancel([job_id], user, multi=False)

    status, entry = store.cancel([job_id], user, multi=False)

    assert status == 200
    assert (entry["http_status"], entry["http_message"]) == (
        "304 Not Modified",
        "The job is in a terminal state",
    )


def test_multi_cancel_lists_untouched_entries_first_and_207_only_for_errors(store, user):
    done, queued = submit(store, user), submit(store, user)
    store.cancel([done], user, multi=False)
    unknown = "00000000-0000-0000-0000-000000000000"

    status, entries = store.cancel([queued, done], user, multi=True)
    error_status, error_entries = store.cancel([submit(store, user), unknown], user, multi=True)

    assert status == 200
    assert [e["job_id"] for e in entries] == [done, queued]
    assert error_status == 207
    assert error_entries[0] == recorded("125")["response"]["body"][0]


def test_cancel_files_answers_per_file_and_cancels_the_job_when_none_is_left(store, user):
    job_id = submit(store, user, transfer("a"), transfer("b"))
    first, second = (r["file_id"] for r in store.get_files(job_id, user))

    one = store.cancel_files(job_id, [str(first)], user)
    state_between = store.get_job_field(job_id, "job_state", user)
    several = store.cancel_files(job_id, [str(first), str(second), "999999999"], user)

    assert one == "CANCELED"
    assert state_between == "SUBMITTED"
    assert several == ["CANCELED", "CANCELED", "File does not belong to the job"]
    assert store.get_job_field(job_id, "job_state", user) == "CANCELED"


def test_cancel_files_of_a_multihop_job_is_refused(store, user):
    job_id = store.submit(recorded("037")["request"]["body"], user)
    file_id = store.get_files(job_id, user)[0]["file_id"]

    with pytest.raises(HTTPError) as raised:
        store.cancel_files(job_id, [str(file_id)], user)

    assert raised.value.body() == recorded("133")["response"]["body"]


def test_modify_sets_priority_without_clamping_and_returns_files(store, user):
    job_id = submit(store, user)

    status, entry = store.modify([job_id], {"params": {"priority": 42}}, user, multi=False)

    assert status == 200
    assert entry["priority"] == 42
    assert [f["priority"] for f in entry["files"]] == [42]


def test_modify_with_a_non_integer_priority_is_refused(store, user):
    job_id = submit(store, user)

    with pytest.raises(HTTPError) as raised:
        store.modify([job_id], {"params": {"priority": "high"}}, user, multi=False)

    assert raised.value.body() == recorded("136")["response"]["body"]


def test_modify_to_zero_changes_nothing(store, user):
    job_id = submit(store, user, priority=4)

    store.modify([job_id], {"params": {"priority": 0}}, user, multi=False)

    assert store.get_job_field(job_id, "priority", user) == 4


# -- archive ------------------------------------------------------------------------------


def test_archived_job_leaves_jobs_and_appears_in_the_archive(store, user):
    job_id = submit(store, user)

    store.purge_to_archive(job_id)

    assert store.get_jobs([job_id], user, None, multi=False)[0] == 404
    archived = store.get_archived(job_id, user)
    expected = recorded("152")["response"]["body"]
    assert sorted(archived) == sorted(expected)
    assert sorted(archived["files"][0]) == sorted(expected["files"][0])
    assert store.get_archived(job_id, user, "job_state") == "SUBMITTED"


def test_unknown_archived_job_is_404_with_the_archive_message(store, user):
    job_id = submit(store, user)

    with pytest.raises(HTTPError) as raised:
        store.get_archived(job_id, user)

    assert raised.value.message == f'No job with the id "{job_id}" has been found in the archive'


# -- state derivation ---------------------------------------------------------------------


def rows(*states: str, job_index: list[int] | None = None) -> list[dict]:
    indexes = job_index or list(range(len(states)))
    return [{"file_index": i, "file_state": s} for i, s in zip(indexes, states, strict=True)]


@pytest.mark.parametrize(
    ("job_type", "files", "expected"),
    [
        ("N", rows("FINISHED", "FINISHED"), ("FINISHED", "")),
        ("N", rows("FINISHED", "FAILED"), ("FINISHEDDIRTY", FILES_FAILED)),
        ("N", rows("FAILED", "CANCELED"), ("FAILED", FILES_FAILED)),
        ("N", rows("FINISHED", "CANCELED"), ("CANCELED", None)),
        ("N", rows("FINISHED", "ACTIVE"), ("ACTIVE", None)),
        ("N", rows("STARTED", "SUBMITTED"), ("STAGING", None)),
        ("N", rows("ARCHIVING", "FINISHED"), ("ARCHIVING", None)),
        ("R", rows("FAILED", "FINISHED", job_index=[0, 0]), ("FINISHED", "")),
        ("R", rows("FAILED", "SUBMITTED", job_index=[0, 0]), ("SUBMITTED", None)),
        ("H", rows("FAILED", "NOT_USED"), ("FAILED", FILES_FAILED)),
        ("H", rows("FINISHED", "FAILED"), ("FAILED", FILES_FAILED)),
    ],
)
def test_job_state_derivation(job_type, files, expected):
    assert derive_job_state(job_type, files) == expected
