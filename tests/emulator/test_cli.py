"""``python -m airflow_provider_fts.testing`` as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import requests


def test_cli_prints_a_working_connection_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    site = tmp_path / "site-a"
    site.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_fts.testing", "--port", "0",
         "--workdir", str(tmp_path / "pki"), "--site", f"site-a.example={site}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = next(line for line in process.stdout if line.startswith("AIRFLOW_CONN_"))
        name, _, quoted = line.strip().partition("=")
        connection = json.loads(shlex.split(quoted)[0])
        extra = connection["extra"]

        whoami = requests.get(
            f"https://{connection['host']}:{connection['port']}/whoami",
            cert=(extra["x509up_file"], extra["x509up_file"]),
            verify=extra["ca_path"],
            timeout=10,
        )

        assert name == "AIRFLOW_CONN_FTS_DEFAULT"
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
