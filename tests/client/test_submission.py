"""The submission document: every shape a user may write, every unit, deterministic ids.

The recorded exchanges with a real FTS 3.13.4 server are the reference: each body it
accepted must pass through our API unchanged, or be refused for a reason listed here.
The rules and their messages are in test_submission_rules.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.submission import (
    BASE_ID,
    JobParams,
    MetadataLimits,
    Transfer,
    build_submission,
    expected_job_id,
)
from tests.client.submissions import DST, SECRET, SRC, hops, one, refused
from tests.recorded import RECORDED

# -- shapes ---------------------------------------------------------------------------------


def test_a_source_destination_dict_becomes_one_file_entry():
    document = build_submission([{"source": SRC, "destination": DST}])

    assert document["files"] == [{"sources": [SRC], "destinations": [DST]}]


def test_a_full_files_entry_is_sent_exactly_as_written():
    entry = {
        "sources": [SRC],
        "destinations": [DST],
        "checksum": "ADLER32:0a1b2c3d",
        "filesize": 1048576,
        "metadata": {"request_id": "r1", "n": 1},
        "activity": "Production",
        "selection_strategy": "orderly",
        "scitag": 65 << 6 | 2,
        "staging_metadata": {"activity": "recall"},
        "archive_metadata": {"collocation_hints": {"0": "run1"}},
    }

    assert build_submission([entry])["files"] == [entry]


def test_a_pair_is_a_source_and_a_destination():
    assert build_submission([(SRC, DST)])["files"] == [{"sources": [SRC], "destinations": [DST]}]


def test_a_transfer_object_is_used_as_it_is():
    transfer = Transfer(sources=(SRC,), destinations=(DST,), checksum="MD5:" + "0" * 32)

    assert build_submission([transfer])["files"] == [transfer.to_json()]


def test_keys_set_to_none_are_not_sent():
    document = build_submission([one(checksum=None, activity=None)], priority=None)

    assert document == {"files": [{"sources": [SRC], "destinations": [DST]}], "params": {}}


def test_params_are_always_sent_because_token_submissions_without_them_fail():
    assert build_submission([(SRC, DST)])["params"] == {}


def test_several_sources_make_one_multiple_replica_transfer():
    replicas = ["root://se1.example.org//f", "root://se2.example.org//f"]

    document = build_submission([(replicas, DST)])

    assert document["files"] == [{"sources": replicas, "destinations": [DST]}]


def test_a_multihop_job_lists_its_hops_in_order():
    path = ["root://tape.example.org//f", "davs://buffer.example.org/f", DST]

    document = build_submission(hops(*path), multihop=True)

    assert [f["sources"][0] for f in document["files"]] == path[:2]
    assert document["params"] == {"multihop": True}


def test_a_staging_job_may_copy_a_file_onto_itself():
    tape = "root://eoscta.example.org//eos/tape/f"

    document = build_submission(
        [(tape, tape)], bring_online=timedelta(hours=12), copy_pin_lifetime=3600
    )

    assert document["files"] == [{"sources": [tape], "destinations": [tape]}]
    assert document["params"] == {"bring_online": 43200, "copy_pin_lifetime": 3600}


def test_an_archive_job_sends_its_timeout_report_flag_and_metadata():
    document = build_submission(
        [one(archive_metadata={"scheduling_hints": {"priority": 1}})],
        archive_timeout=timedelta(days=1),
        dst_file_report=True,
        overwrite_when_only_on_disk=True,
    )

    assert document["params"] == {
        "archive_timeout": 86400,
        "dst_file_report": True,
        "overwrite_when_only_on_disk": True,
    }


def test_token_lists_are_sent_one_token_per_url():
    document = build_submission([one(source_tokens=["s-token"], destination_tokens=["d-token"])])

    assert document["files"][0]["source_tokens"] == ["s-token"]
    assert document["files"][0]["destination_tokens"] == ["d-token"]


def test_tokens_never_show_in_a_transfer_repr():
    transfer = Transfer.coerce(one(source_tokens=[SECRET], destination_tokens=[SECRET]))

    assert SECRET not in repr(transfer)


def test_tokens_never_show_in_an_error():
    error = refused([one(source_tokens=[SECRET, SECRET], destination_tokens=[SECRET])])

    assert SECRET not in str(error)


def test_the_query_of_a_url_never_shows_in_an_error():
    signed = "file://bucket.example.org/f?X-Amz-Signature=" + SECRET

    error = refused([(signed, DST)])

    assert SECRET not in str(error)
    assert "file://bucket.example.org/f?..." in str(error)


def test_a_destination_space_token_is_sent_under_both_names():
    params = build_submission([(SRC, DST)], destination_spacetoken="ATLASDATADISK")["params"]

    assert params == {"destination_spacetoken": "ATLASDATADISK", "spacetoken": "ATLASDATADISK"}


def test_a_sid_alone_asks_for_a_deterministic_id():
    params = build_submission([(SRC, DST)], sid="dag.task.run.0")["params"]

    assert params == {"id_generator": "deterministic", "sid": "dag.task.run.0"}


def test_a_generator_that_builds_100_transfers_is_read_once():
    transfers = ((f"{SRC}{n}", f"{DST}{n}") for n in range(100))

    assert len(build_submission(transfers)["files"]) == 100


# -- units ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        (2, "2h"),  # a bare int means hours to the server
        (timedelta(minutes=90), "90m"),
        (timedelta(seconds=5400), "90m"),
        (timedelta(seconds=61), "61s"),
        ("30s", "30s"),
        ("90m", "90m"),
        ("6H", "6h"),
        ("2d", "48h"),  # older servers ignore the 'd' suffix (no limit at all)
        ("120m", "2h"),
    ],
)
def test_max_time_in_queue_is_always_sent_with_its_unit(given, sent):
    assert JobParams(max_time_in_queue=given).to_json() == {"max_time_in_queue": sent}


@pytest.mark.parametrize(
    ("name", "given", "sent"),
    [
        ("retry_delay", timedelta(minutes=10), 600),
        ("retry_delay", 90, 90),
        ("retry_delay", 0, 0),
        ("bring_online", timedelta(hours=1), 3600),
        ("copy_pin_lifetime", 7200, 7200),
        ("archive_timeout", timedelta(days=2), 172800),
        ("timeout", timedelta(minutes=5), 300),
    ],
)
def test_durations_are_sent_in_seconds(name, given, sent):
    assert JobParams(**{name: given}).to_json() == {name: sent}


@pytest.mark.parametrize(
    ("given", "sent"),
    [(True, "both"), (False, "none"), ("source", "source"), ("TARGET", "target")],
)
def test_verify_checksum_is_sent_as_its_word(given, sent):
    assert JobParams(verify_checksum=given).to_json() == {"verify_checksum": sent}


@pytest.mark.parametrize("retry", [-1, 0, 3])
def test_retry_accepts_none_default_and_a_count(retry):
    assert JobParams(retry=retry).to_json() == {"retry": retry}


def test_metadata_limits_follow_the_server_configuration():
    big = {"blob": "x" * 3000}

    document = build_submission(
        [one(metadata=big)], job_metadata=big, metadata_limits=MetadataLimits(job=0, file=4096)
    )

    assert document["files"][0]["metadata"] == big
    assert document["params"]["job_metadata"] == big


# -- deterministic ids ----------------------------------------------------------------------


def recorded(case: str) -> dict:
    return json.loads((RECORDED / case).read_text())


def test_expected_job_id_is_the_id_the_real_server_gave():
    submit = recorded("045-submit-deterministic.json")
    vo = recorded("003-whoami-voms.json")["response"]["body"]["vos"][0]
    sid = submit["request"]["body"]["params"]["sid"]

    assert expected_job_id(vo, sid) == submit["response"]["body"]["job_id"]


def test_expected_job_id_depends_on_the_vo():
    assert expected_job_id("dteam", "s") != expected_job_id("atlas", "s")


def test_expected_job_id_wants_a_string_sid():
    with pytest.raises(FTSValidationError) as caught:
        expected_job_id("dteam", 42, BASE_ID)

    assert caught.value.field == "sid"


# -- the bodies a real server accepted -------------------------------------------------------

#: Accepted by the server, refused by us on purpose: (the field we name, why).
DELIBERATELY_REFUSED = {
    "022-submit-3files-full.json": (
        "transfers[1].checksum",
        "'5d0f3b2a' is a value without algorithm: FTS takes it as the algorithm's name",
    ),
    "032-submit-verify-checksum-invalid.json": (
        "job_params.verify_checksum",
        "'bogus' is silently stored as its first letter 'b'",
    ),
    "056-submit-bad-checksum-format.json": ("transfers[0].checksum", "malformed checksum"),
    "057-submit-negative-filesize.json": ("transfers[0].filesize", "negative size"),
    "060-submit-priority-out-of-range.json": ("job_params.priority", "silently clamped to 5"),
    "062-submit-unknown-params.json": (
        "job_params.foo",
        "unknown keys are silently ignored: a typo would be lost",
    ),
}

#: Accepted by both, but sent in a different, unambiguous form.
NORMALISED_PARAMS = {
    "029-submit-verify-checksum-true.json": {"verify_checksum": "both"},
    "030-submit-verify-checksum-false.json": {"verify_checksum": "none"},
    "031-submit-verify-checksum-false-nochecksum.json": {"verify_checksum": "none"},
    "068-submit-max-time-in-queue-int.json": {"max_time_in_queue": "2h"},
}


def accepted_submissions() -> list[str]:
    """Names of the recorded submissions the real server answered with 200."""
    cases = {path.name: json.loads(path.read_text()) for path in sorted(RECORDED.glob("*.json"))}
    return [
        name
        for name, case in cases.items()
        if case["request"]["path"] == "/jobs"
        and case["request"]["method"] in ("POST", "PUT")
        and case["response"]["status"] == 200
    ]


def submitted_body(case: dict) -> dict:
    body = case["request"]["body"]
    return json.loads(body) if isinstance(body, str) else body


def test_the_recorded_exchanges_hold_accepted_submissions():
    assert len(accepted_submissions()) >= 20


@pytest.mark.parametrize("name", accepted_submissions())
def test_an_accepted_submission_passes_or_is_refused_on_purpose(name):
    body = submitted_body(recorded(name))
    files, params = body["files"], body.get("params", {})

    if name in DELIBERATELY_REFUSED:
        assert refused(files, **params).field == DELIBERATELY_REFUSED[name][0]
        return
    document = build_submission(files, **params)

    assert document["files"] == files
    assert document["params"] == {**params, **NORMALISED_PARAMS.get(name, {})}
