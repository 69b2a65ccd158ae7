"""Emulator throughput: status requests per second, several client processes, zero errors.

The emulator runs in its own process; each client process keeps one TLS connection
alive (a ``requests.Session`` with the VOMS proxy) and sends a fixed number of requests
after all clients are connected. Three kinds of status request:

* ``GET /jobs/{id}``: one job;
* ``GET /jobs/{10 ids}``: ten jobs in one request;
* ``GET /jobs/{100 ids}?files=...``: what the trigger's shared poller sends each round.

Any answer but 200, or any exception, is an error. The request count is checked at the
emulator too. On a 2-core machine client and server share the cores: the numbers are a
lower bound for the server alone.

    .venv/bin/python benchmarks/bench_emulator.py [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import requests
from harness import EmulatorInfo, EmulatorProcess, make_client, print_table

from airflow_provider_fts.client.states import SUMMARY_FILE_FIELDS

JOBS = 100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--requests", type=int, default=1000, help="per client, single id")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 requests each")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.requests = [1, 2], 100
    return args


def request_kinds(job_ids: list[str], count: int) -> dict[str, tuple[str, dict, int]]:
    """name -> (path, query, requests per client); the heavy kinds send fewer."""
    files = {"files": ",".join(SUMMARY_FILE_FIELDS)}
    return {
        "GET /jobs/{id}": (f"/jobs/{job_ids[0]}", {}, count),
        "GET /jobs/{10 ids}": ("/jobs/" + ",".join(job_ids[:10]), {}, count // 2),
        "GET /jobs/{100 ids}?files": ("/jobs/" + ",".join(job_ids[:100]), files, count // 10),
    }


def client_process(info: EmulatorInfo, path: str, query: dict, count: int, start, results):
    with requests.Session() as session:
        session.trust_env = False  # else REQUESTS_CA_BUNDLE would replace verify
        session.cert = info.proxy
        session.verify = info.ca_dir
        url = info.url + path
        session.get(url, params=query).raise_for_status()  # connect before the clock starts
        start.wait()
        errors = 0
        began = time.perf_counter()
        for _ in range(count):
            try:
                errors += session.get(url, params=query).status_code != 200
            except requests.RequestException:
                errors += 1
        results.put((began, time.perf_counter(), errors))


def run(info: EmulatorInfo, path: str, query: dict, count: int, clients: int) -> dict:
    start = multiprocessing.Barrier(clients)
    results = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(
            target=client_process, args=(info, path, query, count, start, results)
        )
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join()
    elapsed = max(end for _, end, _ in outcomes) - min(began for began, _, _ in outcomes)
    return {"seconds": elapsed, "errors": sum(errors for _, _, errors in outcomes)}


def main() -> None:
    args = parse_args()
    rows = []
    with EmulatorProcess() as emulator:
        with make_client(emulator.info) as client:
            job_ids = [client.submit_job([("mock://src.example/f", "mock://dst.example/f")])]
            job_ids += [
                client.submit_job([(f"mock://src.example/f{n}", f"mock://dst.example/f{n}")])
                for n in range(JOBS - 1)
            ]
        for name, (path, query, count) in request_kinds(job_ids, args.requests).items():
            for clients in args.clients:
                emulator.reset()
                result = run(emulator.info, path, query, count, clients)
                served = emulator.counts()["requests"].get("GET /jobs/{id}", 0)
                sent = clients * (count + 1)  # + 1 warm-up request each
                rate = clients * count / result["seconds"]
                ids = path.count(",") + 1
                rows.append(
                    [
                        name,
                        clients,
                        clients * count,
                        f"{result['seconds']:.2f}",
                        f"{rate:.0f}",
                        f"{rate * ids:.0f}",
                        result["errors"],
                        "yes" if served == sent else f"no ({served} of {sent})",
                    ]
                )
    print("Keep-alive HTTPS, one connection per client process\n")
    headers = [
        "request",
        "clients",
        "requests",
        "wall s",
        "req/s",
        "jobs/s",
        "errors",
        "all served",
    ]
    print_table(headers, rows)


if __name__ == "__main__":
    main()
