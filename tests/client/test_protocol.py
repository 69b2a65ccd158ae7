"""The protocol layer for jobs by id: requests built and answers read without any HTTP."""

from __future__ import annotations

import ssl

import pytest

from airflow_provider_fts.client import protocol, sending
from airflow_provider_fts.client.credentials import Trust
from airflow_provider_fts.client.errors import (
    FTSConnectionError,
    FTSValidationError,
    NotAuthorised,
    NotFound,
    ServerCertificateError,
    TryAgain,
)
from airflow_provider_fts.client.protocol import Exchange, Request
from airflow_provider_fts.client.states import SUMMARY_FILE_FIELDS


def job(job_id: str, state: str = "ACTIVE") -> dict:
    return {"job_id": job_id, "job_state": state, "files": []}


def missing(job_id: str) -> dict:
    return {"job_id": job_id, "http_status": "404 Not Found", "http_message": "No job"}


def test_ids_go_in_requests_of_a_hundred_in_the_order_given() -> None:
    ids = [f"id-{n:03}" for n in range(250)]

    requests = protocol.by_ids("GET", ids, params={"files": "file_state"})

    assert [len(r.job_ids) for r in requests] == [100, 100, 50]
    assert [i for r in requests for i in r.job_ids] == ids
    assert requests[2].path == "/jobs/" + ",".join(ids[200:]) + ","
    assert all(r.idempotent and r.params == {"files": "file_state"} for r in requests)


def test_priority_requests_are_not_idempotent_and_carry_the_checked_body() -> None:
    (request,) = protocol.by_ids("POST", ["a"], json_body=protocol.priority_body(5))

    assert request.json_body == {"params": {"priority": 5}}
    assert not request.idempotent
    with pytest.raises(FTSValidationError, match="priority"):
        protocol.priority_body(True)


@pytest.mark.parametrize("bad", ["", "a,b", "../x", "a b", "None", None])
def test_a_bad_job_id_is_refused_before_any_request(bad) -> None:
    with pytest.raises(FTSValidationError, match=r"^job_id: "):
        protocol.by_ids("GET", ["good", bad])


def test_a_bad_file_id_is_called_a_file_id() -> None:
    with pytest.raises(FTSValidationError, match=r"^file_id: "):
        protocol.check_id("1/2", "file_id")


def test_files_true_asks_for_the_summary_fields_and_file_fields_for_others() -> None:
    assert protocol.files_params() is None
    assert protocol.files_params(True) == {"files": ",".join(SUMMARY_FILE_FIELDS)}
    assert protocol.files_params(file_fields=["file_state", "reason"]) == {
        "files": "file_state,reason"
    }


@pytest.mark.parametrize(
    ("files", "file_fields", "field"),
    [
        (["file_state"], None, "files"),
        (False, "file_state", "file_fields"),
        (False, [], "file_fields"),
    ],
)
def test_files_of_the_wrong_shape_name_the_fix(files, file_fields, field) -> None:
    with pytest.raises(FTSValidationError, match=f"^{field}: .*Fix: "):
        protocol.files_params(files, file_fields)


def test_queries_keep_commas_and_colons_literal() -> None:
    request = Request("GET", "/jobs", params={"state_in": "ACTIVE,FAILED", "time_window": "1:30"})

    assert request.target == "/jobs?state_in=ACTIVE,FAILED&time_window=1:30"


def test_headers_ask_for_json_and_name_us() -> None:
    headers = protocol.request_headers("httpx/1")

    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith("airflow-provider-fts/")
    assert headers["User-Agent"].endswith(" httpx/1")
    assert protocol.request_headers("x", user_agent="me/1")["User-Agent"] == "me/1"


def test_a_request_carries_its_token_and_its_json_body() -> None:
    request = protocol.Request("POST", "/jobs", json_body={"files": []})

    headers, body = sending.outgoing(request, "t0k")

    assert headers == {"Authorization": "Bearer t0k", "Content-Type": "application/json"}
    assert body == b'{"files":[]}'
    assert sending.outgoing(protocol.Request("GET", "/whoami"), None) == ({}, None)


def play(flow, answers: dict[str, object]) -> tuple[object, list[str]]:
    """Run a flow against canned answers by path (an exception is thrown in)."""
    exchange, sent = Exchange(flow), []
    while not exchange.done:
        sent.append(exchange.request.path)
        answer = answers[exchange.request.path]
        if isinstance(answer, Exception):
            exchange.fail(answer)
        else:
            exchange.answer(answer)
    return exchange.result, sent


def test_a_purged_job_is_read_from_the_archive_and_an_unknown_one_stays_an_entry() -> None:
    answers = {
        "/jobs/a,b,c,": [job("a"), missing("b"), missing("c")],
        "/archive/b": job("b", "FINISHED"),
        "/archive/c": NotFound(404, "No job", method="GET", path="/archive/c"),
    }

    result, sent = play(protocol.jobs_or_archived(["a", "b", "c"], files=True), answers)

    assert result == [job("a"), job("b", "FINISHED"), missing("c")]
    assert sent == ["/jobs/a,b,c,", "/archive/b", "/archive/c"]


def test_a_refused_archive_read_is_raised() -> None:
    answers = {"/jobs/b,": [missing("b")], "/archive/b": NotAuthorised(403, "no")}

    with pytest.raises(NotAuthorised):
        play(protocol.jobs_or_archived(["b"]), answers)


def test_an_error_entry_other_than_not_found_is_raised_not_passed_on() -> None:
    refused = {"job_id": "b", "http_status": "403 Forbidden", "http_message": "Not yours"}
    answers = {"/jobs/a,b,": [job("a"), refused]}

    with pytest.raises(NotAuthorised, match="Not yours"):
        play(protocol.jobs_or_archived(["a", "b"]), answers)


def test_a_poll_round_gives_records_errors_and_skips_a_batch_lost_to_a_passing_fault() -> None:
    ids = [f"j{n:03}" for n in range(201)]
    first, second, third = (r.path for r in protocol.by_ids("GET", ids))
    denied = NotAuthorised(401, "who are you")
    answers = {
        first: [job(i, "FINISHED") for i in ids[:99]] + [missing(ids[99])],
        "/archive/" + ids[99]: NotFound(404, "No job"),
        second: TryAgain(503, "busy"),
        third: denied,
    }

    (records, errors), _ = play(protocol.job_states(ids), answers)

    assert sorted(records) == ids[:99]
    assert isinstance(errors[ids[99]], NotFound)
    assert errors[ids[200]] is denied
    assert not set(ids[100:200]) & (set(records) | set(errors))


def test_a_bad_certificate_fails_the_round_instead_of_waiting_for_the_next() -> None:
    bad = ServerCertificateError("bad certificate")
    (request,) = protocol.by_ids("GET", ["a"])

    (records, errors), _ = play(protocol.job_states(["a"]), {request.path: bad})

    assert (records, errors) == ({}, {"a": bad})
    assert not protocol.is_transient(bad)
    assert protocol.is_transient(FTSConnectionError("reset"))


def test_a_certificate_failure_deep_in_a_library_error_names_the_ca_and_the_fix() -> None:
    failure = ssl.SSLCertVerificationError(1, "certificate verify failed")
    failure.verify_message = "unable to get local issuer certificate"
    try:
        try:
            raise failure
        except ssl.SSLError as inner:
            raise OSError("connect failed", inner) from None
    except OSError as wrapped:
        outer = wrapped

    error = sending.certificate_error("https://h:8446", Trust(ca_path="/cas"), outer)

    assert isinstance(error, ServerCertificateError)
    assert not error.maybe_sent
    assert "unable to get local issuer certificate" in str(error)
    assert "the CA directory /cas (ca_path)" in str(error)
    assert "ca_file" in str(error) and "verify" in str(error)
    assert sending.certificate_error("https://h:8446", Trust(), OSError("refused")) is None


def test_the_trust_in_use_is_described() -> None:
    assert sending.describe_trust(Trust()).startswith("the system CA store")
    assert sending.describe_trust(Trust(ca_file="/b.pem")) == "the CA file /b.pem (ca_file)"


def test_an_ended_job_whose_files_were_lost_to_a_passing_fault_is_not_handed_over() -> None:
    running = {"job_id": "a", "job_state": "ACTIVE"}
    ended = {"job_id": "b", "job_state": "FAILED"}
    answers = {"/jobs/a,b,": [running, ended], "/jobs/b,": TryAgain(503, "busy")}
    added: list[dict] = []

    errors, sent = play(protocol.job_round(["a", "b"], [], added.append), answers)

    assert (added, errors, sent) == ([running], {}, ["/jobs/a,b,", "/jobs/b,"])
