"""Requests per poll round for 10, 100 and 1,000 deferred waits.

Each wait is an ``FTSJobTrigger.run()`` for its own long-running job, all on one event
loop as in a triggerer; they share one ``JobPoller``, which asks for up to 100 jobs per
``GET /jobs/a,b,...``. Counted at the emulator over a few rounds, after every trigger
joined the poller. A trigger polling on its own would cost one request per job per round.

    .venv/bin/python benchmarks/bench_poll_rounds.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import math

from harness import (
    EmulatorProcess,
    print_table,
    start_waits,
    stop_waits,
    submit_long_jobs,
    use_private_airflow,
    wait_for_round,
)

POLL_INTERVAL = 1.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waits", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=3, help="poll rounds counted per size")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 and 150 waits")
    args = parser.parse_args()
    if args.quick:
        args.waits, args.rounds = [10, 150], 2
    return args


async def requests_per_round(emulator: EmulatorProcess, job_ids: list[str], rounds: int) -> dict:
    """Requests per route the emulator saw during ``rounds`` complete poll rounds."""
    tasks, poller = await start_waits(job_ids, POLL_INTERVAL)
    await wait_for_round(poller, poller.rounds)  # from a round's end, when the loop sleeps
    first = poller.rounds
    emulator.reset()
    await wait_for_round(poller, first + rounds - 1)
    counts = emulator.counts()
    await stop_waits(tasks)
    return counts["requests"]


def main() -> None:
    args = parse_args()
    with EmulatorProcess() as emulator:
        use_private_airflow(emulator.info.connection)
        job_ids = submit_long_jobs(emulator, max(args.waits))
        rows = []
        for waits in args.waits:
            routes = asyncio.run(requests_per_round(emulator, job_ids[:waits], args.rounds))
            polls = routes.get("GET /jobs/{id}", 0)
            other = sum(routes.values()) - polls
            per_round = polls / args.rounds
            rows.append(
                [
                    waits,
                    args.rounds,
                    f"{per_round:g}",
                    math.ceil(waits / 100),
                    waits,
                    f"{waits / per_round:g}",
                    other,
                ]
            )
    print(f"FTSJobTrigger waits on one event loop, poll interval {POLL_INTERVAL:g}s\n")
    headers = [
        "waits",
        "rounds",
        "GET /jobs/{ids} per round",
        "expected (ceil n/100)",
        "one request per wait",
        "saving",
        "other requests",
    ]
    print_table(headers, rows)


if __name__ == "__main__":
    main()
