"""Replay every exchange recorded from a real FTS server against the emulator.

For each case the test builds the state the recording had (delegation, jobs in the
recorded states, archived jobs, the caller's credential), sends the same request over
TLS with a client certificate, and checks the same status, the same headers, the same
JSON shape (keys and JSON types, recursively) and, for error answers, the same message
once ids and numbers are normalised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from airflow_provider_fts.client.certs import build_proxy
from airflow_provider_fts.testing.environment import FTSTestPKI
from airflow_provider_fts.testing.server import FTSEmulator
from tests.recorded import RECORDED

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PLAIN_VO = "099499e65703c243"  # the plain proxy's delegation id, its "virtual VO"
LISTED_JOBS = 4  # jobs re-created for a listing case: enough to show the shape

NO_CERT = {"170", "171", "172", "173"}
PLAIN_PROXY = {"004", "020", "174", "175", "177"}
HOST_CERT = {"164"}

NO_DELEGATION = {"008", "009", "010", "012", "040", "041"}
PENDING_REQUEST = {"015", "016", "017", "018"}
DELEGATION_LEFT = {"042": timedelta(minutes=30), "043": timedelta(seconds=-7201)}

# Job and file states just before the request, where the recording only shows the result.
STATE_BEFORE = {
    "127": ("ACTIVE", "ACTIVE"),  # cancel of a running transfer
    "132": ("CANCELED", "CANCELED"),  # read after every file was cancelled
}
PRESUBMIT = {"046": "045"}  # the duplicate sid needs the first submission

JOB_KEYS = ("job_state", "reason", "job_finished", "cancel_job")
FILE_KEYS = (
    "file_state",
    "reason",
    "finish_time",
    "start_time",
    "transfer_host",
    "pid",
    "filesize",
    "throughput",
    "tx_duration",
    "retry",
    "recoverable",
)


# --------------------------------------------------------------------------- the corpus


def _load_cases() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(RECORDED.glob("[0-9]*.json"))}


CASES = _load_cases()


def _json_body(body: Any) -> Any:
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


class Corpus:
    """What the recordings tell about each job: submitted document, records, file rows."""

    def __init__(self, cases: dict[str, dict]) -> None:
        self.documents: dict[str, Any] = {}
        self.records: dict[str, list[tuple[str, dict]]] = {}
        self.rows: dict[str, dict[int, dict]] = {}
        self.file_counts: dict[str, int] = {}
        self.archived: set[str] = set()
        for name, case in cases.items():
            request, response = case["request"], case["response"]
            body = response["body"]
            submitted = request["path"] in ("/jobs", "/jobs/") and response["status"] == 200
            if submitted and isinstance(body, dict) and "job_id" in body:
                self.documents[body["job_id"]] = _json_body(request["body"])
            if request["path"].startswith("/archive/") and response["status"] == 200:
                self.archived.add(request["path"].split("/")[2])
            self._walk(name[:3], body)

    def _walk(self, number: str, value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                self._walk(number, item)
        elif isinstance(value, dict):
            if "job_state" in value and "job_id" in value:
                self.records.setdefault(value["job_id"], []).append((number, value))
                files = value.get("files") or []
                count = self.file_counts.get(value["job_id"], 0)
                self.file_counts[value["job_id"]] = max(count, len(files))
                for row in files:
                    self._add_row(value["job_id"], row)
            elif "file_id" in value and "job_id" in value:
                self._add_row(value["job_id"], value)
            for item in value.values():
                if isinstance(item, dict | list):
                    self._walk(number, item)

    def _add_row(self, job_id: str, row: dict) -> None:
        if "file_id" in row:
            self.rows.setdefault(job_id, {}).setdefault(row["file_id"], {}).update(row)

    def knows(self, job_id: str) -> bool:
        return job_id in self.documents or job_id in self.records or job_id in self.rows

    def record(self, job_id: str, number: str) -> dict | None:
        """The record seen in this case, else the closest earlier one, else a later one."""
        seen = self.records.get(job_id, [])
        same = [r for n, r in seen if n == number]
        earlier = [r for n, r in seen if n < number]
        later = [r for n, r in seen if n > number]
        return (same or earlier[-1:] or later or [None])[0]

    def file_rows(self, job_id: str) -> list[dict]:
        rows = [self.rows[job_id][k] for k in sorted(self.rows.get(job_id, {}))]
        missing = self.file_counts.get(job_id, 0) - len(rows)
        return rows + [{} for _ in range(max(missing, 0))]


CORPUS = Corpus(CASES)


# --------------------------------------------------------------------------- setup


def _document_from_record(record: dict, rows: list[dict]) -> dict:
    """A submission that yields a job like ``record`` (for jobs submitted off the record)."""
    source_se = record.get("source_se") or "mock://src.example.org"
    dest_se = record.get("dest_se") or "mock://dst.example.org"
    by_index: dict[int, dict] = {}
    for position, row in enumerate(rows or [{}]):
        index = row.get("file_index", position)
        entry = by_index.setdefault(index, {"sources": [], "destinations": []})
        source = (row.get("source_surl") or f"{source_se}/replay/{position}").replace(
            "?activity=default", ""
        )
        destination = row.get("dest_surl") or f"{dest_se}/replay/{position}"
        if source not in entry["sources"]:
            entry["sources"].append(source)
        if destination not in entry["destinations"]:
            entry["destinations"].append(destination)
        for key, target in (("checksum", "checksum"), ("file_metadata", "metadata")):
            if row.get(key) is not None:
                entry[target] = row[key]
    params: dict[str, Any] = {"priority": record.get("priority", 3)}
    if record.get("job_type") == "H":
        params["multihop"] = True
    for key in ("bring_online", "copy_pin_lifetime", "archive_timeout"):
        if (record.get(key) or -1) > 0:
            params[key] = record[key]
    if record.get("max_time_in_queue") is not None:
        params["max_time_in_queue"] = 1
    if record.get("overwrite_flag") == "Y":
        params["overwrite"] = True
    if record.get("internal_job_params"):
        params["nostreams"] = 1
    metadata = {k: v for k, v in (record.get("job_metadata") or {}).items() if k != "auth_method"}
    if metadata:
        params["job_metadata"] = metadata
    return {"files": list(by_index.values()), "params": params}


class Replay:
    """One case's world: an emulator with the jobs and delegation the recording had."""

    def __init__(self, name: str, emulator: FTSEmulator, pki: FTSTestPKI) -> None:
        self.number = name[:3]
        self.case = CASES[name]
        self.emulator = emulator
        self.pki = pki
        self.ids: dict[str, str] = {}
        self.file_ids: dict[str, str] = {}
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify

    def client_cert(self, number: str | None = None) -> tuple[str, str] | None:
        number = number or self.number
        if number in NO_CERT:
            return None
        if number in HOST_CERT:
            path = self.pki.host_proxy_path
        elif number in PLAIN_PROXY:
            path = self.pki.plain_proxy_path
        else:
            path = self.pki.voms_proxy_path
        return str(path), str(path)

    def send(self, method: str, path: str, cert, **kwargs) -> requests.Response:
        return self.session.request(
            method, self.emulator.url + path, cert=cert, verify=str(self.pki.ca_dir), **kwargs
        )

    def whoami(self, cert) -> dict:
        return self.send("GET", "/whoami", cert).json()

    def prepare(self) -> None:
        voms, plain = self.whoami(self.client_cert("003")), self.whoami(self.client_cert("004"))
        for who in (voms, plain):
            self.emulator.delegate(who["delegation_id"], who["user_dn"], fqans=who["voms_cred"])
        if self.number in PRESUBMIT:
            document = CORPUS.documents[self._submitted_id(PRESUBMIT[self.number])]
            self.send("POST", "/jobs", self.client_cert(), json=document)
        for recorded_id in self._referenced_jobs():
            self._create_job(recorded_id)
        self._create_host_activity()
        self._prepare_delegation(voms if self.number not in PLAIN_PROXY else plain)

    def _submitted_id(self, number: str) -> str:
        case = next(c for n, c in CASES.items() if n.startswith(number))
        return case["response"]["body"]["job_id"]

    def _referenced_jobs(self) -> Iterator[str]:
        in_path = UUID.findall(self.case["request"]["path"])
        body = self.case["response"]["body"]
        listed: list[str] = []
        if isinstance(body, list) and not in_path:
            listed = list(dict.fromkeys(e["job_id"] for e in body if isinstance(e, dict)))
        for job_id in [*in_path, *listed[:LISTED_JOBS]]:
            if CORPUS.knows(job_id) and job_id not in self.ids:
                yield job_id

    def _create_job(self, recorded_id: str) -> None:
        record = CORPUS.record(recorded_id, self.number) or {}
        rows = CORPUS.file_rows(recorded_id)
        document = CORPUS.documents.get(recorded_id) or _document_from_record(record, rows)
        owner = "174" if record.get("vo_name") == PLAIN_VO else "003"
        reply = self.send("POST", "/jobs", self.client_cert(owner), json=document)
        assert reply.status_code == 200, f"setup submission failed: {reply.text}"
        job_id = reply.json()["job_id"]
        self.ids[recorded_id] = job_id
        if record:
            self._apply_state(job_id, self._state_before(recorded_id, record), rows)
        if recorded_id in CORPUS.archived:
            self.emulator.purge(job_id)

    def _state_before(self, recorded_id: str, record: dict) -> dict:
        """The recorded state, or SUBMITTED before a change the request itself made."""
        if self.number in STATE_BEFORE:
            job_state, file_state = STATE_BEFORE[self.number]
            return {"job_state": job_state, "file_state": file_state}
        changing = (
            self.case["request"]["method"] in ("DELETE", "POST")
            and "/jobs/" in (self.case["request"]["path"])
        )
        unchanged = record.get("http_status") == "304 Not Modified"
        if changing and not unchanged:
            return {"job_state": "SUBMITTED", "file_state": "SUBMITTED"}
        return {"record": record}

    def _apply_state(self, job_id: str, state: dict, rows: list[dict]) -> None:
        store = self.emulator.store
        with store.lock:
            job = next(j for j in store.stored_jobs() if j.job_id == job_id)
            if "record" in state:
                record = state["record"]
                job.record.update({k: record[k] for k in JOB_KEYS if k in record})
                # Files shown with the record are the state of that moment: applied last.
                for known in (rows, record.get("files") or []):
                    for stored, recorded in zip(job.files, known, strict=False):
                        stored.update({k: recorded[k] for k in FILE_KEYS if k in recorded})
            else:
                job.record["job_state"] = state["job_state"]
                for stored in job.files:
                    stored["file_state"] = state["file_state"]
                    if state["file_state"] == "ACTIVE":
                        stored.update(pid=4242, transfer_host="localhost")
            if job.record["job_state"] in ("FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"):
                job.finished_at = store.clock()
            for stored, recorded in zip(job.files, rows, strict=False):
                if "file_id" in recorded:
                    self.file_ids[str(recorded["file_id"])] = str(stored["file_id"])
                    self._copy_retries(job, stored, recorded["file_id"])

    def _copy_retries(self, job, stored: dict, recorded_file_id: int) -> None:
        """Replay the failed attempts this case's answer lists, through the store."""
        body = self.case["response"]["body"]
        if "retries" not in self.case["request"]["path"] or not isinstance(body, list):
            return
        for entry in body:
            if entry["file_id"] == recorded_file_id:
                attempt = {**stored, "log_file": entry["log_file"]}
                attempt["transfer_host"] = entry["transfer_host"]
                job.record_retry(attempt, entry["reason"], self.emulator.store.clock())

    def _create_host_activity(self) -> None:
        if self.number not in HOST_CERT:
            return
        document = {"files": [{"sources": ["mock://a.example/x"], "destinations": ["mock://b/y"]}]}
        job_id = self.send("POST", "/jobs", self.client_cert("003"), json=document).json()
        self._apply_state(job_id["job_id"], {"job_state": "ACTIVE", "file_state": "ACTIVE"}, [])

    def _prepare_delegation(self, who: dict) -> None:
        delegation_id = who["delegation_id"]
        if self.number in NO_DELEGATION or self.number in PENDING_REQUEST:
            self.emulator.delegations.delete(delegation_id)
        if self.number in PENDING_REQUEST:
            self.csr = self.send("GET", f"/delegation/{delegation_id}/request", self.client_cert())
        if self.number in DELEGATION_LEFT:
            self.emulator.expire_delegation(delegation_id, DELEGATION_LEFT[self.number])

    def request(self) -> requests.Response:
        request = self.case["request"]
        path = UUID.sub(lambda m: self.ids.get(m.group(0), m.group(0)), request["path"])
        path = re.sub(r"(?<=/files/)[\d,]+", lambda m: _map_ids(m.group(0), self.file_ids), path)
        body = request["body"]
        if self.number == "018":
            body = self._signed_proxy()
        if isinstance(body, dict | list):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else None
        headers = dict(request["headers"])
        return self.send(request["method"], path, self.client_cert(), data=data, headers=headers)

    def _signed_proxy(self) -> str:
        """What the official client PUTs: the CSR's key signed by the user's proxy."""
        csr = x509.load_pem_x509_csr(self.csr.content)
        signer = self.pki.voms_proxy
        now = datetime.now(UTC)
        proxy = build_proxy(
            signer.certificate,
            signer.private_key,
            csr.public_key(),
            not_before=now - timedelta(minutes=5),
            not_after=now + timedelta(hours=12),
        )
        chain = [proxy, *signer.chain]
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain).decode()


def _map_ids(text: str, mapping: dict[str, str]) -> str:
    return ",".join(mapping.get(part, part) for part in text.split(","))


# --------------------------------------------------------------------------- comparison


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def shape_problems(recorded: Any, actual: Any, where: str = "body") -> list[str]:
    """Differences in keys and JSON types; lists of another length match element-wise
    against any recorded element (listings hold other jobs than the recording)."""
    if json_type(recorded) != json_type(actual):
        return [f"{where}: {json_type(actual)} instead of {json_type(recorded)}"]
    if isinstance(recorded, dict):
        if set(recorded) != set(actual):
            missing, extra = set(recorded) - set(actual), set(actual) - set(recorded)
            return [f"{where}: missing keys {sorted(missing)}, extra keys {sorted(extra)}"]
        return [
            problem
            for key in recorded
            for problem in shape_problems(recorded[key], actual[key], f"{where}.{key}")
        ]
    if isinstance(recorded, list):
        if bool(recorded) != bool(actual):
            return [f"{where}: {len(actual)} entries instead of {len(recorded)}"]
        if len(recorded) == len(actual):
            pairs = zip(recorded, actual, strict=True)
            return [
                problem
                for i, (r, a) in enumerate(pairs)
                for problem in shape_problems(r, a, f"{where}[{i}]")
            ]
        return [
            f"{where}[{i}]: matches no recorded entry"
            for i, item in enumerate(actual)
            if all(shape_problems(r, item) for r in recorded)
        ]
    return []


def normalised(text: str) -> str:
    return re.sub(r"\d+", "<n>", UUID.sub("<id>", text))


def messages(body: Any) -> list[str]:
    """Error texts of a body: generic ``message``, per-job ``http_message`` entries."""
    entries = body if isinstance(body, list) else [body]
    return [
        normalised(str(entry.get(key)))
        for entry in entries
        if isinstance(entry, dict)
        for key in ("message", "http_message")
        if entry.get(key) is not None and "job_state" not in entry
    ]


# --------------------------------------------------------------------------- the test


@pytest.fixture
def replay_emulator(fts_pki: FTSTestPKI) -> Iterator[FTSEmulator]:
    """A fresh emulator without the engine: jobs keep exactly the states set up."""
    emulator = FTSEmulator(
        ca=fts_pki.ca, host_credential=fts_pki.host, ca_dir=fts_pki.ca_dir, run_engine=False
    )
    with emulator:
        yield emulator


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_exchange_is_reproduced(
    name: str, replay_emulator: FTSEmulator, fts_pki: FTSTestPKI
) -> None:
    # Given the state the real server was in
    replay = Replay(name, replay_emulator, fts_pki)
    replay.prepare()
    expected = CASES[name]["response"]

    # When the recorded request is sent
    answer = replay.request()

    # Then status, headers, shape and error texts are those of the real server
    assert answer.status_code == expected["status"], answer.text[:500]
    _assert_same_headers(expected["headers"], answer.headers)
    body = expected["body"]
    content_type = expected["headers"].get("content-type", "")
    if content_type == "application/json":
        actual = answer.json()
        assert shape_problems(body, actual) == []
        assert messages(actual) == messages(body)
        if isinstance(body, str):
            assert actual == body
    else:
        assert answer.text.partition("\n")[0] == body.partition("\n")[0]


def _assert_same_headers(recorded: dict[str, str], actual) -> None:
    for name, value in recorded.items():
        assert name in actual, f"missing header {name}"
        if name == "allow":
            assert set(actual[name].split(", ")) == set(value.split(", "))
        else:
            assert actual[name] == value, name
    if "content-type" not in recorded:
        assert "content-type" not in actual
