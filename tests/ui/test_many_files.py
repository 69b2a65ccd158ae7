"""A 10^5-file run read through the hook from the emulator over HTTPS: the report holds
every file as FTS records it, the table pages over them on the server, the downloads
stream them all, and no signed URL query gets out."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.plugins.app import stream_csv, stream_json
from airflow_provider_fts.plugins.page import render_page
from airflow_provider_fts.plugins.report import (
    Filters,
    FTSTask,
    Report,
    ReportCache,
    build_report,
    public_url,
)
from airflow_provider_fts.testing.server import FTSEmulator

from .many_files import REASONS, many_files_run, start_emulator

FILES = 100_000
PER_PAGE = 50
ALL = Filters()
ROW = re.compile(
    r"<tr><td class=t>[0-9a-f]{8}…<br>.{0,40}try 1</span></td><td class=num>(\d+)</td>"
)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FTSEmulator]:
    emulator, connection = start_emulator(tmp_path_factory.mktemp("many-pki"))
    os.environ["AIRFLOW_CONN_FTS_MANY"] = connection
    try:
        yield emulator
    finally:
        emulator.stop()
        del os.environ["AIRFLOW_CONN_FTS_MANY"]


@pytest.fixture(scope="module")
def fts_records(emulator: FTSEmulator) -> tuple[list[dict], FTSTask]:
    """The emulator's file rows of the run (the test reads the report against them)."""
    task = many_files_run(emulator, "many-1", FILES)
    with emulator.store.lock:
        rows = [dict(r) for j in emulator.store.stored_jobs() for r in j.files]
    return rows, task


@pytest.fixture(scope="module")
def report(fts_records) -> Report:
    return build_report(FTSHook, [fts_records[1]])


def page_ids(report: Report, page: int, filters: Filters = ALL) -> list[int]:
    html = render_page("run", report, filters, page, PER_PAGE, "/files")
    return [int(n) for n in ROW.findall(html)]


def test_the_report_holds_every_file_as_fts_records_it(fts_records, report):
    rows, _ = fts_records

    assert [f.file_id for f in report.files] == [r["file_id"] for r in rows]
    assert Counter(f.state for f in report.files) == Counter(r["file_state"] for r in rows)
    assert [f.destination for f in report.files[:3]] == [
        public_url(r["dest_surl"]) for r in rows[:3]
    ]
    assert report.jobs[0].files == FILES and not report.active


def test_the_table_pages_over_the_files_on_the_server(fts_records, report):
    ids = [r["file_id"] for r in fts_records[0]]

    assert page_ids(report, 1) == ids[:PER_PAGE]
    assert page_ids(report, 1001) == ids[50_000:50_050]
    assert page_ids(report, FILES // PER_PAGE) == ids[-PER_PAGE:]
    html = render_page("run", report, Filters(), 7, PER_PAGE, "/files")
    assert f"{FILES} files match; page 7 of {FILES // PER_PAGE}." in html


def test_a_reason_filter_pages_over_the_matching_files_only(fts_records, report):
    reason = REASONS[1][0]
    matching = [r["file_id"] for r in fts_records[0] if r["reason"] == reason]

    html = render_page("run", report, Filters(reason=reason), 2, PER_PAGE, "/files")

    assert page_ids(report, 2, Filters(reason=reason)) == matching[PER_PAGE : 2 * PER_PAGE]
    assert f"{len(matching)} files match" in html


def test_the_downloads_stream_every_file(fts_records, report):
    rows, _ = fts_records

    text = "".join(stream_csv(report, Filters()))
    document = json.loads("".join(stream_json(report, Filters())))

    table = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["file_id"]) for r in table] == [r["file_id"] for r in rows]
    assert [f["reason"] for f in document["files"]] == [r["reason"] or "" for r in rows]
    assert [f["size"] for f in document["files"]] == [r["filesize"] for r in rows]
    assert "s3cr3t" not in text and "s3cr3t" not in json.dumps(document)


def test_no_signed_url_query_reaches_the_page(report):
    html = render_page("run", report, Filters(), 1, PER_PAGE, "/files")

    assert "s3cr3t" not in html and "?…" in html


def test_the_page_is_small_and_fetches_nothing(report):
    html = render_page("run", report, Filters(), 1, PER_PAGE, "/files")

    assert len(html) < 60_000
    assert "src=" not in html and "<link" not in html  # one document, nothing to fetch


def test_ten_viewers_at_once_cost_fts_one_read(emulator, fts_records):
    cache = ReportCache()
    emulator.reset_counts()

    def view(_: int) -> Report:
        return cache.get("run", lambda: build_report(FTSHook, [fts_records[1]]))

    with ThreadPoolExecutor(10) as viewers:
        reports = list(viewers.map(view, range(10)))

    assert all(r is reports[0] for r in reports)
    reads = {route: n for route, n in emulator.requests.items() if route.startswith("GET /jobs")}
    assert sum(reads.values()) == 1, reads
