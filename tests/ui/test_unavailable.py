"""When the API server cannot use FTS, the view says what failed and what to do."""

from __future__ import annotations

import pytest

from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.plugins.page import render_unavailable
from airflow_provider_fts.plugins.report import FTSTask, Unavailable, build_report


def task_on(conn_id: str) -> FTSTask:
    return FTSTask("d", "r", "submit", -1, 1, conn_id, pushed=())


def test_a_proxy_missing_on_the_api_server_says_where_to_mount_it(
    fts_emulator, fts_pki, monkeypatch, tmp_path
):
    missing = tmp_path / "x509up_u1000"
    connection = fts_emulator.connection_json(str(missing), ca_path=fts_pki.ca_dir)
    monkeypatch.setenv("AIRFLOW_CONN_FTS_GONE", connection)

    with pytest.raises(Unavailable) as caught:
        build_report(FTSHook, [task_on("fts_gone")])

    html = render_unavailable("run", caught.value)
    assert str(missing) in caught.value.problem and "'fts_gone'" in caught.value.problem
    assert "Mount the proxy" in caught.value.fix and "same path" in caught.value.fix
    assert "What to do:" in html and "Traceback" not in html


def test_a_connection_the_api_server_cannot_see_is_named(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_FTS_NOWHERE", raising=False)

    with pytest.raises(Unavailable) as caught:
        build_report(FTSHook, [task_on("fts_nowhere")])

    assert "'fts_nowhere' is not defined where the API server can read it" in str(caught.value)


def test_fts_down_says_the_api_server_must_reach_it(fts_emulator, fts_connection):
    fts_emulator.faults.reset_connection(count=None)

    with pytest.raises(Unavailable) as caught:
        build_report(FTSHook, [task_on("fts_default")])

    assert "cannot reach FTS" in caught.value.problem
    assert "API server (not only the workers) must reach" in caught.value.fix
