"""Triggerer memory per waiting job: N ``FTSJobTrigger.run()`` coroutines on one loop.

Each trigger waits for its own long-running single-file job. Each size runs in a fresh
process: after a warm-up trigger (imports, TLS context, HTTP client) the process starts
N triggers, waits until all joined the shared poller and two poll rounds stored their
job records, and measures the growth. Two separate runs per size: resident set size
(``VmRSS``, no tracing) and ``tracemalloc`` (Python allocations only; its own bookkeeping
would inflate the RSS, hence not both at once). Airflow's triggerer adds its own
per-trigger bookkeeping on top, which is not measured here.

    .venv/bin/python benchmarks/bench_triggerer_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

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
    parser.add_argument("--waits", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 and 500 waits")
    parser.add_argument("--child", choices=["rss", "tracemalloc"], help=argparse.SUPPRESS)
    parser.add_argument("--ids", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.waits = [100, 500]
    return args


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def run_triggers(job_ids: list[str]) -> list[asyncio.Task]:
    """Start one trigger per job; return once all joined the poller and 2 rounds ran."""
    tasks, poller = await start_waits(job_ids, POLL_INTERVAL)
    await wait_for_round(poller, poller.rounds + 1)
    return tasks


async def measure(job_ids: list[str], mode: str) -> int:
    """Bytes the process grew by while waiting for all but the first (warm-up) job."""
    warm_up = await run_triggers(job_ids[:1])
    await stop_waits(warm_up)
    gc.collect()
    if mode == "tracemalloc":
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if mode == "tracemalloc" else rss_bytes()
    tasks = await run_triggers(job_ids[1:])
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if mode == "tracemalloc" else rss_bytes()
    await stop_waits(tasks)
    return after - before


def child(mode: str, ids: Path) -> None:
    job_ids = json.loads(ids.read_text())
    print(asyncio.run(measure(job_ids, mode)))


def main() -> None:
    args = parse_args()
    if args.child:
        child(args.child, args.ids)
        return
    rows = []
    with EmulatorProcess() as emulator, tempfile.TemporaryDirectory() as directory:
        use_private_airflow(emulator.info.connection)
        job_ids = submit_long_jobs(emulator, max(args.waits) + 1)
        for waits in args.waits:
            ids = Path(directory) / f"ids-{waits}.json"
            ids.write_text(json.dumps(job_ids[: waits + 1]))  # + 1 for the warm-up trigger
            growth = {}
            for mode in ("rss", "tracemalloc"):
                command = [sys.executable, __file__, "--child", mode, "--ids", str(ids)]
                output = subprocess.run(command, check=True, capture_output=True, text=True)
                growth[mode] = int(output.stdout.splitlines()[-1])
            rows.append(
                [
                    f"{waits:,}",
                    f"{growth['rss'] / 2**20:.1f}",
                    f"{growth['rss'] / waits / 1024:.1f}",
                    f"{growth['tracemalloc'] / 2**20:.1f}",
                    f"{growth['tracemalloc'] / waits / 1024:.1f}",
                ]
            )
    print("FTSJobTrigger.run() coroutines on one event loop, one single-file job each\n")
    headers = ["waits", "RSS growth MiB", "RSS KiB/wait", "tracemalloc MiB", "tracemalloc KiB/wait"]
    print_table(headers, rows)


if __name__ == "__main__":
    main()
