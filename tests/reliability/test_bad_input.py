"""Wrong input is refused before any request, with one short message naming the field and the fix.

Each case feeds one mistake to a public entry point (hook, operator, sensor, connection)
with the emulator listening, then checks: the error is an ``FTSValidationError`` (or its
``FTSCredentialError``) whose text names the field and says ``Fix:``; the text is one or
two lines; no exception chain hangs off it (a task log would print the chain); and the
emulator received no request at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.operators.fts import FTSSubmitOperator
from airflow_provider_fts.sensors.fts import FTSJobSensor
from tests.airflow_env import load_example_dag
from tests.reliability.conftest import TaskTry

SRC = "davs://site-a.example/data/f"
DST = "davs://site-b.example/data/f"
GOOD = (SRC, DST)
PASSPHRASE = "correct horse"


@dataclass(frozen=True)
class BadCredentials:
    """Credential files with one thing wrong each."""

    expired_proxy: Path
    nearly_expired_proxy: Path
    cert: Path
    encrypted_key: Path
    foreign_key_pem: str


@pytest.fixture(scope="session")
def bad_credentials(fts_pki, tmp_path_factory) -> BadCredentials:
    directory = tmp_path_factory.mktemp("bad-credentials")
    now = datetime.now(UTC)
    user = fts_pki.user
    expired = user.make_proxy(
        not_before=now - timedelta(hours=3), not_after=now - timedelta(hours=1)
    )
    nearly = user.make_proxy(not_after=now + timedelta(minutes=30))
    return BadCredentials(
        expired_proxy=expired.write_proxy(directory / "expired"),
        nearly_expired_proxy=nearly.write_proxy(directory / "nearly-expired"),
        cert=user.cert_pem.write_to_path(directory / "usercert.pem"),
        encrypted_key=user.encrypted_key_pem(PASSPHRASE).write_to_path(directory / "userkey.pem"),
        foreign_key_pem=fts_pki.host.key_pem.decode(),
    )


@dataclass
class World:
    """What a case needs: a way to define the connection, and the credentials at hand."""

    connect: Callable[..., str]
    pki: object
    bad: BadCredentials

    def hook(self, password: str | None = None, **extra) -> FTSHook:
        self.connect(password, **extra)
        return FTSHook()

    def proxy_hook(self) -> FTSHook:
        return self.hook(x509up_file=str(self.pki.voms_proxy_path))


def submit(*transfers, **params) -> Callable[[World], object]:
    return lambda world: world.proxy_hook().submit_job(list(transfers), **params)


def connection(password: str | None = None, **extra) -> Callable[[World], object]:
    """Build the client of a connection (loads credentials and TLS settings, no request)."""
    return lambda world: world.hook(password, **extra).get_client()


def operator(**kwargs) -> Callable[[World], object]:
    def run(world: World) -> object:
        world.proxy_hook()
        task = FTSSubmitOperator(task_id="submit", **{"transfers": [GOOD], **kwargs})
        return task.execute({"ti": TaskTry(1, run_id="bad-input")})

    return run


SUBMISSIONS = [
    pytest.param(submit(("file:///etc/passwd", DST)), "transfers[0].sources[0]", id="file-url"),
    pytest.param(submit((SRC, "site-b.example/f")), "transfers[0].destinations[0]", id="no-scheme"),
    pytest.param(submit((SRC, "davs:///data/f")), "transfers[0].destinations[0]", id="no-host"),
    pytest.param(submit((SRC, "davs://site-b.example")), "destinations[0]", id="no-path"),
    pytest.param(submit((" " + SRC, DST)), "transfers[0].sources[0]", id="url-whitespace"),
    pytest.param(submit(([], [DST])), "transfers[0].sources", id="empty-sources"),
    pytest.param(submit(), "transfers", id="empty-transfer-list"),
    pytest.param(
        lambda world: world.proxy_hook().submit_job({"source": SRC, "destination": DST}),
        "transfers",
        id="one-dict-not-a-list",
    ),
    pytest.param(
        submit(
            {
                "source": SRC,
                "destination": DST,
                "source_tokens": ["t1", "t2"],
                "destination_tokens": ["t3"],
            }
        ),
        "transfers[0].source_tokens",
        id="token-list-length-mismatch",
    ),
    pytest.param(
        submit({"source": SRC, "destination": DST, "source_tokens": ["t1"]}),
        "transfers[0].destination_tokens",
        id="only-source-tokens",
    ),
    pytest.param(
        submit({"source": SRC, "destination": DST, "checksum": "0a1b2c3d"}),
        "transfers[0].checksum",
        id="checksum-without-algorithm",
    ),
    pytest.param(
        submit({"source": SRC, "destination": DST, "checksum": "ADLER32:xyz12345"}),
        "transfers[0].checksum",
        id="checksum-not-hex",
    ),
    pytest.param(
        submit({"source": SRC, "destination": DST, "checksum": "ADLER32:abc"}),
        "transfers[0].checksum",
        id="checksum-too-short",
    ),
    pytest.param(
        submit({"source": SRC, "destination": DST, "filesize": -1}),
        "transfers[0].filesize",
        id="negative-size",
    ),
    pytest.param(
        submit({"source": SRC, "destination": DST, "checksm": "ADLER32:0a1b2c3d"}),
        "transfers[0].checksm",
        id="misspelled-transfer-field",
    ),
    pytest.param(submit(GOOD, priority=7), "job_params.priority", id="priority-out-of-range"),
    pytest.param(submit(GOOD, priority="high"), "job_params.priority", id="priority-not-int"),
    pytest.param(
        submit(GOOD, overwrite=True, overwrite_on_retry=True),
        "job_params.overwrite_on_retry",
        id="incompatible-overwrite-flags",
    ),
    pytest.param(
        submit(
            {"sources": [SRC, SRC + "-replica"], "destinations": ["davs://hop.example/f"]},
            ("davs://hop.example/f", DST),
            multihop=True,
        ),
        "transfers[0].sources",
        id="multihop-with-several-sources",
    ),
    pytest.param(submit(GOOD, multihop=True), "job_params.multihop", id="multihop-single-hop"),
    pytest.param(submit(GOOD, overwite=True), "job_params.overwite", id="misspelled-job-param"),
    pytest.param(
        submit(GOOD, verify_checksum="yes"), "job_params.verify_checksum", id="checksum-mode"
    ),
    pytest.param(submit(GOOD, retry=-5), "job_params.retry", id="negative-retry"),
    pytest.param(
        submit(GOOD, max_time_in_queue="soon"), "job_params.max_time_in_queue", id="queue-time"
    ),
    pytest.param(
        submit(GOOD, (SRC + "2", DST)), "transfers[1].destinations[0]", id="duplicate-destination"
    ),
    pytest.param(submit(GOOD, ipv4=True, ipv6=True), "job_params.ipv6", id="ipv4-and-ipv6"),
]

READS = [
    pytest.param(
        lambda world: world.proxy_hook().list_jobs(state_in=["DONE"]),
        "list_jobs.state_in",
        id="unknown-state",
    ),
    pytest.param(
        lambda world: world.proxy_hook().list_jobs(limit=0), "list_jobs.limit", id="list-limit-0"
    ),
    pytest.param(
        lambda world: world.proxy_hook().get_job("../config"), "job_id", id="job-id-with-slash"
    ),
    pytest.param(
        lambda world: world.proxy_hook().set_priority(["a-job"], 9), "priority", id="set-priority-9"
    ),
    pytest.param(
        lambda world: (
            world.proxy_hook(),
            FTSJobSensor(task_id="wait", job_id="a,b").poke(
                {"ti": TaskTry(1, run_id="bad", task_id="wait")}
            ),
        ),
        "job_id",
        id="sensor-job-id-with-comma",
    ),
]

CREDENTIALS = [
    pytest.param(
        lambda world: world.hook(x509up_file=str(world.bad.expired_proxy)).whoami(),
        "x509up_file",
        id="expired-proxy",
    ),
    pytest.param(
        lambda world: world.hook(x509up_file=str(world.bad.nearly_expired_proxy)).submit_job(
            [GOOD]
        ),
        "x509up_file",
        id="proxy-with-30-minutes-left-submits",
    ),
    pytest.param(
        connection(x509up_file="/nonexistent/x509up_u1000"), "x509up_file", id="missing-proxy-file"
    ),
    pytest.param(
        connection(
            x509_proxy_pem="-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
            "-----END CERTIFICATE-----\n"
        ),
        "x509_proxy_pem",
        id="malformed-proxy-pem",
    ),
    pytest.param(
        lambda world: world.hook(
            x509_cert_pem=world.pki.user.cert_pem.decode(),
            x509_private_key_pem=world.bad.foreign_key_pem,
        ).get_client(),
        "x509_private_key_pem",
        id="key-not-matching-certificate",
    ),
    pytest.param(
        lambda world: world.hook(
            x509_cert=str(world.bad.cert), x509_key=str(world.bad.encrypted_key)
        ).get_client(),
        "x509_key",
        id="encrypted-key-without-passphrase",
    ),
    pytest.param(
        lambda world: world.hook(
            x509_cert=str(world.bad.cert),
            x509_key=str(world.bad.encrypted_key),
            x509_key_passphrase="wrong horse",
        ).get_client(),
        "x509_key",
        id="wrong-key-passphrase",
    ),
    pytest.param(
        lambda world: world.hook(
            x509up_file=str(world.pki.voms_proxy_path), ca_path="/nonexistent/certificates"
        ).get_client(),
        "ca_path",
        id="missing-ca-directory",
    ),
]

CONNECTION_EXTRAS = [
    pytest.param(connection(x509_proxi="/tmp/x509up_u1000"), "x509_proxi", id="misspelled-extra"),
    pytest.param(connection(verify="maybe"), "verify", id="verify-not-boolean"),
    pytest.param(
        connection(delegation_lifetime_hours="-3"),
        "delegation_lifetime_hours",
        id="negative-lifetime",
    ),
    pytest.param(
        connection(delegation_renew_hours=0.5),
        "delegation_renew_hours",
        id="renew-under-an-hour",
    ),
    pytest.param(
        connection(monitoring_url="https://mon.example/job"),
        "monitoring_url",
        id="monitoring-url-without-placeholder",
    ),
    pytest.param(
        connection("a-token", x509up_file="/tmp/x509up_u1000"),
        "x509up_file",
        id="token-and-proxy",
    ),
    pytest.param(connection(x509_key="/tmp/userkey.pem"), "x509_key", id="key-without-cert"),
    pytest.param(
        connection(x509up_file="/tmp/x509up_u1000", x509_cert="/tmp/usercert.pem"),
        "x509_cert",
        id="proxy-and-certificate",
    ),
]

OPERATOR = [
    pytest.param(
        operator(transfers=[{"source": SRC}]), "transfers[0].destinations", id="op-no-destination"
    ),
    pytest.param(
        operator(job_params={"priority": 0}), "job_params.priority", id="op-priority-zero"
    ),
    pytest.param(
        operator(transfers=SRC),
        "transfers",
        id="op-transfers-a-string",
    ),
    pytest.param(
        operator(max_files_per_job=0),
        "max_files_per_job",
        id="op-max-files-zero",
    ),
]


@pytest.fixture
def world(connect, fts_pki, bad_credentials, fts_emulator) -> World:
    return World(connect, fts_pki, bad_credentials)


@pytest.mark.parametrize(
    ("mistake", "field"), SUBMISSIONS + READS + CREDENTIALS + CONNECTION_EXTRAS + OPERATOR
)
def test_wrong_input_is_refused_before_any_request(mistake, field, world, fts_emulator):
    with pytest.raises(FTSValidationError) as caught:
        mistake(world)

    error = caught.value
    text = str(error)
    assert field in error.field, text
    assert text.startswith(error.field)
    assert "Fix: " in text and error.fix
    assert text.count("\n") <= 1
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    assert sum(fts_emulator.requests.values()) == 0


def sensor(job_id: object, password: str | None = None, **extra) -> Callable[[World], object]:
    def run(world: World) -> object:
        world.hook(password, **extra) if password or extra else world.proxy_hook()
        task = FTSJobSensor(task_id="wait", job_id=job_id)
        return task.execute({"ti": TaskTry(1, run_id="bad-input", task_id="wait")})

    return run


def operator_on(password: str | None, **extra) -> Callable[[World], object]:
    def run(world: World) -> object:
        world.hook(password, **extra)
        task = FTSSubmitOperator(task_id="submit", transfers=[GOOD])
        return task.execute({"ti": TaskTry(1, run_id="bad-input")})

    return run


@pytest.mark.parametrize(
    ("mistake", "field"),
    [
        pytest.param(operator(job_params={"verify_checksm": "both"}), "job_params", id="typo"),
        pytest.param(
            operator(transfers=[("file:///etc/passwd", DST)]), "sources[0]", id="file-url"
        ),
        pytest.param(operator(job_params={"priority": 10}), "job_params.priority", id="prio"),
        pytest.param(sensor(None), "job_id", id="none-job-id"),
        pytest.param(operator_on("a-token", x509up_file="/tmp/x509up"), "", id="proxy+token"),
        pytest.param(sensor("a-job", "a-token", x509up_file="/tmp/x509up"), "", id="sensor-cred"),
    ],
)
def test_a_tasks_input_that_can_never_succeed_fails_it_for_good(mistake, field, world):
    """No retry is spent on a typo: the error is final to Airflow and still names the fix."""
    with pytest.raises(FTSValidationError) as caught:
        mistake(world)

    assert isinstance(caught.value, AirflowFailException), type(caught.value).__mro__
    assert field in caught.value.field and "Fix: " in str(caught.value)
    assert type(caught.value).__name__ in ("FTSValidationError", "FTSCredentialError")


def test_a_task_with_a_bad_connection_logs_the_message_without_a_chain(
    airflow_db, connect, fts_emulator, caplog, capsys
):
    # dag.test() prints the task log (structlog) to stdout; stdlib records go to caplog.
    connect(x509up_file="/nonexistent/x509up_u1000")
    caplog.set_level(logging.DEBUG)

    run = load_example_dag("example_fts_replication").test()

    assert run.state == "failed"
    assert sum(fts_emulator.requests.values()) == 0
    logged = capsys.readouterr().out + caplog.text
    assert "x509up_file: /nonexistent/x509up_u1000 does not exist." in logged
    assert "During handling of the above exception" not in logged
    assert "The above exception was the direct cause" not in logged
