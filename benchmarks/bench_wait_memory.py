"""What a wait holds and asks: today's poll round (every file of every job) against the
round that asks what changes, at 10^4 and 10^5 files in jobs of 200.

The jobs run for an hour (``mock://...?time=3600``), then are canceled so that every file
ends failed (the costliest end: every job's failures read once). Measured in this process
with ``tracemalloc`` (peak Python memory of one round / of the whole wait), requests per
route counted at the emulator (its own process).

    .venv/bin/python benchmarks/bench_wait_memory.py [--files 10000 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

from harness import EmulatorProcess, make_client, print_table

PER_JOB = 200


def submit(client, files: int) -> list[str]:
    def job(n: int) -> str:
        return client.submit_job(
            [
                (f"mock://src.example/{n}/{i}", f"mock://dst.example/{n}/{i}?time=3600")
                for i in range(PER_JOB)
            ]
        )

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(job, range(files // PER_JOB)))


def measured(what, *args):
    """(result, peak MiB of Python memory while it ran, seconds)."""
    tracemalloc.start()
    started = time.perf_counter()
    result = what(*args)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, round(peak, 1), round(seconds, 2)


def today_round(client, job_ids):
    from airflow_provider_fts.client.states import summarize_jobs

    return summarize_jobs(client.get_jobs_or_archived(job_ids, files=True))


def new_round(client, tally):
    client.poll(tally)
    return tally.summary()


async def trigger_wait(emulator, job_ids):
    from airflow_provider_fts.client.credentials import Credentials, Trust
    from airflow_provider_fts.client.poller import JobPoller

    info = emulator.info
    trust = Trust(ca_path=info.ca_dir)
    context = Credentials.from_proxy_file(info.proxy).ssl_context(trust)
    poller = JobPoller(info.url, ssl_context=context, trust=trust)
    try:
        return await poller.wait(job_ids, interval=0.5)
    finally:
        await poller.aclose()


def measure(files: int) -> list[list[object]]:
    """The rows of one size, each against a fresh emulator's jobs."""
    from airflow_provider_fts.client.states import Tally

    rows: list[list[object]] = []
    with EmulatorProcess() as emulator, make_client(emulator.info) as client:
        job_ids = submit(client, files)

        def row(what: str, result: object, peak: float, seconds: float) -> None:
            counts = emulator.counts()["requests"]
            emulator.reset()
            size = len(json.dumps(result)) if isinstance(result, dict) else ""
            rows.append([files, what, peak, seconds, sum(counts.values()), size])

        emulator.reset()
        row("today: one round, every file", *measured(today_round, client, job_ids))
        tally = Tally(job_ids, sample_every=3600)
        row("new: one round, records only", *measured(new_round, client, tally))
        tally.sample_every = 0
        row("new: one round + file-state sample", *measured(new_round, client, tally))
        client.cancel_jobs(job_ids)
        tally.sample_every = 3600
        row("new: last round, every job's failures", *measured(new_round, client, tally))
        wait = asyncio.run, trigger_wait(emulator, job_ids)
        row("new: a trigger's whole wait (poller)", *measured(*wait))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    rows = [row for files in args.files for row in measure(files)]
    headers = ["files", "what", "peak MiB (tracemalloc)", "seconds", "requests", "summary bytes"]
    print_table(headers, rows)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"\npeak RSS of this process: {rss} MiB")


if __name__ == "__main__":
    main()
