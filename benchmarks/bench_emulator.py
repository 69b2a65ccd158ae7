"""Emulator throughput: status requests per second, several client processes, zero errors.

The emulator runs in its own process; each client process keeps one TLS connection
alive (a ``requests.Session`` with the VOMS proxy) and sends a fixed number of requests
after all clients are connected. Three kinds of status request:

* ``GET /jobs/{id}``: one job;
* ``GET /jobs/{10 ids}``: ten jobs in one request;
* ``GET /jobs/{100 ids}?files=...``: what the trigger's shared poller sends each round.

A second table shows what holding many files costs the emulator (``--files``): in a fresh
process each, the job store takes jobs of 200 mock files (as ``POST /jobs`` hands them
over, without HTTP), then the engine runs with 2,000 transfers at a time: the resident
memory per stored file, one scheduler pass while transfers run (nothing due) and one
``GET /jobs/{100 ids}?files`` answer, built and encoded as the service does.

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
    parser.add_argument("--files", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 requests each")
    parser.add_argument("--hold", type=int, help=argparse.SUPPRESS)  # the child of --files
    args = parser.parse_args()
    if args.quick:
        args.clients, args.requests, args.files = [1, 2], 100, [10_000]
    return args


def hold_files(count: int) -> dict:
    """What ``count`` stored files cost the emulator (run in a fresh process)."""
    import json

    from airflow_provider_fts.testing.engine import Engine
    from airflow_provider_fts.testing.identity import Identity
    from airflow_provider_fts.testing.store import JobStore

    dn = "/DC=org/CN=Bench"
    user = Identity(dn, [dn], ["/dteam/Role=NULL"], ["dteam"], "0123456789abcdef", "certificate")
    store = JobStore()
    engine = Engine(store, concurrency=2_000)
    before = rss_bytes()
    began = time.perf_counter()
    job_ids = []
    for job in range(count // 200):
        files = [
            {"sources": [f"mock://src.example/d/{job}/f{n}"],
             "destinations": [f"mock://dst.example/d/{job}/f{n}?time=3600"]}
            for n in range(200)
        ]  # fmt: skip
        job_ids.append(store.submit({"files": files, "params": {}}, user))
    submitted = time.perf_counter() - began
    engine.step()  # the first 2,000 transfers start
    began = time.perf_counter()
    engine.step()
    steady = time.perf_counter() - began
    began = time.perf_counter()
    _, body = store.get_jobs(job_ids[:100], user, list(SUMMARY_FILE_FIELDS), multi=True)
    answer = json.dumps(body).encode()
    answered = time.perf_counter() - began
    return {"submit": submitted, "rss": rss_bytes() - before, "pass": steady,
            "answer": answered, "answer_bytes": len(answer)}  # fmt: skip


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


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


def holding_rows(sizes: list[int]) -> list[list]:
    import json
    import subprocess
    import sys

    rows = []
    for count in sizes:
        command = [sys.executable, __file__, "--hold", str(count)]
        output = subprocess.run(command, check=True, capture_output=True, text=True)
        held = json.loads(output.stdout.splitlines()[-1])
        rows.append(
            [
                f"{count:,}",
                f"{held['submit']:.1f}",
                f"{held['rss'] / 2**20:,.0f}",
                f"{held['rss'] / count:,.0f}",
                f"{held['pass'] * 1000:.1f}",
                f"{held['answer'] * 1000:.0f}",
                f"{held['answer_bytes'] / 2**20:.1f}",
            ]
        )
    return rows


def main() -> None:
    args = parse_args()
    if args.hold:
        import json

        print(json.dumps(hold_files(args.hold)))
        return
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
    print("\nHolding many files: jobs of 200 mock files, 2,000 transfers running\n")
    headers = ["files", "store s", "RSS MiB", "bytes/file", "scheduler pass ms",
               "GET 100 jobs?files ms", "answer MiB"]  # fmt: skip
    print_table(headers, holding_rows(args.files))


if __name__ == "__main__":
    main()
