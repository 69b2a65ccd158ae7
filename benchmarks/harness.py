"""Shared by the benchmarks: the FTS emulator in its own process, counting at the server.

The emulator runs in a child process so that the client being measured and the server do
not share one GIL. The child prints one JSON line describing itself (URL, CA directory,
proxy path, Airflow connection), then answers commands on stdin, one JSON line each:

* ``counts``: ``{"requests": {route: n}, "bytes": {route: n}, "connections": n,
  "peak_rss": bytes}`` since the last reset (the peak since the start); the connections
  are TCP connections the server accepted, i.e. TLS handshakes.
* ``reset``: zero both counters (and the log).
* ``log``: ``[[arrived, answered, route, body bytes, file records], ...]`` since the last
  reset, one entry per answered request (epoch seconds; file records of ``GET /jobs``).
* ``post_delay <seconds>``: every POST waits that long first (``faults.post_delay``).
* ``clear``: disarm every fault.

``FTS_BENCH_ENGINE_CONCURRENCY`` sets how many transfers the engine runs at once.

End of stdin stops it. ``python benchmarks/harness.py`` runs the child side.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_PYTHON = Path(__file__).resolve().parent / ".venv-fts3" / "bin" / "python"
LONG_JOB = "mock://dst.example/waiting-{n}?time=3600"  # stays unfinished for an hour


@dataclass(frozen=True)
class EmulatorInfo:
    url: str
    ca_dir: str
    proxy: str
    connection: str  # AIRFLOW_CONN_FTS_DEFAULT value


class EmulatorProcess:
    """A running emulator child process; use as a context manager.

    :param token_issuer: an issuer URL the emulator trusts for bearer tokens (JWKS fetched).
    :param issuer_ca: the CA file that verifies the issuer's HTTPS.
    """

    def __init__(self, token_issuer: str | None = None, issuer_ca: str | None = None) -> None:
        env = dict(os.environ)
        if token_issuer:
            env |= {"FTS_BENCH_TOKEN_ISSUER": token_issuer, "FTS_BENCH_ISSUER_CA": issuer_ca or ""}
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        self._lock = threading.Lock()
        self.info = EmulatorInfo(**json.loads(self._process.stdout.readline()))

    def _ask(self, command: str) -> dict:
        with self._lock:
            self._process.stdin.write(command + "\n")
            self._process.stdin.flush()
            return json.loads(self._process.stdout.readline())

    def counts(self) -> dict:
        return self._ask("counts")

    def reset(self) -> None:
        self._ask("reset")

    def log(self) -> list[list]:
        return self._ask("log")

    def post_delay(self, seconds: float) -> None:
        self._ask(f"post_delay {seconds}")

    def clear_faults(self) -> None:
        self._ask("clear")

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=30)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OfficialClient:
    """The official ``fts3`` client in its own venv and process (official_worker.py)."""

    def __init__(self, info: EmulatorInfo) -> None:
        worker = Path(__file__).resolve().parent / "official_worker.py"
        self._process = subprocess.Popen(
            [str(OFFICIAL_PYTHON), str(worker), info.url, info.proxy, info.ca_dir],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.version = json.loads(self._process.stdout.readline())["version"]

    def run(self, command: str) -> float:
        """Seconds the worker spent on one command (see official_worker.py)."""
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return json.loads(self._process.stdout.readline())["seconds"]

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=30)


def make_client(info: EmulatorInfo):
    """Our FTSClient for the emulator's VOMS proxy user."""
    from airflow_provider_fts.client.client import FTSClient
    from airflow_provider_fts.client.credentials import Credentials, Trust

    return FTSClient(
        info.url, Credentials.from_proxy_file(info.proxy), trust=Trust(ca_path=info.ca_dir)
    )


def submit_long_jobs(emulator: EmulatorProcess, count: int) -> list[str]:
    """One unfinished single-file job per wait (4 submitting threads, one client)."""
    with make_client(emulator.info) as client, ThreadPoolExecutor(4) as pool:
        return list(
            pool.map(
                lambda n: client.submit_job([("mock://src.example/f", LONG_JOB.format(n=n))]),
                range(count),
            )
        )


async def start_waits(job_ids: list[str], poll_interval: float) -> tuple[list[asyncio.Task], Any]:
    """One ``FTSJobTrigger.run()`` task per job on this loop, as a triggerer runs them.

    Returns the tasks and their shared poller once every trigger has joined it.
    """
    from airflow_provider_fts.hooks.fts import FTSHook
    from airflow_provider_fts.triggers.fts import FTSJobTrigger

    async def wait(job_id: str) -> None:
        async for _ in FTSJobTrigger([job_id], poll_interval=poll_interval).run():
            raise AssertionError(f"job {job_id} was meant to keep running")

    tasks = [asyncio.create_task(wait(job_id)) for job_id in job_ids]
    poller = await FTSHook().aget_poller()
    while poller.waiting < len(job_ids):
        await asyncio.sleep(0.01)
    return tasks, poller


async def stop_waits(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def wait_for_round(poller, after: int) -> None:
    """Until the poller has completed more than ``after`` rounds."""
    while poller.rounds <= after:
        await asyncio.sleep(0.01)


def use_private_airflow(connection: str) -> None:
    """A throw-away AIRFLOW_HOME and the emulator as ``fts_default``; before Airflow loads.

    Warnings only: every trigger logs a progress line per poll round.
    """
    home = tempfile.mkdtemp(prefix="fts-bench-airflow-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ["AIRFLOW_HOME"] = home
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    os.environ["AIRFLOW_CONN_FTS_DEFAULT"] = connection


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A Markdown table, ready to paste into README.md."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


# --------------------------------------------------------------------------- child side


def _count_connections(emulator) -> Callable[[bool], int]:
    """Count accepted connections by wrapping the server's accept (server.py stays as is)."""
    server = emulator._httpd
    accept = server.get_request
    accepted = [0]

    def counting_accept():
        connection = accept()
        accepted[0] += 1
        return connection

    server.get_request = counting_accept

    def read(reset: bool = False) -> int:
        value = accepted[0]
        if reset:
            accepted[0] = 0
        return value

    return read


def _serve() -> None:
    from airflow_provider_fts.testing.environment import make_test_pki
    from airflow_provider_fts.testing.server import FTSEmulator

    with tempfile.TemporaryDirectory(prefix="fts-bench-emulator-") as workdir:
        pki = make_test_pki(Path(workdir))
        emulator = FTSEmulator(
            ca=pki.ca, host_credential=pki.host, ca_dir=pki.ca_dir, **_token_options()
        )
        connections = _count_connections(emulator)
        log = _log_requests(emulator)
        concurrency = os.environ.get("FTS_BENCH_ENGINE_CONCURRENCY")
        if concurrency:
            emulator.engine.concurrency = int(concurrency)
        with emulator:
            info = EmulatorInfo(
                url=emulator.url,
                ca_dir=str(pki.ca_dir),
                proxy=str(pki.voms_proxy_path),
                connection=emulator.connection_json(pki.voms_proxy_path, ca_path=pki.ca_dir),
            )
            print(json.dumps(info.__dict__), flush=True)
            _answer_commands(emulator, connections, log)


def _token_options() -> dict[str, Any]:
    """Trust the issuer the parent named (bench_tokens.py), as a server's [providers] entry."""
    issuer = os.environ.get("FTS_BENCH_TOKEN_ISSUER")
    if not issuer:
        return {}
    from airflow_provider_fts.testing.tokens import TrustedIssuer

    verify = os.environ.get("FTS_BENCH_ISSUER_CA") or True
    return {"token_issuers": [TrustedIssuer(issuer)], "jwks_verify": verify}


def _log_requests(emulator) -> list[list]:
    """One entry per answered request, by wrapping the counters and ``store.get_jobs``."""
    entries: list[list] = []
    current = threading.local()
    count, count_sent, get_jobs = emulator.count, emulator.count_sent, emulator.store.get_jobs

    def counting(route_key: str) -> None:
        current.arrived, current.files = time.time(), 0
        count(route_key)

    def counting_sent(route_key: str, size: int) -> None:
        entries.append([current.arrived, time.time(), route_key, size, current.files])
        count_sent(route_key, size)

    def counting_files(*args, **kwargs):
        status, body = get_jobs(*args, **kwargs)
        for entry in body if isinstance(body, list) else [body]:
            current.files += len(entry.get("files") or ())
        return status, body

    emulator.count, emulator.count_sent = counting, counting_sent
    emulator.store.get_jobs = counting_files
    return entries


def _answer_commands(emulator, connections: Callable[[bool], int], log: list[list]) -> None:
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        answer: Any = {}
        if command == "counts":
            answer = {
                "requests": dict(emulator.requests),
                "bytes": dict(emulator.bytes_sent),
                "connections": connections(),
                "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        elif command == "log":
            answer = list(log)
        elif command == "post_delay":
            emulator.faults.post_delay(float(argument))
        elif command == "clear":
            emulator.faults.clear()
        else:
            emulator.reset_counts()
            connections(reset=True)
            log.clear()
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _serve()
