"""The shortcuts of the submission's hot path never accept what a rule refuses.

``urls.py`` and ``transfer.py`` let values that plainly pass skip the rules (one regex
match instead of several checks), and the metadata sizes are measured with json's C
encoder instead of ``json.dumps``. These tests hold each shortcut to its rule on many
generated values, and check that the first problem found is still the one reported.
"""

from __future__ import annotations

import json
from itertools import product

import pytest

from airflow_provider_fts.client import transfer, urls
from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.submission import Transfer, _json_encoder, build_submission

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

SRC = "davs://src.example.org/f"
DST = "davs://dst.example.org/f"


def first_problem(transfers, **params) -> str:
    with pytest.raises(FTSValidationError) as caught:
        build_submission(transfers, **params)
    return caught.value.field


def test_a_transfer_with_several_problems_reports_them_in_field_order():
    bad = {"source": SRC, "destination": DST, "scitag": 1, "checksum": "x:zz", "filesize": -1}

    assert first_problem([bad]) == "transfers[0].checksum"
    del bad["checksum"]
    assert first_problem([bad]) == "transfers[0].filesize"
    del bad["filesize"]
    assert first_problem([bad]) == "transfers[0].scitag"


def test_job_parameters_are_checked_before_the_transfers():
    assert first_problem([("not a url", DST)], priority=9) == "job_params.priority"


def test_the_rules_between_transfers_come_before_metadata_sizes():
    big = {"x": "y" * 2000}
    transfers = [
        {"source": SRC, "destination": DST, "metadata": big},
        {"source": SRC, "destination": DST},
    ]

    assert first_problem(transfers) == "transfers[1].destinations[0]"
    transfers[1]["destination"] = DST + "2"
    assert first_problem(transfers) == "transfers[0].metadata"


def test_every_shape_of_a_transfer_gives_the_same_entry():
    written = {"source": SRC, "destination": DST, "checksum": "adler32:0a1b2c3d", "scitag": 66}
    made = Transfer(sources=(SRC,), destinations=(DST,), checksum="adler32:0a1b2c3d", scitag=66)

    entries = [build_submission([given])["files"][0] for given in (written, made)]

    assert entries[0] == entries[1] == made.to_json() == Transfer.coerce(written).to_json()
    assert list(entries[0]) == ["sources", "destinations", "checksum", "scitag"]
    assert build_submission([(SRC, DST)])["files"] == [{"sources": [SRC], "destinations": [DST]}]
