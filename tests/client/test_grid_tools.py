"""Proxies made by the grid's own tools work as credentials, end to end over TLS, and the
proxy the client delegates is one OpenSSL accepts as an RFC 3820 proxy."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from airflow_provider_fts.client import Credentials, FTSClient, JobState, Trust
from airflow_provider_fts.client.certs import load_pem_chain

FQAN = "/dteam/Role=NULL/Capability=NULL"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it)")
    return path


def run(command: list, ca_dir: Path) -> None:
    env = {**os.environ, "X509_CERT_DIR": str(ca_dir)}
    subprocess.run([str(part) for part in command], check=True, capture_output=True, env=env)


@pytest.fixture
def grid_user(fts_pki, tmp_path: Path):
    """A user of the emulator's CA, with its certificate and key on disk."""
    user = fts_pki.ca.issue_user_cert(
        f"/DC=org/DC=example/O=FTS Test/CN=Grid Tools {tmp_path.name}"
    )
    cert, key = user.write_cert_and_key(tmp_path / "user")
    return user, cert, key


def client_for(emulator, test_pki, proxy: Path) -> FTSClient:
    trust = Trust(ca_path=str(test_pki.ca_dir))
    return FTSClient(emulator.url, Credentials.from_proxy_file(proxy), trust=trust)


def submit_and_wait(client: FTSClient) -> dict:
    job_id = client.submit_job([("mock://a.example/f?size=10", "mock://b.example/f")])
    for _ in range(400):
        job = client.get_job(job_id)
        if JobState.parse(job["job_state"]).is_terminal:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")


def test_grid_proxy_init_proxy_submits_a_job(fts_emulator, fts_pki, grid_user, tmp_path) -> None:
    user, cert, key = grid_user
    proxy = tmp_path / "x509up"
    run(
        [tool("grid-proxy-init"), "-rfc", "-cert", cert, "-key", key, "-out", proxy], fts_pki.ca_dir
    )

    with client_for(fts_emulator, fts_pki, proxy) as client:
        who = client.whoami()
        job = submit_and_wait(client)

    assert who["user_dn"] == user.dn
    assert who["vos"] == [who["delegation_id"]]  # no VOMS: the "virtual VO"
    assert job["job_state"] == "FINISHED"


def test_voms_proxy_fake_proxy_submits_in_its_vo(
    fts_emulator, fts_pki, grid_user, tmp_path
) -> None:
    user, cert, key = grid_user
    voms_host = fts_pki.ca.issue_host_cert("voms.example.org")
    host_cert, host_key = voms_host.write_cert_and_key(tmp_path / "voms")
    proxy = tmp_path / "x509up"
    run(
        [tool("voms-proxy-fake"), "-rfc", "-hours", "12", "-voms", "dteam", "-fqan", FQAN,
         "-cert", cert, "-key", key, "-hostcert", host_cert, "-hostkey", host_key, "-out", proxy],
        fts_pki.ca_dir,
    )  # fmt: skip

    with client_for(fts_emulator, fts_pki, proxy) as client:
        who = client.whoami()
        job = submit_and_wait(client)

    assert who["user_dn"] == user.dn
    assert who["vos"] == ["dteam"]
    assert who["voms_cred"] == [FQAN]
    assert job["job_state"] == "FINISHED"
    assert job["vo_name"] == "dteam"


def test_the_delegated_proxy_verifies_with_openssl(fts_emulator, fts_pki, tmp_path) -> None:
    openssl = tool("openssl")
    proxy_file = fts_pki.voms_proxy.write_proxy(tmp_path / "x509up")
    with client_for(fts_emulator, fts_pki, proxy_file) as client:
        delegation_id = client.delegate(force=True)

    stored = fts_emulator.delegations.get(delegation_id).proxy_pem  # what FTS would use
    delegated, *issuers = load_pem_chain(stored)
    leaf, untrusted = tmp_path / "delegated.pem", tmp_path / "issuers.pem"
    leaf.write_bytes(_pem(delegated))
    untrusted.write_bytes(b"".join(_pem(c) for c in issuers))
    result = subprocess.run(
        [openssl, "verify", "-allow_proxy_certs", "-CApath", str(fts_pki.ca_dir),
         "-untrusted", str(untrusted), str(leaf)],
        capture_output=True, text=True,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert delegated.issuer == fts_pki.voms_proxy.certificate.subject


def _pem(certificate) -> bytes:
    return certificate.public_bytes(Encoding.PEM)
