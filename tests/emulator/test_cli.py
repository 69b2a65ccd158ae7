"""``python -m airflow_provider_fts.testing`` as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import requests

from airflow_provider_fts.client.oidc import jwt_claims


def test_cli_prints_a_working_connection_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    site = tmp_path / "site-a"
    site.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_fts.testing", "--port", "0",
         "--workdir", str(tmp_path / "pki"), "--site", f"site-a.example={site}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = next(line for line in process.stdout if "AIRFLOW_CONN_" in line)
        name, _, quoted = line.strip().removeprefix("export ").partition("=")
        connection = json.loads(shlex.split(quoted)[0])
        # Pasted into a shell, the line reaches the processes it starts (Airflow's).
        child = shlex.join([sys.executable, "-c", f"import os; print(os.environ[{name!r}])"])
        shell = f"{line.strip()}\n{child}"
        seen = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
        extra = connection["extra"]

        whoami = requests.get(
            f"https://{connection['host']}:{connection['port']}/whoami",
            cert=(extra["x509up_file"], extra["x509up_file"]),
            verify=extra["ca_path"],
            timeout=10,
        )

        assert line.startswith("export AIRFLOW_CONN_FTS_DEFAULT=")
        assert json.loads(seen.stdout) == connection, seen.stderr
        assert whoami.json()["vos"] == ["dteam"]
    finally:
        process.send_signal(signal.SIGINT)
        remaining, errors = process.communicate(timeout=15)
    assert process.returncode == 0, errors
    assert "stopped" in remaining


def test_cli_help_describes_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_fts.testing", "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip

    assert "--site NAME=DIR" in result.stdout
    assert "--workdir" in result.stdout


def test_cli_with_the_test_issuer_prints_a_working_token_and_token_connection(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_fts.testing", "--port", "0",
         "--workdir", str(tmp_path / "pki"), "--test-issuer", "--token-lifetime", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        printed = {}
        for line in process.stdout:  # type: ignore[union-attr]
            name, _, value = line.strip().removeprefix("export ").partition("=")
            printed[name] = value
            if name == "AIRFLOW_CONN_FTS_TOKEN":
                break
        token = printed["FTS_ACCESS_TOKEN"]
        connection = json.loads(shlex.split(printed["AIRFLOW_CONN_FTS_TOKEN"])[0])
        url = f"https://{connection['host']}:{connection['port']}"
        verify = connection["extra"]["ca_path"]

        whoami = requests.get(
            url + "/whoami", headers={"Authorization": f"Bearer {token}"}, verify=verify, timeout=10
        ).json()
        submitted = requests.post(
            url + "/jobs",
            headers={"Authorization": f"Bearer {connection['password']}"},
            json={"files": [{"sources": ["mock://a/f"], "destinations": ["mock://b/f"]}],
                  "params": {}},
            verify=verify,
            timeout=10,
        )  # fmt: skip
    finally:
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=15)

    claims = jwt_claims(token)
    assert claims is not None and claims["aud"] == url
    assert 2 * 3600 - 60 <= claims["exp"] - claims["iat"] <= 2 * 3600
    assert (whoami["method"], whoami["user_dn"], whoami["vos"]) == (
        "oauth2",
        "token-user",
        ["dteam"],
    )
    assert submitted.status_code == 200, submitted.text
    assert "AIRFLOW_CONN_FTS_DEFAULT" in printed  # the proxy connection is still there
    assert process.returncode == 0, errors


def test_cli_help_lists_the_token_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_fts.testing", "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip

    assert "--test-issuer" in result.stdout and "--token-lifetime HOURS" in result.stdout
