"""Delegations for 1,000 submits with one credential (goal: 1), counted at the emulator.

Every scenario starts with no delegation on the server and submits the same number of
single-file jobs with the same proxy:

* one FTSClient for all submits;
* 10 FTSClients one after the other, in one process;
* 10 FTSClients at once, one thread each (tasks of one worker process racing);
* a new FTSHook (so a new FTSClient) per submit: what the operator does, one task each;
* the official ``fts3`` client, one Context for all submits (if its venv exists).

A delegation is ``PUT /delegation/{id}/credential``; the checks that decide whether one
is needed are ``GET /delegation/{id}`` (and ``GET /whoami`` for the delegation id).

    .venv/bin/python benchmarks/bench_delegations.py [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from harness import (
    OFFICIAL_PYTHON,
    EmulatorProcess,
    OfficialClient,
    make_client,
    print_table,
    use_private_airflow,
)

from airflow_provider_fts.client.delegation_cache import SHARED_DELEGATIONS
from airflow_provider_fts.client.errors import FTSError

SOURCE = "mock://src.example/f"
DESTINATION = "mock://dst.example/f"
CLIENTS = 10
ROUTES = {
    "PUT /delegation/{dlg_id}/credential": "delegations (PUT)",
    "GET /delegation/{dlg_id}/request": "CSRs",
    "GET /delegation/{dlg_id}": "delegation checks",
    "GET /whoami": "whoami",
    "POST /jobs": "POST /jobs",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submits", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 submits")
    args = parser.parse_args()
    if args.quick:
        args.submits = 100
    return args


def submit_once(submit: Callable[[list], str], failures: list[str]) -> None:
    """Submit one job; a refused submit is recorded, not raised (the table counts them)."""
    try:
        submit([(SOURCE, DESTINATION)])
    except FTSError as error:
        failures.append(str(error))


def one_client(emulator: EmulatorProcess, submits: int, failures: list[str]) -> None:
    with make_client(emulator.info) as client:
        for _ in range(submits):
            submit_once(client.submit, failures)


def clients_in_turn(emulator: EmulatorProcess, submits: int, failures: list[str]) -> None:
    for _ in range(CLIENTS):
        one_client(emulator, submits // CLIENTS, failures)


def clients_at_once(emulator: EmulatorProcess, submits: int, failures: list[str]) -> None:
    with ThreadPoolExecutor(CLIENTS) as pool:
        for _ in range(CLIENTS):
            pool.submit(one_client, emulator, submits // CLIENTS, failures)


def hook_per_task(emulator: EmulatorProcess, submits: int, failures: list[str]) -> None:
    from airflow_provider_fts.hooks.fts import FTSHook

    for _ in range(submits):
        hook = FTSHook()
        submit_once(hook.submit_job, failures)
        hook.get_conn().close()


def official(emulator: EmulatorProcess, submits: int, failures: list[str]) -> None:
    worker = OfficialClient(emulator.info)
    try:
        worker.run(f"submit {SOURCE} {DESTINATION} {submits}")
    finally:
        worker.close()


def forget_delegation(emulator: EmulatorProcess) -> None:
    """Remove the server's delegation, so the next scenario starts from none, and what
    this process remembers of it, so the scenario plays a fresh worker process."""
    SHARED_DELEGATIONS.clear()
    with make_client(emulator.info) as client:
        if client.get_delegation() is not None:
            client.transport.request("DELETE", f"/delegation/{client.delegation_id}")
        assert client.get_delegation() is None


def main() -> None:
    args = parse_args()
    scenarios: dict[str, Callable[[EmulatorProcess, int, list[str]], None]] = {
        "one FTSClient": one_client,
        f"{CLIENTS} FTSClients in turn": clients_in_turn,
        f"{CLIENTS} FTSClients at once (threads)": clients_at_once,
        "new FTSHook per submit (per task)": hook_per_task,
    }
    if OFFICIAL_PYTHON.exists():
        scenarios["official fts3, one Context"] = official
    rows = []
    with EmulatorProcess() as emulator:
        use_private_airflow(emulator.info.connection)
        for name, scenario in scenarios.items():
            forget_delegation(emulator)
            emulator.reset()
            failures: list[str] = []
            started = time.perf_counter()
            scenario(emulator, args.submits, failures)
            elapsed = time.perf_counter() - started
            counts = emulator.counts()
            routes = counts["requests"]
            per_submit = sum(routes.values()) / args.submits
            rows.append(
                [
                    name,
                    *(routes.get(route, 0) for route in ROUTES),
                    len(failures),
                    f"{per_submit:.2f}",
                    counts["connections"],
                    f"{elapsed:.1f}",
                ]
            )
            for reason, times in Counter(failures).items():
                print(f"{name}: {times} submits failed: {reason}")
    print(f"{args.submits} submits of one file each, one proxy, no delegation at the start\n")
    headers = ["scenario", *ROUTES.values(), "failed", "requests/submit", "TLS", "wall s"]
    print_table(headers, rows)


if __name__ == "__main__":
    main()
