"""A real Airflow 3 deployment for the lifecycle suite, in its own AIRFLOW_HOME and ports.

:class:`AirflowStack` runs ``airflow db migrate``, then the scheduler (LocalExecutor on
SQLite), the dag-processor, the triggerer and the API server as separate processes, each
in its own process group so that :meth:`AirflowStack.stop` can end it with its children
(the executor's workers and the task processes). The simple auth manager admits every
caller as admin (``simple_auth_manager_all_admins``), so ``GET /auth/token`` hands out a
JWT without a password and ``/auth/token/login`` logs a browser in.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from base64 import urlsafe_b64encode
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import requests

T = TypeVar("T")

COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
}


# Kills the process groups once the test process is gone, even if it died by SIGKILL
# (a CI timeout) and could not run stop(); a graceful SIGTERM is not enough there, as the
# scheduler then waits for tasks that can no longer reach the API server.
WATCHDOG = """
import os, signal, sys, time
parent = int(sys.argv[1])
while os.getppid() == parent:
    time.sleep(1)
for group in map(int, sys.argv[2:]):
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


class StackError(AssertionError):
    """The stack or a wait failed; the message says what and where to look."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll ``probe`` until it returns a truthy value; fail naming ``what`` and the last value.

    :param what: the condition, as the failure message should name it.
    :param probe: returns the value when the condition holds, else a falsy value.
    :param timeout: seconds before giving up.
    :param interval: seconds between probes.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class AirflowStack:
    """Airflow's four long-running processes in a throw-away home.

    :param home: the AIRFLOW_HOME (created, holds the SQLite DB, logs, process output).
    :param dags_folder: the DAG folder the dag-processor parses.
    :param extra_env: more environment for every process (e.g. ``AIRFLOW_CONN_FTS_DEFAULT``).
    """

    def __init__(self, home: Path, dags_folder: Path, extra_env: Mapping[str, str]) -> None:
        self.home = home
        self.dags_folder = dags_folder
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = self._environment(extra_env)
        self.processes: dict[str, subprocess.Popen] = {}
        self.watchdog: subprocess.Popen | None = None
        self.session = requests.Session()

    def _environment(self, extra_env: Mapping[str, str]) -> dict[str, str]:
        # Nothing of the calling process's Airflow configuration leaks in (pytest's other
        # suites set AIRFLOW_HOME and unit-test mode in os.environ).
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        fernet = urlsafe_b64encode(secrets.token_bytes(32)).decode()
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags_folder),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="8",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__CORE__FERNET_KEY=fernet,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base_url}/execution/",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.base_url,
            AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
            # New DAG files are found within seconds, not the default five minutes.
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
            # The connection form's Test button (off by default): the browser test uses it.
            AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        )
        # The stack's processes import test helpers by module path (an auth manager, a
        # plugin loader): the repository root is on their path, as on the test's.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env.update(extra_env)
        return env

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        migrate = subprocess.run(
            [self._airflow(), "db", "migrate"], env=self.env, capture_output=True, text=True
        )
        if migrate.returncode:
            raise StackError(f"airflow db migrate failed:\n{migrate.stdout}\n{migrate.stderr}")
        for name, args in COMPONENTS.items():
            output = (self.home / f"{name}.out").open("wb")
            self.processes[name] = subprocess.Popen(
                [self._airflow(), *args],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: stop() ends its children too
            )
            output.close()
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(os.getpid())]
            + [str(p.pid) for p in self.processes.values()],
            start_new_session=True,  # not in any group that stop() ends
        )
        wait_for("the API server to answer", self._token, timeout, interval=1.0)
        self.session.headers["Authorization"] = f"Bearer {self._token()}"
        wait_for("scheduler, triggerer and dag-processor to be healthy", self._healthy, timeout)

    def stop(self, grace: float = 20.0) -> None:
        for process in self.processes.values():
            self._signal(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            # The group may outlive its leader (executor workers, task processes).
            self._signal(process, signal.SIGKILL)
            process.wait()
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait()
        self.session.close()

    @staticmethod
    def _signal(process: subprocess.Popen, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    def _airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def _token(self) -> str | None:
        self.check_alive()
        try:
            reply = requests.get(f"{self.base_url}/auth/token", timeout=5)
        except requests.ConnectionError:
            return None
        return reply.json()["access_token"] if reply.status_code == 201 else None

    def _healthy(self) -> dict | None:
        self.check_alive()
        health = self.get("/api/v2/monitor/health")
        wanted = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        ok = all((health.get(part) or {}).get("status") == "healthy" for part in wanted)
        return health if ok else None

    def check_alive(self) -> None:
        """Fail with the tail of its output if one of the processes died."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(
                    f"airflow {name} exited with {process.returncode}:\n{self.output(name)}"
                )

    def output(self, name: str, lines: int = 40) -> str:
        path = self.home / f"{name}.out"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # -- REST API ----------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.base_url}{path}", timeout=30, **kwargs)

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        reply = self.request(method, path, **kwargs)
        if reply.status_code not in expect:
            raise StackError(f"{method} {path} answered {reply.status_code}: {reply.text[:2000]}")
        return reply.json() if reply.content else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def wait_dags(self, dag_ids: set[str], timeout: float = 120.0) -> None:
        """Wait until the dag-processor has stored every DAG; fail on an import error."""

        def probe() -> bool:
            self.check_alive()
            errors = self.get("/api/v2/importErrors")["import_errors"]
            if errors:
                raise StackError(f"the test DAGs do not import: {errors}")
            found = {d["dag_id"] for d in self.get("/api/v2/dags", params={"limit": 100})["dags"]}
            return dag_ids <= found

        wait_for(f"the DAGs {sorted(dag_ids)} to be parsed", probe, timeout)
