"""No credential leaks: not into logs, XComs, rendered templates, exception texts or stray files.

Every example DAG runs under ``dag.test()`` with a connection holding its secrets inline:
a pasted proxy PEM, a pasted certificate with an encrypted key and its passphrase, or a
bearer token. Everything the run left behind is then searched for any line of those
secrets: stdlib log records (caplog, DEBUG on the root logger), the task log Airflow
prints (structlog, to stdout), task log files under AIRFLOW_HOME, the XComs and rendered
template fields stored in the metadata DB.

Credential files the code writes are watched through Python audit events: ``os.remove``
fires just before a file is unlinked, so each one can still be inspected (mode, content).
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow_env import load_example_dag

PASSPHRASE = "tr0ub4dor&3-passphrase"
CREDENTIAL_FILE_PREFIX = "fts-cred-"


class RemovedFiles:
    """Files unlinked under one directory while active: (path, mode, content) of each."""

    def __init__(self) -> None:
        self.directory: str | None = None
        self.seen: list[tuple[str, int, bytes]] = []

    def __call__(self, event: str, args: tuple) -> None:
        if event != "os.remove" or self.directory is None:
            return
        path = os.fsdecode(args[0])
        if path.startswith(self.directory) and os.path.isfile(path):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            self.seen.append((path, mode, Path(path).read_bytes()))


_REMOVED = RemovedFiles()
sys.addaudithook(_REMOVED)  # audit hooks cannot be removed: this one is idle between tests


@pytest.fixture
def removed_files(tmp_path, monkeypatch) -> Iterator[RemovedFiles]:
    """Temporary files go to a fresh directory, and their removals are recorded."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    _REMOVED.directory, _REMOVED.seen = str(directory), []
    yield _REMOVED
    _REMOVED.directory = None


def secret_lines(*secrets: bytes | str) -> set[str]:
    """Every line of the secrets long enough to be telling (PEM armour and base64 bodies)."""
    lines = set()
    for secret in secrets:
        text = secret.decode() if isinstance(secret, bytes) else secret
        lines |= {line.strip() for line in text.splitlines() if len(line.strip()) >= 16}
    return lines


CONNECTIONS = ("proxy-pem", "cert-and-encrypted-key-pem", "token")


@pytest.fixture(params=CONNECTIONS)
def inline_connection(request, connect, fts_pki, fts_token) -> tuple[str, set[str]]:
    """(kind, the secrets that must not leak) with fts_default holding them inline."""
    kind = request.param
    proxy, user = fts_pki.voms_proxy, fts_pki.user
    if kind == "proxy-pem":
        connect(x509_proxy_pem=proxy.proxy_pem.decode())
        return kind, secret_lines(proxy.proxy_pem.bytes(), proxy.key_pem.bytes())
    if kind == "cert-and-encrypted-key-pem":
        encrypted = user.encrypted_key_pem(PASSPHRASE).decode()
        connect(
            x509_cert_pem=user.cert_pem.decode(),
            x509_private_key_pem=encrypted,
            x509_key_passphrase=PASSPHRASE,
        )
        return kind, secret_lines(encrypted, user.key_pem.bytes()) | {PASSPHRASE}
    connect(fts_token)
    return kind, {fts_token}


def prepare(name: str, fts_storage, tmp_path) -> dict:
    """Input files for an example DAG; its run_conf."""
    site_a = fts_storage["davs://site-a.example"]
    if name == "example_fts_replication":
        (site_a / "data").mkdir(exist_ok=True)
        for file in ("run-001.root", "run-002.root", "run-003.root"):
            (site_a / "data" / file).write_bytes(file.encode() * 100)
        return {}
    if name == "example_fts_tape_staging":
        dataset = f"secrets-{uuid.uuid4().hex[:8]}"
        (site_a / "tape" / dataset).mkdir(parents=True)
        for file in ("raw-001.dat", "raw-002.dat"):
            (site_a / "tape" / dataset / file).write_bytes(file.encode() * 50)
        return {"dataset": dataset}
    if name == "example_fts_bulk_copy":
        prefix = f"secrets-{uuid.uuid4().hex[:8]}"
        manifest = tmp_path / "manifest.txt"
        manifest.write_text(
            f"mock://src.example/{prefix}/ok mock://dst.example/{prefix}/ok\n"
            f"mock://src.example/{prefix}/bad mock://dst.example/{prefix}/bad?transfer_errno=13\n"
        )
        return {"manifest": str(manifest)}
    pytest.fail(f"{name} is a new example DAG: give it its inputs in prepare()")


def stored_outputs(run) -> list[str]:
    """The run's XCom values and rendered template fields, as stored in the metadata DB."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        xcoms = session.scalars(
            select(XComModel.value).where(
                XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id
            )
        ).all()
        rendered = session.scalars(
            select(RenderedTaskInstanceFields.rendered_fields).where(
                RenderedTaskInstanceFields.dag_id == run.dag_id,
                RenderedTaskInstanceFields.run_id == run.run_id,
            )
        ).all()
    return [str(value) for value in [*xcoms, *rendered]]


def places_of(run, caplog, capfd) -> dict[str, str]:
    """Everything a DAG run left where a secret could leak, by the name of the place.

    :param run: the finished DAG run (its XComs and rendered template fields).
    :param caplog: pytest's log capture of the run.
    :param capfd: pytest's capture of what the run printed.
    """
    printed = capfd.readouterr()
    records = "\n".join(record.getMessage() for record in caplog.records)
    return {
        "log records": records + "\n" + caplog.text,
        "printed task log": printed.out + printed.err,
        "task log files": task_log_files(),
        "XComs and rendered templates": "\n".join(stored_outputs(run)),
    }


def task_log_files() -> str:
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    files = [p for p in logs.rglob("*") if p.is_file()] if logs.is_dir() else []
    return "\n".join(p.read_text(errors="replace") for p in files)


EXAMPLES = sorted(
    p.stem
    for p in (Path(__file__).parents[2] / "example_dags").glob("example_*.py")
    if p.stem != "example_fts_replica_consumer"  # talks to no FTS: holds no credential
)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_dag_leaks_no_credential(
    name,
    inline_connection,
    removed_files,
    airflow_db,
    fts_storage,
    tmp_path,
    monkeypatch,
    caplog,
    capfd,
):
    kind, secrets = inline_connection
    monkeypatch.setenv("FTS_EXAMPLE_POLL_SECONDS", "0.2")
    monkeypatch.setenv("FTS_EXAMPLE_RETRY_DELAY_SECONDS", "0")
    caplog.set_level(logging.DEBUG)
    run_conf = prepare(name, fts_storage, tmp_path)

    run = load_example_dag(name).test(run_conf=run_conf)

    haystacks = places_of(run, caplog, capfd)
    # The search does see the task logs (Airflow's task runner frames each task's log).
    assert "::endgroup::" in haystacks["printed task log"] + haystacks["log records"]
    assert haystacks["XComs and rendered templates"]
    for where, text in haystacks.items():
        assert "-----BEGIN" not in text, where
        leaked = sorted(line for line in secrets if line in text)
        assert not leaked, f"{kind} secret in {where}"
    if kind != "token":
        assert_credential_files_were_private_and_removed(removed_files)


def assert_credential_files_were_private_and_removed(removed: RemovedFiles) -> None:
    written = [entry for entry in removed.seen if CREDENTIAL_FILE_PREFIX in entry[0]]
    assert written, "no credential file was written: the watch saw nothing"
    for path, mode, content in written:
        assert mode == 0o600, path
        assert b"-----BEGIN PRIVATE KEY" not in content  # the key is encrypted on disk
        assert b"-----BEGIN RSA PRIVATE KEY" not in content
    left = [p.name for p in Path(removed.directory).iterdir() if CREDENTIAL_FILE_PREFIX in p.name]
    assert left == []


def test_connection_reprs_show_no_secret(connect, fts_pki):
    from airflow_provider_fts.hooks.fts import FTSHook

    encrypted = fts_pki.user.encrypted_key_pem(PASSPHRASE).decode()
    connect(
        x509_cert_pem=fts_pki.user.cert_pem.decode(),
        x509_private_key_pem=encrypted,
        x509_key_passphrase=PASSPHRASE,
    )
    hook = FTSHook()

    client = hook.get_client()
    shown = " ".join(repr(x) for x in (hook.settings, client, client.credentials))

    assert not [line for line in secret_lines(encrypted, PASSPHRASE) if line in shown]
    assert "-----BEGIN" not in shown
