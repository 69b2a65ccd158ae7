"""A poll round while every job of a bulk move runs: the baseline's trigger and this one's.

``--jobs`` jobs of 200 mock files, each transfer an hour long, are submitted to the
emulator (its own process). Then the trigger (``FTSJobTrigger``, as the triggerer runs it)
waits for all of them for ``--seconds``, with each code in a process of its own (the
baseline: a git ref unpacked, first on ``PYTHONPATH``), and is cancelled. The emulator's
request log gives each round's requests, bytes and file records (rounds split by pauses of
half the poll interval). No job ends meanwhile: every round is a steady one.

    .venv/bin/python benchmarks/bench_steady_round.py [--jobs 5000] [--seconds 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_bulk import BASELINE, Code, kib, poll_rounds
from harness import EmulatorProcess, make_client, print_table, use_private_airflow

FILES_PER_JOB = 200


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=100.0, help="how long each code waits")
    parser.add_argument("--poll", type=float, default=30.0)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def wait_a_while(spec: dict) -> dict:
    """The trigger's wait for ``seconds``, then cancelled (the triggerer's part)."""
    use_private_airflow(spec["connection"])
    from airflow_provider_fts.triggers.fts import FTSJobTrigger

    trigger = FTSJobTrigger(job_ids=spec["job_ids"], poll_interval=spec["poll"])

    async def first_event() -> None:
        async for _ in trigger.run():
            raise RuntimeError("a job ended: the round was not a steady one")

    with contextlib.suppress(TimeoutError):
        asyncio.run(asyncio.wait_for(first_event(), spec["seconds"]))
    return {}


def submit(emulator: EmulatorProcess, jobs: int) -> list[str]:
    def one(n: int) -> str:
        return client.submit_job(
            [
                (
                    f"mock://src.example/steady/{n}/f{i}",
                    f"mock://dst.example/steady/{n}/f{i}?time=3600",
                )
                for i in range(FILES_PER_JOB)
            ]
        )

    with make_client(emulator.info) as client, ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(jobs)))


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(wait_a_while(json.loads(sys.stdin.read()))))
        return
    os.environ["FTS_BENCH_ENGINE_CONCURRENCY"] = str(args.jobs * FILES_PER_JOB)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="fts-bench-round-") as directory,
        EmulatorProcess() as emulator,
    ):
        codes = [
            Code.at_ref(args.baseline, Path(directory)),
            Code("this checkout", Path(__file__).resolve().parents[1]),
        ]
        started = time.time()
        job_ids = submit(emulator, args.jobs)
        print(
            f"{args.jobs:,} jobs of {FILES_PER_JOB} files submitted "
            f"in {time.time() - started:.0f} s"
        )
        spec = {
            "job_ids": job_ids,
            "poll": args.poll,
            "seconds": args.seconds,
            "connection": emulator.info.connection,
        }
        for code in codes:
            emulator.reset()
            env = {**os.environ, "PYTHONPATH": str(code.root)}
            subprocess.run(
                [sys.executable, __file__, "--child"],
                input=json.dumps(spec),
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            rounds = poll_rounds(emulator.log(), 0, args.poll / 2)
            rows.append(
                [
                    code.name,
                    len(rounds),
                    f"{statistics.median(r['requests'] for r in rounds):.0f}",
                    kib(statistics.median(r["bytes"] for r in rounds)),
                    f"{statistics.median(r['files'] for r in rounds):,.0f}",
                ]
            )
    print(
        f"\nA poll round of {args.jobs:,} running jobs ({args.jobs * FILES_PER_JOB:,} files), "
        f"poll every {args.poll:g} s\n"
    )
    print_table(
        [
            "code",
            "rounds",
            "requests per round (median)",
            "KiB per round (median)",
            "file records per round (median)",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
