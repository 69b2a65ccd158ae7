"""Each fault switch of the emulator does what it says, seen from a real client."""

from __future__ import annotations

import time

import pytest
import requests

from airflow_provider_fts.testing.environment import USER_DN, FTSTestPKI
from airflow_provider_fts.testing.server import FTSEmulator

JOB = {"files": [{"sources": ["mock://a.example/f"], "destinations": ["mock://b.example/f"]}]}


@pytest.fixture
def session(fts_pki: FTSTestPKI) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the CA directory
    session.verify = str(fts_pki.ca_dir)
    session.cert = (str(fts_pki.voms_proxy_path), str(fts_pki.voms_proxy_path))
    return session


@pytest.fixture
def delegated(fts_emulator: FTSEmulator, session: requests.Session) -> None:
    delegation_id = session.get(fts_emulator.url + "/whoami").json()["delegation_id"]
    fts_emulator.delegate(delegation_id, USER_DN)


def test_html_503_answers_the_given_number_of_requests(
    fts_emulator: FTSEmulator, session: requests.Session
) -> None:
    fts_emulator.faults.html_503(count=2)

    statuses = [session.get(fts_emulator.url + "/whoami") for _ in range(3)]

    assert [a.status_code for a in statuses] == [503, 503, 200]
    assert statuses[0].headers["Content-Type"].startswith("text/html")
    assert "Service Unavailable" in statuses[0].text


def test_html_503_only_hits_its_route(fts_emulator: FTSEmulator, session: requests.Session) -> None:
    fts_emulator.faults.html_503(count=None, route="GET /jobs/{id}")

    assert session.get(fts_emulator.url + "/whoami").status_code == 200
    assert session.get(fts_emulator.url + "/jobs/some-id").status_code == 503


def test_fault_predicate_selects_requests(
    fts_emulator: FTSEmulator, session: requests.Session
) -> None:
    fts_emulator.faults.html_503(count=None, when=lambda request: "x-fail" in request.headers)

    assert session.get(fts_emulator.url + "/whoami").status_code == 200
    assert session.get(fts_emulator.url + "/whoami", headers={"x-fail": "1"}).status_code == 503


def test_reset_connection_gives_no_answer(
    fts_emulator: FTSEmulator, session: requests.Session
) -> None:
    fault = fts_emulator.faults.reset_connection(count=1, route="/whoami")

    with pytest.raises(requests.ConnectionError):
        session.get(fts_emulator.url + "/whoami")

    assert session.get(fts_emulator.url + "/whoami").status_code == 200
    assert fault.hits == 1


def test_slow_delays_the_answer_past_a_client_timeout(
    fts_emulator: FTSEmulator, session: requests.Session
) -> None:
    fts_emulator.faults.slow(0.5, count=1)

    with pytest.raises(requests.Timeout):
        session.get(fts_emulator.url + "/whoami", timeout=0.2)
    started = time.monotonic()
    session.get(fts_emulator.url + "/whoami", timeout=5)

    assert time.monotonic() - started < 0.4


def test_ambiguous_submit_stores_the_job_but_never_answers(
    fts_emulator: FTSEmulator, session: requests.Session, delegated: None
) -> None:
    fts_emulator.faults.ambiguous_submit(count=1)
    deterministic = {**JOB, "params": {"id_generator": "deterministic", "sid": "ambiguous-1"}}
    before = fts_emulator.store.job_count()

    with pytest.raises(requests.ConnectionError):
        session.post(fts_emulator.url + "/jobs", json=deterministic)
    again = session.post(fts_emulator.url + "/jobs", json=deterministic)

    assert fts_emulator.store.job_count() == before + 1
    assert again.status_code == 409


def test_malformed_json_cuts_the_body(fts_emulator: FTSEmulator, session: requests.Session) -> None:
    fts_emulator.faults.malformed_json(count=1, route="GET /whoami")

    broken = session.get(fts_emulator.url + "/whoami")

    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    assert session.get(fts_emulator.url + "/whoami").json()["user_dn"] == USER_DN


def test_clear_disarms_every_fault(fts_emulator: FTSEmulator, session: requests.Session) -> None:
    fts_emulator.faults.html_503(count=None)
    fts_emulator.faults.reset_connection(count=None)

    fts_emulator.faults.clear()

    assert session.get(fts_emulator.url + "/whoami").status_code == 200


def test_post_delay_holds_every_post_and_nothing_else(
    fts_emulator: FTSEmulator, session: requests.Session, delegated: None
) -> None:
    fault = fts_emulator.faults.post_delay(0.05)

    session.get(fts_emulator.url + "/whoami")
    started = time.monotonic()
    answers = [session.post(fts_emulator.url + "/jobs", json=JOB) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 200]
    assert fault.hits == 2 and fault.remaining is None
    assert time.monotonic() - started >= 0.1


def test_answer_bytes_are_counted_per_route(
    fts_emulator: FTSEmulator, session: requests.Session
) -> None:
    # Routes no other test asks for: an answer of an earlier test may still be counted late.
    answers = [session.get(fts_emulator.url + "/api-docs/schema/submit") for _ in range(2)]
    missing = session.get(fts_emulator.url + "/jobs/no-such-job/dm")

    sent = fts_emulator.bytes_sent
    assert sent["GET /api-docs/schema/submit"] == sum(len(a.content) for a in answers) > 0
    assert sent["GET /jobs/{id}/dm"] == len(missing.content) > 0
