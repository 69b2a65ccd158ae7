"""The emulator's outage switch: refused connections for a while, then the same server with
the same jobs on the same port."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_fts.testing.environment import FTSTestPKI
from airflow_provider_fts.testing.server import FTSEmulator

JOB = {"files": [{"sources": ["mock://a/x"], "destinations": ["mock://b/x"]}]}


def test_a_server_down_refuses_connections_and_comes_back_with_its_jobs(fts_pki: FTSTestPKI):
    user = requests.Session()
    user.cert = str(fts_pki.voms_proxy_path)
    user.trust_env = False  # a CA bundle named by the environment would replace ours
    user.verify = str(fts_pki.ca_dir)
    with FTSEmulator(ca=fts_pki.ca, host_credential=fts_pki.host, ca_dir=fts_pki.ca_dir) as emu:
        url = emu.url
        whoami = user.get(f"{url}/whoami", timeout=5).json()
        emu.delegate(whoami["delegation_id"], whoami["user_dn"])
        job_id = user.post(f"{url}/jobs", json=JOB, timeout=5).json()["job_id"]

        emu.go_down()
        with pytest.raises(requests.ConnectionError):
            user.get(f"{url}/whoami", timeout=5)
        emu.come_back()

        assert emu.url == url
        assert user.get(f"{url}/jobs/{job_id}", timeout=5).json()["job_id"] == job_id
