"""Every local rule names the field and the fix, and the first problem found is reported.

The hot path of a submission has shortcuts: a URL or checksum that plainly passes skips
the rules (one regex match instead of several checks), and metadata sizes are measured
with json's C encoder instead of ``json.dumps``. Each shortcut is held to its rule here on
many generated values.
"""

from __future__ import annotations

import json
from datetime import timedelta
from itertools import product

import pytest

from airflow_provider_fts.client import transfer, urls
from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.submission import (
    JobParams,
    Transfer,
    _json_encoder,
    build_submission,
)
from tests.client.submissions import DST, SRC, hops, one, refused

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


# -- the shortcuts of the hot path ------------------------------------------------------

SCHEMES = ["davs", "HTTPS", "root", "file", "File", "files", "s3+x.y-z", "1x", ""]
SEPARATORS = ["://", ":/", ":", ""]
AUTHORITIES = ["host.example.org", "h:443", ":443", "", "u@h", "u@", "[::1]:8443", "[x", "h o"]
PATHS = ["", "/", "/f", "//eos/f", "/a b", "/a\tb", "/\u00e4", "/%20", "/\u2028x"]
QUERIES = ["", "?", "?sig=s", "? x"]
FRAGMENTS = ["", "#", "#f", "# x"]


def generated_urls() -> list[str]:
    pieces = product(SCHEMES, SEPARATORS, AUTHORITIES, PATHS, QUERIES, FRAGMENTS)
    return ["".join(parts) for parts in pieces] + [
        "davs://h/" + "d" * (urls.MAX_URL_LENGTH - 9),
        "davs://h/" + "d" * (urls.MAX_URL_LENGTH - 8),
        " davs://h/f",
        "davs://h/f\n",
    ]


def takes_the_shortcut(url: str) -> bool:
    """The shortcut of ``urls.url_list``."""
    return len(url) <= urls.MAX_URL_LENGTH and bool(urls._PLAINLY_GOOD.fullmatch(url))


def test_every_url_the_shortcut_accepts_passes_every_url_rule():
    accepted = [url for url in generated_urls() if takes_the_shortcut(url)]

    assert len(accepted) > 100  # the shortcut is in use
    for url in accepted:
        assert urls.url_problem(url) is None, url


def test_urls_the_shortcut_leaves_to_the_rules_are_still_accepted_when_right():
    for url in ("davs://user@host.example.org/f", "https://[2001:db8::1]:8443/f", "davs://h/?x"):
        assert not takes_the_shortcut(url)
        assert urls.url_list([url], "transfer.sources", "source") == [url]


def test_a_typical_url_takes_the_shortcut():
    assert takes_the_shortcut("davs://source.example.org:443/data/run/0000001.root")


@pytest.mark.parametrize(
    "algorithm", ["adler32", "ADLER32", "Adler32", "md5", "MD5", "crc32", "CRC32", "sha256"]
)
def test_every_checksum_the_shortcut_accepts_passes_the_checksum_rule(algorithm):
    values = ["", "0", "0a1b2c3d", "0A1B2C3D", "0a1b2c3", "0a1b2c3d0", "g" * 8, "0" * 32]
    values += ["1" * 10, "1" * 11, "0" * 31, "0" * 33]
    for value in values:
        checksum = f"{algorithm}:{value}"
        if transfer._PLAINLY_GOOD_CHECKSUM.fullmatch(checksum):
            assert transfer._checksum_problem(checksum, "example") is None, checksum


@pytest.mark.parametrize(
    "value",
    [
        {"index": 1},
        {"label": "caf\u00e9 \u2028"},
        {"n": [1, 2.5, None, True, float("nan"), float("inf")]},
        {7: "int key", 2.5: "float key", None: "none key", True: "bool key"},
        {"deep": {"er": {"est": ["x" * 50]}}},
    ],
)
def test_metadata_is_measured_as_json_dumps_writes_it(value):
    assert _json_encoder()(value) == json.dumps(value)


def test_metadata_json_cannot_write_fails_as_in_json_dumps():
    circular: dict = {}
    circular["self"] = circular
    encode = _json_encoder()
    for value in ({"x": object()}, circular, {("tuple", "key"): 1}):
        with pytest.raises((TypeError, ValueError)) as ours:
            encode(value)
        with pytest.raises((TypeError, ValueError)) as reference:
            json.dumps(value)
        assert (type(ours.value), str(ours.value)) == (
            type(reference.value),
            str(reference.value),
        )
    assert encode({"still": "usable"}) == '{"still": "usable"}'


# -- the first problem found is the one reported ------------------------------------------


def test_a_transfer_with_several_problems_reports_them_in_field_order():
    bad = {"source": SRC, "destination": DST, "scitag": 1, "checksum": "x:zz", "filesize": -1}

    assert refused([bad]).field == "transfers[0].checksum"
    del bad["checksum"]
    assert refused([bad]).field == "transfers[0].filesize"
    del bad["filesize"]
    assert refused([bad]).field == "transfers[0].scitag"


def test_job_parameters_are_checked_before_the_transfers():
    assert refused([("not a url", DST)], priority=9).field == "job_params.priority"


def test_the_rules_between_transfers_come_before_metadata_sizes():
    big = {"x": "y" * 2000}
    transfers = [
        {"source": SRC, "destination": DST, "metadata": big},
        {"source": SRC, "destination": DST},
    ]

    assert refused(transfers).field == "transfers[1].destinations[0]"
    transfers[1]["destination"] = DST + "2"
    assert refused(transfers).field == "transfers[0].metadata"


def test_every_shape_of_a_transfer_gives_the_same_entry():
    written = {"source": SRC, "destination": DST, "checksum": "adler32:0a1b2c3d", "scitag": 66}
    made = Transfer(sources=(SRC,), destinations=(DST,), checksum="adler32:0a1b2c3d", scitag=66)

    entries = [build_submission([given])["files"][0] for given in (written, made)]

    assert entries[0] == entries[1] == made.to_json() == Transfer.coerce(written).to_json()
    assert list(entries[0]) == ["sources", "destinations", "checksum", "scitag"]
    assert build_submission([(SRC, DST)])["files"] == [{"sources": [SRC], "destinations": [DST]}]
