"""The same status calls and submits through three clients against one emulator.

* ours: ``FTSClient`` (one pooled TLS connection, whoami and delegation cached);
* official: the ``fts3`` PyPI client (``benchmarks/.venv-fts3``, see setup_fts3_venv.sh),
  driven in its own process by official_worker.py;
* floor: a bare ``requests.Session`` sending the same HTTP as ours, nothing else.

Runs are interleaved (the order rotates every round) so that a noisy machine slows all
three alike; the table gives medians over rounds and ratios to the floor. Requests and
TLS handshakes (connections accepted) are counted at the emulator for each run.
Each round starts with a fresh FTSClient and a fresh Session, so their first connection
and first whoami/delegation check are part of the time.

    .venv/bin/python benchmarks/bench_client.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import requests
from harness import (
    OFFICIAL_PYTHON,
    EmulatorInfo,
    EmulatorProcess,
    OfficialClient,
    make_client,
    print_table,
)

from airflow_provider_fts.client.states import SUMMARY_FILE_FIELDS

SOURCE = "mock://src.example/bench"
DESTINATION = "mock://dst.example/bench"
OPERATIONS = ("status", "status_files", "submit")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="status calls per run")
    parser.add_argument("--submits", type=int, default=20, help="submits per run")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each client (median)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 calls, 5 submits")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.submits, args.rounds = 20, 5, 1
    return args


class Ours:
    name = "ours (FTSClient)"

    def __init__(self, info: EmulatorInfo) -> None:
        self.info = info

    def run(self, operation: str, job_id: str, count: int) -> float:
        with make_client(self.info) as client:
            started = time.perf_counter()
            for _ in range(count):
                if operation == "submit":
                    client.submit_job([(SOURCE, DESTINATION)])
                else:
                    client.get_job(job_id, files=operation == "status_files")
            return time.perf_counter() - started


class Floor:
    name = "floor (requests.Session)"

    def __init__(self, info: EmulatorInfo) -> None:
        self.info = info

    def run(self, operation: str, job_id: str, count: int) -> float:
        with requests.Session() as session:
            session.trust_env = False  # else REQUESTS_CA_BUNDLE would replace verify
            session.cert = self.info.proxy
            session.verify = self.info.ca_dir
            jobs = f"{self.info.url}/jobs"
            files = {"files": ",".join(SUMMARY_FILE_FIELDS)}
            started = time.perf_counter()
            for _ in range(count):
                if operation == "submit":
                    document = {
                        "files": [{"sources": [SOURCE], "destinations": [DESTINATION]}],
                        "params": {"id_generator": "deterministic", "sid": uuid.uuid4().hex},
                    }
                    session.post(jobs, json=document).raise_for_status()
                elif operation == "status_files":
                    session.get(f"{jobs}/{job_id}", params=files).json()
                else:
                    session.get(f"{jobs}/{job_id}").json()
            return time.perf_counter() - started


class Official:
    def __init__(self, worker: OfficialClient) -> None:
        self.worker = worker
        self.name = f"official (fts3 {worker.version})"

    def run(self, operation: str, job_id: str, count: int) -> float:
        if operation == "submit":
            return self.worker.run(f"submit {SOURCE} {DESTINATION} {count}")
        return self.worker.run(f"{operation} {job_id} {count}")


def measure(emulator: EmulatorProcess, client, operation: str, job_id: str, count: int):
    """(seconds, the emulator's counts) for one run of one client."""
    emulator.reset()
    seconds = client.run(operation, job_id, count)
    return seconds, emulator.counts()


def main() -> None:
    args = parse_args()
    with EmulatorProcess() as emulator:
        info = emulator.info
        with make_client(info) as client:
            job_id = client.submit_job([(SOURCE, DESTINATION)])
        clients: list = [Ours(info), Floor(info)]
        official = OfficialClient(info) if OFFICIAL_PYTHON.exists() else None
        if official is None:
            print("official client missing: run benchmarks/setup_fts3_venv.sh first\n")
        else:
            clients.insert(1, Official(official))
        try:
            results = run_rounds(emulator, clients, job_id, args)
        finally:
            if official is not None:
                official.close()
    report(results, [c.name for c in clients], args)


def run_rounds(emulator: EmulatorProcess, clients: list, job_id: str, args) -> dict:
    """{(client name, operation): [(seconds, counts) per round]}; the order rotates."""
    results: dict[tuple[str, str], list[tuple[float, dict]]] = {}
    for round_number in range(args.rounds):
        shift = round_number % len(clients)
        order = clients[shift:] + clients[:shift]
        for operation in OPERATIONS:
            count = args.submits if operation == "submit" else args.calls
            for each in order:
                result = measure(emulator, each, operation, job_id, count)
                results.setdefault((each.name, operation), []).append(result)
    return results


def report(results: dict, names: list[str], args: argparse.Namespace) -> None:
    floor = names[-1]
    print(f"{args.calls} status calls / {args.submits} submits, median of {args.rounds} rounds\n")
    rows = []
    for operation in OPERATIONS:
        count = args.submits if operation == "submit" else args.calls
        floor_time = statistics.median(s for s, _ in results[(floor, operation)])
        for name in names:
            runs = results[(name, operation)]
            seconds = statistics.median(s for s, _ in runs)
            counts = runs[-1][1]
            requests_by_route = ", ".join(
                f"{route} x{n}" for route, n in sorted(counts["requests"].items())
            )
            rows.append(
                [
                    f"{count} {operation}",
                    name,
                    f"{seconds:.3f}",
                    f"{seconds / count * 1000:.2f}",
                    f"{seconds / floor_time:.2f}",
                    sum(counts["requests"].values()),
                    counts["connections"],
                    requests_by_route,
                ]
            )
    headers = ["calls", "client", "wall s", "ms/call", "x floor", "requests", "TLS", "routes"]
    print_table(headers, rows)


if __name__ == "__main__":
    main()
