"""Who may open the "FTS transfers" view: a real ``airflow api-server`` with real logins.

The API server runs alone (no scheduler: the routes are refused or admitted before any
run is read) with :class:`~tests.ui.auth.DagScopedAuthManager`, two users and the
provider's plugin. No token: 401. A user who may not read the DAG: 403. A user who may:
the route runs, and answers 404 for a run that does not exist.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.lifecycle.stack import AirflowStack, StackError, wait_for

from .auth import ITS_DAG, OUTSIDER

PLUGINS = Path(__file__).resolve().parents[1] / "lifecycle" / "plugins"
PASSWORDS = {"viewer": "viewer-pass", OUTSIDER: "outsider-pass"}
ROUTES = [
    "/fts-transfers/dags/{dag}/runs/r1",
    "/fts-transfers/dags/{dag}/runs/r1/tasks/transfer/-1",
    "/fts-transfers/dags/{dag}/runs/r1/files.csv",
    "/fts-transfers/dags/{dag}/runs/r1/files.json",
    "/fts-transfers/dags/{dag}/runs/r1/tasks/transfer/-1/files.json",
]


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("airflow-api-only")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    stack = AirflowStack(
        home,
        home / "dags",
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": "tests.ui.auth.DagScopedAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"viewer:viewer,{OUTSIDER}:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        },
    )
    (home / "dags").mkdir()
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate = subprocess.run([airflow, "db", "migrate"], env=stack.env, capture_output=True)
    assert migrate.returncode == 0, migrate.stderr.decode()[-2000:]
    with (home / "api-server.out").open("wb") as output:
        server = subprocess.Popen(
            [airflow, "api-server"],
            env=stack.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for("the API server to answer", lambda: _answers(stack, server), 120, interval=1)
        yield stack
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _answers(stack: AirflowStack, server: subprocess.Popen) -> bool:
    if server.poll() is not None:
        raise StackError(f"the API server exited:\n{stack.output('api-server')}")
    try:
        return requests.get(f"{stack.base_url}/api/v2/monitor/health", timeout=5).ok
    except requests.ConnectionError:
        return False


def token(stack: AirflowStack, user: str) -> dict[str, str]:
    reply = requests.post(
        f"{stack.base_url}/auth/token",
        json={"username": user, "password": PASSWORDS[user]},
        timeout=30,
    )
    assert reply.status_code == 201, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def statuses(stack: AirflowStack, dag: str, headers: dict[str, str] | None = None) -> list:
    return [
        requests.get(
            stack.base_url + route.format(dag=dag), headers=headers, timeout=30
        ).status_code
        for route in ROUTES
    ]


def test_every_route_refuses_a_caller_without_a_token(api_server):
    assert statuses(api_server, "some_dag") == [401] * len(ROUTES)


def test_every_route_refuses_a_user_who_may_not_read_the_dag(api_server):
    assert statuses(api_server, "some_dag", token(api_server, OUTSIDER)) == [403] * len(ROUTES)


def test_a_user_who_may_read_the_dag_reaches_the_view(api_server):
    # The route itself answers: the run does not exist.
    assert statuses(api_server, ITS_DAG, token(api_server, OUTSIDER)) == [404] * len(ROUTES)
    assert statuses(api_server, "some_dag", token(api_server, "viewer")) == [404] * len(ROUTES)
