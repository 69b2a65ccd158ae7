"""The emulator's HTTPS layer: identity, delegation, routing, counting, concurrency."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from airflow_provider_fts.testing.environment import USER_DN, FTSTestPKI
from airflow_provider_fts.testing.server import FTSEmulator

PROXY_CERT_INFO = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14")
INHERIT_ALL = bytes.fromhex("300c300a06082b06010505071501")
JOB = {"files": [{"sources": ["mock://a.example/f"], "destinations": ["mock://b.example/f"]}]}


class Client:
    """A requests session for one credential (``trust_env`` off: the CA dir must win)."""

    def __init__(self, emulator: FTSEmulator, pki: FTSTestPKI, cert=None, token=None) -> None:
        self.url = emulator.url
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(pki.ca_dir)
        self.session.cert = cert
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __getattr__(self, method: str):
        return lambda path, **kwargs: self.session.request(method, self.url + path, **kwargs)


def proxy_client(emulator: FTSEmulator, pki: FTSTestPKI, path: Path) -> Client:
    return Client(emulator, pki, cert=(str(path), str(path)))


@pytest.fixture
def voms_user(fts_emulator: FTSEmulator, fts_pki: FTSTestPKI) -> Client:
    return proxy_client(fts_emulator, fts_pki, fts_pki.voms_proxy_path)


@pytest.fixture
def fresh_delegation(fts_emulator: FTSEmulator, voms_user: Client) -> str:
    """The VOMS user's delegation id, with no delegation and no pending request stored."""
    delegation_id = voms_user.get("/whoami").json()["delegation_id"]
    fts_emulator.delegations.delete(delegation_id)
    fts_emulator.delegations.forget_request(delegation_id)
    return delegation_id


def sign_request(
    csr_pem: bytes,
    signer_cert: x509.Certificate,
    signer_key,
    chain: list[x509.Certificate],
    *,
    lifetime: timedelta = timedelta(hours=12),
    subject: x509.Name | None = None,
) -> bytes:
    """An RFC 3820 proxy for the CSR's key, followed by the signer's chain (the PUT body)."""
    csr = x509.load_pem_x509_csr(csr_pem)
    now = datetime.now(UTC)
    subject = subject or x509.Name(
        [
            *signer_cert.subject.rdns,
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "4242")]),
        ]
    )
    proxy = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.UnrecognizedExtension(PROXY_CERT_INFO, INHERIT_ALL), critical=True)
        .sign(signer_key, hashes.SHA256())
    )
    certs = [proxy, *chain]
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


# --------------------------------------------------------------------------- identity


def test_voms_proxy_identity_has_vo_from_fqans(voms_user: Client) -> None:
    whoami = voms_user.get("/whoami").json()

    assert whoami["user_dn"] == USER_DN
    assert whoami["dn"][0] == USER_DN and whoami["dn"][1].startswith(USER_DN + "/CN=")
    assert whoami["voms_cred"] == ["/dteam/Role=NULL/Capability=NULL"]
    assert whoami["vos"] == ["dteam"]
    expected = hashlib.sha1((USER_DN + "/dteam/Role=NULL/Capability=NULL").encode())
    assert whoami["delegation_id"] == expected.hexdigest()[:16]
    assert whoami["method"] == "certificate" and whoami["is_root"] is False


def test_plain_proxy_identity_uses_delegation_id_as_virtual_vo(
    fts_emulator: FTSEmulator, fts_pki: FTSTestPKI
) -> None:
    whoami = proxy_client(fts_emulator, fts_pki, fts_pki.plain_proxy_path).get("/whoami").json()

    assert whoami["voms_cred"] == []
    assert whoami["delegation_id"] == hashlib.sha1(USER_DN.encode()).hexdigest()[:16]
    assert whoami["vos"] == [whoami["delegation_id"]]


def test_user_certificate_identity_lists_only_its_own_dn(
    fts_emulator: FTSEmulator, fts_pki: FTSTestPKI
) -> None:
    cert = (str(fts_pki.usercert_path), str(fts_pki.userkey_path))

    whoami = Client(fts_emulator, fts_pki, cert=cert).get("/whoami").json()

    assert whoami["dn"] == [USER_DN]
    assert whoami["method"] == "certificate"


def test_proxy_of_proxy_identity_lists_every_proxy_dn(
    fts_emulator: FTSEmulator, fts_pki: FTSTestPKI, tmp_path: Path
) -> None:
    second = fts_pki.plain_proxy.make_proxy(timedelta(hours=1))
    path = second.write_proxy(tmp_path / "x509up_2")

    whoami = proxy_client(fts_emulator, fts_pki, path).get("/whoami").json()

    assert whoami["user_dn"] == USER_DN
    assert whoami["dn"] == [USER_DN, fts_pki.plain_proxy.dn, second.dn]


def test_host_certificate_is_root(fts_emulator: FTSEmulator, fts_pki: FTSTestPKI) -> None:
    root = proxy_client(fts_emulator, fts_pki, fts_pki.host_proxy_path)

    assert root.get("/whoami").json()["is_root"] is True
    assert root.get("/status/hosts").status_code == 200


def test_root_is_granted_every_level_and_reaches_every_job(
    fts_emulator: FTSEmulator, fts_pki: FTSTestPKI, voms_user: Client
) -> None:
    # One identity model: what /whoami says root may do is what the job store lets it do.
    whoami = voms_user.get("/whoami").json()
    fts_emulator.delegate(whoami["delegation_id"], USER_DN, fqans=whoami["voms_cred"])
    job_id = voms_user.post("/jobs", json=JOB).json()["job_id"]
    root = proxy_client(fts_emulator, fts_pki, fts_pki.host_proxy_path)
    root_whoami = root.get("/whoami").json()

    seen = root.get(f"/jobs/{job_id}")
    canceled = root.delete(f"/jobs/{job_id}")

    assert root_whoami["vos"] != whoami["vos"]  # root is in no VO of the user
    assert root_whoami["level"] == {
        op: "all" for op in ("transfer", "deleg", "config", "admin", "datamanagement")
    }
    assert seen.status_code == 200 and seen.json()["user_dn"] == USER_DN
    assert canceled.status_code == 200 and canceled.json()["job_state"] == "CANCELED"


def test_token_user_is_oauth2_without_delegation(
    fts_emulator: FTSEmulator, fts_pki: FTSTestPKI, fts_token: str
) -> None:
    user = Client(fts_emulator, fts_pki, token=fts_token)

    whoami = user.get("/whoami").json()
    # 3.13 reads params directly for its token checks: a token submission must carry them.
    submitted = user.post("/jobs", json={**JOB, "params": {}})

    assert whoami["method"] == "oauth2" and whoami["user_dn"] == "token-user"
    assert whoami["vos"] == ["dteam"]  # the built-in issuer's configured VO
    expected = hashlib.sha1(b"https://iam.example.orgtoken-user").hexdigest()[:16]
    assert whoami["delegation_id"] == expected
    assert submitted.status_code == 200


def test_an_unknown_token_is_ignored_not_refused(
    fts_emulator: FTSEmulator, fts_pki: FTSTestPKI
) -> None:
    answer = Client(fts_emulator, fts_pki, token="stolen").get("/whoami")

    assert answer.status_code == 200
    assert answer.json()["method"] == "unauthenticated"


def test_anonymous_caller_may_ask_who_it_is_but_not_list_jobs(
    fts_emulator: FTSEmulator, fts_pki: FTSTestPKI
) -> None:
    anonymous = Client(fts_emulator, fts_pki)

    assert anonymous.get("/whoami").json()["user_dn"] == "anon"
    assert anonymous.get("/jobs").json()["message"] == "Not enough permissions"


def test_grid_proxy_init_rfc_proxy_is_accepted(
    fts_emulator: FTSEmulator, fts_pki: FTSTestPKI, tmp_path: Path
) -> None:
    tool = shutil.which("grid-proxy-init")
    if tool is None:
        pytest.skip("grid-proxy-init is not installed")
    proxy = tmp_path / "x509up_gpi"
    subprocess.run(
        [tool, "-rfc", "-hours", "1", "-cert", str(fts_pki.usercert_path), "-key",
         str(fts_pki.userkey_path), "-out", str(proxy)],
        env={**os.environ, "X509_CERT_DIR": str(fts_pki.ca_dir)},
        check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip

    whoami = proxy_client(fts_emulator, fts_pki, proxy).get("/whoami").json()

    assert whoami["user_dn"] == USER_DN and len(whoami["dn"]) == 2


# --------------------------------------------------------------------------- delegation


def test_delegation_cycle_lets_the_user_submit(
    fts_emulator: FTSEmulator, fts_pki: FTSTestPKI, voms_user: Client, fresh_delegation: str
) -> None:
    base = f"/delegation/{fresh_delegation}"
    csr = voms_user.get(f"{base}/request")
    signer = fts_pki.voms_proxy
    body = sign_request(csr.content, signer.certificate, signer.private_key, signer.chain)

    stored = voms_user.put(f"{base}/credential", data=body)
    view = voms_user.get(base).json()

    assert csr.headers["X-Delegation-ID"] == fresh_delegation
    assert stored.status_code == 201 and stored.content == b""
    expected_end = min(c.not_valid_after_utc for c in x509.load_pem_x509_certificates(body))
    assert view["termination_time"] == expected_end.strftime("%Y-%m-%dT%H:%M:%S")
    assert view["voms_attrs"] == ["/dteam/Role=NULL/Capability=NULL"]
    assert voms_user.post("/jobs", json=JOB).status_code == 200


def test_certificate_request_is_cached_until_a_credential_is_stored(
    fts_pki: FTSTestPKI, voms_user: Client, fresh_delegation: str
) -> None:
    base = f"/delegation/{fresh_delegation}"
    first = voms_user.get(f"{base}/request").content
    again = voms_user.get(f"{base}/request").content
    signer = fts_pki.voms_proxy
    voms_user.put(
        f"{base}/credential",
        data=sign_request(first, signer.certificate, signer.private_key, signer.chain),
    )

    after = voms_user.get(f"{base}/request").content

    assert first == again
    assert after != first


def test_delegation_of_someone_else_is_forbidden(voms_user: Client) -> None:
    answer = voms_user.get("/delegation/0123456789abcdef/request")

    assert answer.status_code == 403
    assert answer.json()["message"] == "The requested ID and the credentials ID do not match"


def _put_error(voms_user: Client, delegation_id: str, body: bytes) -> str:
    answer = voms_user.put(f"/delegation/{delegation_id}/credential", data=body)
    assert answer.status_code == 400
    return answer.json()["message"]


def test_credential_without_request_is_refused(voms_user: Client, fresh_delegation: str) -> None:
    message = _put_error(voms_user, fresh_delegation, b"anything")

    assert message == "No credential cache found"


@pytest.mark.parametrize("body", [b"garbage", b"single"], ids=["garbage", "one-certificate"])
def test_credential_needs_two_certificates(
    fts_pki: FTSTestPKI, voms_user: Client, fresh_delegation: str, body: bytes
) -> None:
    voms_user.get(f"/delegation/{fresh_delegation}/request")
    if body == b"single":
        body = fts_pki.user.cert_pem.bytes()

    message = _put_error(voms_user, fresh_delegation, body)

    assert message == "Could not process the proxy: Malformed proxy"


def test_credential_for_another_key_is_refused(
    fts_pki: FTSTestPKI, voms_user: Client, fresh_delegation: str
) -> None:
    voms_user.get(f"/delegation/{fresh_delegation}/request")

    message = _put_error(voms_user, fresh_delegation, fts_pki.voms_proxy.chain_pem.bytes())

    assert message.endswith("The proxy does not match the stored associated private key")


def test_credential_signed_by_the_wrong_key_is_refused(
    fts_pki: FTSTestPKI, voms_user: Client, fresh_delegation: str
) -> None:
    csr = voms_user.get(f"/delegation/{fresh_delegation}/request").content
    signer = fts_pki.voms_proxy
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    message = _put_error(
        voms_user,
        fresh_delegation,
        sign_request(csr, signer.certificate, impostor, signer.chain),
    )

    assert message.endswith("Failed to verify the proxy, maybe signed with the wrong private key?")


def test_credential_with_a_foreign_subject_is_refused(
    fts_pki: FTSTestPKI, voms_user: Client, fresh_delegation: str
) -> None:
    csr = voms_user.get(f"/delegation/{fresh_delegation}/request").content
    signer = fts_pki.voms_proxy
    foreign = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Someone Else")])

    message = _put_error(
        voms_user,
        fresh_delegation,
        sign_request(csr, signer.certificate, signer.private_key, signer.chain, subject=foreign),
    )

    assert message.startswith(
        "Could not process the proxy: The subject and the issuer of the proxy do not match: "
        "CN=Someone Else != DC=org, DC=example, O=FTS Test, CN=Test User, CN="
    )


def test_credential_without_trailing_common_name_is_refused(
    fts_pki: FTSTestPKI, voms_user: Client, fresh_delegation: str
) -> None:
    csr = voms_user.get(f"/delegation/{fresh_delegation}/request").content
    signer = fts_pki.voms_proxy
    last = x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "x")])
    subject = x509.Name([*signer.certificate.subject.rdns, last])

    message = _put_error(
        voms_user,
        fresh_delegation,
        sign_request(csr, signer.certificate, signer.private_key, signer.chain, subject=subject),
    )

    assert message == "Could not process the proxy: Missing trailing Common Name in the proxy"


@pytest.mark.parametrize(
    ("remaining", "message"),
    [
        (None, f'No delegation found for "{USER_DN}"'),
        (timedelta(minutes=30), "The delegated credentials has less than one hour left (<id>)"),
        (timedelta(seconds=-90), "The delegated credentials expired 90 seconds ago (<id>)"),
    ],
    ids=["none", "expiring", "expired"],
)
def test_submission_needs_a_delegation_with_an_hour_left(
    fts_emulator: FTSEmulator,
    voms_user: Client,
    fresh_delegation: str,
    remaining: timedelta | None,
    message: str,
) -> None:
    if remaining is not None:
        fts_emulator.delegate(fresh_delegation, USER_DN)
        fts_emulator.expire_delegation(fresh_delegation, remaining)

    answer = voms_user.post("/jobs", json=JOB)

    assert answer.status_code == 419
    assert answer.json()["message"] == message.replace("<id>", fresh_delegation)


# --------------------------------------------------------------------------- HTTP layer


def test_requests_are_counted_per_route_template(
    fts_emulator: FTSEmulator, voms_user: Client
) -> None:
    voms_user.get("/whoami")
    voms_user.get("/jobs/one")
    voms_user.get("/jobs/two,three")
    voms_user.get("/no/such/route")

    assert fts_emulator.requests["GET /whoami"] == 1
    assert fts_emulator.requests["GET /jobs/{id}"] == 2
    assert fts_emulator.requests["GET /no/such/route"] == 1


def test_wrong_method_gets_405_with_allow_header(voms_user: Client) -> None:
    answer = voms_user.patch("/whoami")

    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_foreign_origin_is_refused_by_the_middleware(voms_user: Client) -> None:
    answer = voms_user.get("/whoami", headers={"Origin": "https://evil.example"})

    assert answer.status_code == 403
    assert "Host and Origin do not match" in answer.text


def test_concurrent_clients_on_keep_alive_connections(
    fts_emulator: FTSEmulator, fts_pki: FTSTestPKI
) -> None:
    def poll(_: int) -> list[int]:
        client = proxy_client(fts_emulator, fts_pki, fts_pki.voms_proxy_path)
        return [client.get("/whoami").status_code for _ in range(25)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [s for batch in pool.map(poll, range(8)) for s in batch]

    assert statuses == [200] * 200
    assert fts_emulator.requests["GET /whoami"] == 200
