"""The submission document: every shape a user may write, every rule, every unit.

The recorded exchanges with a real FTS 3.13.4 server are the reference: each body it
accepted must pass through our API unchanged, or be refused for a reason listed here.
"""

from __future__ import annotations

import json
from datetime import timedelta
from itertools import pairwise

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
from tests.recorded import RECORDED

SRC = "davs://src.example.org/data/f1"
DST = "davs://dst.example.org/data/f1"
SECRET = "eyJhbGciOiJSUzI1NiJ9.secret-token-payload.sig"


def one(**fields) -> dict:
    """One transfer dict from SRC to DST with extra fields."""
    return {"source": SRC, "destination": DST, **fields}


def hops(*urls: str) -> list[tuple[str, str]]:
    """Multihop transfers through the given URLs, in order."""
    return list(pairwise(urls))


def refused(transfers, **params) -> FTSValidationError:
    with pytest.raises(FTSValidationError) as caught:
        build_submission(transfers, **params)
    return caught.value


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


# -- rules ----------------------------------------------------------------------------------

LONG_URL = "davs://dst.example.org/" + "d" * 1100
ROOT_DST = "root://dst.example.org//data/f1"

RULES = {
    # transfers: URLs
    "sources-as-a-string": ([{"sources": SRC, "destinations": [DST]}], {}, "transfers[0].sources"),
    "source-given-as-a-list": ([{"source": [SRC], "destination": DST}], {}, "transfers[0].source"),
    "source-and-sources": ([one(sources=[SRC])], {}, "transfers[0].source"),
    "missing-destination": ([{"source": SRC}], {}, "transfers[0].destinations"),
    "no-sources": ([{"sources": [], "destinations": [DST]}], {}, "transfers[0].sources"),
    "no-scheme": ([("not-a-url/path/file", DST)], {}, "transfers[0].sources[0]"),
    "local-file": ([("file:///etc/passwd", DST)], {}, "transfers[0].sources[0]"),
    "local-file-no-slashes": ([("file:/etc/passwd", DST)], {}, "transfers[0].sources[0]"),
    "no-host": ([("mock:///capture/nohost", DST)], {}, "transfers[0].sources[0]"),
    "no-host-no-slashes": ([("mock:/capture/x", DST)], {}, "transfers[0].sources[0]"),
    "port-but-no-host": ([("davs://:443/f", DST)], {}, "transfers[0].sources[0]"),
    "no-path": ([("mock://src.example.org", DST)], {}, "transfers[0].sources[0]"),
    "root-path-only": ([(SRC, "davs://dst.example.org/")], {}, "transfers[0].destinations[0]"),
    "whitespace": ([(SRC + " ", DST)], {}, "transfers[0].sources[0]"),
    "url-too-long": ([(SRC, LONG_URL)], {}, "transfers[0].destinations[0]"),
    "url-not-a-string": ([([SRC, 42], DST)], {}, "transfers[0].sources[1]"),
    "not-a-transfer": ([SRC], {}, "transfers[0]"),
    "one-transfer-not-in-a-list": (one(), {}, "transfers"),
    "unknown-transfer-key": ([one(unknown_file_key="y")], {}, "transfers[0].unknown_file_key"),
    # transfers: per-file fields
    "checksum-garbage": ([one(checksum="NOT-A-CHECKSUM::zz")], {}, "transfers[0].checksum"),
    "checksum-value-only": ([one(checksum="5d0f3b2a")], {}, "transfers[0].checksum"),
    "checksum-empty-value": ([one(checksum="ADLER32:")], {}, "transfers[0].checksum"),
    "adler32-short": ([one(checksum="adler32:abc")], {}, "transfers[0].checksum"),
    "md5-wrong-length": ([one(checksum="MD5:0a1b2c3d")], {}, "transfers[0].checksum"),
    "crc32-too-long": ([one(checksum="CRC32:" + "1" * 11)], {}, "transfers[0].checksum"),
    "unknown-algorithm-non-hex": ([one(checksum="SHA3:xyz")], {}, "transfers[0].checksum"),
    "negative-filesize": ([one(filesize=-5)], {}, "transfers[0].filesize"),
    "filesize-not-a-number": ([one(filesize="abc")], {}, "transfers[0].filesize"),
    "metadata-a-list": ([one(metadata=["a"])], {}, "transfers[0].metadata"),
    "metadata-not-json": ([one(metadata={"x": object()})], {}, "transfers[0].metadata"),
    "metadata-too-big": ([one(metadata={"x": "y" * 1100})], {}, "transfers[0].metadata"),
    "staging-metadata-a-str": (
        [one(staging_metadata="{}")],
        {},
        "transfers[0].staging_metadata",
    ),
    "archive-metadata-too-big": (
        [one(archive_metadata={"x": "y" * 1100})],
        {},
        "transfers[0].archive_metadata",
    ),
    "activity-empty": ([one(activity="")], {}, "transfers[0].activity"),
    "unknown-strategy": (
        [one(selection_strategy="bogus-strategy")],
        {},
        "transfers[0].selection_strategy",
    ),
    "strategy-a-list": (
        [one(selection_strategy=["orderly"])],
        {},
        "transfers[0].selection_strategy",
    ),
    "scitag-too-small": ([one(scitag=64)], {}, "transfers[0].scitag"),
    "scitag-too-big": ([one(scitag=65536)], {}, "transfers[0].scitag"),
    "scitag-a-string": ([one(scitag="65")], {}, "transfers[0].scitag"),
    "one-token-list-only": ([one(source_tokens=["t"])], {}, "transfers[0].destination_tokens"),
    "token-count": (
        [one(source_tokens=["t", "u"], destination_tokens=["t"])],
        {},
        "transfers[0].source_tokens",
    ),
    "empty-token": (
        [one(source_tokens=["t"], destination_tokens=[""])],
        {},
        "transfers[0].destination_tokens[0]",
    ),
    "error-names-the-index": ([(SRC, DST), ("x", DST)], {}, "transfers[1].sources[0]"),
    # the job as a whole
    "no-transfers": ([], {}, "transfers"),
    "multihop-single-hop": ([(SRC, DST)], {"multihop": True}, "job_params.multihop"),
    "multihop-with-replicas": (
        [([SRC, ROOT_DST], "davs://x.example.org/f"), ("davs://x.example.org/f", DST)],
        {"multihop": True},
        "transfers[0].sources",
    ),
    "replicas-with-reuse": ([([SRC, SRC + "b"], DST)], {"reuse": True}, "transfers[0].sources"),
    "replicas-among-other-files": (
        [(SRC, DST), ([SRC, ROOT_DST], DST + "b")],
        {},
        "transfers[1].sources",
    ),
    "reuse-across-storages": (
        [(SRC, DST), ("davs://other.example.org/f", DST + "b")],
        {"reuse": True},
        "transfers[1].sources[0]",
    ),
    "tokens-on-some-transfers-only": (
        [one(source_tokens=["t"], destination_tokens=["t"]), (SRC, DST + "b")],
        {},
        "transfers[1].source_tokens",
    ),
    "duplicate-destination": ([(SRC, DST), (SRC + "b", DST)], {}, "transfers[1].destinations[0]"),
    # job parameters
    "unknown-param": ([(SRC, DST)], {"max_time_in_que": 2}, "job_params.max_time_in_que"),
    "deletion-job": ([(SRC, DST)], {"delete": [SRC]}, "job_params.delete"),
    "old-space-token-name": ([(SRC, DST)], {"spacetoken": "T"}, "job_params.spacetoken"),
    "per-file-field-as-param": ([(SRC, DST)], {"activity": "x"}, "job_params.activity"),
    "verify-checksum-word": (
        [(SRC, DST)],
        {"verify_checksum": "bogus"},
        "job_params.verify_checksum",
    ),
    "priority-out-of-range": ([(SRC, DST)], {"priority": 10}, "job_params.priority"),
    "priority-a-string": ([(SRC, DST)], {"priority": "high"}, "job_params.priority"),
    "retry-below-minus-one": ([(SRC, DST)], {"retry": -2}, "job_params.retry"),
    "retry-a-string": ([(SRC, DST)], {"retry": "many"}, "job_params.retry"),
    "retry-delay-negative": ([(SRC, DST)], {"retry_delay": -1}, "job_params.retry_delay"),
    "queue-time-no-unit": (
        [(SRC, DST)],
        {"max_time_in_queue": "6"},
        "job_params.max_time_in_queue",
    ),
    "queue-time-zero": ([(SRC, DST)], {"max_time_in_queue": 0}, "job_params.max_time_in_queue"),
    "queue-time-negative": (
        [(SRC, DST)],
        {"max_time_in_queue": timedelta(hours=-1)},
        "job_params.max_time_in_queue",
    ),
    "queue-time-fraction": (
        [(SRC, DST)],
        {"max_time_in_queue": "1.5h"},
        "job_params.max_time_in_queue",
    ),
    "queue-time-a-float": (
        [(SRC, DST)],
        {"max_time_in_queue": 1.5},
        "job_params.max_time_in_queue",
    ),
    "bring-online-zero": ([(SRC, DST)], {"bring_online": 0}, "job_params.bring_online"),
    "bring-online-a-string": ([(SRC, DST)], {"bring_online": "3600"}, "job_params.bring_online"),
    "timeout-fraction-of-second": (
        [(SRC, DST)],
        {"timeout": timedelta(milliseconds=500)},
        "job_params.timeout",
    ),
    "nostreams-zero": ([(SRC, DST)], {"nostreams": 0}, "job_params.nostreams"),
    "space-token-empty": (
        [(SRC, DST)],
        {"destination_spacetoken": ""},
        "job_params.destination_spacetoken",
    ),
    "flag-not-a-bool": ([(SRC, DST)], {"overwrite": "Y"}, "job_params.overwrite"),
    "job-metadata-a-list": ([(SRC, DST)], {"job_metadata": [1]}, "job_params.job_metadata"),
    "job-metadata-too-big": (
        [(SRC, DST)],
        {"job_metadata": {"blob": "x" * 2048}},
        "job_params.job_metadata",
    ),
    "sid-not-a-string": ([(SRC, DST)], {"sid": 42}, "job_params.sid"),
    "deterministic-without-sid": (
        [(SRC, DST)],
        {"id_generator": "deterministic"},
        "job_params.sid",
    ),
    "sid-with-standard-ids": (
        [(SRC, DST)],
        {"id_generator": "standard", "sid": "s"},
        "job_params.sid",
    ),
    "unknown-id-generator": ([(SRC, DST)], {"id_generator": "random"}, "job_params.id_generator"),
    "incompatible-overwrites": (
        [(SRC, DST)],
        {"overwrite": True, "overwrite_on_retry": True},
        "job_params.overwrite_on_retry",
    ),
    "overwrite-hop-without-multihop": (
        [(SRC, DST)],
        {"overwrite_hop": True},
        "job_params.overwrite_hop",
    ),
    "overwrite-on-disk-without-archive-timeout": (
        [(SRC, DST)],
        {"overwrite_when_only_on_disk": True},
        "job_params.overwrite_when_only_on_disk",
    ),
    "overwrite-on-disk-to-non-http": (
        [(SRC, ROOT_DST)],
        {"overwrite_when_only_on_disk": True, "archive_timeout": 3600},
        "transfers[0].destinations[0]",
    ),
    "multihop-with-reuse": (
        hops(SRC, "davs://x.example.org/f", DST),
        {"multihop": True, "reuse": True},
        "job_params.reuse",
    ),
    "ipv4-and-ipv6": ([(SRC, DST)], {"ipv4": True, "ipv6": True}, "job_params.ipv6"),
}


@pytest.mark.parametrize(("transfers", "params", "field"), RULES.values(), ids=RULES.keys())
def test_each_rule_names_the_field_and_the_fix(transfers, params, field):
    error = refused(transfers, **params)

    assert error.field == field
    assert error.problem
    assert error.fix


def test_an_unknown_parameter_is_answered_with_the_closest_name():
    assert "max_time_in_queue" in refused([(SRC, DST)], max_time_in_que=2).fix


def test_an_unknown_transfer_key_is_answered_with_the_closest_name():
    assert "'destination_tokens'" in refused([one(destination_token="t")]).fix


def test_a_short_adler32_value_is_answered_with_the_padded_value():
    assert "adler32:00000abc" in refused([one(checksum="adler32:abc")]).fix


def test_unknown_checksum_algorithms_are_allowed_with_a_hex_value():
    document = build_submission([one(checksum="SHA256:" + "ab" * 32)])

    assert document["files"][0]["checksum"] == "SHA256:" + "ab" * 32


def test_overwrite_hop_and_overwrite_when_only_on_disk_may_go_together():
    path = hops("root://tape.example.org//f", "davs://buffer.example.org/f", DST)

    params = build_submission(
        path,
        multihop=True,
        overwrite_hop=True,
        overwrite_when_only_on_disk=True,
        archive_timeout=3600,
    )["params"]

    assert params["overwrite_hop"] and params["overwrite_when_only_on_disk"]


def test_only_the_last_hop_must_be_a_tape_rest_endpoint():
    path = hops("root://a.example.org//f", "root://b.example.org//f", DST)

    build_submission(path, multihop=True, overwrite_when_only_on_disk=True, archive_timeout=60)


@pytest.mark.parametrize("name", [f.name for f in JobParams.__dataclass_fields__.values()])
def test_every_job_parameter_is_checked(name):
    with pytest.raises(FTSValidationError) as caught:
        JobParams(**{name: object()})

    assert caught.value.field == f"job_params.{name}"


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
