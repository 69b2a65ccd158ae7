"""FTSHook over real HTTPS against the emulator: every credential kind, every method."""

from __future__ import annotations

import json
import time

import pytest

from airflow_provider_fts.client.errors import FTSValidationError, NotFound
from airflow_provider_fts.hooks.fts import FTSHook

SLOW = "mock://dst.example/dst/{name}"
# Staging for two minutes keeps a job unfinished without taking a transfer slot.
STAGED = "mock://src.example/f?staging_time=120"
STAGING = {"bring_online": 600}


@pytest.fixture
def define_connection(fts_emulator, fts_pki, monkeypatch):
    """Set AIRFLOW_CONN_FTS_DEFAULT to the emulator with the given credential extras."""

    def define(password: str | None = None, **extra) -> FTSHook:
        document = {
            "conn_type": "fts",
            "host": fts_emulator.host,
            "port": fts_emulator.port,
            "extra": {"ca_path": str(fts_pki.ca_dir), **extra},
        }
        if password:
            document["password"] = password
        monkeypatch.setenv("AIRFLOW_CONN_FTS_DEFAULT", json.dumps(document))
        return FTSHook()

    return define


@pytest.fixture
def hook(define_connection, fts_pki) -> FTSHook:
    return define_connection(x509up_file=str(fts_pki.voms_proxy_path))


def wait_for_state(hook: FTSHook, job_id: str, *states: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while (job := hook.get_job(job_id))["job_state"] not in states:
        assert time.monotonic() < deadline, f"job stayed {job['job_state']}"
        time.sleep(0.1)
    return job


def test_proxy_file_connection_identifies_the_user(hook, fts_pki):
    ok, message = hook.test_connection()

    assert ok, message
    assert fts_pki.user.dn in message
    assert hook.whoami()["vos"] == ["dteam"]


def test_certificate_and_encrypted_key_connection_works(define_connection, fts_pki, tmp_path):
    key_path = fts_pki.user.encrypted_key_pem("s3cret-phrase").write_to_path(tmp_path / "key.pem")
    cert_path = fts_pki.user.cert_pem.write_to_path(tmp_path / "cert.pem")
    hook = define_connection(
        x509_cert=str(cert_path), x509_key=str(key_path), x509_key_passphrase="s3cret-phrase"
    )

    assert hook.whoami()["user_dn"] == fts_pki.user.dn


def test_inline_proxy_pem_connection_works(define_connection, fts_pki):
    hook = define_connection(x509_proxy_pem=fts_pki.voms_proxy.proxy_pem.decode())

    assert hook.whoami()["vos"] == ["dteam"]


def test_inline_certificate_and_key_pems_work(define_connection, fts_pki):
    hook = define_connection(
        x509_cert_pem=fts_pki.user.cert_pem.decode(),
        x509_private_key_pem=fts_pki.user.key_pem.decode(),
    )

    assert hook.whoami()["user_dn"] == fts_pki.user.dn


def test_token_connection_needs_no_delegation(define_connection, fts_token):
    hook = define_connection(password=fts_token)

    ok, message = hook.test_connection()

    assert ok, message
    assert "no delegation needed" in message
    assert hook.delegate() is None


def test_connection_test_reports_an_untrusted_server_without_raising(
    define_connection, fts_pki, tmp_path
):
    hook = define_connection(x509up_file=str(fts_pki.voms_proxy_path), ca_path=str(tmp_path))

    ok, message = hook.test_connection()

    assert not ok
    assert f"the CA directory {tmp_path} (ca_path)" in message
    assert "Fix: set the connection extra ca_path" in message


def test_loaded_proxy_key_is_masked(hook, fts_pki):
    from airflow.sdk.log import redact

    hook.get_client()

    key_text = fts_pki.voms_proxy.key_pem.decode()
    assert key_text.splitlines()[1] not in redact(f"oops: {key_text}")


def test_delegate_then_get_delegation(hook):
    delegation_id = hook.delegate(force=True)

    assert delegation_id == hook.whoami()["delegation_id"]
    assert hook.get_delegation()["termination_time"] is not None


def test_submit_with_sid_returns_the_locally_computed_id(hook):
    job_id = hook.submit_job([(STAGED, SLOW.format(name="a"))], sid="hook-sid-1", **STAGING)

    assert job_id == hook.expected_job_id("hook-sid-1")
    hook.cancel_job(job_id)


def test_resubmitting_the_same_sid_returns_the_same_job(hook):
    transfers = [(STAGED, SLOW.format(name="b"))]
    first = hook.submit_job(transfers, sid="hook-sid-2", **STAGING)

    second = hook.submit_job(transfers, sid="hook-sid-2", **STAGING)

    assert second == first
    assert len(hook.list_jobs()) == len({j["job_id"] for j in hook.list_jobs()})
    hook.cancel_job(first)


def test_finished_job_reports_its_files(hook, fts_storage):
    (fts_storage["davs://site-a.example"] / "hook-f1").write_bytes(b"x" * 1000)
    job_id = hook.submit_job([("davs://site-a.example/hook-f1", "davs://site-b.example/hook-f1")])

    job = wait_for_state(hook, job_id, "FINISHED")

    files = hook.get_job_files(job_id)
    assert job["job_id"] == job_id
    assert [f["file_state"] for f in files] == ["FINISHED"]
    assert (fts_storage["davs://site-b.example"] / "hook-f1").read_bytes() == b"x" * 1000


def test_get_jobs_reports_a_missing_job_as_an_entry(hook):
    job_id = hook.submit_job([(STAGED, SLOW.format(name="c"))], **STAGING)

    found, missing = hook.get_jobs([job_id, "00000000-0000-0000-0000-000000000000"])

    assert found["job_id"] == job_id
    assert missing["http_status"].startswith("404")
    hook.cancel_job(job_id)


def test_cancel_job_cancels_an_active_job(hook):
    job_id = hook.submit_job([(STAGED, SLOW.format(name="d"))], **STAGING)

    answer = hook.cancel_job(job_id)

    assert answer["job_state"] == "CANCELED"


def test_cancel_files_cancels_one_file(hook):
    job_id = hook.submit_job(
        [
            (STAGED, SLOW.format(name="e1")),
            (STAGED, SLOW.format(name="e2")),
        ],
        **STAGING,
    )
    first_file = hook.get_job_files(job_id)[0]["file_id"]

    states = hook.cancel_files(job_id, [first_file])

    assert states == ["CANCELED"]
    hook.cancel_job(job_id)


def test_set_priority_changes_the_job_priority(hook):
    job_id = hook.submit_job([(STAGED, SLOW.format(name="g"))], priority=2, **STAGING)

    hook.set_priority([job_id], 5)

    assert hook.get_job(job_id)["priority"] == 5
    with pytest.raises(FTSValidationError, match="job_ids"):
        hook.set_priority(job_id, 4)  # one string is not a list of ids
    hook.cancel_job(job_id)


def test_get_conn_is_the_client_of_the_hook(hook):
    assert hook.get_conn() is hook.get_client()
    assert hook.get_conn().endpoint == hook.settings.endpoint


def test_list_jobs_filters_are_keyword_arguments(hook):
    with pytest.raises(TypeError, match="stat_in"):
        hook.list_jobs(stat_in=["FAILED"])


def test_list_jobs_includes_an_unfinished_job(hook):
    job_id = hook.submit_job([(STAGED, SLOW.format(name="h"))], **STAGING)

    listed = {job["job_id"] for job in hook.list_jobs()}

    assert job_id in listed
    hook.cancel_job(job_id)


def test_file_retries_are_listed(hook):
    job_id = hook.submit_job(
        [("mock://src.example/f", "mock://dst.example/retry?transfer_errno=110")],
        retry=1,
    )
    wait_for_state(hook, job_id, "FAILED")
    file_id = hook.get_job_files(job_id)[0]["file_id"]

    retries = hook.get_file_retries(job_id, file_id)

    assert len(retries) == 1


def test_purged_job_is_found_in_the_archive(hook, fts_emulator):
    job_id = hook.submit_job([("mock://src.example/f", "mock://dst.example/archived")])
    wait_for_state(hook, job_id, "FINISHED")
    fts_emulator.purge(job_id)

    with pytest.raises(NotFound):
        hook.get_job(job_id)
    assert hook.get_archived_job(job_id)["job_id"] == job_id
    unknown = "00000000-0000-0000-0000-000000000000"
    found = hook.get_jobs_or_archived([job_id, unknown], files=True)
    assert [(entry["job_id"], "files" in entry) for entry in found] == [
        (job_id, True),
        (unknown, False),
    ]
    assert found[1]["http_status"].startswith("404")


def test_submitted_transfers_are_reported_to_hook_lineage(hook, monkeypatch):
    # Given the collector Airflow activates when a lineage reader (OpenLineage) is installed
    from airflow.sdk import lineage

    collector = lineage.HookLineageCollector()
    monkeypatch.setattr(lineage, "get_hook_lineage_collector", lambda: collector)

    # When a job and a multiple-replica job are submitted
    hook.submit_job([("mock://src.example/data/a?size=10", "mock://dst.example/data/a")])
    hook.submit_job(
        [{"sources": ["mock://src.example/data/b", "mock://alt.example/data/b"],
          "destinations": ["mock://dst.example/data/b"]}]
    )  # fmt: skip

    # Then every source is an input and every destination an output, without query strings
    collected = collector.collected_assets
    assert {i.asset.uri for i in collected.inputs} == {
        "mock://src.example/data/a",
        "mock://src.example/data/b",
        "mock://alt.example/data/b",
    }
    assert {o.asset.uri for o in collected.outputs} == {
        "mock://dst.example/data/a",
        "mock://dst.example/data/b",
    }
    assert all(i.context is hook for i in collected.inputs + collected.outputs)
