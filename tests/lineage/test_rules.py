"""The asset and lineage rules, through Airflow's own Asset class and OpenLineage's converter."""

from __future__ import annotations

import pytest
from airflow.sdk import Asset

from airflow_provider_fts.lineage import (
    MAX_ASSET_EVENTS,
    asset_uri,
    collapse,
    namespace_and_name,
    replica_events,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("davs://se.example/a/b?authz=TOKEN", "davs://se.example/a/b"),
        ("https://user:secret@se.example:8443/a#frag", "https://se.example:8443/a"),
        ("root://EOS.example:1094//eos/x", "root://EOS.example:1094//eos/x"),  # as written
        ("srm://se.example:8446/srm/managerv2?SFN=/dpm/x", "srm://se.example:8446/dpm/x"),
        ("srm://se.example/dpm/x", "srm://se.example/dpm/x"),
    ],
)
def test_asset_uri_is_the_url_as_written_without_query_or_user_info(url, expected):
    assert asset_uri(url) == expected


def test_airflow_normalises_grid_uris_with_the_registered_handler():
    asset = Asset("davs://SITE-B.example:443/replica/f.root?authz=TOKEN")

    assert asset.uri == "davs://site-b.example/replica/f.root"
    assert asset.name == "davs://SITE-B.example:443/replica/f.root?authz=TOKEN"
    assert Asset("root://eos.example:1095/x").uri == "root://eos.example:1095/x"  # not default
    assert Asset("gsiftp://gridftp.example:2811/x").uri == "gsiftp://gridftp.example/x"


def test_a_normaliser_changes_the_uri_not_the_name_so_two_spellings_stay_two_assets():
    written, other = Asset("davs://h.example:443/x"), Asset("davs://h.example/x")

    assert written.uri == other.uri
    assert written != other  # Airflow identifies an asset by name and URI


def test_openlineage_gets_scheme_host_port_namespace_and_path_name():
    translate = pytest.importorskip("airflow.providers.openlineage.utils.utils")

    dataset = translate.translate_airflow_asset(Asset("davs://SE.example:443/a/b.root"), None)
    nondefault = translate.translate_airflow_asset(Asset("root://eos.example:1095//eos/x"), None)

    assert (dataset.namespace, dataset.name) == ("davs://se.example", "/a/b.root")
    assert (nondefault.namespace, nondefault.name) == ("root://eos.example:1095", "//eos/x")
    assert namespace_and_name("srm://se:8446/srm/managerv2?SFN=/dpm/f") == (
        "srm://se:8446",
        "/dpm/f",
    )


def test_collapse_keeps_files_while_they_fit_then_climbs_directories():
    files = [f"davs://se.example/d{d}/f{f}" for d in range(50) for f in range(200)]

    assert list(collapse(files[:100], 100)) == files[:100]
    groups = collapse(files, 100)
    assert list(groups) == [f"davs://se.example/d{d}" for d in range(50)]
    assert groups["davs://se.example/d7"] == 200
    assert list(collapse(files, 1)) == ["davs://se.example/"]


def test_collapse_stops_at_the_hosts_and_keeps_the_first():
    files = [f"davs://se{n}.example/f" for n in range(5)]

    assert list(collapse(files, 2)) == ["davs://se0.example/", "davs://se1.example/"]


def record(n: int, state: str = "FINISHED", directory: str = "d") -> dict:
    return {
        "job_id": f"job-{n % 2}",
        "file_state": state,
        "source_surl": f"davs://a.example/{directory}/f{n}",
        "dest_surl": f"davs://b.example/{directory}/f{n}?authz=T",
        "filesize": 10,
        "checksum": "ADLER32:0000abcd",
    }


def test_one_event_per_finished_file_while_under_the_cap():
    files = [record(0), record(1, "FAILED"), record(2, "CANCELED"), record(3)]

    events = replica_events(files)

    assert events == [
        (
            "davs://b.example/d/f0",
            {
                "fts_job_id": "job-0",
                "source": "davs://a.example/d/f0",
                "size": 10,
                "checksum": "ADLER32:0000abcd",
            },
        ),
        (
            "davs://b.example/d/f3",
            {
                "fts_job_id": "job-1",
                "source": "davs://a.example/d/f3",
                "size": 10,
                "checksum": "ADLER32:0000abcd",
            },
        ),
    ]


def test_beyond_the_cap_one_event_per_directory_counts_files_and_bytes():
    files = [record(n, directory=f"d{n % 3}") for n in range(MAX_ASSET_EVENTS + 1)]

    events = dict(replica_events(files))

    assert list(events) == ["davs://b.example/d0", "davs://b.example/d1", "davs://b.example/d2"]
    assert events["davs://b.example/d0"] == {
        "fts_job_ids": ["job-0", "job-1"],
        "files": 334,
        "bytes": 3340,
    }


def test_only_the_grids_own_schemes_are_normalised_so_other_teams_https_and_s3_assets_are_not():
    from airflow_provider_fts.get_provider_info import get_provider_info

    (registered,) = get_provider_info()["asset-uris"]

    assert sorted(registered["schemes"]) == ["davs", "gsiftp", "root", "srm"]
    assert Asset("https://API.example:443/report?day=1").uri == (
        "https://API.example:443/report?day=1"
    )  # as written: no handler of ours drops the port, the case or the query
    assert asset_uri("https://se.example/data/f?authz=TOKEN") == "https://se.example/data/f"
