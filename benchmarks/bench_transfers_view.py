"""The "FTS transfers" page of a 10^5-file run: how long its first render takes.

A child process runs the emulator (so server and view do not share a GIL), submits one
job of 10^5 files through the hook with the id the operator's first try would give it,
and records outcomes for every file (the job of ``tests/ui/many_files.py``). This
process then plays the API server: it reads the run through :class:`FTSHook` into the
view's report (one ``GET /jobs/<id>?files=...``), and renders the page.

* **first render**: a fresh hook (TLS handshake, ``whoami``) and an empty cache: read,
  rows, failure groups, charts, page 1 of the table. The goal is under 2 s.
* **cached page**: another page or filter of the same run, from the cache.
* **CSV**: the whole per-file report, streamed.

Airflow's own part of a request (routing, the JWT check, the run's task instances from
the metadata DB) is not included: a few milliseconds.

    .venv/bin/python benchmarks/bench_transfers_view.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.airflow_env import isolate_airflow  # noqa: E402

isolate_airflow()

from harness import print_table  # noqa: E402

from airflow_provider_fts.hooks.fts import FTSHook  # noqa: E402
from airflow_provider_fts.plugins.app import stream_csv  # noqa: E402
from airflow_provider_fts.plugins.page import render_page  # noqa: E402
from airflow_provider_fts.plugins.report import Filters, ReportCache, build_report  # noqa: E402
from tests.ui.many_files import REASONS, many_files_run, start_emulator  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke run: 10,000 files, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.files, args.rounds = 10_000, 2
    return args


def serve(files: int, pipe) -> None:
    """The child: an emulator holding the run, until the parent closes the pipe."""
    emulator, connection = start_emulator(Path(tempfile.mkdtemp(prefix="bench-view-")))
    os.environ["AIRFLOW_CONN_FTS_MANY"] = connection
    task = many_files_run(emulator, "bench", files)
    pipe.send((connection, task))
    pipe.recv()  # until told to stop
    emulator.stop()


def first_render(task) -> tuple[float, float, float, str]:
    """Seconds to read the run and to render page 1 (a fresh hook and cache each time), and
    the CPU seconds this process spent on both (the view's own work, whatever the load)."""
    cache = ReportCache()
    cpu = time.process_time()
    start = time.perf_counter()
    report = cache.get("run", lambda: build_report(FTSHook, [task]))
    read = time.perf_counter()
    html = render_page("bench", report, Filters(), 1, 50, "/files")
    end = time.perf_counter()
    return read - start, end - read, time.process_time() - cpu, html


def main() -> None:
    args = parse_args()
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(args.files, child))
    server.start()
    connection, task = parent.recv()
    os.environ["AIRFLOW_CONN_FTS_MANY"] = connection
    try:
        rounds = [first_render(task) for _ in range(args.rounds)]
        cache = ReportCache()
        report = cache.get("run", lambda: build_report(FTSHook, [task]))
        render_page("bench", report, Filters(), 1, 50, "/files")  # the first viewer's
        start = time.perf_counter()
        render_page("bench", cache.get("run", lambda: report), Filters(), 999, 50, "/files")
        cached = time.perf_counter() - start
        start = time.perf_counter()
        render_page(
            "bench", cache.get("run", lambda: report), Filters(reason=REASONS[0][0]), 3, 50, "/f"
        )
        filtered = time.perf_counter() - start
        start = time.perf_counter()
        size = sum(len(part) for part in stream_csv(report, Filters()))
        csv_seconds = time.perf_counter() - start
        held = held_bytes(task)
    finally:
        parent.send("stop")
        server.join()
    totals = [read + render for read, render, _, _ in rounds]
    print(f"{args.files:,} files; {args.rounds} first renders; load {os.getloadavg()[0]:.1f}\n")
    print_table(
        ["what", "median", "best", "worst"],
        [
            ["first render (read + page)", *_seconds(totals)],
            ["  read FTS into the report", *_seconds([r[0] for r in rounds])],
            ["  render page 1", *_seconds([r[1] for r in rounds])],
            ["  CPU of the view's process", *_seconds([r[2] for r in rounds])],
            ["cached: page 999", f"{cached * 1000:.0f} ms", "", ""],
            ["cached: a reason filter, page 3", f"{filtered * 1000:.0f} ms", "", ""],
            [f"CSV of every file ({size / 2**20:.1f} MiB)", f"{csv_seconds:.2f} s", "", ""],
            ["page size", f"{len(rounds[0][3]) / 1024:.0f} KiB", "", ""],
            ["memory of the cached report", f"{held / 2**20:.0f} MiB", "", ""],
        ],
    )


def held_bytes(task) -> int:
    """Bytes the cached report keeps (allocated by the read and still alive after it)."""
    tracemalloc.start()
    report = build_report(FTSHook, [task])
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del report
    return held


def _seconds(values: list[float]) -> list[str]:
    return [f"{statistics.median(values):.2f} s", f"{min(values):.2f} s", f"{max(values):.2f} s"]


if __name__ == "__main__":
    main()
